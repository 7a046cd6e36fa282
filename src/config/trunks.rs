//! `[[trunks]]`: carrier SIP trunks (issue 15 item 1). ivr registers with the provider's
//! registrar when `register = true`, recognises the calls a trunk delivers by their source
//! (`inbound_from`) and maps their DIDs to flows through `[flows.numbers]`. `[sip]
//! unknown_sources` says what happens to calls from anywhere else.
//!
//! The registrar is an IP literal or a host name; a name is looked up by RFC 3263 (NAPTR, SRV,
//! A/AAAA through `[dns]`) with failover between its targets (`crate::trunk::targets`).

use std::net::{IpAddr, SocketAddr};

use serde::Deserialize;

use super::{ConfigError, parse_net};

/// What to do with an INVITE whose source is no trunk's (`[sip] unknown_sources`).
#[derive(Clone, Copy, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum UnknownSources {
    /// Answer as before trunks existed (the default: a line reached directly over SIP keeps
    /// working when a trunk is added).
    #[default]
    Answer,
    /// Refuse with 403: only trunks (and authenticated staff phones) may place calls. What an
    /// admin wants once the line is reachable from the internet only through a carrier.
    Refuse,
}

/// One `[[trunks]]` entry. Its Debug hides the password and HA1.
#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrunkConfig {
    /// Shown in the log, the metrics (`trunk` label) and the admin API.
    pub name: String,
    /// The provider's registrar/proxy, `sip:203.0.113.10` or `sip:203.0.113.10:5070`.
    pub registrar: String,
    /// `udp` (TCP towards a trunk needs outgoing TCP connections, which the transport does not
    /// open yet).
    #[serde(default = "udp")]
    pub transport: String,
    pub username: String,
    #[serde(default)]
    pub password: String,
    /// MD5 of `username:realm:password`, instead of `password` (then only MD5 challenges for
    /// `realm` can be answered).
    #[serde(default)]
    pub ha1: String,
    /// Answer only challenges for this realm; empty: any realm the registrar names.
    #[serde(default)]
    pub realm: String,
    /// The domain of our address of record (To/From of the REGISTER); empty: the registrar's
    /// host.
    #[serde(default)]
    pub domain: String,
    /// Caller ID for calls placed through the trunk (the From user part).
    #[serde(default)]
    pub caller_id: String,
    #[serde(default = "yes")]
    pub register: bool,
    /// Seconds asked for in each REGISTER; the registrar's grant wins.
    #[serde(default = "default_expires")]
    pub expires: u32,
    /// The user part of the Contact we register; empty: `username`.
    #[serde(default)]
    pub contact_user: String,
    /// Addresses or CIDR networks calls from this trunk come from; empty: the registrar's.
    #[serde(default)]
    pub inbound_from: Vec<String>,
    /// The numbers (DIDs) this trunk delivers; a call is routed by its DID through
    /// `[flows.numbers]`.
    #[serde(default)]
    pub dids: Vec<String>,
    /// First wait after a failed registration; doubles per failure up to `retry_max_s`.
    #[serde(default = "default_retry_initial")]
    pub retry_initial_s: u64,
    #[serde(default = "default_retry_max")]
    pub retry_max_s: u64,
}

fn udp() -> String {
    "udp".into()
}
fn yes() -> bool {
    true
}
fn default_expires() -> u32 {
    3600
}
fn default_retry_initial() -> u64 {
    30
}
fn default_retry_max() -> u64 {
    1800
}

impl std::fmt::Debug for TrunkConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let secret = |s: &str| if s.is_empty() { "" } else { "<redacted>" };
        f.debug_struct("TrunkConfig")
            .field("name", &self.name)
            .field("registrar", &self.registrar)
            .field("transport", &self.transport)
            .field("username", &self.username)
            .field("password", &secret(&self.password))
            .field("ha1", &secret(&self.ha1))
            .field("realm", &self.realm)
            .field("domain", &self.domain)
            .field("caller_id", &self.caller_id)
            .field("register", &self.register)
            .field("expires", &self.expires)
            .field("contact_user", &self.contact_user)
            .field("inbound_from", &self.inbound_from)
            .field("dids", &self.dids)
            .field("retry_initial_s", &self.retry_initial_s)
            .field("retry_max_s", &self.retry_max_s)
            .finish()
    }
}

impl TrunkConfig {
    /// The registrar's host (as written) and port (5060 when not written).
    pub fn registrar_host_port(&self) -> Option<(String, u16)> {
        crate::sip::uri_host_port(&self.registrar).map(|(h, p)| (h, p.unwrap_or(5060)))
    }

    /// The registrar's address when its host is an IP literal; `None` for a host name, which
    /// is looked up (RFC 3263) when used.
    pub fn registrar_addr(&self) -> Option<SocketAddr> {
        let (host, port) = self.registrar_host_port()?;
        let ip: IpAddr = host.trim_matches(['[', ']']).parse().ok()?;
        Some(SocketAddr::new(ip, port))
    }

    /// `contact_user`, or `username`.
    pub fn contact_user(&self) -> &str {
        if self.contact_user.is_empty() {
            &self.username
        } else {
            &self.contact_user
        }
    }

    /// The networks calls from this trunk come from (validated at load): `inbound_from`, or
    /// the registrar's address.
    pub fn inbound_nets(&self) -> Vec<ipnet::IpNet> {
        if self.inbound_from.is_empty() {
            return self
                .registrar_addr()
                .map(|a| ipnet::IpNet::from(a.ip()))
                .into_iter()
                .collect();
        }
        self.inbound_from
            .iter()
            .filter_map(|n| parse_net(n).ok())
            .collect()
    }
}

/// Checks every `[[trunks]]` entry; errors name the key (`trunks[N].key`).
pub(super) fn validate(trunks: &[TrunkConfig], origin: &str) -> Result<(), ConfigError> {
    let bad = |key: &'static str, value: &str, reason: String| ConfigError::Value {
        origin: origin.to_string(),
        key,
        value: value.to_string(),
        reason,
    };
    for (i, t) in trunks.iter().enumerate() {
        let at = |key: &str| format!("[[trunks]] #{} ({}): {key}", i + 1, t.name);
        if t.name.trim().is_empty() {
            return Err(bad(
                "trunks.name",
                &at("name"),
                "every trunk needs a name".into(),
            ));
        }
        if trunks[..i].iter().any(|o| o.name == t.name) {
            return Err(bad(
                "trunks.name",
                &t.name,
                "two trunks share this name".into(),
            ));
        }
        if !t.registrar.to_ascii_lowercase().starts_with("sip:") {
            return Err(bad(
                "trunks.registrar",
                &t.registrar,
                format!(
                    "{}: expected a sip: URI, e.g. \"sip:203.0.113.10:5060\"",
                    at("registrar")
                ),
            ));
        }
        if let Err(e) = crate::dns::SipUri::parse(&t.registrar) {
            return Err(bad(
                "trunks.registrar",
                &t.registrar,
                format!("{}: {e}", at("registrar")),
            ));
        }
        if t.transport != "udp" {
            return Err(bad(
                "trunks.transport",
                &t.transport,
                format!(
                    "{}: only \"udp\" is supported towards trunks for now",
                    at("transport")
                ),
            ));
        }
        if t.username.trim().is_empty() {
            return Err(bad(
                "trunks.username",
                "",
                format!("{}: required", at("username")),
            ));
        }
        match (t.password.is_empty(), t.ha1.is_empty()) {
            (true, true) => {
                return Err(bad(
                    "trunks.password",
                    "",
                    format!("{}: set password or ha1", at("password")),
                ));
            }
            (false, false) => {
                return Err(bad(
                    "trunks.ha1",
                    "<redacted>",
                    format!("{}: set password or ha1, not both", at("ha1")),
                ));
            }
            (true, false) => {
                if t.ha1.len() != 32 || !t.ha1.bytes().all(|b| b.is_ascii_hexdigit()) {
                    return Err(bad(
                        "trunks.ha1",
                        "<redacted>",
                        format!(
                            "{}: expected 32 hex digits (MD5 of user:realm:password)",
                            at("ha1")
                        ),
                    ));
                }
                if t.realm.is_empty() {
                    return Err(bad(
                        "trunks.realm",
                        "",
                        format!(
                            "{}: required with ha1 (the HA1 is bound to one realm)",
                            at("realm")
                        ),
                    ));
                }
            }
            (false, true) => {}
        }
        if !(60..=86_400).contains(&t.expires) {
            return Err(bad(
                "trunks.expires",
                &t.expires.to_string(),
                format!("{}: seconds between 60 and 86400, e.g. 3600", at("expires")),
            ));
        }
        if t.retry_initial_s == 0 || t.retry_max_s < t.retry_initial_s {
            return Err(bad(
                "trunks.retry_initial_s",
                &format!("{}..{}", t.retry_initial_s, t.retry_max_s),
                format!(
                    "{}: need 1 <= retry_initial_s <= retry_max_s",
                    at("retry_initial_s")
                ),
            ));
        }
        for n in &t.inbound_from {
            parse_net(n).map_err(|r| {
                bad(
                    "trunks.inbound_from",
                    n,
                    format!("{}: {r}", at("inbound_from")),
                )
            })?;
        }
        if let Some(d) = t.dids.iter().find(|d| d.trim().is_empty()) {
            return Err(bad(
                "trunks.dids",
                d,
                format!("{}: empty number", at("dids")),
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::super::Config;
    use super::*;

    const GOOD: &str = r#"
[[trunks]]
name = "carrier"
registrar = "sip:192.0.2.10:5070"
username = "acct"
password = "hunter2"
dids = ["+442071234567"]
"#;

    fn load(text: &str) -> Result<Config, ConfigError> {
        Config::from_str(text, "test.toml")
    }

    #[test]
    fn a_trunk_loads_with_documented_defaults() {
        let c = load(GOOD).unwrap();
        let t = &c.trunks[0];
        assert_eq!(t.registrar_addr(), Some("192.0.2.10:5070".parse().unwrap()));
        assert_eq!(
            (t.transport.as_str(), t.register, t.expires),
            ("udp", true, 3600)
        );
        assert_eq!((t.retry_initial_s, t.retry_max_s), (30, 1800));
        assert_eq!(t.contact_user(), "acct");
        assert_eq!(
            t.inbound_nets(),
            vec!["192.0.2.10/32".parse::<ipnet::IpNet>().unwrap()]
        );
        assert_eq!(c.sip.unknown_sources, UnknownSources::Answer);
        assert!(load("").unwrap().trunks.is_empty());
    }

    #[test]
    fn debug_never_shows_the_secrets() {
        let c = load(GOOD).unwrap();
        let shown = format!("{:?}", c.trunks[0]);
        assert!(
            !shown.contains("hunter2") && shown.contains("<redacted>"),
            "{shown}"
        );
        let c = load(&GOOD.replace(
            "password = \"hunter2\"",
            "ha1 = \"0123456789abcdef0123456789abcdef\"\nrealm = \"r\"",
        ))
        .unwrap();
        assert!(!format!("{:?}", c.trunks[0]).contains("0123456789abcdef"));
    }

    #[test]
    fn a_registrar_may_be_a_host_name() {
        let c = load(&GOOD.replace("sip:192.0.2.10:5070", "sip:sip.example.com")).unwrap();
        assert_eq!(c.trunks[0].registrar_addr(), None);
        assert_eq!(
            c.trunks[0].registrar_host_port(),
            Some(("sip.example.com".into(), 5060))
        );
    }

    #[test]
    fn bad_values_name_the_key() {
        for (from, to, key) in [
            (
                "sip:192.0.2.10:5070",
                "sip:bad host!.example.com",
                "trunks.registrar",
            ),
            ("sip:192.0.2.10:5070", "192.0.2.10", "trunks.registrar"),
            ("name = \"carrier\"", "name = \"\"", "trunks.name"),
            ("password = \"hunter2\"", "", "trunks.password"),
            (
                "password = \"hunter2\"",
                "password = \"x\"\nha1 = \"y\"",
                "trunks.ha1",
            ),
            (
                "password = \"hunter2\"",
                "ha1 = \"0123\"\nrealm = \"r\"",
                "trunks.ha1",
            ),
            (
                "password = \"hunter2\"",
                "ha1 = \"0123456789abcdef0123456789abcdef\"",
                "trunks.realm",
            ),
            ("dids", "transport = \"tcp\"\ndids", "trunks.transport"),
            ("dids", "expires = 10\ndids", "trunks.expires"),
            (
                "dids",
                "retry_initial_s = 60\nretry_max_s = 30\ndids",
                "trunks.retry_initial_s",
            ),
            (
                "dids",
                "inbound_from = [\"10.0.0.0/33\"]\ndids",
                "trunks.inbound_from",
            ),
        ] {
            let text = GOOD.replace(from, to);
            match load(&text) {
                Err(ConfigError::Value { key: k, reason, .. }) => {
                    assert_eq!(k, key, "{to}: {reason}");
                    assert!(!reason.contains("hunter2"));
                }
                other => panic!("{to}: expected an error on {key}, got {other:?}"),
            }
        }
        let twice = format!("{GOOD}{GOOD}");
        assert!(matches!(
            load(&twice),
            Err(ConfigError::Value {
                key: "trunks.name",
                ..
            })
        ));
        assert!(matches!(
            load("[sip]\nunknown_sources = \"drop\""),
            Err(ConfigError::Syntax { .. })
        ));
        assert_eq!(
            load("[sip]\nunknown_sources = \"refuse\"")
                .unwrap()
                .sip
                .unknown_sources,
            UnknownSources::Refuse
        );
    }
}
