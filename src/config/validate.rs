//! Checks of the loaded values: a bad one stops the start with the file, the key and the fix.

use std::net::SocketAddr;

use super::{Config, ConfigError, RtpLatch};

impl Config {
    pub(super) fn validate(&self, origin: &str) -> Result<(), ConfigError> {
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
        self.validate_webhooks(origin)?;
        self.validate_email(origin)?;
        if let Err((key, value, reason)) = self.dns.settings() {
            return Err(bad(key, &value, reason));
        }
        self.transcription.validate(origin)?;
        if !self.admin.listen.is_empty() {
            parse_listen(&self.admin.listen)
                .map_err(|reason| bad("admin.listen", &self.admin.listen, reason))?;
        }
        if !self.admin.token_hash.is_empty()
            && let Err(e) = argon2::PasswordHash::new(&self.admin.token_hash)
        {
            return Err(bad(
                "admin.token_hash",
                &self.admin.token_hash,
                format!("not an argon2 hash ({e}); make one with `ivr admin hash-token`"),
            ));
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
        self.validate_oncall(origin)?;
        if let Err(e) = self.desk_groups() {
            // Name the key and the value at fault, not `desk.groups = ""`.
            use crate::bridge::DeskError;
            return Err(match e {
                DeskError::BadMember { group, member } => bad(
                    "desk.groups.members",
                    &member,
                    format!(
                        "in group {group:?}: neither a [[staff.users]] name, a SIP address \
                         (e.g. \"sip:oncall@192.0.2.10:5060\" or \"sip:desk@pbx.example.com\") \
                         nor an E.164 number \"tel:+15551234567\""
                    ),
                ),
                DeskError::Duplicate(name) => bad("desk.groups.name", &name, "listed twice".into()),
                DeskError::BadName(name) => bad(
                    "desk.groups.name",
                    &name,
                    "use letters, digits, - and _".into(),
                ),
                other => bad("desk.groups", "", other.to_string()),
            });
        }
        self.validate_external_members(origin)?;
        if !["us", "uk", "eu"].contains(&self.desk.ringback.as_str()) {
            return Err(bad(
                "desk.ringback",
                &self.desk.ringback,
                "expected \"us\", \"uk\" or \"eu\"".into(),
            ));
        }
        if !self.desk.callback_trunk.is_empty()
            && !self
                .trunks
                .iter()
                .any(|t| t.name == self.desk.callback_trunk)
            && let Err(e) = crate::dns::SipUri::parse(&self.desk.callback_trunk)
        {
            return Err(bad(
                "desk.callback_trunk",
                &self.desk.callback_trunk,
                format!(
                    "{e}; expected a SIP URI such as \"sip:192.0.2.20:5060\" or \"sip:pbx.example.com\" (a name resolves by DNS, RFC 3263), or the name of a [[trunks]] entry"
                ),
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

    /// Header names and values as the wire takes them, and a CA file that holds a certificate:
    /// read here, so `ivr check`, the start and a reload all stop on a wrong path.
    fn validate_webhooks(&self, origin: &str) -> Result<(), ConfigError> {
        let bad = |key, value: &str, reason: String| ConfigError::Value {
            origin: origin.to_string(),
            key,
            value: value.to_string(),
            reason,
        };
        for (key, headers) in [
            ("webhooks.headers", &self.webhooks.headers),
            (
                "webhooks.escalation_headers",
                &self.webhooks.escalation_headers,
            ),
        ] {
            for (name, value) in headers {
                // The value is a credential: the error names the header, never shows it.
                crate::notify::endpoint::check_header(name, value)
                    .map_err(|reason| bad(key, name, reason))?;
            }
        }
        if let Some(path) = self.webhooks.ca_file() {
            crate::notify::tls::load_ca_file(path).map_err(|e| {
                bad(
                    "webhooks.ca_file",
                    &path.display().to_string(),
                    format!(
                        "{e}; give a PEM bundle of the CA(s) that issued the receiver's certificate"
                    ),
                )
            })?;
        }
        Ok(())
    }

    /// Addresses that parse, somewhere to send, and a CA file that holds a certificate; only
    /// when mail is on (`smtp_host` set), so the defaults stay valid.
    fn validate_email(&self, origin: &str) -> Result<(), ConfigError> {
        let e = &self.email;
        if !e.enabled() {
            return Ok(());
        }
        let bad = |key, value: &str, reason: String| ConfigError::Value {
            origin: origin.to_string(),
            key,
            value: value.to_string(),
            reason,
        };
        let mailbox = |key, value: &str| {
            value
                .parse::<lettre::message::Mailbox>()
                .map(|_| ())
                .map_err(|err| {
                    bad(
                        key,
                        value,
                        format!("not an email address ({err}); write `name@example.com` or `Name <name@example.com>`"),
                    )
                })
        };
        mailbox("email.from", &e.from)?;
        if e.to.is_empty() {
            return Err(bad(
                "email.to",
                "[]",
                "no recipient: give the helpdesk's intake address, e.g. to = [\"support@helpdesk.example\"]".into(),
            ));
        }
        for to in &e.to {
            mailbox("email.to", to)?;
        }
        for list in e.client_to.values() {
            for to in list {
                mailbox("email.client_to", to)?;
            }
        }
        if !e.admin_url.is_empty() && !e.admin_url.starts_with("http") {
            return Err(bad(
                "email.admin_url",
                &e.admin_url,
                "not an http:// or https:// address".into(),
            ));
        }
        if let Some(path) = e.ca_file() {
            crate::notify::tls::load_ca_file(path).map_err(|err| {
                bad(
                    "email.ca_file",
                    &path.display().to_string(),
                    format!("{err}; give a PEM bundle of the CA(s) that issued the SMTP server's certificate"),
                )
            })?;
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
