//! The local adapters: every port of `nusatrade_app::ports` implemented without AWS.
//!
//! - [`EmbeddedStore`]: the item store on an embedded ACID database (redb), DynamoDB semantics (with its
//!   write-ahead log, [`wal`]).
//! - [`FileBlobStore`]: blobs as files under a root directory, written atomically.
//! - [`LocalQueue`]: in-process queues with visibility timeout, receive count, delay and dead-letter
//!   queues.
//! - [`LocalPush`]: the registry of the local gateway's live WebSocket connections.
//! - [`FileMailer`]: emails written as JSON files.
//! - [`KeyFile`]: the master key of the settings' envelope encryption (`settings.key` in the data dir).

pub mod blobs;
pub mod keyfile;
pub mod mailer;
pub mod push;
pub mod queue;
pub mod store;

pub use blobs::FileBlobStore;
pub use keyfile::KeyFile;
pub use mailer::FileMailer;
pub use push::{LocalPush, Outbound};
pub use queue::LocalQueue;
pub use store::{EmbeddedStore, WalOptions, wal};
