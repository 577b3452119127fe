//! The local platform: every port built from one data directory, and the HTTP routers of every
//! function group merged into one app — the same router constructors the Lambda functions call.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use axum::Router;
use nusatrade_app::http::{health, layers};
use nusatrade_app::ports::{Clock, Ports, RandomIds, SystemClock};

use crate::adapters::{EmbeddedStore, FileBlobStore, FileMailer, LocalPush, LocalQueue};

/// The work queues the platform uses, with their maximum receive count before the dead-letter
/// queue (the same numbers as template.yaml's redrive policies).
pub const WORK_QUEUES: &[(&str, u32)] = &[("reconcile", 5), ("backup", 5)];

/// Local ports plus the concrete push registry the gateway's sockets attach to.
#[derive(Clone)]
pub struct LocalPlatform {
    pub ports: Ports,
    pub push: Arc<LocalPush>,
    pub data_dir: PathBuf,
    pub started: Instant,
}

#[derive(Debug, thiserror::Error)]
pub enum PlatformError {
    #[error("cannot use data dir {dir}: {source}")]
    DataDir { dir: PathBuf, source: std::io::Error },
    #[error("cannot open the embedded store in {dir}: {source}")]
    Store { dir: PathBuf, source: nusatrade_app::ports::StoreError },
}

impl LocalPlatform {
    /// Opens (creating as needed) the data dir: `store.redb`, `blobs/`, `mail/`.
    pub fn open(data_dir: &Path) -> Result<Self, PlatformError> {
        let dir = data_dir.to_path_buf();
        std::fs::create_dir_all(&dir).map_err(|source| PlatformError::DataDir { dir: dir.clone(), source })?;
        let clock: Arc<dyn Clock> = Arc::new(SystemClock);
        let store = EmbeddedStore::open(&dir.join("store.redb"), clock.clone())
            .map_err(|source| PlatformError::Store { dir: dir.clone(), source })?;
        let mut queue = LocalQueue::new(clock.clone());
        for (name, max_receives) in WORK_QUEUES {
            queue = queue.with_queue(name, *max_receives);
        }
        let push = Arc::new(LocalPush::new());
        let ports = Ports {
            store: Arc::new(store),
            blobs: Arc::new(FileBlobStore::new(dir.join("blobs"))),
            queue: Arc::new(queue),
            push: push.clone(),
            mailer: Arc::new(FileMailer::new(dir.join("mail"))),
            clock,
            ids: Arc::new(RandomIds),
        };
        Ok(LocalPlatform { ports, push, data_dir: dir, started: Instant::now() })
    }

    /// Every function group's router, merged, with the shared middleware.
    pub fn http_router(&self) -> Router {
        let health = health::router(health::HealthState {
            store: self.ports.store.clone(),
            clock: self.ports.clock.clone(),
            started: self.started,
            environment: "local".into(),
        });
        layers::platform(Router::new().merge(health))
    }
}
