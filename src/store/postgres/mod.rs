//! The PostgreSQL [`Store`] for clusters: several `ivr` nodes share one database (issue 16).
//!
//! Same schema and behaviour as [`super::SqliteStore`]: times are BIGINT unix milliseconds,
//! payloads JSON text, and every operation that must hold across nodes is one transaction.
//! Where SQLite gets that from its single writer, this store says so in SQL: `call_started`
//! takes a per-number transaction lock (two calls from one number on two nodes are decided one
//! after the other), timer escalation and transcripts are claimed by a conditional `UPDATE`
//! (one node wins), and [`PgStore::claim_outbox`] leases webhook events with `FOR UPDATE SKIP
//! LOCKED` so nodes never deliver the same event at once.
//!
//! The client is the blocking `postgres` crate behind an r2d2 pool, because the trait is
//! synchronous (callers run it on `spawn_blocking` or a store thread). Each pooled client runs
//! its own small tokio runtime and blocks on it, so [`PgStore::connect`] and every method must
//! run outside async code (inside `spawn_blocking`, or before the runtime starts): on a runtime
//! thread they panic ("Cannot start a runtime from within a runtime"). Dropping the store is
//! safe anywhere (its `Drop` moves the closing off a runtime thread).
//!
//! No TLS: `NoTls` suits a database on loopback or a private network. A TLS connector
//! (rustls through `tokio-postgres-rustls`) would slot into the pool manager unchanged.
//!
//! The methods are grouped by concern (`calls`, `voicemails`, `sla`, `outbox`, `incidents`),
//! each file one `impl PgStore` with the trait's method names and signatures; the `Store` impl
//! below only forwards, so splitting the trait moves each block under its own sub-trait.

mod cached;
mod calls;
mod incidents;
mod migrate;
mod outbox;
mod registrations;
mod rows;
mod sla;
mod voicemails;

#[cfg(test)]
mod claim_tests;
// One copy for the unit tests and the integration tests (tests/ha/store_pg.rs).
#[cfg(test)]
#[path = "../../../tests/common/pg.rs"]
pub(super) mod test_cluster;
#[cfg(test)]
mod tests;

use std::path::PathBuf;
use std::time::Duration;

use jiff::Timestamp;
use postgres::error::SqlState;
use postgres::{Client, NoTls, Transaction};
use r2d2_postgres::r2d2::{CustomizeConnection, Pool, PooledConnection};

use cached::{Db, Manager, PgConn};

use super::StoreError;

/// Connections per node. A node's store work is short transactions from a few threads (the
/// call shells' spawn_blocking, the SLA and outbox workers); more would only queue in the server.
const POOL_SIZE: u32 = 8;
/// How long an operation waits for a free connection (or a new one) before failing: as long as
/// SQLite's busy timeout, so a database that is down fails a call's write as soon.
const CHECKOUT_TIMEOUT: Duration = Duration::from_secs(5);
/// How long a statement waits for a lock another transaction holds (a node hung inside a call
/// start holds that number's lock) before failing `Busy`, like SQLite's busy timeout. Set on
/// each pooled connection unless the URL's `options` set `lock_timeout` already.
const LOCK_TIMEOUT: &str = "5s";
/// How often a transaction that lost a serialization or deadlock race is run again.
const RETRIES: u32 = 5;

/// The PostgreSQL store. Cheap to share behind an `Arc`; every node connects its own.
pub struct PgStore {
    /// Always `Some` until drop (see the `Drop` impl).
    pool: Option<Pool<Manager>>,
    /// `postgresql://user@host:port/db` without the password, for error messages.
    name: String,
}

/// Settings every pooled connection gets when it is opened.
#[derive(Debug)]
struct SessionDefaults;

impl CustomizeConnection<PgConn, postgres::Error> for SessionDefaults {
    fn on_acquire(&self, conn: &mut PgConn) -> Result<(), postgres::Error> {
        conn.client.execute(
            "SELECT set_config('lock_timeout', $1, false) \
             WHERE current_setting('lock_timeout') = '0'",
            &[&LOCK_TIMEOUT],
        )?;
        Ok(())
    }
}

/// A failure inside an operation, before it gets its context as a [`StoreError`].
pub(super) enum Fail {
    Pg(postgres::Error),
    Store(StoreError),
    /// A stored value this ivr cannot read (an unknown outcome, a time out of range).
    Bad(String),
}

impl From<postgres::Error> for Fail {
    fn from(e: postgres::Error) -> Self {
        Fail::Pg(e)
    }
}

impl From<StoreError> for Fail {
    fn from(e: StoreError) -> Self {
        Fail::Store(e)
    }
}

impl PgStore {
    /// Connect to the database at `url` (`postgresql://user:password@host:port/db` or the
    /// `host=... dbname=...` form) and bring its schema up to date. Several nodes may start at
    /// once: the migration runs under a lock, and the others find it done.
    pub fn connect(url: &str) -> Result<PgStore, StoreError> {
        let config: postgres::Config = url.parse().map_err(|e| StoreError::Open {
            path: PathBuf::from("postgresql"),
            reason: format!("the database URL is not valid: {e}"),
        })?;
        let name = display_name(&config);
        let open_error = |reason: String| StoreError::Open {
            path: PathBuf::from(&name),
            reason,
        };
        // The migration's connection is made directly: a wrong URL or a server that is down
        // fails here at once with the server's reason (the pool would retry until its timeout).
        let mut first = config
            .connect(NoTls)
            .map_err(|e| open_error(pg_reason(&e)))?;
        let pool = Pool::builder()
            .max_size(POOL_SIZE)
            .min_idle(Some(1))
            .connection_timeout(CHECKOUT_TIMEOUT)
            .connection_customizer(Box::new(SessionDefaults))
            .build_unchecked(Manager::new(config));
        let store = PgStore {
            pool: Some(pool),
            name,
        };
        migrate::run(&mut first, &store.name).map_err(|e| store.error("migrating", e))?;
        Ok(store)
    }

    /// What error messages call this database.
    pub fn name(&self) -> &str {
        &self.name
    }

    fn conn(&self, doing: &str) -> Result<PooledConnection<Manager>, StoreError> {
        let pool = self.pool.as_ref().expect("the pool lives until drop");
        pool.get().map_err(|e| StoreError::Database {
            doing: doing.to_string(),
            reason: format!("no connection to {}: {e}", self.name),
        })
    }

    pub(super) fn error(&self, doing: &str, e: Fail) -> StoreError {
        match e {
            Fail::Store(e) => e,
            Fail::Bad(reason) => StoreError::Database {
                doing: doing.to_string(),
                reason,
            },
            Fail::Pg(e) if e.code() == Some(&SqlState::LOCK_NOT_AVAILABLE) => StoreError::Busy {
                path: PathBuf::from(&self.name),
            },
            Fail::Pg(e) => StoreError::Database {
                doing: doing.to_string(),
                reason: pg_reason(&e),
            },
        }
    }

    /// Run `f` in a transaction and commit it; returns once committed. A transaction that
    /// lost a race the server resolves by aborting one side (deadlock, serialization failure)
    /// is run again, so `f` may run more than once.
    fn write<T>(
        &self,
        doing: &str,
        mut f: impl FnMut(&mut Db<'_, Transaction<'_>>) -> Result<T, Fail>,
    ) -> Result<T, StoreError> {
        let mut conn = self.conn(doing)?;
        let (client, cache) = conn.split();
        let mut attempt = 0;
        loop {
            let result = (|| {
                let mut tx = client.transaction()?;
                let value = f(&mut Db::new(&mut tx, cache))?;
                tx.commit()?;
                Ok(value)
            })();
            match result {
                Err(Fail::Pg(e)) if attempt < RETRIES && is_retryable(&e) => attempt += 1,
                other => return other.map_err(|e| self.error(doing, e)),
            }
        }
    }

    /// Run a read-only `f` on a pooled connection (each statement sees what is committed).
    fn read<T>(
        &self,
        doing: &str,
        f: impl FnOnce(&mut Db<'_, Client>) -> Result<T, Fail>,
    ) -> Result<T, StoreError> {
        let mut conn = self.conn(doing)?;
        let (client, cache) = conn.split();
        f(&mut Db::new(client, cache)).map_err(|e| self.error(doing, e))
    }
}

impl Drop for PgStore {
    fn drop(&mut self) {
        let Some(pool) = self.pool.take() else {
            return;
        };
        // Closing a client blocks on its own runtime, which panics on a tokio worker (and a
        // panic while unwinding aborts): where a runtime is around, the last Arc of a server's
        // store may be dropped by a task, so the connections are closed on a thread of their own.
        if tokio::runtime::Handle::try_current().is_ok() {
            let _ = std::thread::Builder::new()
                .name("pg-store-close".into())
                .spawn(move || drop(pool));
        }
    }
}

/// The server aborted this transaction to let a concurrent one through; running it again is
/// the documented answer.
fn is_retryable(e: &postgres::Error) -> bool {
    matches!(
        e.code(),
        Some(c) if *c == SqlState::T_R_SERIALIZATION_FAILURE || *c == SqlState::T_R_DEADLOCK_DETECTED
    )
}

/// The server's own message and SQLSTATE when there is one (`postgres::Error` alone prints
/// only "db error"), else the client's error chain.
fn pg_reason(e: &postgres::Error) -> String {
    if let Some(db) = e.as_db_error() {
        let mut s = format!(
            "{}: {} (SQLSTATE {})",
            db.severity(),
            db.message(),
            db.code().code()
        );
        if let Some(detail) = db.detail() {
            s.push_str(&format!("; {detail}"));
        }
        return s;
    }
    let mut s = e.to_string();
    let mut source = std::error::Error::source(e);
    while let Some(inner) = source {
        s.push_str(&format!(": {inner}"));
        source = inner.source();
    }
    s
}

/// `postgresql://user@host:port/db` from a parsed config, never with the password.
fn display_name(config: &postgres::Config) -> String {
    use postgres::config::Host;
    let host = match config.get_hosts().first() {
        Some(Host::Tcp(h)) => h.clone(),
        Some(Host::Unix(p)) => p.display().to_string(),
        None => "localhost".to_string(),
    };
    let port = config.get_ports().first().copied().unwrap_or(5432);
    let user = config
        .get_user()
        .map(|u| format!("{u}@"))
        .unwrap_or_default();
    let db = config.get_dbname().or(config.get_user()).unwrap_or("");
    format!("postgresql://{user}{host}:{port}/{db}")
}

/// Store timestamps are unix milliseconds.
pub(super) fn from_ms(ms: i64) -> Result<Timestamp, Fail> {
    Timestamp::from_millisecond(ms).map_err(|e| Fail::Bad(format!("time {ms} out of range: {e}")))
}

pub(super) fn opt_from_ms(ms: Option<i64>) -> Result<Option<Timestamp>, Fail> {
    ms.map(from_ms).transpose()
}

/// Counts and durations beyond i64 cannot occur; saturate rather than wrap.
pub(super) fn to_i64(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

/// Stored counts are never negative; a negative one (edited by hand) reads as 0.
pub(super) fn to_u64(v: i64) -> u64 {
    u64::try_from(v).unwrap_or(0)
}

pub(super) fn to_u32(v: i64) -> u32 {
    u32::try_from(v.max(0)).unwrap_or(u32::MAX)
}
