//! Settings from `config/ivr.toml`.
//!
//! The shipped `config/ivr.toml` is compiled in as the defaults, so `ivr serve` needs no file; a
//! `--config FILE` is read on top (missing keys keep their defaults) and command-line flags win
//! over both. Unknown keys and bad values stop the start with the file, the key and the reason.
//! Relative paths resolve against the directory of the file they are written in (see `paths`).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use thiserror::Error;

mod cluster;
mod dns;
mod external;
mod incidents;
mod oncall;
mod paths;
mod sections;
mod source;
mod store;
mod store_env;
mod transcription;
mod trunks;
mod validate;

pub use cluster::ClusterConfig;
pub use dns::{DnsConfig, parse_dns_server};
// `[email]` is defined beside the mail it configures; config only reads it.
pub use crate::notify::mail_config::{EmailConfig, EmailTls};
pub use incidents::{IncidentPrompt, IncidentsConfig};
pub use oncall::{OncallConfig, OncallError, OncallOverride};
pub use paths::{Install, PathOrigin, PathOrigins, PathSource, absolute, flow_number_key};
pub use sections::*;
pub use source::{ConfigSource, Overrides};
pub use store::{StoreBackend, StoreConfig};
pub use store_env::{STORE_URL_ENV, store_from_env};
pub use transcription::TranscriptionConfig;
pub use trunks::{TrunkConfig, UnknownSources};
pub use validate::{parse_listen, parse_net, parse_port_range};

/// The documented defaults, byte for byte the shipped `config/ivr.toml`.
pub const DEFAULT_TOML: &str = include_str!("../../config/ivr.toml");

#[derive(Debug, Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("config {origin}: {message}")]
    Syntax { origin: String, message: String },
    #[error("config {origin}: {key} = {value:?}: {reason}")]
    Value {
        origin: String,
        key: &'static str,
        value: String,
        reason: String,
    },
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    pub sip: SipConfig,
    pub rtp: RtpConfig,
    pub prompts: PromptConfig,
    pub call: CallConfig,
    pub data: DataConfig,
    pub log: LogConfig,
    pub hours: HoursConfig,
    pub flows: FlowsConfig,
    pub callers: CallersConfig,
    pub billing: BillingConfig,
    #[serde(default)]
    pub clients: Vec<ClientConfig>,
    pub webhooks: WebhooksConfig,
    pub sla: SlaConfig,
    pub admin: AdminConfig,
    pub staff: StaffConfig,
    pub desk: DeskConfig,
    #[serde(default)]
    pub incidents: IncidentsConfig,
    #[serde(default)]
    pub email: EmailConfig,
    /// `[oncall]`: the rota the desk member `oncall` follows.
    #[serde(default)]
    pub oncall: OncallConfig,
    #[serde(default)]
    pub dns: DnsConfig,
    #[serde(default)]
    pub transcription: TranscriptionConfig,
    /// `[store]`: the database (see `store.rs`); by default `ivr.db` in `[data] dir`.
    #[serde(default)]
    pub store: StoreConfig,
    /// `[cluster]`: this node's name (see `cluster.rs`); by default the host name.
    #[serde(default)]
    pub cluster: ClusterConfig,
    /// `[[trunks]]`: carrier SIP trunks (see `trunks.rs`).
    #[serde(default)]
    pub trunks: Vec<TrunkConfig>,
    /// `serve --now`: pretend the wall clock read this at start (business hours in tests, demos).
    #[serde(skip)]
    pub clock_at: Option<jiff::Timestamp>,
    /// Who wrote each path-valued key; empty for [`Config::from_str`], which resolves nothing.
    #[serde(skip)]
    pub path_origins: PathOrigins,
}

impl Config {
    /// The built-in defaults, paths as written (relative, resolved by nothing).
    pub fn embedded() -> Config {
        // The embedded file is tested below; failing here means the binary itself is broken.
        Self::from_str(DEFAULT_TOML, "(built-in defaults)")
            .expect("embedded config/ivr.toml is valid")
    }

    /// Defaults overlaid with `path`, when given, with every relative path resolved: the file's
    /// against its directory, the defaults' against the [`Install`] found from here.
    pub fn load(path: Option<&Path>) -> Result<Config, ConfigError> {
        Self::load_with(path, &Install::discover())
    }

    /// [`Config::load`] with the built-in defaults' paths resolved against `install`.
    pub fn load_with(path: Option<&Path>, install: &Install) -> Result<Config, ConfigError> {
        let builtin = (install.dir.as_path(), PathSource::BuiltIn(install.clone()));
        let Some(path) = path else {
            return Self::layered("", "(built-in defaults)", Some((builtin, None)));
        };
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: absolute(path),
            source,
        })?;
        // The directory as the kernel found the file: `../etc/ivr.toml` from a symlinked
        // working directory names the directory the text was read from, not a lexical guess.
        let file = absolute(path);
        let dir = file.parent().map(Path::to_path_buf).unwrap_or_default();
        let dir = std::fs::canonicalize(&dir).unwrap_or(dir);
        let file = file.file_name().map_or(file.clone(), |name| dir.join(name));
        let written = (dir.as_path(), PathSource::File(file.clone()));
        Self::layered(
            &text,
            &path.display().to_string(),
            Some((builtin, Some(written))),
        )
    }

    /// Parses `text` over the defaults (a key missing from `text` keeps its default). Paths stay
    /// as written: relative ones resolve against the working directory when used.
    pub fn from_str(text: &str, origin: &str) -> Result<Config, ConfigError> {
        Self::layered(text, origin, None)
    }

    /// `text` over the defaults; with `bases`, each layer's relative paths resolved first
    /// against its own base (the defaults', then the file's), so a key the file leaves out keeps
    /// the default's resolution.
    fn layered(
        text: &str,
        origin: &str,
        bases: Option<(Layer<'_>, Option<Layer<'_>>)>,
    ) -> Result<Config, ConfigError> {
        let syntax = |e: toml::de::Error| ConfigError::Syntax {
            origin: origin.to_string(),
            message: e.to_string(),
        };
        let mut base: toml::Table = toml::from_str(DEFAULT_TOML).map_err(syntax)?;
        let mut over: toml::Table = toml::from_str(text).map_err(syntax)?;
        let mut origins = PathOrigins::default();
        if let Some(((builtin_dir, builtin), file)) = &bases {
            paths::resolve_layer(&mut base, builtin_dir, builtin, &mut origins);
            if let Some((file_dir, file)) = file {
                paths::resolve_layer(&mut over, file_dir, file, &mut origins);
            }
        }
        merge(&mut base, over);
        let mut config: Config =
            toml::Value::Table(base)
                .try_into()
                .map_err(|e: toml::de::Error| ConfigError::Syntax {
                    origin: origin.to_string(),
                    message: e.to_string(),
                })?;
        config.validate(origin)?;
        trunks::validate(&config.trunks, origin)?;
        config
            .store
            .backend(&config.data.dir)
            .map_err(|reason| ConfigError::Value {
                origin: origin.to_string(),
                key: "store.url",
                value: config.store.url_for_log(),
                reason,
            })?;
        cluster::check_node(&config.cluster.node).map_err(|reason| ConfigError::Value {
            origin: origin.to_string(),
            key: "cluster.node",
            value: config.cluster.node.clone(),
            reason,
        })?;
        config.path_origins = origins;
        Ok(config)
    }

    /// Where the path at `key` (dotted, e.g. `prompts.dir`) came from, for errors: the key, the
    /// text as written and the file or flag; just the key when nothing was recorded.
    pub fn path_origin(&self, key: &str) -> String {
        self.path_origins
            .get(key)
            .map_or_else(|| key.to_string(), ToString::to_string)
    }

    /// `value` from the command-line `flag` for `key`, made absolute against the working
    /// directory (where a shell user means it) and recorded as coming from the flag.
    pub fn flag_path(&mut self, key: &str, flag: &'static str, value: &Path) -> PathBuf {
        self.path_origins.insert(PathOrigin {
            key: key.to_string(),
            written: value.display().to_string(),
            source: PathSource::Flag(flag),
        });
        absolute(value)
    }

    /// The CIDR networks of `sip.follow_routes_to` (validated at load).
    pub fn follow_routes_to(&self) -> Vec<ipnet::IpNet> {
        self.sip
            .follow_routes_to
            .iter()
            .filter_map(|n| parse_net(n).ok())
            .collect()
    }

    /// The CIDR networks of `sip.limits.exempt` (validated at load).
    pub fn limits_exempt(&self) -> Vec<ipnet::IpNet> {
        self.sip
            .limits
            .exempt
            .iter()
            .filter_map(|n| parse_net(n).ok())
            .collect()
    }

    /// Where the store is: `[store] url`, by default `ivr.db` in `[data] dir` (after `--data`).
    /// Checked at load, so the fallback is never taken.
    pub fn store_backend(&self) -> StoreBackend {
        self.store
            .backend(&self.data.dir)
            .unwrap_or_else(|_| StoreBackend::Sqlite(self.data.dir.join("ivr.db")))
    }

    pub fn listen_addr(&self) -> SocketAddr {
        // Validated at load time.
        parse_listen(&self.sip.listen).unwrap_or_else(|_| SocketAddr::from(([0, 0, 0, 0], 5060)))
    }

    pub fn rtp_ports(&self) -> (u16, u16) {
        parse_port_range(&self.rtp.ports).unwrap_or((20000, 29999))
    }

    pub fn rtp_latch(&self) -> RtpLatch {
        // Validated at load time; the default is the safe one.
        RtpLatch::parse(&self.rtp.latch).unwrap_or(RtpLatch::Signalling)
    }
}

/// One config layer's base directory and author.
type Layer<'a> = (&'a Path, PathSource);

fn merge(base: &mut toml::Table, over: toml::Table) {
    for (k, v) in over {
        match (base.get_mut(&k), v) {
            (Some(toml::Value::Table(b)), toml::Value::Table(o)) => merge(b, o),
            (_, v) => {
                base.insert(k, v);
            }
        }
    }
}

#[cfg(test)]
mod tests;
