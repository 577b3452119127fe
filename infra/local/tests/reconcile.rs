//! Reconciliation, ack timeouts and trailing stops (issue #6; `nusatrade_app::suites::reconcile`) over the real
//! order use cases on the embedded store, in memory and on disk.

use std::sync::Arc;

use async_trait::async_trait;
use nusatrade_app::contract::store::StoreFactory;
use nusatrade_app::ports::{Clock, ItemStore};
use nusatrade_local::adapters::EmbeddedStore;
use uuid::Uuid;

struct InMemory;

#[async_trait]
impl StoreFactory for InMemory {
    async fn store(&self, clock: Arc<dyn Clock>) -> Arc<dyn ItemStore> {
        Arc::new(EmbeddedStore::temporary(clock).unwrap())
    }
}

/// The embedded store on disk, in a directory that lives as long as the factory (one case).
struct OnDisk(tempfile::TempDir);

impl OnDisk {
    fn new() -> OnDisk {
        OnDisk(tempfile::tempdir().unwrap())
    }
}

#[async_trait]
impl StoreFactory for OnDisk {
    async fn store(&self, clock: Arc<dyn Clock>) -> Arc<dyn ItemStore> {
        Arc::new(EmbeddedStore::open(&self.0.path().join(format!("{}.redb", Uuid::new_v4().simple())), clock).unwrap())
    }
}

mod in_memory {
    nusatrade_app::reconcile_contract!(super::InMemory);
}

mod on_disk {
    nusatrade_app::reconcile_contract!(super::OnDisk::new());
}
