//! Schema migrations of the PostgreSQL store, compiled in (`migrations/*.sql`) and applied at
//! connect, recorded in `schema_migrations`. Nodes starting together take turns: the check and
//! the migration run in one transaction holding a transaction-level advisory lock, so the
//! first node migrates and the others, once it commits, find nothing left to do.

use std::path::PathBuf;

use jiff::Timestamp;
use postgres::Client;

use super::Fail;
use crate::store::StoreError;

/// One embedded migration. Numbered on their own: PostgreSQL version 1 is SQLite version 5.
pub(super) struct Migration {
    pub(super) version: i64,
    pub(super) name: &'static str,
    sql: &'static str,
}

/// Every migration, in order. Append only: a released migration is never edited.
pub(super) const MIGRATIONS: &[Migration] = &[
    Migration {
        version: 1,
        name: "init",
        sql: include_str!("migrations/0001_init.sql"),
    },
    Migration {
        version: 2,
        name: "calls_node",
        sql: include_str!("migrations/0002_calls_node.sql"),
    },
    Migration {
        version: 3,
        name: "registrations",
        sql: include_str!("migrations/0003_registrations.sql"),
    },
    Migration {
        version: 4,
        name: "voicemail_audio",
        sql: include_str!("migrations/0004_voicemail_audio.sql"),
    },
];

/// The advisory lock keys: a class ("ivr" in ASCII, to stay clear of other users of the same
/// database) and a key in it. Migrations and `call_started`'s per-number locks are separate
/// classes, so they never wait for each other.
const LOCK_CLASS: i32 = 0x6976_7200;
const LOCK_MIGRATE: i32 = 1;

/// Bring the schema up to date; [`StoreError::TooNew`] when it is newer than this ivr knows.
pub(super) fn run(conn: &mut Client, name: &str) -> Result<(), Fail> {
    let mut tx = conn.transaction()?;
    tx.execute(
        "SELECT pg_advisory_xact_lock($1, $2)",
        &[&LOCK_CLASS, &LOCK_MIGRATE],
    )?;
    tx.batch_execute(
        "CREATE TABLE IF NOT EXISTS schema_migrations (version BIGINT PRIMARY KEY, \
         name TEXT NOT NULL, applied_at BIGINT NOT NULL)",
    )?;
    let current: i64 = tx
        .query_one(
            "SELECT COALESCE(MAX(version), 0) FROM schema_migrations",
            &[],
        )?
        .get(0);
    let known = MIGRATIONS.last().map_or(0, |m| m.version);
    if current > known {
        return Err(StoreError::TooNew {
            path: PathBuf::from(name),
            found: current,
            known,
        }
        .into());
    }
    for m in MIGRATIONS.iter().filter(|m| m.version > current) {
        tx.batch_execute(m.sql)?;
        tx.execute(
            "INSERT INTO schema_migrations (version, name, applied_at) VALUES ($1, $2, $3)",
            &[&m.version, &m.name, &Timestamp::now().as_millisecond()],
        )?;
        tracing::info!(
            db = name,
            version = m.version,
            name = m.name,
            "applied migration"
        );
    }
    tx.commit()?;
    Ok(())
}

/// The per-number lock class of `call_started` (see `calls.rs`), beside the migration's.
pub(super) const LOCK_CALLER: i32 = LOCK_CLASS + 1;
