//! What several of this crate's test files share.

use std::path::Path;
use std::sync::Arc;

use nusatrade_app::ports::{ManualClock, Ports, RandomIds};
use nusatrade_local::adapters::{EmbeddedStore, FileBlobStore, FileMailer, LocalPush, LocalQueue};

/// The local adapters on a manual clock: an in-memory store, blobs and mail under `dir`, a queue with no
/// named queues, a push registry with no connections. Tests replace what they need with struct update
/// syntax (`Ports { push, ..ports(dir, clock) }`).
pub fn ports(dir: &Path, clock: Arc<ManualClock>) -> Ports {
    Ports {
        store: Arc::new(EmbeddedStore::temporary(clock.clone()).unwrap()),
        blobs: Arc::new(FileBlobStore::new(dir.join("blobs"))),
        queue: Arc::new(LocalQueue::new(clock.clone())),
        push: Arc::new(LocalPush::new()),
        mailer: Arc::new(FileMailer::new(dir.join("mail"))),
        clock,
        ids: Arc::new(RandomIds),
    }
}
