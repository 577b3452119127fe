//! What several of this crate's test files share.

// Each test file compiles this module on its own and uses only part of it.
#![allow(dead_code)]

use std::path::Path;
use std::sync::Arc;

use chrono::DateTime;
use nusatrade_app::auth::{AuthConfig, AuthService, RequestMeta};
use nusatrade_app::ports::{ManualClock, Ports, RandomIds};
use nusatrade_local::adapters::{EmbeddedStore, FileBlobStore, FileMailer, LocalPush, LocalQueue};
use uuid::Uuid;

/// The JWT secret of the tests' auth services.
pub const SECRET: &str = "test-secret-test-secret-test-secret!";
/// The password every test user registers with.
pub const PW: &str = "Str0ng!pass";

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

/// The manual clock the tests start at (2027-01-15 08:00 UTC).
pub fn clock() -> Arc<ManualClock> {
    Arc::new(ManualClock::new(DateTime::from_timestamp(1_800_000_000, 0).unwrap()))
}

/// Where the handler tests start: a temporary dir, the [`clock`], the in-process push whose receivers stand in
/// for the sockets, the [`ports`] over them, and an auth service without the e-mail verification step.
pub struct Base {
    pub dir: tempfile::TempDir,
    pub clock: Arc<ManualClock>,
    pub push: Arc<LocalPush>,
    pub ports: Ports,
    pub auth: AuthService,
}

pub fn base() -> Base {
    let dir = tempfile::tempdir().unwrap();
    let clock = clock();
    let push = Arc::new(LocalPush::new());
    let ports = Ports { push: push.clone(), ..ports(dir.path(), clock.clone()) };
    let mut config = AuthConfig::for_tests(SECRET);
    config.require_email_verification = false;
    let auth = AuthService::new(config, ports.clone()).unwrap();
    Base { dir, clock, push, ports, auth }
}

/// The request metadata of the tests' sign-ins.
pub fn meta() -> RequestMeta {
    RequestMeta { ip: "10.0.0.1".into(), user_agent: "tests".into() }
}

/// A registered user: id, e-mail and access token.
pub struct User {
    pub id: Uuid,
    pub email: String,
    pub token: String,
}

/// Registers `email` with [`PW`].
pub async fn register(auth: &AuthService, email: &str) -> User {
    let (out, pair) = auth.register(email, PW, None, &meta()).await.unwrap();
    User { id: out.id.parse().unwrap(), email: email.into(), token: pair.access_token }
}
