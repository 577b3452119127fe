//! Emails as files: each message becomes `<dir>/<epoch_millis>-<uuid>.json` (the [`Email`] as pretty
//! JSON), written atomically. The log line names the recipient and subject, never the body (it may
//! hold secrets such as reset links).

use std::io::Write;
use std::path::{Path, PathBuf};

use async_trait::async_trait;
use nusatrade_app::ports::mail::validate;
use nusatrade_app::ports::{Email, MailError, Mailer};

/// The file implementation of [`Mailer`].
#[derive(Clone, Debug)]
pub struct FileMailer {
    dir: PathBuf,
}

fn unavailable(what: &str, path: &Path, e: impl std::fmt::Display) -> MailError {
    MailError::Unavailable(format!("{what} {}: {e}", path.display()))
}

impl FileMailer {
    /// Messages go to `dir` (created on the first message).
    pub fn new(dir: PathBuf) -> Self {
        FileMailer { dir }
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The messages written so far, oldest first (for tests and the CLI).
    pub async fn sent(&self) -> Result<Vec<Email>, MailError> {
        let dir = self.dir.clone();
        tokio::task::spawn_blocking(move || {
            let entries = match std::fs::read_dir(&dir) {
                Ok(e) => e,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
                Err(e) => return Err(unavailable("cannot list", &dir, e)),
            };
            let mut paths = Vec::new();
            for entry in entries {
                let path = entry.map_err(|e| unavailable("cannot list", &dir, e))?.path();
                let is_message = path.extension().is_some_and(|x| x == "json")
                    && path.file_name().is_some_and(|n| !n.to_string_lossy().starts_with('.'));
                if is_message {
                    paths.push(path);
                }
            }
            // Names start with the zero-padded epoch milliseconds: name order is time order.
            paths.sort();
            paths
                .iter()
                .map(|p| {
                    let bytes = std::fs::read(p).map_err(|e| unavailable("cannot read", p, e))?;
                    serde_json::from_slice(&bytes).map_err(|e| unavailable("cannot parse", p, e))
                })
                .collect()
        })
        .await
        .map_err(|e| MailError::Unavailable(format!("mailer task failed: {e}")))?
    }
}

fn write_message(dir: &Path, name: &str, json: &[u8]) -> Result<PathBuf, MailError> {
    std::fs::create_dir_all(dir).map_err(|e| unavailable("cannot create", dir, e))?;
    let path = dir.join(name);
    let tmp = dir.join(format!(".{name}.tmp"));
    let result = (|| {
        let mut f = std::fs::File::create(&tmp).map_err(|e| unavailable("cannot create", &tmp, e))?;
        f.write_all(json).map_err(|e| unavailable("cannot write", &tmp, e))?;
        f.sync_all().map_err(|e| unavailable("cannot sync", &tmp, e))?;
        std::fs::rename(&tmp, &path).map_err(|e| unavailable("cannot rename onto", &path, e))
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result.map(|()| path)
}

#[async_trait]
impl Mailer for FileMailer {
    async fn send(&self, email: &Email) -> Result<(), MailError> {
        validate(email)?;
        let json = serde_json::to_vec_pretty(email)
            .map_err(|e| MailError::Unavailable(format!("cannot encode email: {e}")))?;
        let name = format!("{:013}-{}.json", chrono::Utc::now().timestamp_millis(), uuid::Uuid::new_v4());
        let dir = self.dir.clone();
        let path = tokio::task::spawn_blocking(move || write_message(&dir, &name, &json))
            .await
            .map_err(|e| MailError::Unavailable(format!("mailer task failed: {e}")))??;
        tracing::info!(to = %email.to, subject = %email.subject, file = %path.display(), "email written");
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn email() -> Email {
        Email { to: "ana@example.com".into(), subject: "Reset your password".into(), text: "secret link".into() }
    }

    #[tokio::test]
    async fn writes_one_file_per_message() {
        let dir = tempfile::tempdir().unwrap();
        let mailer = FileMailer::new(dir.path().join("mail"));
        assert!(mailer.sent().await.unwrap().is_empty());
        mailer.send(&email()).await.unwrap();
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        let second = Email { subject: "Second".into(), ..email() };
        mailer.send(&second).await.unwrap();

        let names: Vec<String> =
            std::fs::read_dir(mailer.dir()).unwrap().map(|e| e.unwrap().file_name().into_string().unwrap()).collect();
        assert_eq!(names.len(), 2);
        for n in &names {
            let (millis, rest) = n.split_once('-').unwrap();
            assert!(millis.parse::<i64>().unwrap() > 1_600_000_000_000, "{n}");
            assert!(rest.ends_with(".json"), "{n}");
        }
        assert_eq!(mailer.sent().await.unwrap(), vec![email(), second]);
    }

    #[tokio::test]
    async fn refuses_invalid_messages() {
        let dir = tempfile::tempdir().unwrap();
        let mailer = FileMailer::new(dir.path().to_path_buf());
        let bad = Email { to: "nobody".into(), ..email() };
        assert!(matches!(mailer.send(&bad).await, Err(MailError::Invalid(_))));
        let bad = Email { subject: "a\r\nBcc: x@y.z".into(), ..email() };
        assert!(matches!(mailer.send(&bad).await, Err(MailError::Invalid(_))));
        assert!(mailer.sent().await.unwrap().is_empty());
    }
}
