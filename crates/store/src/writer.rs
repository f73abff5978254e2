//! The single writer: a thread that owns the write connection and folds every pending
//! operation into one transaction (group commit), replying to each caller after the commit.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::thread::JoinHandle;

use rusqlite::Connection;
use tokio::sync::{mpsc, oneshot};

use crate::{StoreError, StoreOptions};

/// An operation run inside the batch transaction. It returns the reply to send once the
/// transaction's fate (committed or not) is known, and whether it succeeded. The flag says
/// whether it shares the transaction with others: only then does it need a savepoint of its
/// own (a savepoint copies each page before its first change, which a lone operation need not
/// pay: if it fails, the whole transaction is rolled back instead).
type Op = Box<dyn FnOnce(&Connection, bool) -> (Reply, bool) + Send>;
type Reply = Box<dyn FnOnce(Result<(), &StoreError>) + Send>;

/// Counters describing the writer's batching.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct WriterStats {
    pub transactions: u64,
    pub operations: u64,
    pub largest_batch: u64,
    pub failed_commits: u64,
    /// Transactions by operation count: entry `i` counts those with more operations than
    /// `BATCH_SIZE_BOUNDS[i - 1]` and at most `BATCH_SIZE_BOUNDS[i]`; larger ones are the rest
    /// of `transactions`.
    pub batch_sizes: [u64; WriterStats::BATCH_SIZE_BOUNDS.len()],
}

impl WriterStats {
    /// Upper bounds of the batch-size buckets (operations per transaction).
    pub const BATCH_SIZE_BOUNDS: [u64; 13] =
        [1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 2048, 4096];
}

#[derive(Default)]
struct Counters {
    transactions: AtomicU64,
    operations: AtomicU64,
    largest_batch: AtomicU64,
    failed_commits: AtomicU64,
    batch_sizes: [AtomicU64; WriterStats::BATCH_SIZE_BOUNDS.len()],
}

pub(crate) struct WriterHandle {
    sender: std::sync::Mutex<Option<mpsc::Sender<Op>>>,
    thread: std::sync::Mutex<Option<JoinHandle<()>>>,
    checkpointer: std::sync::Mutex<Option<(std::sync::mpsc::Sender<()>, JoinHandle<()>)>>,
    counters: Arc<Counters>,
}

/// How often the checkpointer copies the WAL back into the database.
const CHECKPOINT_EVERY: std::time::Duration = std::time::Duration::from_secs(1);
/// How often while the log holds more than [`CHECKPOINT_BUSY_FRAMES`] pages: under a write
/// load that never lets the log restart, copying it back often leaves little for the writer's
/// own checkpoint when the log reaches its bound (`wal_autocheckpoint`), which is a stall of
/// every write behind it.
const CHECKPOINT_BUSY_EVERY: std::time::Duration = std::time::Duration::from_millis(100);
const CHECKPOINT_BUSY_FRAMES: i64 = 4_096;

/// `wal_checkpoint(TRUNCATE)` without waiting: it gives up at once (busy) when the writer or a
/// reader is using the log.
fn truncate_log(conn: &Connection) -> rusqlite::Result<i64> {
    conn.busy_timeout(std::time::Duration::ZERO)?;
    let outcome = conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |row| row.get(0));
    conn.busy_timeout(crate::BUSY_TIMEOUT)?;
    outcome
}

/// Checkpoints the WAL from its own connection, so the writer's commits never pay for it
/// (an auto-checkpoint inside a commit stalls every write behind it for milliseconds).
/// PASSIVE never blocks the writer or readers; it copies what it can.
///
/// A log file larger than `cut_bytes` is cut back to nothing in a quiet moment (nothing
/// written since the last pass, everything copied back): the writer does not cut it when it
/// restarts (`journal_size_limit`), so after a burst it would otherwise keep its size.
fn run_checkpointer(conn: Connection, stop: std::sync::mpsc::Receiver<()>, cut_bytes: u64) {
    let wal = conn.path().map(|path| format!("{path}-wal"));
    let mut pause = CHECKPOINT_EVERY;
    let mut last_frames = None;
    loop {
        match stop.recv_timeout(pause) {
            Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {}
            Ok(()) | Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => return,
        }
        let pass = conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |row| {
            Ok((row.get::<_, i64>(1)?, row.get::<_, i64>(2)?))
        });
        let frames = pass.as_ref().ok().map(|(frames, _)| *frames);
        pause = match pass {
            // Nothing written since the last pass, all of it copied back: a quiet moment.
            Ok((frames, copied)) if frames == copied && last_frames == Some(frames) => {
                let large = wal
                    .as_deref()
                    .and_then(|wal| std::fs::metadata(wal).ok())
                    .is_some_and(|meta| meta.len() > cut_bytes);
                if large {
                    match truncate_log(&conn) {
                        Ok(0) => tracing::debug!("checkpointer: cut the log back"),
                        Ok(_) => tracing::debug!("checkpointer: log in use; cut it later"),
                        Err(error) => tracing::debug!(%error, "checkpointer: cut skipped"),
                    }
                }
                CHECKPOINT_EVERY
            }
            Ok((frames, copied))
                if frames - copied > CHECKPOINT_BUSY_FRAMES
                    || (frames > CHECKPOINT_BUSY_FRAMES && last_frames != Some(frames)) =>
            {
                CHECKPOINT_BUSY_EVERY
            }
            Ok(_) => CHECKPOINT_EVERY,
            Err(error) => {
                tracing::debug!(%error, "background checkpoint skipped");
                CHECKPOINT_EVERY
            }
        };
        last_frames = frames;
    }
}

impl WriterHandle {
    pub(crate) fn start(
        conn: Connection,
        checkpoint_conn: Connection,
        options: &StoreOptions,
    ) -> Result<WriterHandle, StoreError> {
        let (sender, receiver) = mpsc::channel::<Op>(options.queue_capacity.max(1));
        let counters = Arc::new(Counters::default());
        let thread_counters = Arc::clone(&counters);
        let max_batch = options.max_batch.max(1);
        let cut_bytes = options.wal_cut_bytes;
        let thread = std::thread::Builder::new()
            .name("warden-store-writer".to_string())
            .spawn(move || run(conn, receiver, max_batch, &thread_counters))
            .map_err(|error| {
                StoreError::Invalid(format!("cannot start the store writer thread: {error}"))
            })?;
        let (stop, stopped) = std::sync::mpsc::channel();
        let checkpointer = std::thread::Builder::new()
            .name("warden-store-checkpoint".to_string())
            .spawn(move || run_checkpointer(checkpoint_conn, stopped, cut_bytes))
            .map_err(|error| {
                StoreError::Invalid(format!("cannot start the checkpoint thread: {error}"))
            })?;
        Ok(WriterHandle {
            sender: std::sync::Mutex::new(Some(sender)),
            thread: std::sync::Mutex::new(Some(thread)),
            checkpointer: std::sync::Mutex::new(Some((stop, checkpointer))),
            counters,
        })
    }

    pub(crate) async fn submit<T, F>(&self, op: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Result<T, StoreError> + Send + 'static,
    {
        let sender = self
            .sender
            .lock()
            .ok()
            .and_then(|guard| guard.as_ref().cloned())
            .ok_or(StoreError::Closed)?;
        let (reply_to, reply) = oneshot::channel::<Result<T, StoreError>>();
        let boxed: Op = Box::new(move |conn: &Connection, shared: bool| {
            let outcome = if shared {
                run_in_savepoint(conn, op)
            } else {
                op(conn)
            };
            let succeeded = outcome.is_ok();
            let reply: Reply = Box::new(move |commit: Result<(), &StoreError>| {
                let result = match commit {
                    Ok(()) => outcome,
                    Err(error) => Err(StoreError::Invalid(format!("write not committed: {error}"))),
                };
                let _ = reply_to.send(result);
            });
            (reply, succeeded)
        });
        sender.send(boxed).await.map_err(|_| StoreError::Closed)?;
        reply.await.map_err(|_| StoreError::Closed)?
    }

    pub(crate) fn stats(&self) -> WriterStats {
        WriterStats {
            transactions: self.counters.transactions.load(Ordering::Relaxed),
            operations: self.counters.operations.load(Ordering::Relaxed),
            largest_batch: self.counters.largest_batch.load(Ordering::Relaxed),
            failed_commits: self.counters.failed_commits.load(Ordering::Relaxed),
            batch_sizes: std::array::from_fn(|i| {
                self.counters.batch_sizes[i].load(Ordering::Relaxed)
            }),
        }
    }

    /// Drops the sender so the thread drains what is queued, commits and exits; then joins it.
    pub(crate) async fn close(&self) {
        if let Ok(mut guard) = self.sender.lock() {
            guard.take();
        }
        let thread = self.thread.lock().ok().and_then(|mut guard| guard.take());
        let checkpointer = self
            .checkpointer
            .lock()
            .ok()
            .and_then(|mut guard| guard.take());
        let _ = tokio::task::spawn_blocking(move || {
            if let Some((stop, handle)) = checkpointer {
                let _ = stop.send(());
                let _ = handle.join();
            }
            if let Some(thread) = thread {
                let _ = thread.join();
            }
        })
        .await;
    }
}

impl Drop for WriterHandle {
    fn drop(&mut self) {
        if let Ok(mut guard) = self.sender.lock() {
            guard.take();
        }
        if let Some((stop, handle)) = self
            .checkpointer
            .lock()
            .ok()
            .and_then(|mut guard| guard.take())
        {
            let _ = stop.send(());
            let _ = handle.join();
        }
        let thread = self.thread.lock().ok().and_then(|mut guard| guard.take());
        if let Some(thread) = thread {
            let _ = thread.join();
        }
    }
}

fn run_in_savepoint<T>(
    conn: &Connection,
    op: impl FnOnce(&Connection) -> Result<T, StoreError>,
) -> Result<T, StoreError> {
    conn.prepare_cached("SAVEPOINT op")?.execute([])?;
    let outcome = op(conn);
    let end = if outcome.is_ok() {
        "RELEASE op"
    } else {
        "ROLLBACK TO op"
    };
    conn.prepare_cached(end)?.execute([])?;
    if outcome.is_err() {
        conn.prepare_cached("RELEASE op")?.execute([])?;
    }
    outcome
}

fn run(conn: Connection, mut receiver: mpsc::Receiver<Op>, max_batch: usize, counters: &Counters) {
    let mut batch: Vec<Op> = Vec::with_capacity(max_batch);
    while let Some(first) = receiver.blocking_recv() {
        batch.push(first);
        while batch.len() < max_batch {
            match receiver.try_recv() {
                Ok(op) => batch.push(op),
                Err(_) => break,
            }
        }
        let size = batch.len() as u64;
        let mut replies: Vec<Reply> = Vec::with_capacity(batch.len());
        let begun = conn.execute_batch("BEGIN IMMEDIATE");
        match begun {
            Ok(()) => {
                let shared = batch.len() > 1;
                let mut failed_alone = false;
                for op in batch.drain(..) {
                    let (reply, succeeded) = op(&conn, shared);
                    failed_alone |= !shared && !succeeded;
                    replies.push(reply);
                }
                if failed_alone {
                    // A lone operation failed: undo it whole (its caller gets its own error).
                    if let Err(error) = conn.execute_batch("ROLLBACK") {
                        tracing::error!(%error, "store rollback failed");
                    }
                    for reply in replies {
                        reply(Ok(()));
                    }
                } else {
                    let committed = conn.execute_batch("COMMIT").map_err(StoreError::from);
                    if let Err(error) = &committed {
                        counters.failed_commits.fetch_add(1, Ordering::Relaxed);
                        tracing::error!(%error, operations = size, "store commit failed");
                        let _ = conn.execute_batch("ROLLBACK");
                    }
                    for reply in replies {
                        reply(committed.as_ref().map(|_| ()));
                    }
                }
            }
            Err(error) => {
                counters.failed_commits.fetch_add(1, Ordering::Relaxed);
                let error = StoreError::from(error);
                tracing::error!(%error, operations = size, "store transaction could not begin");
                // The operations never ran: tell each caller.
                for op in batch.drain(..) {
                    drop(op);
                }
            }
        }
        if let Some(bucket) = WriterStats::BATCH_SIZE_BOUNDS
            .iter()
            .position(|bound| size <= *bound)
        {
            counters.batch_sizes[bucket].fetch_add(1, Ordering::Relaxed);
        }
        counters.transactions.fetch_add(1, Ordering::Relaxed);
        counters.operations.fetch_add(size, Ordering::Relaxed);
        counters.largest_batch.fetch_max(size, Ordering::Relaxed);
    }
    if let Err(error) = conn.execute_batch("PRAGMA wal_checkpoint(PASSIVE)") {
        tracing::warn!(%error, "final checkpoint failed");
    }
}
