//! The record-level rules: which NAPTR records lead to SIP (RFC 3263 §4.1, RFC 3403) and in
//! what order SRV targets are tried (RFC 2782: lowest priority first, weighted random within a
//! priority). The random source is a parameter so tests can fix it.

use super::uri::{SipUri, Transport};

/// One NAPTR answer, as the core needs it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NaptrRecord {
    pub order: u16,
    pub preference: u16,
    pub flags: String,
    pub services: String,
    pub replacement: String,
}

/// One SRV answer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SrvRecord {
    pub priority: u16,
    pub weight: u16,
    pub port: u16,
    /// The target host name (no trailing dot); `.` means "no such service here".
    pub target: String,
}

/// The SRV names to query, in order, with the transport each stands for: from the NAPTR records
/// that name a SIP service we may use (flag `S`, lowest order then preference first; RFC 3263
/// §4.1). A `sips:` URI takes only `SIPS+D2T`. Records with a regexp or other flags are not for
/// SIP (RFC 3263 says SIP NAPTRs carry an `S` flag and an empty regexp).
pub fn select_naptr(
    records: &[NaptrRecord],
    uri: &SipUri,
    supported: &[Transport],
) -> Vec<(Transport, String)> {
    let mut usable: Vec<(&NaptrRecord, Transport)> = records
        .iter()
        .filter(|r| r.flags.eq_ignore_ascii_case("s") && !r.replacement.is_empty())
        .filter_map(|r| Some((r, Transport::from_naptr_service(&r.services)?)))
        .filter(|(_, t)| supported.contains(t) && (!uri.sips || *t == Transport::Tls))
        .collect();
    usable.sort_by_key(|(r, _)| (r.order, r.preference));
    let mut out: Vec<(Transport, String)> = Vec::new();
    for (r, t) in usable {
        let name = r.replacement.trim_end_matches('.').to_ascii_lowercase();
        if !out.iter().any(|(ot, on)| *ot == t && *on == name) {
            out.push((t, name));
        }
    }
    out
}

/// The SRV names to query when there is no usable NAPTR (RFC 3263 §4.1): the URI's transport if
/// it names one, only `_sips._tcp` for `sips:`, else each transport we support (UDP first).
pub fn default_srv_names(uri: &SipUri, supported: &[Transport]) -> Vec<(Transport, String)> {
    let transports: Vec<Transport> = match (uri.transport, uri.sips) {
        (Some(t), _) => vec![t],
        (None, true) => vec![Transport::Tls],
        (None, false) => [Transport::Udp, Transport::Tcp, Transport::Tls]
            .into_iter()
            .filter(|t| supported.contains(t))
            .collect(),
    };
    transports
        .into_iter()
        .map(|t| (t, format!("{}.{}", t.srv_prefix(), uri.host)))
        .collect()
}

/// RFC 2782's order: by priority, and within one priority a weighted random draw, repeated over
/// the records not yet drawn. `pick(total)` returns a number in `0..=total`. A lone `.` target
/// ("decidedly not available") leaves nothing.
pub fn order_srv(records: &[SrvRecord], pick: &mut impl FnMut(u32) -> u32) -> Vec<SrvRecord> {
    let mut rest: Vec<SrvRecord> = records
        .iter()
        .filter(|r| !r.target.is_empty() && r.target != ".")
        .cloned()
        .collect();
    // Zero weights first, so the running sum gives them a small chance (RFC 2782 "Usage rules").
    rest.sort_by_key(|r| (r.priority, r.weight != 0));
    let mut out = Vec::with_capacity(rest.len());
    while !rest.is_empty() {
        let priority = rest[0].priority;
        let same = rest.iter().take_while(|r| r.priority == priority).count();
        let total: u32 = rest[..same].iter().map(|r| u32::from(r.weight)).sum();
        let draw = pick(total).min(total);
        let mut running = 0u32;
        let chosen = rest[..same]
            .iter()
            .position(|r| {
                running += u32::from(r.weight);
                running >= draw
            })
            .unwrap_or(0);
        out.push(rest.remove(chosen));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn naptr(order: u16, pref: u16, flags: &str, services: &str, to: &str) -> NaptrRecord {
        NaptrRecord {
            order,
            preference: pref,
            flags: flags.into(),
            services: services.into(),
            replacement: to.into(),
        }
    }

    fn srv(priority: u16, weight: u16, target: &str) -> SrvRecord {
        SrvRecord {
            priority,
            weight,
            port: 5060,
            target: target.into(),
        }
    }

    const ALL: [Transport; 3] = [Transport::Udp, Transport::Tcp, Transport::Tls];

    #[test]
    fn naptr_records_are_taken_by_order_then_preference_for_services_we_can_use() {
        let uri = SipUri::parse("sip:pbx.test").unwrap();
        let records = [
            naptr(20, 10, "s", "SIP+D2U", "_sip._udp.pbx.test."),
            naptr(10, 50, "S", "SIP+D2T", "_sip._tcp.pbx.test."),
            naptr(10, 20, "s", "SIPS+D2T", "_sips._tcp.pbx.test."),
            // Not for SIP, or not a terminal SRV rule: ignored.
            naptr(1, 1, "s", "E2U+sip", "x.test."),
            naptr(1, 1, "a", "SIP+D2U", "y.test."),
            naptr(1, 1, "s", "SIP+D2S", "z.test."),
        ];
        assert_eq!(
            select_naptr(&records, &uri, &ALL),
            vec![
                (Transport::Tls, "_sips._tcp.pbx.test".to_string()),
                (Transport::Tcp, "_sip._tcp.pbx.test".to_string()),
                (Transport::Udp, "_sip._udp.pbx.test".to_string()),
            ]
        );
        // Only what the sender supports.
        assert_eq!(
            select_naptr(&records, &uri, &[Transport::Udp]),
            vec![(Transport::Udp, "_sip._udp.pbx.test".to_string())]
        );
        // A sips: URI only takes SIPS+D2T.
        let sips = SipUri::parse("sips:pbx.test").unwrap();
        assert_eq!(
            select_naptr(&records, &sips, &ALL),
            vec![(Transport::Tls, "_sips._tcp.pbx.test".to_string())]
        );
    }

    #[test]
    fn without_naptr_the_srv_names_follow_the_uri() {
        let names = |u: &str, s: &[Transport]| -> Vec<String> {
            default_srv_names(&SipUri::parse(u).unwrap(), s)
                .into_iter()
                .map(|(_, n)| n)
                .collect()
        };
        assert_eq!(
            names("sip:pbx.test", &ALL),
            [
                "_sip._udp.pbx.test",
                "_sip._tcp.pbx.test",
                "_sips._tcp.pbx.test"
            ]
        );
        assert_eq!(
            names("sip:pbx.test", &[Transport::Udp]),
            ["_sip._udp.pbx.test"]
        );
        assert_eq!(
            names("sip:pbx.test;transport=tcp", &ALL),
            ["_sip._tcp.pbx.test"]
        );
        assert_eq!(names("sips:pbx.test", &ALL), ["_sips._tcp.pbx.test"]);
    }

    #[test]
    fn srv_targets_go_by_priority_first() {
        let records = [
            srv(20, 100, "b.test"),
            srv(10, 0, "a.test"),
            srv(30, 5, "c.test"),
        ];
        // Whatever the draw, priority decides between priorities.
        for draw in [0, 50, u32::MAX] {
            let got: Vec<String> = order_srv(&records, &mut |_| draw)
                .into_iter()
                .map(|r| r.target)
                .collect();
            assert_eq!(got, ["a.test", "b.test", "c.test"], "draw {draw}");
        }
    }

    #[test]
    fn within_a_priority_the_draw_is_weighted() {
        // Weights 10, 30, 60: running sums 10, 40, 100.
        let records = [srv(10, 10, "a"), srv(10, 30, "b"), srv(10, 60, "c")];
        let first = |draw: u32| order_srv(&records, &mut |_| draw)[0].target.clone();
        assert_eq!(first(0), "a");
        assert_eq!(first(10), "a");
        assert_eq!(first(11), "b");
        assert_eq!(first(40), "b");
        assert_eq!(first(41), "c");
        assert_eq!(first(100), "c");
        // The draw is over the records left: after `c` (100), a and b sum to 40.
        let mut draws = vec![100, 40, 0].into_iter();
        let mut totals = Vec::new();
        let got: Vec<String> = order_srv(&records, &mut |total| {
            totals.push(total);
            draws.next().unwrap()
        })
        .into_iter()
        .map(|r| r.target)
        .collect();
        assert_eq!(got, ["c", "b", "a"]);
        assert_eq!(totals, [100, 40, 10]);
    }

    #[test]
    fn zero_weights_still_get_a_turn_and_dot_means_none() {
        let records = [srv(10, 0, "zero"), srv(10, 5, "five")];
        assert_eq!(order_srv(&records, &mut |_| 0)[0].target, "zero");
        assert_eq!(order_srv(&records, &mut |_| 5)[0].target, "five");
        assert!(order_srv(&[srv(0, 0, ".")], &mut |_| 0).is_empty());
    }
}
