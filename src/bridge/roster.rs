//! Who the desk can ring now: the registered staff phones, the desk groups with their members,
//! and for each member whether a `dial` would reach it (and why not). Pure: built from the
//! registrar's published bindings, the configured groups and the flows at a given `now`; the
//! admin page (`/staff`, `/api/staff`) renders it.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Instant;

use serde::Serialize;

use super::desk::{DeskGroups, Member};
use crate::flow::{Flow, Node, Strategy};
use crate::sip::Registration;

/// Everything the staff page shows.
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct Roster {
    pub phones: Vec<Phone>,
    pub groups: Vec<Group>,
}

/// One live registration.
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct Phone {
    pub user: String,
    pub contact: String,
    /// Where the REGISTER came from (where the desk sends the INVITE).
    pub source: String,
    pub transport: &'static str,
    pub expires_in_s: u32,
}

/// One desk group, members in configured order (the order `sequential` rings them).
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct Group {
    pub name: String,
    pub members: Vec<MemberState>,
    /// The flow nodes that ring this group, with their strategy.
    pub dialled_by: Vec<DialUse>,
}

#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct MemberState {
    /// The staff user name or the fixed SIP address.
    pub member: String,
    /// `user` (rung at its registered phones) or `address` (a fixed phone).
    pub kind: &'static str,
    pub ringable: bool,
    /// Why it is (not) ringable, for people.
    pub why: String,
    /// The Contact URIs a dial would ring now.
    pub contacts: Vec<String>,
    /// For the `oncall` member: the user on call now, if anyone.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub on_call: Option<String>,
}

/// A `dial` node that rings a group.
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct DialUse {
    pub flow: String,
    pub node: String,
    pub strategy: &'static str,
    pub timeout_s: u64,
}

/// The roster at `now`: bindings expired by then are left out even if the registrar has not
/// purged them yet (its purge and the publication run on the signalling thread's timer). `at`
/// is the line's calendar time then, which decides who the `oncall` member is.
pub fn roster(
    groups: &DeskGroups,
    flows: &[Arc<Flow>],
    registrations: &[Registration],
    now: Instant,
    at: jiff::Timestamp,
) -> Roster {
    let live: Vec<&Registration> = registrations
        .iter()
        .filter(|r| r.binding.expires_at > now)
        .collect();
    let phones = live
        .iter()
        .map(|r| Phone {
            user: r.user.clone(),
            contact: r.binding.contact.clone(),
            source: r.binding.source.to_string(),
            transport: r.binding.transport.via_name(),
            expires_in_s: r.binding.remaining_secs(now),
        })
        .collect();
    let mut uses: BTreeMap<&str, Vec<DialUse>> = BTreeMap::new();
    for flow in flows {
        for def in &flow.nodes {
            if let Node::Dial(d) = &def.node {
                for target in &d.targets {
                    uses.entry(target).or_default().push(DialUse {
                        flow: flow.name.clone(),
                        node: def.name.clone(),
                        strategy: match d.strategy {
                            Strategy::Simultaneous => "simultaneous",
                            Strategy::Sequential => "sequential",
                        },
                        timeout_s: d.timeout.as_secs(),
                    });
                }
            }
        }
    }
    let groups = groups
        .names()
        .map(|name| Group {
            name: name.to_string(),
            members: groups
                .get(name)
                .unwrap_or_default()
                .iter()
                .map(|m| member_state(m, &live, groups, at))
                .collect(),
            dialled_by: uses.remove(name).unwrap_or_default(),
        })
        .collect();
    Roster { phones, groups }
}

fn member_state(
    member: &Member,
    live: &[&Registration],
    groups: &DeskGroups,
    at: jiff::Timestamp,
) -> MemberState {
    match member {
        Member::OnCall => {
            let shift = groups.shift(at);
            let rota = groups.rota();
            let Some(on_call) = &shift.on_call else {
                return MemberState {
                    member: crate::oncall::MEMBER.into(),
                    kind: "oncall",
                    ringable: false,
                    why: format!(
                        "nobody is on call now ({}): a dial skips this member",
                        crate::oncall::describe_shift(rota, &shift, &|_| String::new())
                    ),
                    contacts: Vec::new(),
                    on_call: None,
                };
            };
            let user = member_state(&Member::User(on_call.user.clone()), live, groups, at);
            MemberState {
                member: crate::oncall::MEMBER.into(),
                kind: "oncall",
                ringable: user.ringable,
                why: format!(
                    "on call: {}; {}",
                    crate::oncall::describe_shift(rota, &shift, &|_| String::new()),
                    user.why
                ),
                contacts: user.contacts,
                on_call: Some(on_call.user.clone()),
            }
        }
        Member::User(user) => {
            let contacts: Vec<String> = live
                .iter()
                .filter(|r| &r.user == user)
                .map(|r| r.binding.contact.clone())
                .collect();
            let why = match contacts.len() {
                0 => "no live registration: a dial skips this member".to_string(),
                1 => "1 registered phone".to_string(),
                n => format!("{n} registered phones"),
            };
            MemberState {
                member: user.clone(),
                kind: "user",
                ringable: !contacts.is_empty(),
                why,
                contacts,
                on_call: None,
            }
        }
        Member::Number(n) => MemberState {
            member: n.clone(),
            kind: "number",
            ringable: true,
            why: "external number, through [desk] external_trunk".into(),
            contacts: vec![format!("tel:{n}")],
            on_call: None,
        },
        Member::Static { uri, destination } => MemberState {
            member: uri.clone(),
            kind: "address",
            ringable: true,
            why: match destination {
                Some(a) => format!("fixed address {a}"),
                None => "host name, looked up per call (RFC 3263)".into(),
            },
            contacts: vec![uri.clone()],
            on_call: None,
        },
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::sip::{Binding, Transport};

    fn registration(user: &str, contact: &str, expires_at: Instant) -> Registration {
        Registration {
            user: user.into(),
            binding: Binding {
                contact: contact.into(),
                expires_at,
                call_id: "c".into(),
                cseq: 1,
                q: None,
                source: "192.0.2.7:5062".parse().unwrap(),
                transport: Transport::Tcp(1),
                path: Vec::new(),
            },
        }
    }

    #[test]
    fn members_are_ringable_with_a_live_registration_or_a_fixed_address() {
        let users = vec!["alice".to_string(), "bob".to_string()];
        let members = vec![
            "alice".to_string(),
            "bob".to_string(),
            "sip:desk@192.0.2.10:5070".to_string(),
        ];
        let groups = DeskGroups::new([("desk", members.as_slice())], &users).unwrap();
        let flow = crate::flow::check_source(
            std::path::Path::new("f.toml"),
            "name = \"f\"\nstart = \"ring\"\n[nodes.ring]\ntype = \"dial\"\ntargets = [\"desk\"]\n\
             strategy = \"sequential\"\ntimeout = \"20s\"\non_no_answer = \"bye\"\n\
             [nodes.bye]\ntype = \"hangup\"\n",
            std::path::Path::new("prompts"),
            &Default::default(),
        )
        .unwrap();
        let t0 = Instant::now();
        let regs = [
            registration(
                "alice",
                "sip:alice@192.0.2.7:5062",
                t0 + Duration::from_secs(90),
            ),
            registration("bob", "sip:bob@192.0.2.8", t0 + Duration::from_secs(10)),
        ];
        // Bob's binding has run out by t0 + 30 s though nobody purged it yet.
        let r = roster(
            &groups,
            &[Arc::new(flow)],
            &regs,
            t0 + Duration::from_secs(30),
            jiff::Timestamp::UNIX_EPOCH,
        );
        assert_eq!(
            r.phones,
            [Phone {
                user: "alice".into(),
                contact: "sip:alice@192.0.2.7:5062".into(),
                source: "192.0.2.7:5062".into(),
                transport: "TCP",
                expires_in_s: 60,
            }]
        );
        let desk = &r.groups[0];
        assert_eq!(desk.name, "desk");
        let states: Vec<(&str, bool)> = desk
            .members
            .iter()
            .map(|m| (m.member.as_str(), m.ringable))
            .collect();
        assert_eq!(
            states,
            [
                ("alice", true),
                ("bob", false),
                ("sip:desk@192.0.2.10:5070", true)
            ]
        );
        assert!(desk.members[1].why.contains("no live registration"));
        assert!(desk.members[1].contacts.is_empty());
        assert!(
            desk.members[2]
                .why
                .contains("fixed address 192.0.2.10:5070")
        );
        assert_eq!(
            desk.dialled_by,
            [DialUse {
                flow: "f".into(),
                node: "ring".into(),
                strategy: "sequential",
                timeout_s: 20
            }]
        );
    }

    #[test]
    fn the_oncall_member_shows_who_is_on_call_and_their_phones() {
        let users = vec!["alice".to_string(), "bob".to_string()];
        let members = vec!["oncall".to_string()];
        let rota = crate::oncall::Rota::new(
            jiff::tz::TimeZone::get("America/New_York").unwrap(),
            jiff::civil::date(2026, 11, 30),
            jiff::civil::time(9, 0, 0, 0),
            7,
            users.clone(),
            Vec::new(),
        )
        .unwrap();
        let groups = DeskGroups::new([("desk", members.as_slice())], &users)
            .unwrap()
            .with_rota(rota)
            .unwrap();
        let t0 = Instant::now();
        let later = t0 + Duration::from_secs(90);
        let regs = [
            registration("alice", "sip:alice@192.0.2.7:5062", later),
            registration("bob", "sip:bob@192.0.2.8:5062", later),
        ];
        // Wednesday 2026-12-09: bob's week.
        let at: jiff::Timestamp = "2026-12-09T15:00:00Z".parse().unwrap();
        let r = roster(&groups, &[], &regs, t0, at);
        let m = &r.groups[0].members[0];
        assert_eq!(
            (m.member.as_str(), m.kind, m.ringable, m.on_call.as_deref()),
            ("oncall", "oncall", true, Some("bob"))
        );
        assert_eq!(m.contacts, ["sip:bob@192.0.2.8:5062"]);
        assert!(
            m.why
                .contains("bob (rotation) since Mon 2026-12-07 09:00 EST"),
            "{}",
            m.why
        );
        // Before the rota starts nobody is on call: not ringable, and the page says so.
        let before: jiff::Timestamp = "2026-11-01T15:00:00Z".parse().unwrap();
        let r = roster(&groups, &[], &regs, t0, before);
        let m = &r.groups[0].members[0];
        assert!(!m.ringable && m.on_call.is_none(), "{m:?}");
        assert!(m.why.starts_with("nobody is on call now"), "{}", m.why);
    }
}
