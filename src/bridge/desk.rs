//! Desk groups from `[desk]` in config: each member is a registered staff user (rung at every
//! phone it has registered), a fixed SIP address (an IP literal: the line does no DNS), or
//! `oncall`: whoever the `[oncall]` rota names when the call comes (rung like a staff user).

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;

use thiserror::Error;

use crate::oncall::{Rota, Shift};
use crate::sip::uri_socket_addr;

#[derive(Debug, Error, PartialEq, Eq)]
pub enum DeskError {
    #[error(
        "desk group {group:?}: member {member:?} is neither a [[staff.users]] name nor a SIP \
         address with an IP (e.g. \"sip:oncall@192.0.2.10:5060\"); the line does no DNS"
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
    /// A phone at a fixed address.
    Static {
        uri: String,
        destination: SocketAddr,
    },
    /// Whoever is on call when the call comes ([`DeskGroups::shift`]), rung like a `User`.
    OnCall,
}

impl Member {
    pub fn label(&self) -> &str {
        match self {
            Member::User(u) => u,
            Member::Static { uri, .. } => uri,
            Member::OnCall => crate::oncall::MEMBER,
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
    pub fn describe_dial(&self, targets: &[String], at: jiff::Timestamp) -> Vec<String> {
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
                        Member::Static { uri, .. } => uri.clone(),
                        Member::OnCall => {
                            let shift = self.rota.shift(at);
                            let who = crate::oncall::describe_shift(&self.rota, &shift, &|_| {
                                String::new()
                            });
                            match shift.on_call {
                                Some(_) => format!("oncall = {who}, if registered"),
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
    if !lower.starts_with("sip:") {
        return None;
    }
    Some(Member::Static {
        uri: m.to_string(),
        destination: uri_socket_addr(m)?,
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
                    destination: "192.0.2.10:5070".parse().unwrap()
                }
            ]
        );
        for bad in ["bob", "sip:desk@pbx.example.com", "tel:+15551230001"] {
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
