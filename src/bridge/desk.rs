//! Desk groups from `[desk]` in config: each member is a registered staff user (rung at every
//! phone it has registered), a fixed SIP address (an IP literal: the line does no DNS), or
//! `oncall`: whoever the `[oncall]` rota names when the call comes (rung like a staff user), or
//! an external number `tel:+E164` (dialled through `[desk] external_trunk`; the config check
//! holds it against `[desk] number_allow`, the toll-fraud guard).

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;

use thiserror::Error;

use crate::oncall::{Rota, Shift};
use crate::sip::uri_socket_addr;

#[derive(Debug, Error, PartialEq, Eq)]
pub enum DeskError {
    #[error(
        "desk group {group:?}: member {member:?} is neither a [[staff.users]] name, a SIP \
         address with an IP (e.g. \"sip:oncall@192.0.2.10:5060\"; the line does no DNS) nor an \
         E.164 number (\"tel:+15551234567\")"
    )]
    BadMember { group: String, member: String },
    #[error("desk group {0:?} is listed twice")]
    Duplicate(String),
    #[error("desk group name {0:?}: use letters, digits, - and _")]
    BadName(String),
    #[error(
        "desk group {0:?}: member \"oncall\" needs an on-call rota; set [oncall] rotation (and \
         start) or [[oncall.overrides]]"
    )]
    OnCallWithoutRota(String),
    #[error(
        "call flow {flow}: node `{node}` dials {group:?}, which is not a desk group \
         (configured: {known}); add it under [[desk.groups]] in the config"
    )]
    UnknownGroup {
        flow: String,
        node: String,
        group: String,
        known: String,
    },
}

/// One member of a desk group.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Member {
    /// A `[[staff.users]]` name: rung at its registered contacts; unregistered means skipped.
    User(String),
    /// A phone at a fixed address: an IP literal, or `None` for a host name looked up per
    /// call (RFC 3263, with failover between its targets).
    Static {
        uri: String,
        destination: Option<SocketAddr>,
    },
    /// Whoever is on call when the call comes ([`DeskGroups::shift`]), rung like a `User`.
    OnCall,
    /// An E.164 number (`+15551234567`, from `tel:+15551234567`), rung through the external
    /// trunk. Only the config names it: nothing a caller sends reaches this.
    Number(String),
}

impl Member {
    pub fn label(&self) -> &str {
        match self {
            Member::User(u) => u,
            Member::Static { uri, .. } => uri,
            Member::OnCall => crate::oncall::MEMBER,
            Member::Number(n) => n,
        }
    }
}

/// The configured groups, by name.
#[derive(Clone, Debug, Default)]
pub struct DeskGroups {
    groups: BTreeMap<String, Vec<Member>>,
    /// Who `oncall` members ring (shared: the groups are cloned per page view and per reload).
    rota: Arc<Rota>,
}

impl DeskGroups {
    /// Checks and resolves the config's groups; `users` are the staff user names.
    pub fn new<'a>(
        groups: impl IntoIterator<Item = (&'a str, &'a [String])>,
        users: &[String],
    ) -> Result<DeskGroups, DeskError> {
        let mut out = BTreeMap::new();
        for (name, members) in groups {
            if name.is_empty()
                || !name
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
            {
                return Err(DeskError::BadName(name.to_string()));
            }
            let resolved = members
                .iter()
                .map(|m| parse_member(m, users))
                .collect::<Option<Vec<_>>>()
                .ok_or_else(|| {
                    let bad = members
                        .iter()
                        .find(|m| parse_member(m, users).is_none())
                        .cloned()
                        .unwrap_or_default();
                    DeskError::BadMember {
                        group: name.to_string(),
                        member: bad,
                    }
                })?;
            if out.insert(name.to_string(), resolved).is_some() {
                return Err(DeskError::Duplicate(name.to_string()));
            }
        }
        Ok(DeskGroups {
            groups: out,
            rota: Arc::default(),
        })
    }

    /// The groups with `rota` deciding who their `oncall` members are; an `oncall` member with
    /// no rota at all is a mistake in the config (it would never ring anyone).
    pub fn with_rota(mut self, rota: Rota) -> Result<DeskGroups, DeskError> {
        if rota.is_empty()
            && let Some((name, _)) = self
                .groups
                .iter()
                .find(|(_, members)| members.contains(&Member::OnCall))
        {
            return Err(DeskError::OnCallWithoutRota(name.clone()));
        }
        self.rota = Arc::new(rota);
        Ok(self)
    }

    pub fn rota(&self) -> &Rota {
        &self.rota
    }

    /// Who an `oncall` member rings at `at`, with since when and until when.
    pub fn shift(&self, at: jiff::Timestamp) -> Shift {
        self.rota.shift(at)
    }

    /// Whom a `dial` of `targets` at `at` rings, one line per group, for `ivr simulate`:
    /// `desk: alice (if registered), oncall = bob (rotation ... until ...), sip:...`.
    /// `mobile` names the number an on-call user's mobile is rung at (through the external
    /// trunk, allowed), if it is.
    pub fn describe_dial(
        &self,
        targets: &[String],
        at: jiff::Timestamp,
        mobile: &dyn Fn(&str) -> Option<String>,
    ) -> Vec<String> {
        targets
            .iter()
            .map(|group| {
                let Some(members) = self.get(group) else {
                    return format!(
                        "{group}: not a [[desk.groups]] name in this config (serve would refuse \
                         the flow)"
                    );
                };
                if members.is_empty() {
                    return format!("{group}: no members (the dial goes to its no-answer branch)");
                }
                let list: Vec<String> = members
                    .iter()
                    .map(|m| match m {
                        Member::User(u) => format!("{u} (if registered)"),
                        Member::Static {
                            uri,
                            destination: Some(_),
                        } => uri.clone(),
                        Member::Static {
                            uri,
                            destination: None,
                        } => format!("{uri} (host name, looked up by DNS per call)"),
                        Member::Number(n) => format!("{n} (through the external trunk)"),
                        Member::OnCall => {
                            let shift = self.rota.shift(at);
                            let who = crate::oncall::describe_shift(&self.rota, &shift, &|_| {
                                String::new()
                            });
                            let phone = shift.on_call.as_ref().map(|o| match mobile(&o.user) {
                                Some(m) => format!(
                                    "their phones if registered, and their mobile {m} \
                                         through the external trunk"
                                ),
                                None => "if registered".to_string(),
                            });
                            match phone {
                                Some(p) => format!("oncall = {who}, {p}"),
                                None => format!("oncall = {who}: skipped"),
                            }
                        }
                    })
                    .collect();
                format!("{group}: {}", list.join(", "))
            })
            .collect()
    }

    pub fn get(&self, name: &str) -> Option<&[Member]> {
        self.groups.get(name).map(Vec::as_slice)
    }

    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.groups.keys().map(String::as_str)
    }

    /// Every `dial` target of `flow` must be a group here (checked at start, like prompts).
    pub fn check_flow(&self, flow: &crate::flow::Flow, file: &str) -> Result<(), DeskError> {
        for (node, targets) in flow.dial_targets() {
            for t in targets {
                if self.get(t).is_none() {
                    let known: Vec<&str> = self.names().collect();
                    return Err(DeskError::UnknownGroup {
                        flow: file.to_string(),
                        node: node.to_string(),
                        group: t.clone(),
                        known: if known.is_empty() {
                            "none".into()
                        } else {
                            known.join(", ")
                        },
                    });
                }
            }
        }
        Ok(())
    }
}

fn parse_member(m: &str, users: &[String]) -> Option<Member> {
    // `oncall` is refused as a staff user name at load, so this never hides a user.
    if m == crate::oncall::MEMBER {
        return Some(Member::OnCall);
    }
    if users.iter().any(|u| u == m) {
        return Some(Member::User(m.to_string()));
    }
    let lower = m.to_ascii_lowercase();
    if let Some(number) = lower.strip_prefix("tel:") {
        return is_e164(number).then(|| Member::Number(number.to_string()));
    }
    if !lower.starts_with("sip:") {
        return None;
    }
    crate::dns::SipUri::parse(m).ok()?;
    Some(Member::Static {
        uri: m.to_string(),
        destination: uri_socket_addr(m),
    })
}

/// `+` then 2 to 15 digits, the first not 0 (ITU-T E.164); no separators, so a number is
/// written one way and the allow-list compares it as written.
pub fn is_e164(n: &str) -> bool {
    n.strip_prefix('+').is_some_and(|d| {
        (2..=15).contains(&d.len()) && d.bytes().all(|b| b.is_ascii_digit()) && !d.starts_with('0')
    })
}

/// A `[desk] number_allow` pattern: an E.164 number, exact, or its prefix followed by `*`. The
/// prefix has at least one digit (a country code): "+*" would open every number in the world.
pub fn is_allow_pattern(p: &str) -> bool {
    let prefix = p.strip_suffix('*').unwrap_or(p);
    prefix
        .strip_prefix('+')
        .is_some_and(|d| !d.is_empty() && d.len() <= 15 && d.bytes().all(|b| b.is_ascii_digit()))
}

/// Whether `number` matches one of the allow-list `patterns` (empty list: none does).
pub fn number_allowed(number: &str, patterns: &[String]) -> bool {
    patterns.iter().any(|p| match p.strip_suffix('*') {
        Some(prefix) => number.starts_with(prefix),
        None => number == p,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn members_are_users_or_ip_addresses() {
        let users = vec!["alice".to_string()];
        let members = vec!["alice".to_string(), "sip:desk@192.0.2.10:5070".to_string()];
        let g = DeskGroups::new([("desk", members.as_slice())], &users).unwrap();
        assert_eq!(
            g.get("desk").unwrap(),
            &[
                Member::User("alice".into()),
                Member::Static {
                    uri: "sip:desk@192.0.2.10:5070".into(),
                    destination: Some("192.0.2.10:5070".parse().unwrap())
                }
            ]
        );
        for bad in [
            "bob",
            "sip:desk@bad host.example.com",
            "tel:15551230001",
            "tel:+1 555 123",
            "tel:+0123",
        ] {
            let members = vec![bad.to_string()];
            assert_eq!(
                DeskGroups::new([("desk", members.as_slice())], &users).unwrap_err(),
                DeskError::BadMember {
                    group: "desk".into(),
                    member: bad.into()
                }
            );
        }
    }

    #[test]
    fn tel_members_are_e164_numbers_matched_against_the_allow_list() {
        let members = vec!["tel:+15551230001".to_string()];
        let g = DeskGroups::new([("desk", members.as_slice())], &[]).unwrap();
        assert_eq!(
            g.get("desk").unwrap(),
            &[Member::Number("+15551230001".into())]
        );
        let allow = vec!["+1555*".to_string(), "+442071234567".to_string()];
        assert!(number_allowed("+15551230001", &allow));
        assert!(number_allowed("+442071234567", &allow));
        assert!(!number_allowed("+4420712345678", &allow));
        assert!(!number_allowed("+19005550001", &allow));
        assert!(!number_allowed("+15551230001", &[]));
        for good in ["+1555*", "+15551230001", "+1*"] {
            assert!(is_allow_pattern(good), "{good}");
        }
        for bad in ["1555*", "+1 555*", "*", "+", "+*", "+1555*1", "+15*55"] {
            assert!(!is_allow_pattern(bad), "{bad}");
        }
    }

    #[test]
    fn a_fixed_phone_by_host_name_is_looked_up_per_call() {
        let members = vec!["sip:desk@pbx.example.com".to_string()];
        let g = DeskGroups::new([("desk", members.as_slice())], &[]).unwrap();
        assert_eq!(
            g.get("desk").unwrap(),
            &[Member::Static {
                uri: "sip:desk@pbx.example.com".into(),
                destination: None
            }]
        );
    }

    #[test]
    fn the_oncall_member_needs_a_rota() {
        let users = vec!["alice".to_string()];
        let members = vec!["alice".to_string(), "oncall".to_string()];
        let g = DeskGroups::new([("desk", members.as_slice())], &users).unwrap();
        assert_eq!(
            g.get("desk").unwrap(),
            &[Member::User("alice".into()), Member::OnCall]
        );
        assert_eq!(
            g.with_rota(crate::oncall::Rota::default()).unwrap_err(),
            DeskError::OnCallWithoutRota("desk".into())
        );
    }
}
