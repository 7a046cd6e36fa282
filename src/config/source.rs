//! Where a running `ivr serve` got its config: the file and the command-line flags laid over
//! it. A reload reads the same file and lays the same flags over it again, so a flag given at
//! start still wins after a reload.

use std::net::SocketAddr;
use std::path::PathBuf;

use super::{Config, ConfigError};

/// The `ivr serve` flags that override config keys.
#[derive(Clone, Debug, Default)]
pub struct Overrides {
    pub sip: Option<SocketAddr>,
    pub rtp_ports: Option<(u16, u16)>,
    pub data: Option<PathBuf>,
    pub prompts: Option<PathBuf>,
    pub hold_after_prompt: bool,
    pub flow: Option<PathBuf>,
    pub now: Option<jiff::Timestamp>,
    /// `--admin ADDR` (empty: the admin server off).
    pub admin: Option<String>,
}

/// The config file (none: the built-in defaults) and the flags over it.
#[derive(Clone, Debug, Default)]
pub struct ConfigSource {
    pub file: Option<PathBuf>,
    pub overrides: Overrides,
}

impl ConfigSource {
    /// Reads the file and applies the flags and `IVR_STORE_URL`, exactly as at start.
    pub fn load(&self) -> Result<Config, ConfigError> {
        let mut cfg = Config::load(self.file.as_deref())?;
        let o = &self.overrides;
        if let Some(sip) = o.sip {
            cfg.sip.listen = sip.to_string();
        }
        if let Some((lo, hi)) = o.rtp_ports {
            cfg.rtp.ports = format!("{lo}-{hi}");
        }
        if let Some(data) = &o.data {
            cfg.data.dir = cfg.flag_path("data.dir", "--data", data);
        }
        if let Some(prompts) = &o.prompts {
            cfg.prompts.dir = cfg.flag_path("prompts.dir", "--prompts", prompts);
        }
        if let Some(admin) = &o.admin {
            cfg.admin.listen = admin.clone();
        }
        if o.hold_after_prompt {
            cfg.call.hold_after_prompt = true;
        }
        if let Some(flow) = &o.flow {
            cfg.flows.default = cfg.flag_path("flows.default", "--flow", flow);
        }
        cfg.clock_at = o.now;
        if let Some(store) = super::store_env::store_from_env()? {
            cfg.set_store_from_env(store);
        }
        Ok(cfg)
    }
}
