//! The simulated connector's state file (`--state-file`): its paper account and the results of the trade
//! commands it executed, so a restarted connector keeps its positions and still answers a resent command with
//! its first result instead of executing it again.
//!
//! One JSON document ([`SavedState`]):
//!
//! ```json
//! {"format": "nusatrade-sim-connector-state", "version": 1, "saved_at": "2024-01-02T10:00:00Z",
//!  "login": 51234567, "server": "NusaTrade-Paper",
//!  "account": {"currency": "USD", "balance": "9985.00", "leverage": 100,
//!              "next_ticket": 100000002, "next_deal": 200000003,
//!              "positions": [{"ticket": 100000001, "symbol": "EURUSD", "side": "BUY", "lots": "1", ...}],
//!              "quotes": [{"symbol": "EURUSD", "bid": "1.10000", "ask": "1.10015", "time": "..."}],
//!              "deals": [...the last 1 000...]},
//!  "executed": [{"request_id": "0190…", "result": {"type": "TRADE_RESULT", ...}}, ...the last 10 000, oldest first]}
//! ```
//!
//! Money, prices and volumes are decimal strings (exact). It is written after every change (a trade, a remembered
//! result, a stop hit) and before the command's `TRADE_RESULT` is sent, by [`write_atomic`]: a temporary file in
//! the same directory, flushed to disk, then renamed over the old one, so a reader (or a restart after a crash)
//! sees the previous state or the new one, never a mix. One connector per state file.

use std::fs::{self, File};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use thiserror::Error;

use crate::paper::AccountSnapshot;

/// The `format` field of a state file.
pub const STATE_FORMAT: &str = "nusatrade-sim-connector-state";
/// The `version` field this build writes and reads.
pub const STATE_VERSION: u32 = 1;

/// A state file's contents. See the module docs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SavedState {
    /// Always [`STATE_FORMAT`].
    pub format: String,
    /// [`STATE_VERSION`].
    pub version: u32,
    /// When it was written.
    pub saved_at: DateTime<Utc>,
    /// The paper account's MT5 login.
    pub login: u64,
    /// The paper account's MT5 server name.
    pub server: String,
    /// The paper account.
    pub account: AccountSnapshot,
    /// Remembered trade results by request id, oldest first.
    pub executed: Vec<Executed>,
}

/// One remembered trade result.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Executed {
    /// The command's `request_id`.
    pub request_id: String,
    /// The `TRADE_RESULT` first sent for it.
    pub result: Value,
}

/// Why a state file cannot be used.
#[derive(Debug, Error)]
pub enum StateError {
    /// It exists but cannot be read.
    #[error("cannot read the state file {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: io::Error,
    },
    /// It is not a state this build can use.
    #[error(
        "the state file {path} is not a usable connector state ({reason}); move it away or delete it to start with a fresh paper account"
    )]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// It belongs to another paper account.
    #[error(
        "the state file {path} belongs to MT5 login {login} on {server}, not to this connector's {expected_login} on {expected_server}: use another --state-file"
    )]
    OtherAccount {
        /// The file.
        path: PathBuf,
        /// Its login.
        login: u64,
        /// Its server.
        server: String,
        /// This connector's login.
        expected_login: u64,
        /// This connector's server.
        expected_server: String,
    },
    /// It cannot be written.
    #[error("cannot write the state file {path}: {source}")]
    Write {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: io::Error,
    },
}

/// A state file on disk.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StateFile {
    path: PathBuf,
}

impl StateFile {
    /// The state file at `path` (nothing is read or written yet).
    pub fn new(path: impl Into<PathBuf>) -> StateFile {
        StateFile { path: path.into() }
    }

    /// Where it is.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The saved state; `None` when there is no file yet. Unreadable JSON, another format or version, or a
    /// missing or mistyped field is [`StateError::Corrupt`] (the connector reports an inconsistent account the
    /// same way when it restores it).
    pub fn load(&self) -> Result<Option<SavedState>, StateError> {
        let bytes = match fs::read(&self.path) {
            Ok(b) => b,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(source) => return Err(StateError::Read { path: self.path.clone(), source }),
        };
        let corrupt = |reason: String| StateError::Corrupt { path: self.path.clone(), reason };
        let v: Value = serde_json::from_slice(&bytes).map_err(|e| corrupt(format!("not JSON: {e}")))?;
        match (v.get("format").and_then(Value::as_str), v.get("version").and_then(Value::as_u64)) {
            (Some(STATE_FORMAT), Some(n)) if n == u64::from(STATE_VERSION) => {}
            (Some(STATE_FORMAT), version) => {
                return Err(corrupt(format!("version {version:?}; this build reads version {STATE_VERSION}")));
            }
            _ => return Err(corrupt(format!("no \"format\": \"{STATE_FORMAT}\" field"))),
        }
        // Parsed again from the bytes so a mistyped field is reported with its line and column.
        serde_json::from_slice(&bytes).map(Some).map_err(|e| corrupt(e.to_string()))
    }

    /// Writes `state` atomically ([`write_atomic`]).
    pub fn save(&self, state: &SavedState) -> Result<(), StateError> {
        let write = |source| StateError::Write { path: self.path.clone(), source };
        let bytes = serde_json::to_vec(state).map_err(|e| write(io::Error::other(e)))?;
        write_atomic(&self.path, &bytes).map_err(write)
    }

    /// Creates the file's directory if missing.
    pub fn prepare(&self) -> Result<(), StateError> {
        match self.path.parent().filter(|d| !d.as_os_str().is_empty()) {
            Some(dir) => {
                fs::create_dir_all(dir).map_err(|source| StateError::Write { path: self.path.clone(), source })
            }
            None => Ok(()),
        }
    }

    /// Moves an unusable file out of the way (`<path>.corrupt`, replacing an older one) and returns where.
    pub fn set_aside(&self) -> Result<PathBuf, StateError> {
        let mut aside = self.path.clone().into_os_string();
        aside.push(".corrupt");
        let aside = PathBuf::from(aside);
        fs::rename(&self.path, &aside).map_err(|source| StateError::Write { path: self.path.clone(), source })?;
        Ok(aside)
    }
}

/// Replaces `path` with `bytes` atomically: writes `.<name>.tmp-<pid>` in the same directory, flushes it to disk,
/// renames it over `path` and flushes the directory (Unix). On error the temporary file is removed and `path` is
/// left as it was.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let name = path
        .file_name()
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, format!("{} names no file", path.display())))?;
    let dir = path.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("."));
    let tmp = dir.join(format!(".{}.tmp-{}", name.to_string_lossy(), std::process::id()));
    let written = (|| {
        let mut f = File::create(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        fs::rename(&tmp, path)
    })();
    if let Err(e) = written {
        let _ = fs::remove_file(&tmp);
        return Err(e);
    }
    #[cfg(unix)]
    if let Ok(d) = File::open(dir) {
        // Makes the rename itself durable; a failure here loses nothing the rename did not already publish.
        let _ = d.sync_all();
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use nusatrade_domain::money::Currency;
    use rust_decimal::Decimal;
    use serde_json::json;

    use super::*;
    use crate::paper::PaperAccount;

    fn state() -> SavedState {
        SavedState {
            format: STATE_FORMAT.into(),
            version: STATE_VERSION,
            saved_at: DateTime::from_timestamp(1_700_000_000, 0).expect("time"),
            login: 51234567,
            server: "NusaTrade-Paper".into(),
            account: PaperAccount::new(Currency::USD, Decimal::from(10_000), 100).snapshot(10),
            executed: vec![Executed {
                request_id: "r1".into(),
                result: json!({"type": "TRADE_RESULT", "request_id": "r1", "success": true}),
            }],
        }
    }

    #[test]
    fn absent_is_none_and_saved_reads_back() {
        let dir = tempfile::tempdir().expect("tempdir");
        let file = StateFile::new(dir.path().join("nested").join("state.json"));
        assert!(matches!(file.load(), Ok(None)), "no file yet: a fresh account");
        file.prepare().expect("mkdir");
        file.save(&state()).expect("save");
        assert_eq!(file.load().expect("load"), Some(state()));
        let names: Vec<String> = fs::read_dir(dir.path().join("nested"))
            .expect("dir")
            .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
            .collect();
        assert_eq!(names, ["state.json"], "no temporary file left behind");
    }

    #[test]
    fn unusable_files_are_named_with_the_reason() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("state.json");
        let file = StateFile::new(&path);
        let mut other_version = serde_json::to_value(state()).expect("json");
        other_version["version"] = json!(99);
        let mut bad_account = serde_json::to_value(state()).expect("json");
        bad_account["account"]["balance"] = json!("lots");
        let cases = [
            (b"{\"format\": \"nusatrade-sim-connector-st".to_vec(), "not JSON"),
            (b"".to_vec(), "not JSON"),
            (br#"{"positions": []}"#.to_vec(), "no \"format\""),
            (other_version.to_string().into_bytes(), "version Some(99)"),
            (bad_account.to_string().into_bytes(), "expected a Decimal"),
        ];
        for (bytes, why) in cases {
            fs::write(&path, &bytes).expect("write");
            let e = file.load().expect_err("corrupt");
            let msg = e.to_string();
            assert!(matches!(e, StateError::Corrupt { .. }), "{msg}");
            assert!(msg.contains(why) && msg.contains("state.json") && msg.contains("delete it"), "{why}: {msg}");
        }
        let aside = file.set_aside().expect("set aside");
        assert!(aside.ends_with("state.json.corrupt") && aside.exists() && !path.exists());
        assert!(matches!(file.load(), Ok(None)));
    }

    #[test]
    fn a_failed_write_leaves_the_old_file_and_no_temporary() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("state.json");
        write_atomic(&path, b"old").expect("first");
        // The rename cannot replace a non-empty directory: the write fails after the temporary was written.
        let blocked = dir.path().join("blocked");
        fs::create_dir_all(blocked.join("inside")).expect("dir");
        assert!(write_atomic(&blocked, b"new").is_err());
        assert!(blocked.join("inside").is_dir());
        assert!(write_atomic(Path::new("/"), b"x").is_err(), "no file name");
        let left: Vec<String> = fs::read_dir(dir.path())
            .expect("dir")
            .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
            .filter(|n| n.contains(".tmp-"))
            .collect();
        assert!(left.is_empty(), "{left:?}");
        assert_eq!(fs::read(&path).expect("read"), b"old");
        write_atomic(&path, b"newer").expect("replace");
        assert_eq!(fs::read(&path).expect("read"), b"newer");
    }

    #[test]
    fn readers_never_see_a_partial_write() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("state.json");
        // Two complete documents of different sizes, written alternately while another thread reads.
        let a = serde_json::to_vec(&json!({"v": "a".repeat(300_000)})).expect("a");
        let b = serde_json::to_vec(&json!({"v": "b".repeat(700_000), "more": [1, 2, 3]})).expect("b");
        write_atomic(&path, &a).expect("first");
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let reader = {
            let (path, stop) = (path.clone(), stop.clone());
            std::thread::spawn(move || {
                let mut reads = 0;
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    let bytes = fs::read(&path).expect("the file is always there");
                    let v: Value = serde_json::from_slice(&bytes).expect("always a whole document");
                    assert!(v["v"].is_string());
                    reads += 1;
                }
                reads
            })
        };
        for i in 0..100 {
            write_atomic(&path, if i % 2 == 0 { &b } else { &a }).expect("write");
        }
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        assert!(reader.join().expect("reader") > 0);
    }
}
