//! Each RFC 3263 rule of the procedure, fed answers from an in-memory zone.

use std::collections::HashMap;

use super::*;

/// A zone: what each query answers; anything missing is "no records".
#[derive(Default)]
struct Zone(HashMap<String, Result<Answer, DnsError>>);

impl Zone {
    fn key(q: &Query) -> String {
        match q {
            Query::Naptr(n) => format!("NAPTR {n}"),
            Query::Srv(n) => format!("SRV {n}"),
            Query::Addr(n) => format!("A {n}"),
        }
    }
    fn naptr(mut self, name: &str, records: &[(u16, u16, &str, &str)]) -> Zone {
        let r = records
            .iter()
            .map(|(order, preference, services, to)| NaptrRecord {
                order: *order,
                preference: *preference,
                flags: "s".into(),
                services: services.to_string(),
                replacement: to.to_string(),
            })
            .collect();
        self.0.insert(format!("NAPTR {name}"), Ok(Answer::Naptr(r)));
        self
    }
    fn srv(mut self, name: &str, records: &[(u16, u16, u16, &str)]) -> Zone {
        let r = records
            .iter()
            .map(|(priority, weight, port, target)| SrvRecord {
                priority: *priority,
                weight: *weight,
                port: *port,
                target: target.to_string(),
            })
            .collect();
        self.0.insert(format!("SRV {name}"), Ok(Answer::Srv(r)));
        self
    }
    fn a(mut self, name: &str, ips: &[&str]) -> Zone {
        let ips = ips.iter().map(|i| i.parse().unwrap()).collect();
        self.0.insert(format!("A {name}"), Ok(Answer::Addr(ips)));
        self
    }
    fn fail(mut self, key: &str, e: DnsError) -> Zone {
        self.0.insert(key.to_string(), Err(e));
        self
    }

    /// Runs the procedure; returns the queries it made and its result.
    fn resolve(
        &self,
        uri: &str,
        supported: &[Transport],
    ) -> (Vec<String>, Result<Vec<String>, DnsError>) {
        let mut p = Procedure::new(SipUri::parse(uri).unwrap(), supported);
        let mut asked = Vec::new();
        while let Some(q) = p.next_query() {
            let key = Zone::key(&q);
            asked.push(key.clone());
            let answer = self
                .0
                .get(&key)
                .cloned()
                .unwrap_or(Err(DnsError::NoRecords {
                    name: q.name().to_string(),
                    kind: "any",
                }));
            p.on_answer(&q, answer);
        }
        let targets = p
            .finish(&mut |_| 0)
            .map(|ts| ts.iter().map(ToString::to_string).collect());
        (asked, targets)
    }
}

const UDP: &[Transport] = &[Transport::Udp];
const ALL: &[Transport] = &[Transport::Udp, Transport::Tcp, Transport::Tls];

#[test]
fn an_ip_literal_is_used_as_it_is() {
    let zone = Zone::default();
    assert_eq!(
        zone.resolve("sip:desk@192.0.2.10", UDP),
        (vec![], Ok(vec!["192.0.2.10:5060/udp".into()]))
    );
    assert_eq!(
        zone.resolve("sip:desk@[2001:db8::1]:5070", UDP).1,
        Ok(vec!["[2001:db8::1]:5070/udp".into()])
    );
    assert_eq!(
        zone.resolve("sips:192.0.2.10", ALL).1,
        Ok(vec!["192.0.2.10:5061/tls".into()])
    );
}

#[test]
fn a_port_in_the_uri_means_a_and_aaaa_only() {
    let zone = Zone::default()
        .a("pbx.test", &["192.0.2.1", "2001:db8::1"])
        .srv("_sip._udp.pbx.test", &[(10, 0, 5090, "other.test")]);
    assert_eq!(
        zone.resolve("sip:pbx.test:5070", UDP),
        (
            vec!["A pbx.test".into()],
            Ok(vec![
                "192.0.2.1:5070/udp".into(),
                "[2001:db8::1]:5070/udp".into()
            ])
        )
    );
}

#[test]
fn naptr_leads_to_srv_then_addresses_in_naptr_order() {
    let zone = Zone::default()
        .naptr(
            "pbx.test",
            &[
                (20, 10, "SIP+D2U", "_sip._udp.pbx.test."),
                (10, 10, "SIP+D2T", "_sip._tcp.pbx.test."),
            ],
        )
        .srv("_sip._tcp.pbx.test", &[(10, 0, 5080, "t.pbx.test")])
        .srv("_sip._udp.pbx.test", &[(10, 0, 5070, "u.pbx.test")])
        .a("t.pbx.test", &["192.0.2.2"])
        .a("u.pbx.test", &["192.0.2.3"]);
    let (asked, targets) = zone.resolve("sip:pbx.test", ALL);
    assert_eq!(
        asked,
        [
            "NAPTR pbx.test",
            "SRV _sip._tcp.pbx.test",
            "SRV _sip._udp.pbx.test",
            "A t.pbx.test",
            "A u.pbx.test"
        ]
    );
    assert_eq!(
        targets,
        Ok(vec![
            "192.0.2.2:5080/tcp".into(),
            "192.0.2.3:5070/udp".into()
        ])
    );
    // A UDP-only sender takes only the UDP rule.
    assert_eq!(
        zone.resolve("sip:pbx.test", UDP).1,
        Ok(vec!["192.0.2.3:5070/udp".into()])
    );
}

#[test]
fn without_naptr_srv_is_asked_per_supported_transport() {
    let zone = Zone::default()
        .srv(
            "_sip._udp.pbx.test",
            &[(20, 0, 5070, "b.pbx.test"), (10, 0, 5060, "a.pbx.test")],
        )
        .a("a.pbx.test", &["127.0.0.2"])
        .a("b.pbx.test", &["127.0.0.3"]);
    let (asked, targets) = zone.resolve("sip:desk@pbx.test", UDP);
    assert_eq!(
        asked,
        [
            "NAPTR pbx.test",
            "SRV _sip._udp.pbx.test",
            "A a.pbx.test",
            "A b.pbx.test"
        ]
    );
    // Priority 10 before 20.
    assert_eq!(
        targets,
        Ok(vec![
            "127.0.0.2:5060/udp".into(),
            "127.0.0.3:5070/udp".into()
        ])
    );
    let (asked, _) = zone.resolve("sip:desk@pbx.test", ALL);
    assert!(
        asked.contains(&"SRV _sip._tcp.pbx.test".to_string()),
        "{asked:?}"
    );
}

#[test]
fn a_transport_parameter_skips_naptr() {
    let zone = Zone::default()
        .srv("_sip._tcp.pbx.test", &[(10, 0, 5080, "t.pbx.test")])
        .a("t.pbx.test", &["192.0.2.2"]);
    assert_eq!(
        zone.resolve("sip:pbx.test;transport=tcp", ALL),
        (
            vec!["SRV _sip._tcp.pbx.test".into(), "A t.pbx.test".into()],
            Ok(vec!["192.0.2.2:5080/tcp".into()])
        )
    );
    // ... and a sender that cannot use it gets a clear error rather than UDP.
    assert!(matches!(
        zone.resolve("sip:pbx.test;transport=tcp", UDP).1,
        Err(DnsError::NoUsableTransport { .. })
    ));
}

#[test]
fn no_srv_means_the_hosts_addresses_on_the_default_port() {
    let zone = Zone::default().a("pbx.test", &["192.0.2.9"]);
    assert_eq!(
        zone.resolve("sip:pbx.test", UDP),
        (
            vec![
                "NAPTR pbx.test".into(),
                "SRV _sip._udp.pbx.test".into(),
                "A pbx.test".into()
            ],
            Ok(vec!["192.0.2.9:5060/udp".into()])
        )
    );
    assert_eq!(
        zone.resolve("sips:pbx.test", ALL).1,
        Ok(vec!["192.0.2.9:5061/tls".into()])
    );
}

#[test]
fn a_timeout_stops_the_lookups() {
    let timeout = DnsError::Timeout {
        name: "pbx.test".into(),
    };
    let zone = Zone::default().fail("NAPTR pbx.test", timeout.clone());
    assert_eq!(
        zone.resolve("sip:pbx.test", UDP),
        (vec!["NAPTR pbx.test".into()], Err(timeout))
    );
}

#[test]
fn a_name_that_does_not_exist_says_so() {
    let nx = DnsError::NxDomain {
        name: "nope.test".into(),
    };
    let zone = Zone::default()
        .fail("NAPTR nope.test", nx.clone())
        .fail("SRV _sip._udp.nope.test", nx.clone())
        .fail("A nope.test", nx.clone());
    assert_eq!(zone.resolve("sip:nope.test", UDP).1, Err(nx));
    // No records at all: the error names the host.
    let err = Zone::default()
        .resolve("sip:empty.test", UDP)
        .1
        .unwrap_err();
    assert!(err.to_string().contains("empty.test"), "{err}");
}

#[test]
fn an_srv_target_without_address_is_skipped() {
    let zone = Zone::default()
        .srv(
            "_sip._udp.pbx.test",
            &[(10, 0, 5060, "gone.test"), (20, 0, 5070, "b.test")],
        )
        .a("b.test", &["192.0.2.3"]);
    assert_eq!(
        zone.resolve("sip:pbx.test", UDP).1,
        Ok(vec!["192.0.2.3:5070/udp".into()])
    );
}
