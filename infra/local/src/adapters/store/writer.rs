//! Group commit: the one writer thread, the batches it applies in one redb transaction, the write-ahead log's
//! sync before the replies, checkpoints, and recovery from the log on open (see the [store](super) docs).

use std::panic::{self, AssertUnwindSafe};
use std::path::Path;
use std::sync::{Arc, mpsc};
use std::thread::JoinHandle;

use nusatrade_app::ports::{Key, StoreError};
use redb::{Database, Durability, WriteTransaction};
use tokio::sync::oneshot;

use super::codec::decode;
use super::tables::{META, Tables, WAL_EPOCH, db_err, load_raw, store_item};
use super::wal::{self, Wal, WalOptions};

/// The most write requests committed together.
const MAX_BATCH: usize = 256;

/// The writer thread and the channel feeding it. Dropping it closes the channel and waits for the
/// thread, which finishes the queued requests first (so the database file is closed afterwards).
pub(super) struct Writer {
    requests: Option<mpsc::Sender<Box<dyn WriteJob>>>,
    thread: Option<JoinHandle<()>>,
}

impl Writer {
    pub(super) fn start(db: Arc<Database>, wal: Option<Wal>) -> Result<Self, StoreError> {
        let (requests, queue) = mpsc::channel();
        let thread = std::thread::Builder::new()
            .name("store-writer".into())
            .spawn(move || run_writer(&db, wal, &queue))
            .map_err(|e| StoreError::Unavailable(format!("cannot start the store writer: {e}")))?;
        Ok(Writer { requests: Some(requests), thread: Some(thread) })
    }

    /// Runs the write `f` in the next batch; resolves once the batch is durably committed (see
    /// [`EmbeddedStore::write`](super::EmbeddedStore)).
    pub(super) async fn write<T, F>(&self, f: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnMut(&mut Tables<'_>) -> Result<T, StoreError> + Send + 'static,
    {
        let (reply, response) = oneshot::channel();
        self.submit(Box::new(Pending { f, result: None, reply }))?;
        response.await.map_err(|_| StoreError::Unavailable("the store writer dropped the request".into()))?
    }

    fn submit(&self, job: Box<dyn WriteJob>) -> Result<(), StoreError> {
        let stopped = || StoreError::Unavailable("the store writer has stopped".into());
        self.requests.as_ref().ok_or_else(stopped)?.send(job).map_err(|_| stopped())
    }
}

impl Drop for Writer {
    fn drop(&mut self) {
        drop(self.requests.take());
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// How applying one request went.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Applied {
    /// It succeeded (its writes are in the transaction).
    Wrote,
    /// It failed before writing anything (condition or validation): the others are unaffected.
    Refused,
    /// It failed and may have written part of its changes: the transaction must be aborted.
    Dirty,
}

/// A write request queued for the writer thread.
trait WriteJob: Send {
    /// Applies the request to the batch's tables and keeps its result (it may be applied again).
    fn apply(&mut self, tables: &mut Tables<'_>) -> Applied;
    /// Replies to the caller: its own result when the batch committed, the commit error otherwise.
    fn finish(self: Box<Self>, commit: Result<(), StoreError>);
}

/// A write request: the write, its latest result, and where to reply.
struct Pending<T, F> {
    f: F,
    result: Option<Result<T, StoreError>>,
    reply: oneshot::Sender<Result<T, StoreError>>,
}

impl<T, F> WriteJob for Pending<T, F>
where
    T: Send,
    F: FnMut(&mut Tables<'_>) -> Result<T, StoreError> + Send,
{
    fn apply(&mut self, tables: &mut Tables<'_>) -> Applied {
        let result = panic::catch_unwind(AssertUnwindSafe(|| (self.f)(tables))).unwrap_or_else(|panic| {
            let message = panic_message(panic.as_ref());
            tracing::error!(%message, "a store write panicked");
            Err(StoreError::Unavailable(format!("the store write failed: {message}")))
        });
        let applied = match &result {
            Ok(_) => Applied::Wrote,
            Err(e) if refused_before_writing(e) => Applied::Refused,
            Err(_) => Applied::Dirty,
        };
        self.result = Some(result);
        applied
    }

    fn finish(self: Box<Self>, commit: Result<(), StoreError>) {
        let result = match commit {
            Ok(()) => self.result.unwrap_or_else(|| Err(StoreError::Unavailable("the write was not applied".into()))),
            Err(e) => Err(e),
        };
        // The caller may have gone away (its future dropped): nothing to do then.
        let _ = self.reply.send(result);
    }
}

/// The errors the writes raise before writing anything. Any other (storage error, corruption, panic)
/// may come after part of the request was written.
fn refused_before_writing(e: &StoreError) -> bool {
    matches!(
        e,
        StoreError::ConditionFailed
            | StoreError::TransactionCanceled(_)
            | StoreError::Validation(_)
            | StoreError::InvalidCursor
    )
}

fn panic_message(panic: &(dyn std::any::Any + Send)) -> String {
    match (panic.downcast_ref::<&str>(), panic.downcast_ref::<String>()) {
        (Some(s), _) => (*s).to_owned(),
        (_, Some(s)) => s.clone(),
        _ => "panic".to_owned(),
    }
}

/// The writer thread: one batch at a time until every handle to the store is gone; with a log, a
/// checkpoint when idle and a last one at the end (so a closed store's log is empty).
fn run_writer(db: &Database, mut wal: Option<Wal>, queue: &mpsc::Receiver<Box<dyn WriteJob>>) {
    let mut broken: Option<String> = None;
    loop {
        let first = match &mut wal {
            Some(w) => match queue.recv_timeout(w.options.interval) {
                Ok(job) => job,
                Err(mpsc::RecvTimeoutError::Timeout) => {
                    if broken.is_none() && w.idle_checkpoint_due() {
                        checkpoint_logged(db, w);
                    }
                    continue;
                }
                Err(mpsc::RecvTimeoutError::Disconnected) => break,
            },
            None => match queue.recv() {
                Ok(job) => job,
                Err(_) => break,
            },
        };
        let mut batch = Vec::with_capacity(16);
        batch.push(first);
        batch.extend(queue.try_iter().take(MAX_BATCH - 1));
        if let Some(why) = &broken {
            for job in batch {
                job.finish(Err(StoreError::Unavailable(why.clone())));
            }
            continue;
        }
        // Requests catch their own panics; this is for a bug elsewhere. The batch's replies are then
        // dropped (its callers get `Unavailable`) and the writer goes on.
        match panic::catch_unwind(AssertUnwindSafe(|| commit_batch(db, wal.as_mut(), batch))) {
            Ok(Ok(())) => {}
            Ok(Err(why)) => {
                tracing::error!(%why, "the store stops writing until it is opened again");
                broken = Some(why);
            }
            Err(_) if wal.is_some() => {
                // It may have panicked between logging the batch and committing it.
                let why = "the store writer panicked while committing a batch".to_owned();
                tracing::error!(%why, "the store stops writing until it is opened again");
                broken = Some(why);
            }
            Err(_) => tracing::error!("the store writer panicked; the batch's requests failed"),
        }
    }
    if let Some(w) = &mut wal
        && broken.is_none()
        && !w.is_empty()
    {
        checkpoint_logged(db, w);
    }
}

/// Applies and commits the batch, then replies to every request in it. `Err`: the log and the
/// database disagree (a logged batch could not be committed): no later write may be accepted.
fn commit_batch(db: &Database, mut wal: Option<&mut Wal>, mut batch: Vec<Box<dyn WriteJob>>) -> Result<(), String> {
    loop {
        match try_batch(db, wal.as_deref_mut(), &mut batch) {
            Attempt::Done(commit, broken) => {
                for job in batch {
                    job.finish(commit.clone());
                }
                return broken.map_or(Ok(()), Err);
            }
            // That request failed on its own (its result is its error); the others go again without it.
            Attempt::Dirty(i) => batch.remove(i).finish(Ok(())),
        }
    }
}

/// The outcome of one attempt at a batch.
enum Attempt {
    /// The transaction ended: committed (`Ok`), or not written at all (`Err`, for every request); with
    /// the reason the store must stop writing, if it must.
    Done(Result<(), StoreError>, Option<String>),
    /// The request at this index failed after possibly writing: the transaction was aborted.
    Dirty(usize),
}

/// Applies the batch in one write transaction, in order, and commits it (durably) unless a request
/// failed dirty. With nothing written (every request refused), there is nothing to commit.
fn try_batch(db: &Database, wal: Option<&mut Wal>, batch: &mut [Box<dyn WriteJob>]) -> Attempt {
    let txn = match db.begin_write() {
        Ok(txn) => txn,
        Err(e) => return Attempt::Done(Err(db_err(e)), None),
    };
    let (applied, log) = {
        let mut tables = match Tables::open(&txn, wal.is_some()) {
            Ok(tables) => tables,
            Err(e) => return Attempt::Done(Err(e), None),
        };
        (apply_all(batch, &mut tables), tables.log.take())
    };
    match applied {
        Err(dirty) => {
            let _ = txn.abort();
            Attempt::Dirty(dirty)
        }
        Ok(false) => {
            let _ = txn.abort();
            Attempt::Done(Ok(()), None)
        }
        Ok(true) => match (wal, log) {
            (Some(wal), Some(log)) => commit_logged(txn, wal, &log),
            _ => Attempt::Done(txn.commit().map_err(db_err), None),
        },
    }
}

/// Makes a batch durable through the log — its record synced, then the transaction committed without
/// a sync — or, when a checkpoint is due (or the batch is too big for the log), by committing it
/// durably as the checkpoint.
fn commit_logged(mut txn: WriteTransaction, wal: &mut Wal, log: &[u8]) -> Attempt {
    if wal.wants_checkpoint(log.len()) {
        return Attempt::Done(checkpoint_in(txn, wal), None);
    }
    if let Err(e) = wal.append(log) {
        // Not acknowledged; the next record overwrites whatever reached the file.
        return Attempt::Done(Err(StoreError::Unavailable(format!("cannot write the store's log: {e}"))), None);
    }
    let committed = txn
        .set_durability(Durability::None)
        .map_err(|e| e.to_string())
        .and_then(|()| txn.commit().map_err(|e| e.to_string()));
    match committed {
        Ok(()) => Attempt::Done(Ok(()), None),
        // The record is durable and will be replayed by the next open, but this process's database
        // lacks the batch: accepting later writes would let them see a state that never was.
        Err(e) => {
            let why = format!("a logged batch could not be committed: {e}");
            Attempt::Done(Err(StoreError::Unavailable(why.clone())), Some(why))
        }
    }
}

/// Commits `txn` durably with the log's next epoch recorded in it: everything committed before is
/// durable in the database, so the log starts again.
fn checkpoint_in(txn: WriteTransaction, wal: &mut Wal) -> Result<(), StoreError> {
    let next = wal.epoch() + 1;
    {
        let mut meta = txn.open_table(META).map_err(db_err)?;
        meta.insert(WAL_EPOCH, next).map_err(db_err)?;
    }
    txn.commit().map_err(db_err)?;
    wal.checkpointed(next);
    Ok(())
}

/// A checkpoint on its own (idle, or closing); a failure is logged and retried at the next one.
fn checkpoint_logged(db: &Database, wal: &mut Wal) {
    let done = db.begin_write().map_err(db_err).and_then(|txn| checkpoint_in(txn, wal));
    if let Err(e) = done {
        tracing::warn!(error = %e, "store checkpoint failed; the log keeps the writes");
    }
}

/// Opens the log and replays what it holds after the last checkpoint, then starts a new epoch (so
/// nothing left in the file from this or an earlier epoch is ever read as new).
pub(super) fn recover(db: &Database, path: &Path, epoch: u64, options: WalOptions) -> Result<Wal, StoreError> {
    let (mut wal, records) = Wal::open(path, epoch, options)
        .map_err(|e| StoreError::Unavailable(format!("cannot open the store's log {}: {e}", path.display())))?;
    let txn = db.begin_write().map_err(db_err)?;
    let mut changes = 0usize;
    {
        let mut tables = Tables::open(&txn, false)?;
        for record in &records {
            for change in wal::decode_changes(record)? {
                let key = Key::new(change.pk, change.sk);
                let old = load_raw(&tables.items, &key)?;
                let new = change.value.map(decode).transpose()?;
                store_item(&mut tables, &key, old.as_ref(), new.as_ref())?;
                changes += 1;
            }
        }
    }
    wal.checkpointed(epoch);
    checkpoint_in(txn, &mut wal)?;
    if !records.is_empty() {
        tracing::info!(batches = records.len(), changes, "store: replayed its write-ahead log");
    }
    Ok(wal)
}

/// Applies the requests in order: whether any wrote, or the index of the first that failed dirty.
fn apply_all(batch: &mut [Box<dyn WriteJob>], tables: &mut Tables<'_>) -> Result<bool, usize> {
    let mut wrote = false;
    for (i, job) in batch.iter_mut().enumerate() {
        match job.apply(tables) {
            Applied::Wrote => wrote = true,
            Applied::Refused => {}
            Applied::Dirty => return Err(i),
        }
    }
    Ok(wrote)
}
