//! The embedded store's write-ahead log (`store.wal` beside `store.redb`).
//!
//! A durable redb commit writes every page the batch touched (a copy-on-write path per tree: measured
//! ~16 scattered 4 KiB writes per order transaction) and then syncs them: ~0.6–0.9 ms on the
//! development VM, and the store's single writer can do nothing else meanwhile. With the log, a batch
//! is committed to redb without syncing (`Durability::None`: its pages stay in redb's write buffer,
//! visible to readers) after ONE sequential append of what the batch changed has been synced here
//! (~0.15 ms). A checkpoint — a durable redb commit, which makes every earlier commit durable too —
//! runs when the log is full, after an interval, when idle, and on close; the log then starts again
//! at its beginning.
//!
//! The log only ever holds the final state of each changed item (`put key bytes` / `delete key`), in
//! commit order, so replaying records that are already in the database changes nothing.
//!
//! Record: `epoch u64 | payload length u32 | crc32(epoch, length, payload) u32 | payload`, all little
//! endian. The epoch is kept in the database (table `meta`) and advanced by every checkpoint, in the
//! checkpoint's own durable commit. Recovery reads records from offset 0 while the epoch matches and
//! the checksum holds: a record of an older epoch is stale (the log is overwritten in place, never
//! truncated, so a sync never has to write file metadata once the file has grown), and a torn or
//! missing record ends the log — its batch was never acknowledged, because a batch's callers get
//! their replies only after its record is synced.

use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::time::{Duration, Instant};

use nusatrade_app::ports::StoreError;

use super::codec::{Reader, bytes};

const HEADER: usize = 16;
const PUT: u8 = 1;
const DELETE: u8 = 2;

/// When the log is checkpointed.
#[derive(Clone, Copy, Debug)]
pub struct WalOptions {
    /// A checkpoint once the log holds this many bytes (a batch bigger than this alone is committed
    /// durably instead of logged).
    pub max_bytes: u64,
    /// A checkpoint at the first batch this long after the last one, or when idle this long.
    pub interval: Duration,
}

impl Default for WalOptions {
    fn default() -> Self {
        WalOptions { max_bytes: 16 << 20, interval: Duration::from_secs(2) }
    }
}

/// The open log: where the next record goes.
pub(crate) struct Wal {
    file: File,
    epoch: u64,
    len: u64,
    checkpointed: Instant,
    pub(crate) options: WalOptions,
}

impl Wal {
    /// Opens (or creates) the log and returns the payloads of the records of `epoch`, in order.
    pub(crate) fn open(path: &Path, epoch: u64, options: WalOptions) -> io::Result<(Wal, Vec<Vec<u8>>)> {
        let file = OpenOptions::new().read(true).write(true).create(true).truncate(false).open(path)?;
        let size = file.metadata()?.len();
        let mut records = Vec::new();
        let mut at = 0u64;
        let mut header = [0u8; HEADER];
        while at + HEADER as u64 <= size {
            file.read_exact_at(&mut header, at)?;
            let rec_epoch = u64::from_le_bytes(header[0..8].try_into().expect("8 bytes"));
            let len = u32::from_le_bytes(header[8..12].try_into().expect("4 bytes")) as u64;
            let crc = u32::from_le_bytes(header[12..16].try_into().expect("4 bytes"));
            if rec_epoch != epoch || at + HEADER as u64 + len > size {
                break;
            }
            let mut payload = vec![0u8; len as usize];
            file.read_exact_at(&mut payload, at + HEADER as u64)?;
            if checksum(&header[0..12], &payload) != crc {
                break;
            }
            records.push(payload);
            at += HEADER as u64 + len;
        }
        Ok((Wal { file, epoch, len: 0, checkpointed: Instant::now(), options }, records))
    }

    /// The epoch the next records are written with.
    pub(crate) fn epoch(&self) -> u64 {
        self.epoch
    }

    /// Whether the log holds records not yet checkpointed.
    pub(crate) fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Whether a batch whose changes take `payload` bytes should be committed durably (a checkpoint)
    /// rather than logged.
    pub(crate) fn wants_checkpoint(&self, payload: usize) -> bool {
        self.len + (HEADER + payload) as u64 > self.options.max_bytes
            || (!self.is_empty() && self.checkpointed.elapsed() >= self.options.interval)
    }

    /// Whether an idle writer should checkpoint now.
    pub(crate) fn idle_checkpoint_due(&self) -> bool {
        !self.is_empty() && self.checkpointed.elapsed() >= self.options.interval
    }

    /// Appends one record and syncs it.
    pub(crate) fn append(&mut self, payload: &[u8]) -> io::Result<()> {
        let mut record = Vec::with_capacity(HEADER + payload.len());
        record.extend_from_slice(&self.epoch.to_le_bytes());
        let len = u32::try_from(payload.len()).map_err(|_| io::Error::other("log record too large"))?;
        record.extend_from_slice(&len.to_le_bytes());
        let crc = checksum(&record[0..12], payload);
        record.extend_from_slice(&crc.to_le_bytes());
        record.extend_from_slice(payload);
        self.file.write_all_at(&record, self.len)?;
        self.file.sync_data()?;
        self.len += record.len() as u64;
        Ok(())
    }

    /// After a checkpoint that recorded `epoch` durably: the log starts again, empty.
    pub(crate) fn checkpointed(&mut self, epoch: u64) {
        self.epoch = epoch;
        self.len = 0;
        self.checkpointed = Instant::now();
    }
}

fn checksum(header: &[u8], payload: &[u8]) -> u32 {
    let mut h = crc32fast::Hasher::new();
    h.update(header);
    h.update(payload);
    h.finalize()
}

/// Appends "the item at `(pk, sk)` is now `value`" (`None`: deleted) to a record's payload.
pub(crate) fn encode_change(out: &mut Vec<u8>, pk: &str, sk: &str, value: Option<&[u8]>) {
    out.push(if value.is_some() { PUT } else { DELETE });
    bytes(out, pk.as_bytes());
    bytes(out, sk.as_bytes());
    if let Some(v) = value {
        bytes(out, v);
    }
}

/// One change of a record.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Change<'a> {
    pub pk: &'a str,
    pub sk: &'a str,
    pub value: Option<&'a [u8]>,
}

/// The changes of a record's payload (an error for a malformed one, which a checksummed record of
/// this code never is).
pub(crate) fn decode_changes(payload: &[u8]) -> Result<Vec<Change<'_>>, StoreError> {
    let mut r = Reader(payload);
    let mut out = Vec::new();
    while !r.0.is_empty() {
        let tag = r.take(1)?[0];
        let (pk, sk) = (r.str()?, r.str()?);
        let value = match tag {
            PUT => Some(r.bytes()?),
            DELETE => None,
            t => return Err(StoreError::Corrupt(format!("unknown change tag {t} in the store's log"))),
        };
        out.push(Change { pk, sk, value });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn opts() -> WalOptions {
        WalOptions { max_bytes: 1 << 20, interval: Duration::from_secs(3600) }
    }

    #[test]
    fn changes_round_trip() {
        let mut p = Vec::new();
        encode_change(&mut p, "U#1", "PROFILE", Some(b"{\"a\":1}"));
        encode_change(&mut p, "U#2", "", None);
        let changes = decode_changes(&p).unwrap();
        assert_eq!(
            changes,
            vec![
                Change { pk: "U#1", sk: "PROFILE", value: Some(b"{\"a\":1}".as_slice()) },
                Change { pk: "U#2", sk: "", value: None }
            ]
        );
        assert!(decode_changes(&p[..p.len() - 1]).is_err());
    }

    #[test]
    fn reads_back_the_records_of_its_epoch_until_a_torn_or_stale_one() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("store.wal");
        let (mut wal, none) = Wal::open(&path, 7, opts()).unwrap();
        assert!(none.is_empty());
        wal.append(b"first").unwrap();
        wal.append(b"second").unwrap();
        wal.append(b"third").unwrap();
        drop(wal);
        let (_, records) = Wal::open(&path, 7, opts()).unwrap();
        assert_eq!(records, vec![b"first".to_vec(), b"second".to_vec(), b"third".to_vec()]);
        // Another epoch's records are stale.
        assert!(Wal::open(&path, 8, opts()).unwrap().1.is_empty());

        // A new epoch overwrites from the start: the older records after it are not read.
        let (mut wal, _) = Wal::open(&path, 8, opts()).unwrap();
        wal.append(b"new").unwrap();
        drop(wal);
        assert_eq!(Wal::open(&path, 8, opts()).unwrap().1, vec![b"new".to_vec()]);

        // A torn record (a byte flipped, or cut short) ends the log.
        let (mut wal, _) = Wal::open(&path, 9, opts()).unwrap();
        wal.append(b"one").unwrap();
        wal.append(b"two").unwrap();
        drop(wal);
        let f = OpenOptions::new().write(true).open(&path).unwrap();
        f.write_all_at(b"X", (HEADER + 3 + HEADER + 1) as u64).unwrap();
        assert_eq!(Wal::open(&path, 9, opts()).unwrap().1, vec![b"one".to_vec()]);
        f.set_len((HEADER + 2) as u64).unwrap();
        assert!(Wal::open(&path, 9, opts()).unwrap().1.is_empty());
    }

    #[test]
    fn checkpoint_rules() {
        let dir = tempfile::tempdir().unwrap();
        let (mut wal, _) =
            Wal::open(&dir.path().join("w"), 1, WalOptions { max_bytes: 100, interval: Duration::ZERO }).unwrap();
        assert!(!wal.idle_checkpoint_due(), "nothing logged, nothing to checkpoint");
        assert!(!wal.wants_checkpoint(10));
        assert!(wal.wants_checkpoint(90), "would overflow the log");
        wal.append(&[0; 10]).unwrap();
        assert!(wal.idle_checkpoint_due());
        assert!(wal.wants_checkpoint(1), "the interval has passed");
        wal.checkpointed(2);
        assert!(wal.is_empty() && wal.epoch() == 2);
    }
}
