//! Which store the `ivr` processes of a test use, and reading its rows.
//!
//! By default every `ivr` keeps its SQLite file in its data directory, as a line does out of
//! the box. With `IVR_TEST_STORE=postgres` in the environment (issue 16: the whole suite
//! passes against both stores) each data directory gets its own fresh database on one
//! throw-away PostgreSQL cluster per test binary (started on first use, stopped when the
//! binary exits; see `pg.rs`), handed to the child as `IVR_STORE_URL`. Every `ivr` started
//! on the same data directory (a restart, `ivr cdr export --data DIR`) gets the same
//! database, so a test reads back what its line wrote.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Mutex;

/// The variable that chooses the store under test: unset or `sqlite`, or `postgres`.
pub const TEST_STORE_ENV: &str = "IVR_TEST_STORE";
/// What `ivr` reads instead of `[store] url` (src/config/store.rs).
pub const STORE_URL_ENV: &str = "IVR_STORE_URL";

/// Whether this run's `ivr` processes keep their data in PostgreSQL.
pub fn postgres() -> bool {
    match std::env::var(TEST_STORE_ENV).as_deref() {
        Err(_) | Ok("") | Ok("sqlite") => false,
        Ok("postgres") => true,
        Ok(other) => panic!("{TEST_STORE_ENV}={other:?}: expected \"sqlite\" or \"postgres\""),
    }
}

/// Under `IVR_TEST_STORE=postgres`: prints the skip line of a test about the SQLite file
/// itself (`why`) and returns true (the test returns). Otherwise false.
pub fn sqlite_only(why: &str) -> bool {
    if !postgres() {
        return false;
    }
    let test = std::thread::current()
        .name()
        .unwrap_or("unknown test")
        .to_string();
    // The real stderr: libtest captures `eprintln!` of passing tests, and a skip must show.
    let _ = std::io::Write::write_fmt(
        &mut std::io::stderr(),
        format_args!("SKIP (SQLite-only: {why}): {test}\n"),
    );
    true
}

/// The database URL of the line whose data directory is `key` (`None`: SQLite in it). The
/// first call for a key creates the database; later ones return the same URL.
pub fn url_for(key: &Path) -> Option<String> {
    if !postgres() {
        return None;
    }
    static URLS: Mutex<Option<HashMap<PathBuf, String>>> = Mutex::new(None);
    let key = std::path::absolute(key).unwrap_or_else(|_| key.to_path_buf());
    let mut urls = URLS.lock().unwrap_or_else(|p| p.into_inner());
    let urls = urls.get_or_insert_with(HashMap::new);
    if let Some(url) = urls.get(&key) {
        return Some(url.clone());
    }
    let url = off_runtime(super::pg::database).unwrap_or_else(|| {
        panic!(
            "{TEST_STORE_ENV}=postgres but PostgreSQL is not installed \
             (apt-get install postgresql; initdb and pg_ctl are needed)"
        )
    });
    urls.insert(key, url.clone());
    Some(url)
}

/// Points `command` (an `ivr` run) at the store of data directory `data`: `IVR_STORE_URL`
/// under PostgreSQL, and never an `IVR_STORE_URL` from the developer's shell otherwise.
pub fn with_store<'c>(command: &'c mut Command, data: &Path) -> &'c mut Command {
    command.env_remove(STORE_URL_ENV);
    if let Some(url) = url_for(data) {
        command.env(STORE_URL_ENV, url);
    }
    command
}

/// `ivr` with the store of data directory `data` (see [`with_store`]), no arguments yet.
pub fn ivr_command(data: &Path) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_ivr"));
    with_store(&mut command, data);
    command
}

/// `ivr args` (not run yet) on the store of the `--data` directory `args` name; with no
/// `--data` (`check`, `simulate`), on no store of ours.
pub fn ivr_with_args(args: &[&str]) -> Command {
    let data = args
        .iter()
        .position(|a| *a == "--data")
        .and_then(|i| args.get(i + 1));
    let mut command = match data {
        Some(data) => ivr_command(Path::new(data)),
        None => {
            let mut command = Command::new(env!("CARGO_BIN_EXE_ivr"));
            command.env_remove(STORE_URL_ENV);
            command
        }
    };
    command.args(args);
    command
}

/// The rows of `sql` on the store of data directory `data`, every column as text (`None` for
/// NULL). The SQL must mean the same in SQLite and PostgreSQL (both schemas keep the same
/// table and column names; a boolean reads "1"/"0" from SQLite but "t"/"f" from PostgreSQL).
pub fn rows(data: &Path, sql: &str) -> Vec<Vec<Option<String>>> {
    try_rows(data, sql).unwrap_or_else(|e| panic!("{sql}: {e}"))
}

/// [`rows`], or why they could not be read (no database yet, no such table yet), for a test
/// that polls until the line has written them.
pub fn try_rows(data: &Path, sql: &str) -> Result<Vec<Vec<Option<String>>>, String> {
    match url_for(data) {
        Some(url) => off_runtime(|| pg_rows(&url, sql)),
        None => sqlite_rows(&data.join("ivr.db"), sql).map_err(|e| e.to_string()),
    }
}

/// [`rows`] with NULL as the empty string, for tests that compare text.
pub fn text_rows(data: &Path, sql: &str) -> Vec<Vec<String>> {
    rows(data, sql)
        .into_iter()
        .map(|r| r.into_iter().map(Option::unwrap_or_default).collect())
        .collect()
}

/// The one value of a one-row, one-column `sql` (NULL as the empty string).
pub fn value(data: &Path, sql: &str) -> String {
    let rows = text_rows(data, sql);
    assert_eq!(rows.len(), 1, "{sql}: {rows:?}");
    rows[0][0].clone()
}

fn sqlite_rows(file: &Path, sql: &str) -> rusqlite::Result<Vec<Vec<Option<String>>>> {
    let db =
        rusqlite::Connection::open_with_flags(file, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)?;
    db.busy_timeout(std::time::Duration::from_secs(10))?;
    let mut stmt = db.prepare(sql)?;
    let n = stmt.column_count();
    let rows = stmt.query_map([], |row| {
        (0..n)
            .map(|i| {
                use rusqlite::types::ValueRef;
                Ok(match row.get_ref(i)? {
                    ValueRef::Null => None,
                    ValueRef::Integer(v) => Some(v.to_string()),
                    ValueRef::Real(v) => Some(v.to_string()),
                    ValueRef::Text(t) | ValueRef::Blob(t) => {
                        Some(String::from_utf8_lossy(t).into_owned())
                    }
                })
            })
            .collect()
    })?;
    rows.collect()
}

/// The rows of `sql` on the PostgreSQL database `url`, every column as text (`None` for NULL).
pub fn pg_rows(url: &str, sql: &str) -> Result<Vec<Vec<Option<String>>>, String> {
    let mut client = postgres::Client::connect(url, postgres::NoTls)
        .map_err(|e| format!("connect to the test database: {e}"))?;
    // The simple protocol hands every column back as text, whatever its type.
    let messages = client.simple_query(sql).map_err(|e| e.to_string())?;
    Ok(messages
        .into_iter()
        .filter_map(|m| match m {
            postgres::SimpleQueryMessage::Row(row) => Some(
                (0..row.len())
                    .map(|i| row.get(i).map(str::to_string))
                    .collect(),
            ),
            _ => None,
        })
        .collect())
}

/// `f` on the store of data directory `data`, opened in the test process (to seed rows
/// before a line starts, or to read them through the product's own code): the SQLite file in
/// it, created when missing, or its PostgreSQL database, migrated. `f` runs on a thread of its
/// own, so an async test may call this too (see [`off_runtime`]).
pub fn with_store_of<R: Send>(
    data: &Path,
    f: impl FnOnce(&dyn ivr::store::Store) -> R + Send,
) -> R {
    off_runtime(|| f(open_store(data).as_ref()))
}

/// The store of data directory `data`, opened in the test process (see [`with_store_of`]).
/// Not from an async test: the PostgreSQL client blocks on a runtime of its own.
pub fn open_store(data: &Path) -> Box<dyn ivr::store::Store> {
    match url_for(data) {
        Some(url) => {
            Box::new(ivr::store::PgStore::connect(&url).expect("connect to the test database"))
        }
        None => Box::new(ivr::store::SqliteStore::open(data).expect("open the SQLite store")),
    }
}

/// `f` on a thread of its own: the blocking PostgreSQL client runs a runtime of its own, which
/// panics on a thread that is driving a tokio runtime already (the async tests' threads).
fn off_runtime<R: Send>(f: impl FnOnce() -> R + Send) -> R {
    std::thread::scope(|s| match s.spawn(f).join() {
        Ok(r) => r,
        Err(panic) => std::panic::resume_unwind(panic),
    })
}
