//! `[store]`: which database keeps calls, voicemails, SLA timers and the outbox.
//!
//! `url = "sqlite://PATH"` is a SQLite file (a relative PATH resolves against the directory of
//! the config file it is written in, like every path in config); left out or empty, it is
//! `ivr.db` in `[data] dir`, exactly where the database always was. `postgres://...` (or
//! `postgresql://...`) names a PostgreSQL server that several nodes may share (issue 16). A
//! password in the URL never reaches `Debug` output or an error message.
//!
//! The environment variable `IVR_STORE_URL` may name the store instead (`store_env.rs`).

use std::fmt;
use std::path::{Path, PathBuf};

use serde::Deserialize;

/// The scheme of a SQLite URL.
pub const SQLITE_SCHEME: &str = "sqlite://";
/// The database file in the data directory when `url` is not set (`store::DB_FILE`).
const DEFAULT_DB_FILE: &str = "ivr.db";

/// `[store]` as written.
#[derive(Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StoreConfig {
    /// `sqlite://PATH`, `postgres://USER:PASSWORD@HOST/DB`, or empty for `[data] dir`/ivr.db.
    #[serde(default)]
    pub url: String,
}

impl fmt::Debug for StoreConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StoreConfig")
            .field("url", &redact(&self.url))
            .finish()
    }
}

/// Where the store is, from `[store] url` and `[data] dir`.
#[derive(Clone, PartialEq, Eq)]
pub enum StoreBackend {
    /// A SQLite database file.
    Sqlite(PathBuf),
    /// A PostgreSQL server (the URL as written; `Debug` hides its password).
    Postgres(String),
}

impl fmt::Debug for StoreBackend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StoreBackend::Sqlite(path) => f.debug_tuple("Sqlite").field(path).finish(),
            StoreBackend::Postgres(url) => f.debug_tuple("Postgres").field(&redact(url)).finish(),
        }
    }
}

impl StoreConfig {
    /// The backend `url` names, with `data_dir` giving the default. `Err` is the reason, for a
    /// config error on `store.url`.
    pub fn backend(&self, data_dir: &Path) -> Result<StoreBackend, String> {
        let url = self.url.trim();
        if url.is_empty() {
            return Ok(StoreBackend::Sqlite(data_dir.join(DEFAULT_DB_FILE)));
        }
        if let Some(path) = url.strip_prefix(SQLITE_SCHEME) {
            if path.is_empty() {
                return Err(format!(
                    "expected a database file after {SQLITE_SCHEME}, e.g. \"sqlite://var/ivr.db\" \
                     (or leave store.url out for ivr.db in [data] dir)"
                ));
            }
            return Ok(StoreBackend::Sqlite(PathBuf::from(path)));
        }
        if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            return Ok(StoreBackend::Postgres(url.to_string()));
        }
        Err(format!(
            "unknown store; expected \"sqlite://PATH\" or \"postgres://USER@HOST/DB\" (or leave \
             store.url out for {DEFAULT_DB_FILE} in [data] dir)"
        ))
    }

    /// `url` as it may be shown: a password is replaced by `***`.
    pub fn url_for_log(&self) -> String {
        redact(&self.url)
    }
}

/// `url` with its password replaced by `***`: the `user:password@` part (up to the last `@`,
/// so a password holding an unencoded `/` or `@` is hidden whole) and a `password=` parameter.
pub fn redact(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_string();
    };
    let mut out = match rest.rsplit_once('@') {
        Some((creds, host)) => match creds.split_once(':') {
            Some((user, _password)) => format!("{scheme}://{user}:***@{host}"),
            None => url.to_string(),
        },
        None => url.to_string(),
    };
    if let Some(at) = out.find("password=") {
        let start = at + "password=".len();
        let end = out[start..].find('&').map_or(out.len(), |i| start + i);
        out.replace_range(start..end, "***");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(url: &str) -> StoreConfig {
        StoreConfig { url: url.into() }
    }

    #[test]
    fn default_is_ivr_db_in_the_data_dir() {
        assert_eq!(
            cfg("").backend(Path::new("/srv/ivr")),
            Ok(StoreBackend::Sqlite(PathBuf::from("/srv/ivr/ivr.db")))
        );
    }

    #[test]
    fn sqlite_and_postgres_urls_and_a_bad_scheme() {
        let data = Path::new("/d");
        assert_eq!(
            cfg("sqlite:///var/lib/ivr/calls.db").backend(data),
            Ok(StoreBackend::Sqlite(PathBuf::from("/var/lib/ivr/calls.db")))
        );
        assert!(cfg("sqlite://").backend(data).is_err());
        for url in ["postgres://ivr@db/ivr", "postgresql://ivr:pw@db:5432/ivr"] {
            assert_eq!(
                cfg(url).backend(data),
                Ok(StoreBackend::Postgres(url.into()))
            );
        }
        let err = cfg("mysql://db/ivr").backend(data).unwrap_err();
        assert!(err.contains("sqlite://PATH"), "{err}");
    }

    #[test]
    fn the_password_never_shows() {
        let c = cfg("postgres://ivr:s3cret@db.example:5432/ivr?sslmode=require");
        let shown = format!("{c:?} {:?} {}", c.backend(Path::new("/d")), c.url_for_log());
        assert!(!shown.contains("s3cret"), "{shown}");
        assert!(shown.contains("postgres://ivr:***@db.example:5432/ivr?sslmode=require"));
        assert_eq!(redact("postgres://ivr@db/ivr"), "postgres://ivr@db/ivr");
        assert_eq!(redact("sqlite://var/ivr.db"), "sqlite://var/ivr.db");
        assert_eq!(
            redact("postgres://u:a/b@c@db/ivr"),
            "postgres://u:***@db/ivr"
        );
        assert_eq!(
            redact("postgres://db/ivr?user=u&password=pw&sslmode=require"),
            "postgres://db/ivr?user=u&password=***&sslmode=require"
        );
    }

    fn install_at(dir: &str) -> crate::config::Install {
        crate::config::Install {
            dir: PathBuf::from(dir),
            searched: vec![PathBuf::from(dir)],
            found: true,
        }
    }

    #[test]
    fn the_default_is_unchanged_and_a_relative_sqlite_path_follows_its_file() {
        use crate::config::Config;
        let c = Config::load_with(None, &install_at("/opt/ivr")).unwrap();
        assert_eq!(
            c.store_backend(),
            StoreBackend::Sqlite(PathBuf::from("/opt/ivr/var/ivr.db"))
        );
        let dir = std::env::temp_dir().join(format!("ivr-config-store-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let dir = std::fs::canonicalize(&dir).unwrap();
        let file = dir.join("ivr.toml");
        std::fs::write(&file, "[store]\nurl = \"sqlite://db/calls.db\"\n").unwrap();
        let c = Config::load_with(Some(&file), &install_at("/opt/ivr")).unwrap();
        assert_eq!(
            c.store_backend(),
            StoreBackend::Sqlite(dir.join("db/calls.db"))
        );
        assert_eq!(
            c.path_origin("store.url"),
            format!("store.url = \"sqlite://db/calls.db\" in {}", file.display())
        );
        let _ = std::fs::remove_dir_all(&dir);
    }

    /// A PostgreSQL URL loads (it was refused with "not built in yet" before the store was
    /// wired in); an unknown scheme is a config error on `store.url`.
    #[test]
    fn postgres_loads_and_unknown_schemes_are_config_errors_on_store_url() {
        use crate::config::Config;
        let pg = Config::from_str(
            "[store]\nurl = \"postgres://ivr:s3cret@db/ivr\"\n",
            "test.toml",
        )
        .expect("a postgres URL loads");
        assert_eq!(
            pg.store_backend(),
            StoreBackend::Postgres("postgres://ivr:s3cret@db/ivr".into())
        );
        let err = |url: &str| {
            Config::from_str(&format!("[store]\nurl = {url:?}\n"), "test.toml")
                .unwrap_err()
                .to_string()
        };
        let bad = err("mysql://db/ivr");
        assert!(
            bad.contains("store.url") && bad.contains("unknown store"),
            "{bad}"
        );
    }
}
