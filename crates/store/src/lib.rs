//! warden's persistence: the SQLite store, its migrations, the durable run queue, check
//! definitions, tokens and samples. One writer thread batches every write into transactions;
//! readers use their own connections and never block it.

mod migrations;
mod writer;

pub mod alerting;
pub mod checks;
pub mod heartbeats;
pub mod queue;
pub mod samples;
pub mod sessions;
pub mod tokens;
pub mod users;

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use rusqlite::OpenFlags;

pub use migrations::SCHEMA_VERSION;

/// Applies warden's schema to a bare connection (benchmarks compare against plain rusqlite).
#[doc(hidden)]
pub fn migrate_for_bench(conn: &mut Connection) -> Result<(), StoreError> {
    migrations::migrate(conn)
}
pub use rusqlite::{Connection, OptionalExtension, params};
pub use writer::WriterStats;

/// The file name of the database inside the data folder.
pub const DATABASE_FILE: &str = "warden.db";

/// What went wrong in the store, in the caller's terms.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("cannot create data folder {path}")]
    CreateDir {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("data folder {path} is not writable")]
    NotWritable {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path} is not a warden database (not SQLite, or corrupt); it was left untouched")]
    NotADatabase { path: PathBuf },
    #[error(
        "the database was written by a newer warden (schema {found}, this build knows {supported}); it was left untouched: upgrade warden"
    )]
    SchemaTooNew { found: i64, supported: i64 },
    #[error("{path} is locked by another process")]
    Locked { path: PathBuf },
    #[error("stale lease: run {run_id} is no longer held with fence {fence}")]
    StaleLease { run_id: i64, fence: i64 },
    #[error("run {0} not found")]
    RunNotFound(i64),
    #[error("run {run_id} is {state}, not {expected}")]
    WrongState {
        run_id: i64,
        state: String,
        expected: &'static str,
    },
    #[error("invalid input: {0}")]
    Invalid(String),
    #[error("the store is shut down")]
    Closed,
    #[error("database error: {0}")]
    Sqlite(#[from] rusqlite::Error),
}

/// Options for [`Store::open`].
#[derive(Debug, Clone)]
pub struct StoreOptions {
    /// Most operations folded into one write transaction.
    pub max_batch: usize,
    /// Capacity of the writer's queue of pending operations (back-pressure beyond it).
    pub queue_capacity: usize,
    /// Read connections kept open.
    pub readers: usize,
    /// A write-ahead log file larger than this is cut back to nothing in a quiet moment (nothing
    /// written between two checkpoint passes, everything in it copied back), by the checkpoint
    /// thread.
    pub wal_cut_bytes: u64,
}

impl Default for StoreOptions {
    fn default() -> Self {
        StoreOptions {
            max_batch: 4096,
            queue_capacity: 16_384,
            readers: 4,
            wal_cut_bytes: 64 << 20,
        }
    }
}

/// A handle to the store; cheap to clone.
#[derive(Clone)]
pub struct Store {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store")
            .field("path", &self.inner.path)
            .finish()
    }
}

struct Inner {
    path: PathBuf,
    writer: writer::WriterHandle,
    readers: Mutex<Vec<Connection>>,
    max_readers: usize,
}

impl Store {
    /// Opens (creating if needed) `DATA_DIR/warden.db`, applies migrations and starts the writer.
    /// A file that is not a SQLite database, or one from a newer schema, is refused untouched.
    pub fn open(data_dir: &Path, options: StoreOptions) -> Result<Store, StoreError> {
        std::fs::create_dir_all(data_dir).map_err(|source| StoreError::CreateDir {
            path: data_dir.to_path_buf(),
            source,
        })?;
        let path = data_dir.join(DATABASE_FILE);
        if !path.exists() {
            probe_writable(data_dir)?;
        }
        let mut conn = open_connection(&path, true)?;
        migrations::migrate(&mut conn).map_err(|error| classify(error, &path))?;
        let checkpoint_conn = open_connection(&path, true)?;
        let writer = writer::WriterHandle::start(conn, checkpoint_conn, &options)?;
        Ok(Store {
            inner: Arc::new(Inner {
                path,
                writer,
                readers: Mutex::new(Vec::new()),
                max_readers: options.readers,
            }),
        })
    }

    pub fn path(&self) -> &Path {
        &self.inner.path
    }

    /// Runs `op` inside the writer's next transaction; resolves once that transaction commits.
    /// Many concurrent calls share one commit. If `op` fails, its own writes are rolled back
    /// and the others in the batch still commit.
    ///
    /// # Cancel safety
    /// Dropping the future does not cancel the write; it still commits, unobserved.
    pub async fn write<T, F>(&self, op: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Result<T, StoreError> + Send + 'static,
    {
        self.inner.writer.submit(op).await
    }

    /// Runs `op` on a read connection on the blocking pool.
    pub async fn read<T, F>(&self, op: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Result<T, StoreError> + Send + 'static,
    {
        let inner = Arc::clone(&self.inner);
        let joined = tokio::task::spawn_blocking(move || {
            let conn = inner.take_reader()?;
            let result = op(&conn);
            inner.return_reader(conn);
            result
        })
        .await;
        joined.map_err(|_| StoreError::Closed)?
    }

    /// Runs `op` on a read connection on the calling thread (for sync callers and tests).
    pub fn read_blocking<T>(
        &self,
        op: impl FnOnce(&Connection) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        let conn = self.inner.take_reader()?;
        let result = op(&conn);
        self.inner.return_reader(conn);
        result
    }

    /// Writer counters: transactions, operations, largest batch.
    pub fn writer_stats(&self) -> WriterStats {
        self.inner.writer.stats()
    }

    /// Stops taking writes, commits everything already submitted and stops the writer.
    pub async fn close(&self) {
        self.inner.writer.close().await;
    }
}

impl Inner {
    fn take_reader(&self) -> Result<Connection, StoreError> {
        let pooled = self.readers.lock().ok().and_then(|mut pool| pool.pop());
        match pooled {
            Some(conn) => Ok(conn),
            None => open_connection(&self.path, false),
        }
    }

    fn return_reader(&self, conn: Connection) {
        if let Ok(mut pool) = self.readers.lock()
            && pool.len() < self.max_readers
        {
            pool.push(conn);
        }
    }
}

/// How long a connection waits for a lock another connection holds before giving up.
pub(crate) const BUSY_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);

/// Opens a connection with warden's pragmas. The writer's connection sets WAL mode.
pub(crate) fn open_connection(path: &Path, writer: bool) -> Result<Connection, StoreError> {
    let flags = if writer {
        OpenFlags::SQLITE_OPEN_READ_WRITE
            | OpenFlags::SQLITE_OPEN_CREATE
            | OpenFlags::SQLITE_OPEN_NO_MUTEX
    } else {
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX
    };
    let conn =
        Connection::open_with_flags(path, flags).map_err(|error| classify(error.into(), path))?;
    conn.busy_timeout(BUSY_TIMEOUT)?;
    let setup = if writer {
        // The log is checkpointed by its own thread (`writer::run_checkpointer`); the writer
        // checkpoints only when the log reaches 256 MiB (65,536 pages), which a write load
        // heavy enough that the log never restarts reaches every few seconds. The log is not
        // cut back when it restarts below twice that: cutting a log of a few hundred MiB in
        // the writer took 6-18 ms (the file system discards the freed blocks), a stall of
        // every write behind it. The checkpointer cuts it back in a quiet moment instead.
        "PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL; PRAGMA foreign_keys = ON; \
         PRAGMA wal_autocheckpoint = 65536; PRAGMA journal_size_limit = 536870912; PRAGMA temp_store = MEMORY; PRAGMA cache_size = -4096;"
    } else {
        // Readers keep a small cache of their own: the OS page cache holds the file anyway,
        // and four readers' 1 MiB each were a tenth of a 10,000-check hub's resident size.
        "PRAGMA temp_store = MEMORY; PRAGMA cache_size = -256;"
    };
    // The first statement reads the header: a file that is not SQLite fails here, unchanged.
    conn.query_row("PRAGMA schema_version", [], |_| Ok(()))
        .map_err(|error| classify(error.into(), path))?;
    conn.execute_batch(setup)
        .map_err(|error| classify(error.into(), path))?;
    conn.set_prepared_statement_cache_capacity(64);
    Ok(conn)
}

fn classify(error: StoreError, path: &Path) -> StoreError {
    if let StoreError::Sqlite(rusqlite::Error::SqliteFailure(code, _)) = &error {
        match code.code {
            rusqlite::ErrorCode::NotADatabase => {
                return StoreError::NotADatabase {
                    path: path.to_path_buf(),
                };
            }
            rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked => {
                return StoreError::Locked {
                    path: path.to_path_buf(),
                };
            }
            _ => {}
        }
    }
    error
}

/// Fails early, with the folder named, when a new database could not be created there.
fn probe_writable(dir: &Path) -> Result<(), StoreError> {
    let probe = dir.join(".warden-write-probe");
    std::fs::write(&probe, b"").map_err(|source| StoreError::NotWritable {
        path: dir.to_path_buf(),
        source,
    })?;
    let _ = std::fs::remove_file(&probe);
    Ok(())
}

/// A migrated in-memory database, for tests and tools that want the schema without a file.
pub fn open_in_memory() -> Result<Connection, StoreError> {
    let mut conn = Connection::open_in_memory()?;
    migrations::migrate(&mut conn)?;
    Ok(conn)
}

/// Milliseconds since the Unix epoch, the store's time unit.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

#[cfg(test)]
mod tests;
