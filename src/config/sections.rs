//! The typed sections of `config/ivr.toml`, one struct per table, deserialized once.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use super::Config;

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

/// `[webhooks]`. Its Debug hides the secrets and the header values (bearer tokens, API keys).
#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebhooksConfig {
    pub url: String,
    pub secret: String,
    /// Sent with every request to `url`, e.g. `Authorization = "Bearer ..."`.
    pub headers: BTreeMap<String, String>,
    pub escalation_url: String,
    pub escalation_secret: String,
    /// Sent with every request to `escalation_url`.
    pub escalation_headers: BTreeMap<String, String>,
    /// A PEM bundle of CAs trusted for https:// URLs besides the system's; empty: none.
    pub ca_file: PathBuf,
}

impl WebhooksConfig {
    /// `ca_file`, unless empty.
    pub fn ca_file(&self) -> Option<&Path> {
        (!self.ca_file.as_os_str().is_empty()).then_some(self.ca_file.as_path())
    }
}

impl std::fmt::Debug for WebhooksConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let secret = |s: &str| if s.is_empty() { "" } else { "<redacted>" };
        let names = |h: &BTreeMap<String, String>| -> Vec<String> {
            h.keys().map(|k| format!("{k}: <redacted>")).collect()
        };
        f.debug_struct("WebhooksConfig")
            .field("url", &self.url)
            .field("secret", &secret(&self.secret))
            .field("headers", &names(&self.headers))
            .field("escalation_url", &self.escalation_url)
            .field("escalation_secret", &secret(&self.escalation_secret))
            .field("escalation_headers", &names(&self.escalation_headers))
            .field("ca_file", &self.ca_file)
            .finish()
    }
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SlaConfig {
    pub callback_minutes: u64,
}

/// `[admin]`: the admin web page and API (`src/http`).
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AdminConfig {
    /// HTTP listen address; empty turns the admin server off.
    pub listen: String,
    /// Argon2 PHC hash of the admin token (`ivr admin hash-token`); empty: `IVR_ADMIN_TOKEN`.
    pub token_hash: String,
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
    /// The `[[trunks]]` entry `tel:` desk members are dialled through; required when one exists.
    #[serde(default)]
    pub external_trunk: String,
    /// E.164 numbers (exact, or a prefix then `*`) a `tel:` member may be; empty: none.
    #[serde(default)]
    pub number_allow: Vec<String>,
    #[serde(default)]
    pub groups: Vec<DeskGroupConfig>,
}

/// One `[[desk.groups]]` entry.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeskGroupConfig {
    pub name: String,
    /// In ring order: `[[staff.users]]` names, `oncall`, fixed `sip:user@host[:port]`
    /// addresses and `tel:+E164` numbers; a number may also be written as a table,
    /// `{ number = "+15551234567" }`, which reads as `tel:+15551234567`.
    #[serde(deserialize_with = "members")]
    pub members: Vec<String>,
}

/// Desk members as written: each a string, or `{ number = "+1..." }` read as `tel:+1...`.
fn members<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    use serde::de::Error;
    Vec::<toml::Value>::deserialize(d)?
        .into_iter()
        .map(|v| match v {
            toml::Value::String(s) => Ok(s),
            toml::Value::Table(t) => match t.get("number").filter(|_| t.len() == 1) {
                Some(toml::Value::String(n)) => Ok(format!("tel:{n}")),
                _ => Err(D::Error::custom(format!(
                    "a member table has one key, number = \"+1...\" (found {})",
                    t.keys().cloned().collect::<Vec<_>>().join(", ")
                ))),
            },
            other => Err(D::Error::custom(format!(
                "{other}: a member is a staff user, \"oncall\", \"sip:...\", \"tel:+...\" \
                 or {{ number = \"+1...\" }}"
            ))),
        })
        .collect()
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
        )?
        // The rota is checked at load before the groups (validate_oncall); an empty one here
        // only happens in a config that load refused.
        .with_rota(self.rota().unwrap_or_default())
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
    /// A mobile number (E.164) for the on-call rota; shown by `ivr oncall`, and rung with the
    /// user's phones when they are on call, `[desk] external_trunk` is set and `number_allow`
    /// admits it.
    #[serde(default)]
    pub mobile: Option<String>,
}

impl std::fmt::Debug for StaffUser {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StaffUser")
            .field("name", &self.name)
            .field("password", &"<redacted>")
            .field("display", &self.display)
            .field("mobile", &self.mobile)
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
    /// INVITEs from no trunk's `inbound_from` (see `trunks.rs`).
    pub unknown_sources: super::UnknownSources,
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
    pub(super) fn parse(s: &str) -> Result<RtpLatch, String> {
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
    pub shutdown_grace_s: u64,
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
