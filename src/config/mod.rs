//! Settings from `config/ivr.toml`.
//!
//! The shipped `config/ivr.toml` is compiled in as the defaults, so `ivr serve` needs no file; a
//! `--config FILE` is read on top (missing keys keep their defaults) and command-line flags win
//! over both. Unknown keys and bad values stop the start with the file, the key and the reason.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use thiserror::Error;

mod sections;
mod validate;

pub use sections::*;
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
    pub staff: StaffConfig,
    pub desk: DeskConfig,
    /// `serve --now`: pretend the wall clock read this at start (business hours in tests, demos).
    #[serde(skip)]
    pub clock_at: Option<jiff::Timestamp>,
}

impl Config {
    /// The built-in defaults.
    pub fn embedded() -> Config {
        // The embedded file is tested below; failing here means the binary itself is broken.
        Self::from_str(DEFAULT_TOML, "(built-in defaults)")
            .expect("embedded config/ivr.toml is valid")
    }

    /// Defaults overlaid with `path`, when given.
    pub fn load(path: Option<&Path>) -> Result<Config, ConfigError> {
        let Some(path) = path else {
            return Ok(Self::embedded());
        };
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        Self::from_str(&text, &path.display().to_string())
    }

    /// Parses `text` over the defaults (a key missing from `text` keeps its default).
    pub fn from_str(text: &str, origin: &str) -> Result<Config, ConfigError> {
        let syntax = |e: toml::de::Error| ConfigError::Syntax {
            origin: origin.to_string(),
            message: e.to_string(),
        };
        let mut base: toml::Table = toml::from_str(DEFAULT_TOML).map_err(syntax)?;
        let over: toml::Table = toml::from_str(text).map_err(syntax)?;
        merge(&mut base, over);
        let config: Config =
            toml::Value::Table(base)
                .try_into()
                .map_err(|e: toml::de::Error| ConfigError::Syntax {
                    origin: origin.to_string(),
                    message: e.to_string(),
                })?;
        config.validate(origin)?;
        Ok(config)
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
