//! The shared port contract suites (`nusatrade_app::contract`), run on the local adapters.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use nusatrade_app::contract::blob::BlobFactory;
use nusatrade_app::contract::mail::MailFactory;
use nusatrade_app::contract::push::{PushFactory, PushHarness};
use nusatrade_app::contract::queue::QueueFactory;
use nusatrade_app::contract::store::StoreFactory;
use nusatrade_app::ports::*;
use nusatrade_local::adapters::{EmbeddedStore, FileBlobStore, FileMailer, LocalPush, LocalQueue, Outbound};

/// The embedded store in memory (redb's in-memory backend).
mod embedded_in_memory {
    use super::*;

    struct InMemory;

    #[async_trait]
    impl StoreFactory for InMemory {
        async fn store(&self, clock: Arc<dyn Clock>) -> Arc<dyn ItemStore> {
            Arc::new(EmbeddedStore::temporary(clock).unwrap())
        }
    }

    nusatrade_app::item_store_contract!(InMemory);

    mod orders {
        nusatrade_app::orders_contract!(super::InMemory);
    }

    mod settings {
        nusatrade_app::settings_contract!(super::InMemory);
    }

    mod ai_budget {
        nusatrade_app::ai_budget_contract!(super::InMemory);
    }
}

/// The embedded store on disk, as `nusatrade serve` runs it.
mod embedded_on_disk {
    use super::*;

    /// Keeps the temporary directory alive as long as the store.
    struct OnDiskStore {
        store: EmbeddedStore,
        _dir: tempfile::TempDir,
    }

    #[async_trait]
    impl ItemStore for OnDiskStore {
        async fn get(&self, key: &Key) -> Result<Option<Item>, StoreError> {
            self.store.get(key).await
        }
        async fn put(&self, item: Item, condition: Option<Condition>) -> Result<(), StoreError> {
            self.store.put(item, condition).await
        }
        async fn update(&self, key: &Key, update: Update, condition: Option<Condition>) -> Result<Item, StoreError> {
            self.store.update(key, update, condition).await
        }
        async fn delete(&self, key: &Key, condition: Option<Condition>) -> Result<Option<Item>, StoreError> {
            self.store.delete(key, condition).await
        }
        async fn transact_write(&self, ops: Vec<TxOp>) -> Result<(), StoreError> {
            self.store.transact_write(ops).await
        }
        async fn query(&self, query: Query) -> Result<Page, StoreError> {
            self.store.query(query).await
        }
        async fn scan(&self, scan: Scan) -> Result<Page, StoreError> {
            self.store.scan(scan).await
        }
        async fn put_many(&self, items: Vec<Item>) -> Result<(), StoreError> {
            self.store.put_many(items).await
        }
    }

    struct OnDisk;

    #[async_trait]
    impl StoreFactory for OnDisk {
        async fn store(&self, clock: Arc<dyn Clock>) -> Arc<dyn ItemStore> {
            let dir = tempfile::tempdir().unwrap();
            let store = EmbeddedStore::open(&dir.path().join("data").join("store.redb"), clock).unwrap();
            Arc::new(OnDiskStore { store, _dir: dir })
        }
    }

    nusatrade_app::item_store_contract!(OnDisk);

    mod orders {
        nusatrade_app::orders_contract!(super::OnDisk);
    }
}

/// Backups of the embedded store (on disk) into file blobs, restored into fresh data dirs.
mod embedded_backups {
    use super::*;
    use nusatrade_app::suites::backup::BackupFactory;

    /// Temporary directories live as long as the test.
    struct Dirs(Mutex<Vec<tempfile::TempDir>>);

    impl Dirs {
        fn new() -> Self {
            Dirs(Mutex::new(Vec::new()))
        }
        fn dir(&self) -> std::path::PathBuf {
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().to_path_buf();
            self.0.lock().unwrap().push(dir);
            path
        }
    }

    #[async_trait]
    impl BackupFactory for Dirs {
        async fn store(&self, clock: Arc<dyn Clock>) -> Arc<dyn ItemStore> {
            Arc::new(EmbeddedStore::open(&self.dir().join("store.redb"), clock).unwrap())
        }
        async fn blobs(&self) -> Arc<dyn BlobStore> {
            Arc::new(FileBlobStore::new(self.dir().join("blobs")))
        }
    }

    nusatrade_app::backup_contract!(Dirs::new());
}

mod file_blobs {
    use super::*;

    struct Files(tempfile::TempDir);

    impl Files {
        fn new() -> Self {
            Files(tempfile::tempdir().unwrap())
        }
    }

    #[async_trait]
    impl BlobFactory for Files {
        async fn blobs(&self) -> Arc<dyn BlobStore> {
            Arc::new(FileBlobStore::new(self.0.path().join("blobs")))
        }
    }

    nusatrade_app::blob_store_contract!(Files::new());
}

mod local_queue {
    use super::*;

    struct InProcess;

    #[async_trait]
    impl QueueFactory for InProcess {
        async fn queue(&self, name: &str, max_receives: u32) -> Arc<dyn Queue> {
            Arc::new(LocalQueue::new(Arc::new(SystemClock)).with_queue(name, max_receives))
        }
    }

    nusatrade_app::queue_contract!(InProcess);
}

mod local_push {
    use super::*;

    /// A client: the task draining its channel (as the gateway's socket writer does) and what it got.
    type Client = (tokio::task::JoinHandle<()>, Arc<Mutex<Vec<String>>>);

    /// Plays the gateway's side of the connections.
    struct Harness {
        push: Arc<LocalPush>,
        clients: Mutex<HashMap<String, Client>>,
    }

    #[async_trait]
    impl PushHarness for Harness {
        fn push(&self) -> Arc<dyn Push> {
            self.push.clone()
        }
        async fn open(&self) -> String {
            let id = nusatrade_app::contract::unique("conn=");
            let mut rx = self.push.register(&id);
            let received = Arc::new(Mutex::new(Vec::new()));
            let sink = received.clone();
            let push = self.push.clone();
            let conn = id.clone();
            let task = tokio::spawn(async move {
                while let Some(out) = rx.recv().await {
                    match out {
                        Outbound::Text(t) => sink.lock().unwrap().push(t),
                        Outbound::Close => break,
                    }
                }
                push.unregister(&conn);
            });
            self.clients.lock().unwrap().insert(id.clone(), (task, received));
            id
        }
        async fn received(&self, connection_id: &str) -> Vec<String> {
            let clients = self.clients.lock().unwrap();
            clients.get(connection_id).map(|(_, r)| r.lock().unwrap().clone()).unwrap_or_default()
        }
        async fn hang_up(&self, connection_id: &str) {
            // The socket task dies without unregistering: the push adapter must notice by itself.
            let task = self.clients.lock().unwrap().remove(connection_id).map(|(t, _)| t);
            if let Some(task) = task {
                task.abort();
                let _ = task.await;
            }
        }
        async fn is_open(&self, connection_id: &str) -> bool {
            self.push.is_connected(connection_id)
        }
    }

    struct Local;

    #[async_trait]
    impl PushFactory for Local {
        async fn harness(&self) -> Box<dyn PushHarness> {
            Box::new(Harness { push: Arc::new(LocalPush::new()), clients: Mutex::new(HashMap::new()) })
        }
    }

    nusatrade_app::push_contract!(Local);
}

mod file_mailer {
    use super::*;

    struct Outbox(tempfile::TempDir);

    impl Outbox {
        fn new() -> Self {
            Outbox(tempfile::tempdir().unwrap())
        }
        fn mailer_dir(&self) -> std::path::PathBuf {
            self.0.path().join("mail")
        }
    }

    #[async_trait]
    impl MailFactory for Outbox {
        async fn mailer(&self) -> Arc<dyn Mailer> {
            Arc::new(FileMailer::new(self.mailer_dir()))
        }
        async fn sent_to(&self, to: &str) -> Option<Vec<Email>> {
            let sent = FileMailer::new(self.mailer_dir()).sent().await.unwrap();
            Some(sent.into_iter().filter(|e| e.to == to).collect())
        }
    }

    nusatrade_app::mailer_contract!(Outbox::new());
}

/// The settings' master key: a key file in a data dir (each case gets its own directories).
mod key_file {
    use super::*;
    use nusatrade_app::contract::secrets::KeyWrapperFactory;
    use nusatrade_local::adapters::KeyFile;

    /// Keeps the data dirs alive as long as the case.
    struct DataDirs(Mutex<Vec<tempfile::TempDir>>);

    impl DataDirs {
        fn new() -> Self {
            DataDirs(Mutex::new(Vec::new()))
        }
        fn key_file(&self) -> Arc<dyn KeyWrapper> {
            let dir = tempfile::tempdir().unwrap();
            let keys = Arc::new(KeyFile::in_data_dir(dir.path()));
            self.0.lock().unwrap().push(dir);
            keys
        }
    }

    #[async_trait]
    impl KeyWrapperFactory for DataDirs {
        async fn keys(&self) -> Arc<dyn KeyWrapper> {
            self.key_file()
        }
        async fn other_keys(&self) -> Arc<dyn KeyWrapper> {
            let other = self.key_file();
            // the other data dir's file exists once a key was made with it
            other.generate_data_key().await.unwrap();
            other
        }
    }

    nusatrade_app::key_wrapper_contract!(DataDirs::new());
}
