//! Which trunk an INVITE came from, and what number it dialled (sans-IO).
//!
//! A call is a trunk's when its source address is in the trunk's `inbound_from` (default: the
//! registrar's address). When several trunks share an address (two accounts at one provider),
//! the one whose registered Contact user is the Request-URI user wins. The Request-URI user alone
//! never makes a call a trunk's: anyone can write any Request-URI.
//!
//! The dialled number: the Request-URI user or the To user that is one of the trunk's DIDs; a
//! call delivered to our registered Contact (Request-URI user = contact user) is for the DID in
//! To, or the trunk's only DID when To names the account too.

use std::net::IpAddr;

use crate::config::{TrunkConfig, UnknownSources};

#[derive(Clone, Debug)]
struct Entry {
    name: String,
    nets: Vec<ipnet::IpNet>,
    contact_user: String,
    dids: Vec<String>,
    /// `inbound_from` is not written: the registrar's addresses are the trunk's, and those of
    /// a registrar written as a host name are learnt from DNS.
    learns: bool,
}

/// The trunks' inbound side and the policy for everything else.
#[derive(Clone, Debug, Default)]
pub struct InboundRules {
    trunks: Vec<Entry>,
    unknown: UnknownSources,
}

/// What to do with a new call.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// From this trunk, for this number.
    Trunk { trunk: String, dialled: String },
    /// From no trunk, answered as before trunks existed.
    Answer,
    /// From no trunk, and `[sip] unknown_sources = "refuse"`.
    Refuse,
}

impl InboundRules {
    pub fn new(trunks: &[TrunkConfig], unknown: UnknownSources) -> Self {
        InboundRules {
            trunks: trunks
                .iter()
                .map(|t| Entry {
                    name: t.name.clone(),
                    nets: t.inbound_nets(),
                    contact_user: t.contact_user().to_string(),
                    dids: t.dids.clone(),
                    learns: t.inbound_from.is_empty(),
                })
                .collect(),
            unknown,
        }
    }

    /// The addresses trunk `name`'s registrar host name resolved to: its calls come from them
    /// (unless `inbound_from` says where they come from). Addresses are only ever added, so a
    /// DNS change never stops calls from an address the provider used.
    pub fn learn(&mut self, name: &str, ips: impl IntoIterator<Item = IpAddr>) {
        let Some(t) = self.trunks.iter_mut().find(|t| t.name == name && t.learns) else {
            return;
        };
        for ip in ips {
            let net = ipnet::IpNet::from(ip);
            if !t.nets.contains(&net) {
                t.nets.push(net);
            }
        }
    }

    /// `staff` is set for staff phones that proved who they are (desk call-backs): they are
    /// never refused.
    pub fn classify(&self, source: IpAddr, ru_user: &str, to_user: &str, staff: bool) -> Verdict {
        let mut from_source = self
            .trunks
            .iter()
            .filter(|t| t.nets.iter().any(|n| n.contains(&source)));
        let first = from_source.next();
        let trunk = match first {
            Some(first) => Some(
                std::iter::once(first)
                    .chain(from_source)
                    .find(|t| t.contact_user == ru_user)
                    .unwrap_or(first),
            ),
            None => None,
        };
        match trunk {
            Some(t) => Verdict::Trunk {
                trunk: t.name.clone(),
                dialled: dialled(t, ru_user, to_user),
            },
            None if staff || self.unknown == UnknownSources::Answer => Verdict::Answer,
            None => Verdict::Refuse,
        }
    }
}

fn dialled(t: &Entry, ru_user: &str, to_user: &str) -> String {
    if let Some(d) = [ru_user, to_user]
        .into_iter()
        .find(|u| t.dids.iter().any(|d| d == u))
    {
        return d.to_string();
    }
    if ru_user == t.contact_user || ru_user.is_empty() {
        if !to_user.is_empty() && to_user != t.contact_user {
            return to_user.to_string();
        }
        if let [only] = t.dids.as_slice() {
            return only.clone();
        }
    }
    ru_user.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;

    fn rules(unknown: &str) -> InboundRules {
        let c = Config::from_str(
            &format!(
                r#"
[sip]
unknown_sources = "{unknown}"
[[trunks]]
name = "carrier"
registrar = "sip:192.0.2.10:5060"
username = "acct1"
password = "pw"
dids = ["+442071234567", "+442071234568"]
[[trunks]]
name = "carrier-b"
registrar = "sip:192.0.2.10:5060"
username = "acct2"
password = "pw"
dids = ["+442079999999"]
[[trunks]]
name = "backup"
registrar = "sip:198.51.100.1"
username = "u"
password = "pw"
inbound_from = ["203.0.113.0/24"]
"#
            ),
            "test",
        )
        .unwrap();
        InboundRules::new(&c.trunks, c.sip.unknown_sources)
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn source_picks_the_trunk_and_the_did_the_number() {
        let r = rules("answer");
        assert_eq!(
            r.classify(ip("192.0.2.10"), "+442071234568", "+442071234568", false),
            Verdict::Trunk {
                trunk: "carrier".into(),
                dialled: "+442071234568".into()
            }
        );
        // Delivered to the registered Contact of the second account: its trunk, To's DID.
        assert_eq!(
            r.classify(ip("192.0.2.10"), "acct2", "+442079999999", false),
            Verdict::Trunk {
                trunk: "carrier-b".into(),
                dialled: "+442079999999".into()
            }
        );
        // To names the account too: the trunk's only DID.
        assert_eq!(
            r.classify(ip("192.0.2.10"), "acct2", "acct2", false),
            Verdict::Trunk {
                trunk: "carrier-b".into(),
                dialled: "+442079999999".into()
            }
        );
        // inbound_from instead of the registrar's address.
        assert_eq!(
            r.classify(ip("203.0.113.77"), "100", "100", false),
            Verdict::Trunk {
                trunk: "backup".into(),
                dialled: "100".into()
            }
        );
        assert_eq!(
            r.classify(ip("198.51.100.1"), "100", "100", false),
            Verdict::Answer,
            "inbound_from replaces the registrar's address"
        );
    }

    #[test]
    fn unknown_sources_follow_the_policy_but_staff_pass() {
        assert_eq!(
            rules("answer").classify(ip("10.9.9.9"), "acct1", "x", false),
            Verdict::Answer
        );
        let refuse = rules("refuse");
        assert_eq!(
            refuse.classify(ip("10.9.9.9"), "acct1", "x", false),
            Verdict::Refuse,
            "the contact user alone does not make a call the trunk's"
        );
        assert_eq!(
            refuse.classify(ip("10.9.9.9"), "1234", "x", true),
            Verdict::Answer
        );
    }

    #[test]
    fn a_registrar_by_name_learns_its_addresses_but_inbound_from_wins() {
        let c = Config::from_str(
            r#"
[sip]
unknown_sources = "refuse"
[[trunks]]
name = "named"
registrar = "sip:carrier.test"
username = "acct"
password = "pw"
dids = ["+15550100"]
[[trunks]]
name = "fixed"
registrar = "sip:edge.carrier.test"
username = "acct2"
password = "pw"
inbound_from = ["203.0.113.0/24"]
"#,
            "test",
        )
        .unwrap();
        let mut rules = InboundRules::new(&c.trunks, c.sip.unknown_sources);
        let from = |r: &InboundRules, a: &str| r.classify(ip(a), "acct", "+15550100", false);
        assert_eq!(from(&rules, "127.0.0.3"), Verdict::Refuse);
        rules.learn("named", [ip("127.0.0.2"), ip("127.0.0.3")]);
        assert_eq!(
            from(&rules, "127.0.0.3"),
            Verdict::Trunk {
                trunk: "named".into(),
                dialled: "+15550100".into()
            }
        );
        // Written addresses are the whole truth: DNS adds nothing to them.
        rules.learn("fixed", [ip("127.0.0.9")]);
        assert_eq!(from(&rules, "127.0.0.9"), Verdict::Refuse);
    }
}
