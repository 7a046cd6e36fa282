//! The environment variable `IVR_STORE_URL`: when set and not empty it wins over `[store] url`
//! (and over `--data` for the CLI commands that open the store), so a database password need
//! not sit in a config file.
//!
//! Apart from `store.rs` because it records where the URL came from (`paths.rs`), and
//! `paths.rs` reads `store.rs`'s SQLite scheme.

use std::path::Path;

use super::paths::{PathOrigin, PathSource, absolute};
use super::store::{SQLITE_SCHEME, StoreConfig};
use super::{Config, ConfigError};

/// The environment variable that overrides `[store] url`.
pub const STORE_URL_ENV: &str = "IVR_STORE_URL";

/// The store `IVR_STORE_URL` names, when it is set and not empty; read once per load by `ivr
/// serve` (and each reload) and by the CLI commands that open the store.
pub fn store_from_env() -> Result<Option<StoreConfig>, ConfigError> {
    store_from_env_value(std::env::var(STORE_URL_ENV).ok())
}

/// [`store_from_env`] for the variable's value (`None`: unset). A relative `sqlite://PATH`
/// resolves against the working directory, as a command-line path does; a bad URL is a
/// config error on `store.url` that names the variable, its password hidden.
pub fn store_from_env_value(value: Option<String>) -> Result<Option<StoreConfig>, ConfigError> {
    let Some(url) = value
        .map(|v| v.trim().to_string())
        .filter(|v| !v.is_empty())
    else {
        return Ok(None);
    };
    let url = match url.strip_prefix(SQLITE_SCHEME) {
        Some(path) if !path.is_empty() && Path::new(path).is_relative() => {
            format!("{SQLITE_SCHEME}{}", absolute(Path::new(path)).display())
        }
        _ => url,
    };
    let store = StoreConfig { url };
    // The data directory only matters for an empty URL, which never gets here.
    store
        .backend(Path::new(""))
        .map_err(|reason| ConfigError::Value {
            origin: format!("{STORE_URL_ENV} in the environment"),
            key: "store.url",
            value: store.url_for_log(),
            reason,
        })?;
    Ok(Some(store))
}

impl Config {
    /// `[store] url` replaced by `store` (from [`store_from_env`]), recorded as coming from
    /// the environment so errors about the store say where it was named.
    pub fn set_store_from_env(&mut self, store: StoreConfig) {
        self.path_origins.insert(PathOrigin {
            key: "store.url".into(),
            written: store.url_for_log(),
            source: PathSource::Env(STORE_URL_ENV),
        });
        self.store = store;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::StoreBackend;

    /// IVR_STORE_URL replaces `[store] url` (issue 16: a database password need not sit in
    /// the config file); where it came from is said without its password.
    #[test]
    fn the_environment_overrides_store_url_and_says_so() {
        use crate::config::Config;
        assert!(store_from_env_value(None).unwrap().is_none());
        assert!(store_from_env_value(Some("  ".into())).unwrap().is_none());
        let mut c =
            Config::from_str("[store]\nurl = \"sqlite:///srv/ivr.db\"\n", "t.toml").unwrap();
        let env = store_from_env_value(Some("postgres://ivr:s3cret@db/ivr".into()))
            .unwrap()
            .expect("set");
        c.set_store_from_env(env);
        assert_eq!(
            c.store_backend(),
            StoreBackend::Postgres("postgres://ivr:s3cret@db/ivr".into())
        );
        let origin = c.path_origin("store.url");
        assert_eq!(
            origin,
            "IVR_STORE_URL=\"postgres://ivr:***@db/ivr\" in the environment"
        );
        assert!(!format!("{c:?}").contains("s3cret"));
    }

    #[test]
    fn a_relative_sqlite_path_in_the_environment_follows_the_working_directory() {
        let env = store_from_env_value(Some("sqlite://var/calls.db".into()))
            .unwrap()
            .expect("set");
        let cwd = std::env::current_dir().unwrap();
        assert_eq!(
            env.backend(Path::new("/elsewhere")),
            Ok(StoreBackend::Sqlite(cwd.join("var/calls.db")))
        );
    }

    #[test]
    fn a_bad_environment_url_is_a_config_error_naming_the_variable() {
        let err = store_from_env_value(Some("mysql://u:s3cret@db/ivr".into()))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("IVR_STORE_URL")
                && err.contains("store.url")
                && err.contains("unknown store"),
            "{err}"
        );
        assert!(!err.contains("s3cret"), "{err}");
    }
}
