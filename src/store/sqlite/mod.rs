//! The default [`Store`]: one SQLite file, `DATA/ivr.db`, in WAL mode (readers never wait for
//! the writer, and a crash loses no committed transaction).
//!
//! Two connections. Writes go to one writer thread ([`super::writer`]) that commits whatever
//! writes are queued as one transaction: under load, many calls' rows share one fsync, and
//! each write still returns only once it is durable. Every batch is a `BEGIN IMMEDIATE`
//! transaction, which takes the write lock up front, so a read-then-write (repeat detection,
//! timer claims) cannot interleave with another process using the same file; `busy_timeout`
//! makes that other process wait instead of failing. Reads use their own connection: in WAL
//! mode they see every committed batch and never wait behind a batch's fsync.
//! Schema migrations are compiled in (`migrations/*.sql`) and applied at open, recorded in
//! `schema_version`; opening an up-to-date database changes nothing.
//!
//! One file per store trait: [`calls`], [`voicemails`], [`sla`], [`outbox`], [`incidents`],
//! [`metrics`].

mod calls;
mod incidents;
mod metrics;
mod outbox;
mod registrations;
mod sla;
mod voicemails;

use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use rusqlite::Connection;

use super::StoreError;
use super::disk::{classify, io_error};
use super::schema::{Fail, migrate};
use super::writer::Writer;

/// The database file inside the data directory.
pub const DB_FILE: &str = "ivr.db";
/// How long a statement waits for another process's write lock before failing `Busy`.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// The directory holding database file `path` (the working directory for a bare file name).
fn parent(path: &Path) -> &Path {
    path.parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."))
}

/// The SQLite store. Cheap to share behind an `Arc`.
pub struct SqliteStore {
    /// Declared before `writer` because fields drop in order: the reader closes first, so the
    /// writer's connection is the last one and folds the WAL back into the database file.
    reader: Mutex<Connection>,
    writer: Writer,
    dir: PathBuf,
    path: PathBuf,
}

impl SqliteStore {
    /// Open `DATA/ivr.db`, creating the directory and the database if missing, and bring the
    /// schema up to date.
    pub fn open(data_dir: &Path) -> Result<SqliteStore, StoreError> {
        std::fs::create_dir_all(data_dir)
            .map_err(|e| io_error(data_dir, &e, "cannot create it"))?;
        Self::open_file(data_dir)
    }

    /// Open an existing `DATA/ivr.db` (for the CLI: a wrong `--data` should not leave an empty
    /// database behind); [`StoreError::Missing`] if there is none.
    pub fn open_existing(data_dir: &Path) -> Result<SqliteStore, StoreError> {
        if !data_dir.join(DB_FILE).is_file() {
            return Err(StoreError::Missing {
                dir: data_dir.to_path_buf(),
            });
        }
        Self::open_file(data_dir)
    }

    /// Open the database file `path` (`[store] url = "sqlite://PATH"`), creating it and its
    /// directory if missing, and bring the schema up to date. Disk errors name its directory.
    pub fn open_path(path: &Path) -> Result<SqliteStore, StoreError> {
        let dir = parent(path);
        std::fs::create_dir_all(dir).map_err(|e| io_error(dir, &e, "cannot create it"))?;
        Self::open_at(dir, path.to_path_buf())
    }

    /// Open the existing database file `path` (for the CLI, like [`Self::open_existing`]).
    pub fn open_existing_path(path: &Path) -> Result<SqliteStore, StoreError> {
        if !path.is_file() {
            return Err(StoreError::Open {
                path: path.to_path_buf(),
                reason: "no such file; is [store] url the one `ivr serve` uses?".into(),
            });
        }
        Self::open_at(parent(path), path.to_path_buf())
    }

    fn open_file(dir: &Path) -> Result<SqliteStore, StoreError> {
        Self::open_at(dir, dir.join(DB_FILE))
    }

    fn open_at(dir: &Path, path: PathBuf) -> Result<SqliteStore, StoreError> {
        let fail = |doing: &str, e: Fail| match e {
            Fail::Sql(e) => classify(dir, &path, doing, e),
            Fail::Store(e) => e,
        };
        let mut conn = Connection::open(&path).map_err(|e| fail("opening", e.into()))?;
        Self::configure(&mut conn, &path).map_err(|e| fail("opening", e))?;
        // Opened after the writer's connection has made the file WAL and migrated it.
        let reader = Connection::open(&path).map_err(|e| fail("opening", e.into()))?;
        Self::configure_reader(&reader).map_err(|e| fail("opening", e.into()))?;
        Ok(SqliteStore {
            reader: Mutex::new(reader),
            writer: Writer::start(conn, dir.to_path_buf(), path.clone())?,
            dir: dir.to_path_buf(),
            path,
        })
    }

    fn configure(conn: &mut Connection, path: &Path) -> Result<(), Fail> {
        conn.busy_timeout(BUSY_TIMEOUT)?;
        let mode: String = conn.query_row("PRAGMA journal_mode = WAL", [], |r| r.get(0))?;
        if !mode.eq_ignore_ascii_case("wal") {
            // Some file systems (network mounts) cannot do WAL; SQLite then keeps its rollback
            // journal, which is slower but just as safe.
            tracing::warn!(db = %path.display(), mode, "SQLite refused WAL mode");
        }
        // FULL: a committed outbox event or voicemail survives a power cut, not only a crash.
        // Group commit makes this cheap: one fsync per batch of writes, not per write.
        conn.pragma_update(None, "synchronous", "FULL")?;
        conn.pragma_update(None, "foreign_keys", "ON")?;
        migrate(conn, path)
    }

    /// The read connection: it waits for locks like the writer (a checkpoint or WAL recovery
    /// by another process can hold one briefly) and refuses writes, which belong to the writer.
    fn configure_reader(conn: &Connection) -> rusqlite::Result<()> {
        conn.busy_timeout(BUSY_TIMEOUT)?;
        conn.pragma_update(None, "query_only", "ON")
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Write transactions committed since open. Each commits a batch of writes with one fsync;
    /// writes divided by commits is how much group commit saves (for /metrics).
    pub fn commits(&self) -> u64 {
        self.writer.commits()
    }

    fn error(&self, doing: &str, e: Fail) -> StoreError {
        match e {
            Fail::Sql(e) => classify(&self.dir, &self.path, doing, e),
            Fail::Store(e) => e,
        }
    }

    /// Run `f` on the writer thread inside the current batch transaction (in its own
    /// savepoint); returns once the batch is committed. `f` owns its inputs because it runs
    /// on another thread, and may run twice (see [`super::writer::Work`]).
    pub(super) fn write<T: Send + 'static>(
        &self,
        doing: &'static str,
        f: impl Fn(&Connection) -> Result<T, Fail> + Send + 'static,
    ) -> Result<T, StoreError> {
        self.writer.write(doing, Box::new(f))
    }

    /// Run a read-only `f` on the read connection.
    pub(super) fn read<T>(
        &self,
        doing: &str,
        f: impl FnOnce(&Connection) -> Result<T, Fail>,
    ) -> Result<T, StoreError> {
        f(&self.lock_reader()).map_err(|e| self.error(doing, e))
    }

    fn lock_reader(&self) -> MutexGuard<'_, Connection> {
        // Reads hold no transaction open across calls, so a panic during one left the
        // connection consistent: keep using it rather than failing forever.
        self.reader
            .lock()
            .unwrap_or_else(|poison| poison.into_inner())
    }

    /// Jobs queued for the writer (tests wait on it to know a batch has formed).
    #[cfg(test)]
    pub(super) fn queued(&self) -> usize {
        self.writer.queued()
    }

    /// Tests reach the writer's connection (to simulate a full disk with `max_page_count`).
    #[cfg(test)]
    pub(crate) fn with_conn<T: Send + 'static>(
        &self,
        f: impl Fn(&Connection) -> T + Send + 'static,
    ) -> T {
        self.write("testing", move |c| Ok(f(c)))
            .expect("the writer runs test code")
    }
}
