//! Settings from `config/ivr.toml`.
//!
//! The shipped `config/ivr.toml` is compiled in as the defaults, so `ivr serve` needs no file; a
//! `--config FILE` is read on top (missing keys keep their defaults) and command-line flags win
//! over both. Unknown keys and bad values stop the start with the file, the key and the reason.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use thiserror::Error;

/// The documented defaults, byte for byte the shipped `config/ivr.toml`.
pub const DEFAULT_TOML: &str = include_str!("../config/ivr.toml");

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

/// Caller identity and repeat detection.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CallersConfig {
    pub trusted_proxies: Vec<std::net::IpAddr>,
    pub default_country: String,
    pub repeat_times: u32,
    pub repeat_window_min: u64,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BillingConfig {
    pub after_hours_multiplier: f64,
    pub clients_csv: String,
}

/// One client company: its numbers and its After Hours Escalation Agreement.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClientConfig {
    pub name: String,
    pub numbers: Vec<String>,
    #[serde(default)]
    pub agreement: bool,
    pub rate_multiplier: Option<f64>,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebhooksConfig {
    pub url: String,
    pub secret: String,
    pub escalation_url: String,
    pub escalation_secret: String,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SlaConfig {
    pub callback_minutes: u64,
}

/// `[staff]`: the registrar for staff phones (REGISTER with digest auth, issue 6).
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StaffConfig {
    /// Digest realm in the challenges; phones store their credentials per realm.
    pub realm: String,
    /// Who may register. Empty: registration is disabled (REGISTER gets 403).
    #[serde(default)]
    pub users: Vec<StaffUser>,
    /// Shorter registrations get 423 Interval Too Brief with this Min-Expires (seconds).
    pub min_expires: u32,
    /// Longer registrations are shortened to this (seconds); also the default when a phone asks
    /// for none.
    pub max_expires: u32,
    /// Digest algorithms offered, one `WWW-Authenticate` each, in this order.
    pub algorithms: Vec<String>,
    /// Failed digest answers within `auth_failure_window_s` that block the source (and,
    /// separately, the user named); 0 turns the lockout off.
    pub auth_failures_before_block: u32,
    /// The window the failures are counted in (seconds).
    pub auth_failure_window_s: u64,
    /// The first block's length (seconds); each further block of the same source or user doubles.
    pub auth_block_s: u64,
    /// The longest block (seconds); also how long a source or user must stay quiet after a block
    /// before the next one starts short again.
    pub auth_block_max_s: u64,
}

impl StaffConfig {
    /// The validated `algorithms` list.
    pub fn digest_algorithms(&self) -> Vec<crate::sip::Algorithm> {
        self.algorithms
            .iter()
            .filter_map(|a| crate::sip::Algorithm::parse(a))
            .filter(|(_, sess)| !sess)
            .map(|(a, _)| a)
            .collect()
    }
}

/// `[desk]`: who the `dial` node rings, and how the bridge behaves.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeskConfig {
    /// After the whisper ends, how long staff have to press 1 (seconds).
    pub accept_timeout_s: u64,
    /// What the caller hears while staff phones ring: "us", "uk" or "eu" ringback tone.
    pub ringback: String,
    /// Relay a ringing staff phone's early media (183 with SDP) to the caller instead of the tone.
    pub early_media: bool,
    /// Hosts a staff phone's 3xx may send the call to (IP literals); empty: no redirects.
    pub redirect_hosts: Vec<String>,
    /// How long each member rings when a dial is `sequential` (seconds).
    pub ring_each_s: u64,
    /// Where staff call-backs go out ("sip:IP:port"); empty: off.
    pub callback_trunk: String,
    /// A number may be called back while it has a voicemail this recent (or unanswered).
    pub callback_window_h: u64,
    /// The From user part of call-backs.
    pub callback_caller_id: String,
    #[serde(default)]
    pub groups: Vec<DeskGroupConfig>,
}

/// One `[[desk.groups]]` entry.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeskGroupConfig {
    pub name: String,
    /// `[[staff.users]]` names and fixed `sip:user@IP:port` addresses, in ring order.
    pub members: Vec<String>,
}

impl Config {
    /// The checked desk groups.
    pub fn desk_groups(&self) -> Result<crate::bridge::DeskGroups, crate::bridge::DeskError> {
        let users: Vec<String> = self.staff.users.iter().map(|u| u.name.clone()).collect();
        crate::bridge::DeskGroups::new(
            self.desk
                .groups
                .iter()
                .map(|g| (g.name.as_str(), g.members.as_slice())),
            &users,
        )
    }
}

/// One `[[staff.users]]` entry.
#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StaffUser {
    /// The SIP user name: the phone's auth user and the user part of its To/AOR.
    pub name: String,
    pub password: String,
    /// A human name for logs and, later, the whisper.
    #[serde(default)]
    pub display: Option<String>,
}

impl std::fmt::Debug for StaffUser {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StaffUser")
            .field("name", &self.name)
            .field("password", &"<redacted>")
            .field("display", &self.display)
            .finish()
    }
}

/// Which call flow answers which dialled number.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FlowsConfig {
    /// The flow for numbers without an entry in `numbers`.
    pub default: PathBuf,
    /// Dialled number (user part of the Request-URI) → flow file.
    #[serde(default)]
    pub numbers: std::collections::BTreeMap<String, PathBuf>,
}

impl FlowsConfig {
    /// The flow file for a dialled number.
    pub fn for_number(&self, dialled: &str) -> &Path {
        self.numbers
            .get(dialled)
            .map(PathBuf::as_path)
            .unwrap_or(&self.default)
    }
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SipConfig {
    pub listen: String,
    pub public_address: String,
    pub max_calls: usize,
    /// INVITEs in, whose call task has not answered yet; beyond it new calls get 503 at once.
    pub max_pending_setups: usize,
    pub t1_ms: u64,
    /// Hosts a Request-URI may name besides the address a request arrived on.
    pub domains: Vec<String>,
    /// Networks (CIDR or single IPs) our in-dialog requests may be routed to.
    pub follow_routes_to: Vec<String>,
    /// Seconds without a message before a TCP connection with no call or binding is closed.
    pub tcp_idle_timeout_s: u64,
    /// Seconds a TCP message may take from its first byte to its last.
    pub tcp_message_timeout_s: u64,
    pub tcp_max_connections: usize,
    pub tcp_max_per_source: usize,
    pub limits: SipLimitsConfig,
}

/// Per-source admission (`[sip.limits]`): rates are per second per source address.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SipLimitsConfig {
    pub calls_per_s: f64,
    pub calls_burst: u32,
    pub registers_per_s: f64,
    pub registers_burst: u32,
    pub requests_per_s: f64,
    pub requests_burst: u32,
    pub max_half_open: u32,
    pub silent_after: u32,
    pub exempt: Vec<String>,
    pub max_sources: usize,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RtpConfig {
    pub ports: String,
    /// Which sources a call's RTP is taken from (`latch = "signalling"` or `"sdp"`).
    pub latch: String,
    /// Silence (no RTP believed) from a far end that says it sends before the call is hung up;
    /// 0 turns it off.
    pub timeout_s: u64,
}

/// `rtp.latch`: where a call's RTP may come from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RtpLatch {
    /// The SDP address, or a source at the SIP peer's or the SDP's IP on any port (NAT).
    Signalling,
    /// Only the exact address the SDP names.
    Sdp,
}

impl RtpLatch {
    fn parse(s: &str) -> Result<RtpLatch, String> {
        match s {
            "signalling" => Ok(RtpLatch::Signalling),
            "sdp" => Ok(RtpLatch::Sdp),
            _ => Err(
                "expected \"signalling\" (the SDP address, or a source at the SIP peer's or \
                      the SDP's IP on any port: NAT) or \"sdp\" (only the exact SDP address)"
                    .into(),
            ),
        }
    }
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PromptConfig {
    pub dir: PathBuf,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CallConfig {
    pub hold_after_prompt: bool,
    pub ring_ms: u64,
    pub answer_delay_ms: u64,
    pub max_duration_s: u64,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DataConfig {
    pub dir: PathBuf,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LogConfig {
    pub filter: String,
}

/// `[hours]`: when the line counts as open; compiled and evaluated by `crate::hours`.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HoursConfig {
    /// IANA time zone name, e.g. `America/New_York`.
    pub timezone: String,
    /// Opening ranges per weekday, local wall time: `""` (closed) or `"HH:MM-HH:MM,..."`.
    #[serde(default)]
    pub monday: String,
    #[serde(default)]
    pub tuesday: String,
    #[serde(default)]
    pub wednesday: String,
    #[serde(default)]
    pub thursday: String,
    #[serde(default)]
    pub friday: String,
    #[serde(default)]
    pub saturday: String,
    #[serde(default)]
    pub sunday: String,
    /// Local dates closed all day, `YYYY-MM-DD`. Written as strings or as bare TOML dates.
    #[serde(default, deserialize_with = "dates_as_strings")]
    pub holidays: Vec<String>,
}

/// Takes `["2026-12-25"]` and `[2026-12-25]` (a TOML local date) alike, as text; anything else
/// is kept as its TOML text so validation can name it.
fn dates_as_strings<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    let values = Vec::<toml::Value>::deserialize(d)?;
    Ok(values
        .into_iter()
        .map(|v| match v {
            toml::Value::String(s) => s,
            other => other.to_string(),
        })
        .collect())
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

    fn validate(&self, origin: &str) -> Result<(), ConfigError> {
        let bad = |key, value: &str, reason: String| ConfigError::Value {
            origin: origin.to_string(),
            key,
            value: value.to_string(),
            reason,
        };
        parse_listen(&self.sip.listen).map_err(|r| bad("sip.listen", &self.sip.listen, r))?;
        if !self.sip.public_address.is_empty() {
            self.sip
                .public_address
                .parse::<std::net::IpAddr>()
                .map_err(|e| {
                    bad(
                        "sip.public_address",
                        &self.sip.public_address,
                        e.to_string(),
                    )
                })?;
        }
        parse_port_range(&self.rtp.ports).map_err(|r| bad("rtp.ports", &self.rtp.ports, r))?;
        self.validate_sip_limits(origin)?;
        RtpLatch::parse(&self.rtp.latch).map_err(|r| bad("rtp.latch", &self.rtp.latch, r))?;
        if self.rtp.timeout_s > 3600 {
            return Err(bad(
                "rtp.timeout_s",
                &self.rtp.timeout_s.to_string(),
                "expected 0 (off) or seconds up to 3600, e.g. 30".into(),
            ));
        }
        if !(50..=5000).contains(&self.sip.t1_ms) {
            return Err(bad(
                "sip.t1_ms",
                &self.sip.t1_ms.to_string(),
                "must be between 50 and 5000 (RFC 3261 default 500)".into(),
            ));
        }
        if self.callers.repeat_times < 2 {
            return Err(bad(
                "callers.repeat_times",
                &self.callers.repeat_times.to_string(),
                "must be at least 2 (2 = the same number twice in a row)".into(),
            ));
        }
        if self.callers.repeat_window_min == 0 {
            return Err(bad(
                "callers.repeat_window_min",
                "0",
                "must be at least 1 minute".into(),
            ));
        }
        if !self
            .callers
            .default_country
            .chars()
            .all(|c| c.is_ascii_digit())
            || self.callers.default_country.len() > 3
        {
            return Err(bad(
                "callers.default_country",
                &self.callers.default_country,
                "expected a country calling code of 1-3 digits without +, e.g. \"1\" or \"44\""
                    .into(),
            ));
        }
        let multiplier_ok = |m: f64| m.is_finite() && (0.0..=100.0).contains(&m);
        if !multiplier_ok(self.billing.after_hours_multiplier) {
            return Err(bad(
                "billing.after_hours_multiplier",
                &self.billing.after_hours_multiplier.to_string(),
                "expected a number between 0 and 100, e.g. 2.0".into(),
            ));
        }
        for c in &self.clients {
            if c.numbers.is_empty() {
                return Err(bad(
                    "clients.numbers",
                    &c.name,
                    "a client needs at least one number or prefix".into(),
                ));
            }
            if let Some(m) = c.rate_multiplier.filter(|m| !multiplier_ok(*m)) {
                return Err(bad(
                    "clients.rate_multiplier",
                    &m.to_string(),
                    format!("client {}: expected a number between 0 and 100", c.name),
                ));
            }
        }
        for (key, url) in [
            ("webhooks.url", &self.webhooks.url),
            ("webhooks.escalation_url", &self.webhooks.escalation_url),
        ] {
            if !url.is_empty() && !url.starts_with("http://") && !url.starts_with("https://") {
                return Err(bad(key, url, "expected an http:// or https:// URL".into()));
            }
        }
        if self.sla.callback_minutes == 0 {
            return Err(bad(
                "sla.callback_minutes",
                "0",
                "must be at least 1 minute".into(),
            ));
        }
        if self.sip.max_pending_setups == 0 {
            return Err(bad(
                "sip.max_pending_setups",
                "0",
                "must be at least 1".into(),
            ));
        }
        if self.sip.max_calls == 0 {
            return Err(bad("sip.max_calls", "0", "must be at least 1".into()));
        }
        for (key, value) in [
            ("sip.tcp_idle_timeout_s", self.sip.tcp_idle_timeout_s),
            ("sip.tcp_message_timeout_s", self.sip.tcp_message_timeout_s),
        ] {
            if !(1..=86_400).contains(&value) {
                return Err(bad(
                    key,
                    &value.to_string(),
                    "must be between 1 and 86400 seconds".into(),
                ));
            }
        }
        for (key, value) in [
            ("sip.tcp_max_connections", self.sip.tcp_max_connections),
            ("sip.tcp_max_per_source", self.sip.tcp_max_per_source),
        ] {
            if value == 0 {
                return Err(bad(
                    key,
                    "0",
                    "must be at least 1 (TCP cannot be switched off; a firewall can)".into(),
                ));
            }
        }
        crate::hours::BusinessHours::from_config(&self.hours)
            .map_err(|e| bad(e.key, &e.value, e.reason))?;
        self.validate_staff(origin)?;
        if let Err(e) = self.desk_groups() {
            return Err(bad("desk.groups", "", e.to_string()));
        }
        if !["us", "uk", "eu"].contains(&self.desk.ringback.as_str()) {
            return Err(bad(
                "desk.ringback",
                &self.desk.ringback,
                "expected \"us\", \"uk\" or \"eu\"".into(),
            ));
        }
        if !self.desk.callback_trunk.is_empty()
            && crate::sip::uri_socket_addr(&self.desk.callback_trunk).is_none()
        {
            return Err(bad(
                "desk.callback_trunk",
                &self.desk.callback_trunk,
                "expected a SIP URI with an IP address, e.g. \"sip:192.0.2.20:5060\" (the line does no DNS)".into(),
            ));
        }
        if self.desk.accept_timeout_s == 0 || self.desk.ring_each_s == 0 {
            return Err(bad(
                "desk.accept_timeout_s",
                "0",
                "accept_timeout_s and ring_each_s must be at least 1 second".into(),
            ));
        }
        Ok(())
    }

    fn validate_staff(&self, origin: &str) -> Result<(), ConfigError> {
        let bad = |key, value: &str, reason: String| ConfigError::Value {
            origin: origin.to_string(),
            key,
            value: value.to_string(),
            reason,
        };
        let s = &self.staff;
        if s.realm.is_empty()
            || s.realm.contains(['"', '\\'])
            || s.realm.chars().any(char::is_control)
        {
            return Err(bad(
                "staff.realm",
                &s.realm,
                "expected a non-empty name without quotes or backslashes, e.g. \"ivr\"".into(),
            ));
        }
        if s.min_expires == 0 {
            return Err(bad(
                "staff.min_expires",
                "0",
                "must be at least 1 second (RFC 3261 suggests 60)".into(),
            ));
        }
        if s.max_expires < s.min_expires {
            return Err(bad(
                "staff.max_expires",
                &s.max_expires.to_string(),
                format!("must be at least staff.min_expires ({})", s.min_expires),
            ));
        }
        let algs = s.algorithms.join(", ");
        if s.algorithms.is_empty() || s.digest_algorithms().len() != s.algorithms.len() {
            return Err(bad(
                "staff.algorithms",
                &algs,
                "expected a non-empty list of \"SHA-256\", \"SHA-512-256\", \"MD5\", e.g. \
                 [\"SHA-256\", \"MD5\"]"
                    .into(),
            ));
        }
        if s.auth_failure_window_s == 0 {
            return Err(bad(
                "staff.auth_failure_window_s",
                "0",
                "must be at least 1 second, e.g. 300".into(),
            ));
        }
        if s.auth_block_s == 0 {
            return Err(bad(
                "staff.auth_block_s",
                "0",
                "must be at least 1 second, e.g. 60 (to turn blocking off, set \
                 staff.auth_failures_before_block = 0)"
                    .into(),
            ));
        }
        if s.auth_block_max_s < s.auth_block_s {
            return Err(bad(
                "staff.auth_block_max_s",
                &s.auth_block_max_s.to_string(),
                format!("must be at least staff.auth_block_s ({})", s.auth_block_s),
            ));
        }
        let mut seen = std::collections::HashSet::new();
        for u in &s.users {
            let name_ok = !u.name.is_empty()
                && u.name
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || "-_.!~*'()&=+$,;?/%".contains(c));
            if !name_ok {
                return Err(bad(
                    "staff.users.name",
                    &u.name,
                    "expected a SIP user name (letters, digits, - _ . and the like; no spaces, \
                     @ or :), e.g. \"alice\""
                        .into(),
                ));
            }
            if !seen.insert(u.name.as_str()) {
                return Err(bad(
                    "staff.users.name",
                    &u.name,
                    "listed twice; each [[staff.users]] needs its own name".into(),
                ));
            }
            if u.password.is_empty() {
                return Err(bad(
                    "staff.users.password",
                    "",
                    format!(
                        "user {}: set a password (an empty one would let anyone register as this user)",
                        u.name
                    ),
                ));
            }
        }
        Ok(())
    }

    fn validate_sip_limits(&self, origin: &str) -> Result<(), ConfigError> {
        let bad = |key, value: &str, reason: String| ConfigError::Value {
            origin: origin.to_string(),
            key,
            value: value.to_string(),
            reason,
        };
        for (key, list) in [
            ("sip.follow_routes_to", &self.sip.follow_routes_to),
            ("sip.limits.exempt", &self.sip.limits.exempt),
        ] {
            for net in list {
                parse_net(net).map_err(|r| bad(key, net, r))?;
            }
        }
        for d in &self.sip.domains {
            if d.is_empty() || d.contains([':', '/', ' ', '@']) {
                return Err(bad(
                    "sip.domains",
                    d,
                    "expected a host name or IP address without port, e.g. \"ivr.example.com\""
                        .into(),
                ));
            }
        }
        let l = &self.sip.limits;
        for (key, rate) in [
            ("sip.limits.calls_per_s", l.calls_per_s),
            ("sip.limits.registers_per_s", l.registers_per_s),
            ("sip.limits.requests_per_s", l.requests_per_s),
        ] {
            if !rate.is_finite() || rate < 0.0 {
                return Err(bad(
                    key,
                    &rate.to_string(),
                    "expected a number of requests per second, 0 for no limit".into(),
                ));
            }
        }
        if l.max_sources == 0 {
            return Err(bad(
                "sip.limits.max_sources",
                "0",
                "must be at least 1 (e.g. 10000)".into(),
            ));
        }
        Ok(())
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

/// `IP:PORT` (IPv6 as `[::1]:5060`).
pub fn parse_listen(s: &str) -> Result<SocketAddr, String> {
    s.parse::<SocketAddr>()
        .map_err(|_| "expected IP:PORT, e.g. 0.0.0.0:5060 or [::1]:5060".to_string())
}

/// A network in CIDR form (`10.0.0.0/8`, `2001:db8::/32`) or a single address.
pub fn parse_net(s: &str) -> Result<ipnet::IpNet, String> {
    let s = s.trim();
    s.parse::<ipnet::IpNet>()
        .or_else(|_| s.parse::<std::net::IpAddr>().map(ipnet::IpNet::from))
        .map_err(|_| {
            "expected an IP address or CIDR network, e.g. 203.0.113.7 or 10.0.0.0/8".into()
        })
}

/// `LO-HI`: at least two ports (one RTP/RTCP pair), within 1024..=65535.
pub fn parse_port_range(s: &str) -> Result<(u16, u16), String> {
    let err = || "expected LO-HI with 1024 <= LO < HI <= 65535, e.g. 20000-29999".to_string();
    let (lo, hi) = s.split_once('-').ok_or_else(err)?;
    let lo: u16 = lo.trim().parse().map_err(|_| err())?;
    let hi: u16 = hi.trim().parse().map_err(|_| err())?;
    if lo < 1024 || hi <= lo {
        return Err(err());
    }
    Ok((lo, hi))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn embedded_defaults_are_valid() {
        let c = Config::embedded();
        assert_eq!(c.listen_addr(), "0.0.0.0:5060".parse().unwrap());
        assert_eq!(c.rtp_ports(), (20000, 29999));
        assert_eq!(
            c.flows.for_number("+15550100"),
            Path::new("callflows/after_hours.toml")
        );
        assert!(!c.call.hold_after_prompt);
    }

    #[test]
    fn a_file_overrides_only_its_keys() {
        let c = Config::from_str("[sip]\nlisten = \"127.0.0.1:5070\"\n", "t.toml").unwrap();
        assert_eq!(c.listen_addr(), "127.0.0.1:5070".parse().unwrap());
        assert_eq!(c.sip.max_calls, 500);
    }

    #[test]
    fn clients_webhooks_and_callers() {
        let c = Config::from_str(
            "[[clients]]\nname = \"Acme\"\nnumbers = [\"+1555123*\"]\nagreement = true\n\
             rate_multiplier = 1.5\n[webhooks]\nurl = \"http://127.0.0.1:9/hook\"\n",
            "t.toml",
        )
        .unwrap();
        assert_eq!(c.clients.len(), 1);
        assert_eq!(c.clients[0].rate_multiplier, Some(1.5));
        assert_eq!(c.callers.repeat_times, 2);
        assert_eq!(c.sla.callback_minutes, 20);
        let e = Config::from_str("[webhooks]\nurl = \"ftp://x\"\n", "t.toml")
            .unwrap_err()
            .to_string();
        assert_eq!(
            e,
            "config t.toml: webhooks.url = \"ftp://x\": expected an http:// or https:// URL"
        );
        let e = Config::from_str("[callers]\nrepeat_times = 1\n", "t.toml")
            .unwrap_err()
            .to_string();
        assert!(e.contains("callers.repeat_times"), "{e}");
    }

    #[test]
    fn rtp_source_rules_and_timeout() {
        let c = Config::embedded();
        assert_eq!(c.rtp_latch(), RtpLatch::Signalling);
        assert_eq!(c.rtp.timeout_s, 30);
        let c = Config::from_str("[rtp]\nlatch = \"sdp\"\ntimeout_s = 0\n", "t.toml").unwrap();
        assert_eq!((c.rtp_latch(), c.rtp.timeout_s), (RtpLatch::Sdp, 0));
        let e = Config::from_str("[rtp]\nlatch = \"first\"\n", "t.toml")
            .unwrap_err()
            .to_string();
        assert!(
            e.starts_with("config t.toml: rtp.latch = \"first\": expected \"signalling\""),
            "{e}"
        );
        let e = Config::from_str("[rtp]\ntimeout_s = 86400\n", "t.toml")
            .unwrap_err()
            .to_string();
        assert!(e.contains("rtp.timeout_s"), "{e}");
    }

    #[test]
    fn errors_name_the_key_and_the_fix() {
        let e = Config::from_str("[rtp]\nports = \"30000-20000\"\n", "t.toml")
            .unwrap_err()
            .to_string();
        assert_eq!(
            e,
            "config t.toml: rtp.ports = \"30000-20000\": expected LO-HI with 1024 <= LO < HI <= 65535, e.g. 20000-29999"
        );
        let e = Config::from_str("[sip]\nlisten = \"nowhere\"\n", "t.toml")
            .unwrap_err()
            .to_string();
        assert!(e.contains("sip.listen"), "{e}");
        let e = Config::from_str("[sip]\nlistn = \"1.2.3.4:5\"\n", "t.toml")
            .unwrap_err()
            .to_string();
        assert!(e.contains("unknown field `listn`"), "{e}");
        let e = Config::from_str("[sip\n", "t.toml")
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("config t.toml: "), "{e}");
    }

    #[test]
    fn tcp_limits_have_safe_defaults_and_name_their_key() {
        let s = Config::embedded().sip;
        assert_eq!((s.tcp_idle_timeout_s, s.tcp_message_timeout_s), (30, 10));
        assert_eq!((s.tcp_max_connections, s.tcp_max_per_source), (1024, 64));
        for (text, key) in [
            ("tcp_idle_timeout_s = 0", "sip.tcp_idle_timeout_s"),
            ("tcp_message_timeout_s = 0", "sip.tcp_message_timeout_s"),
            ("tcp_max_connections = 0", "sip.tcp_max_connections"),
            ("tcp_max_per_source = 0", "sip.tcp_max_per_source"),
        ] {
            let e = Config::from_str(&format!("[sip]\n{text}\n"), "t.toml")
                .unwrap_err()
                .to_string();
            assert!(e.contains(key), "{e}");
        }
    }

    #[test]
    fn hours_defaults_are_office_hours_in_new_york() {
        let h = Config::embedded().hours;
        assert_eq!(h.timezone, "America/New_York");
        assert_eq!(h.monday, "09:00-17:00");
        assert_eq!(h.friday, "09:00-17:00");
        assert_eq!(h.saturday, "");
        assert_eq!(h.sunday, "");
        assert_eq!(h.holidays, ["2026-12-25", "2027-01-01"]);
    }

    #[test]
    fn hours_overrides_keep_the_other_days() {
        let c = Config::from_str(
            "[hours]\ntimezone = \"Europe/Berlin\"\nsaturday = \"10:00-14:00\"\nmonday = \"\"\n",
            "t.toml",
        )
        .unwrap();
        assert_eq!(c.hours.timezone, "Europe/Berlin");
        assert_eq!(c.hours.monday, "");
        assert_eq!(c.hours.tuesday, "09:00-17:00");
        assert_eq!(c.hours.saturday, "10:00-14:00");
        // The holiday list is replaced whole, and bare TOML dates are accepted.
        let c = Config::from_str(
            "[hours]\nholidays = [2026-07-03, \"2026-11-26\"]\n",
            "t.toml",
        )
        .unwrap();
        assert_eq!(c.hours.holidays, ["2026-07-03", "2026-11-26"]);
        let c = Config::from_str("[hours]\nholidays = []\n", "t.toml").unwrap();
        assert!(c.hours.holidays.is_empty());
    }

    #[test]
    fn hours_errors_name_the_key_and_the_fix() {
        let e = |text: &str| Config::from_str(text, "t.toml").unwrap_err().to_string();
        assert_eq!(
            e("[hours]\ntimezone = \"Mars/Base\"\n"),
            "config t.toml: hours.timezone = \"Mars/Base\": unknown IANA time zone; e.g. \
             Europe/Berlin, America/New_York"
        );
        assert_eq!(
            e("[hours]\nmonday = \"9am-5pm\"\n"),
            "config t.toml: hours.monday = \"9am-5pm\": \"9am-5pm\" is not a range HH:MM-HH:MM \
             (24-hour clock); e.g. \"09:00-17:00\", \"08:00-12:00,13:00-17:00\", \"00:00-24:00\", \
             or \"\" for closed all day"
        );
        assert_eq!(
            e("[hours]\nfriday = \"17:00-09:00\"\n"),
            "config t.toml: hours.friday = \"17:00-09:00\": range 17:00-09:00 does not end after \
             it starts; a range stays within one day (end it at 24:00 and start the next day at \
             00:00)"
        );
        assert_eq!(
            e("[hours]\nholidays = [\"2026-12-32\"]\n"),
            "config t.toml: hours.holidays = \"2026-12-32\": not a date; expected YYYY-MM-DD, \
             e.g. 2026-12-25"
        );
        assert_eq!(
            e("[hours]\nholidays = [2026-12-25T10:00:00]\n"),
            "config t.toml: hours.holidays = \"2026-12-25T10:00:00\": not a date; expected \
             YYYY-MM-DD, e.g. 2026-12-25"
        );
        let unknown = e("[hours]\nmondays = \"09:00-17:00\"\n");
        assert!(unknown.contains("unknown field `mondays`"), "{unknown}");
    }

    #[test]
    fn staff_defaults_and_users() {
        let s = Config::embedded().staff;
        assert_eq!(s.realm, "ivr");
        assert!(s.users.is_empty());
        assert_eq!((s.min_expires, s.max_expires), (60, 3600));
        assert_eq!(
            (
                s.auth_failures_before_block,
                s.auth_failure_window_s,
                s.auth_block_s,
                s.auth_block_max_s
            ),
            (10, 300, 60, 3600)
        );
        use crate::sip::Algorithm;
        assert_eq!(s.digest_algorithms(), [Algorithm::Sha256, Algorithm::Md5]);
        let c = Config::from_str(
            "[[staff.users]]\nname = \"alice\"\npassword = \"pw\"\ndisplay = \"Alice\"\n\
             [[staff.users]]\nname = \"bob\"\npassword = \"pw2\"\n",
            "t.toml",
        )
        .unwrap();
        assert_eq!(c.staff.users.len(), 2);
        assert_eq!(c.staff.users[0].display.as_deref(), Some("Alice"));
        assert_eq!(c.staff.users[1].display, None);
        assert_eq!(c.staff.realm, "ivr");
        assert!(
            !format!("{:?}", c.staff).contains("pw2"),
            "passwords are redacted"
        );
    }

    #[test]
    fn staff_errors_name_the_key_and_the_fix() {
        let e = |text: &str| Config::from_str(text, "t.toml").unwrap_err().to_string();
        assert_eq!(
            e("[[staff.users]]\nname = \"a\"\npassword = \"x\"\n\
               [[staff.users]]\nname = \"a\"\npassword = \"y\"\n"),
            "config t.toml: staff.users.name = \"a\": listed twice; each [[staff.users]] needs its own name"
        );
        assert_eq!(
            e("[[staff.users]]\nname = \"a\"\npassword = \"\"\n"),
            "config t.toml: staff.users.password = \"\": user a: set a password (an empty one would \
             let anyone register as this user)"
        );
        assert!(
            e("[[staff.users]]\nname = \"a b\"\npassword = \"x\"\n").contains("staff.users.name")
        );
        assert!(e("[staff]\nmin_expires = 600\nmax_expires = 60\n").contains("staff.max_expires"));
        assert!(e("[staff]\nmin_expires = 0\n").contains("staff.min_expires"));
        assert!(e("[staff]\nrealm = \"\"\n").contains("staff.realm"));
        assert!(e("[staff]\nalgorithms = [\"SHA-1\"]\n").contains("staff.algorithms"));
        assert!(e("[staff]\nalgorithms = []\n").contains("staff.algorithms"));
        assert!(e("[staff]\nauth_block_s = 0\n").contains("staff.auth_block_s"));
        assert!(e("[staff]\nauth_failure_window_s = 0\n").contains("staff.auth_failure_window_s"));
        assert_eq!(
            e("[staff]\nauth_block_s = 600\nauth_block_max_s = 60\n"),
            "config t.toml: staff.auth_block_max_s = \"60\": must be at least staff.auth_block_s (600)"
        );
        assert!(
            e("[[staff.users]]\nname = \"a\"\npasswd = \"x\"\n").contains("unknown field `passwd`")
        );
    }
}
