//! RFC 3263 over a real DNS server on loopback (tests/common/dns.rs): the resolver follows SRV
//! priority, re-asks once a TTL has passed, and reports NXDOMAIN and timeouts by type; `ivr
//! serve` with a call-back trunk written as a host name reaches the second SRV target when the
//! first is down (nothing listening) or answers 503.

use crate::common;

use std::net::Ipv4Addr;
use std::time::Duration;

use common::dns::{DnsServer, Zone};
use common::staff::Staff;
use common::{Ivr, require_tool, run_sipp};
use ivr::dns::{DnsError, DnsSettings, SipResolver, Transport};

const WAIT: Duration = Duration::from_secs(40);

/// `_sip._udp.pbx.test`: priority 10 → a.pbx.test (127.0.0.2:port_a), priority 20 →
/// b.pbx.test (127.0.0.3:port_b); `ttl` on every record.
fn two_target_zone(port_a: u16, port_b: u16, ttl: u32) -> Zone {
    Zone::default()
        .srv("_sip._udp.pbx.test", 20, 0, port_b, "b.pbx.test", ttl)
        .srv("_sip._udp.pbx.test", 10, 0, port_a, "a.pbx.test", ttl)
        .a("a.pbx.test", Ipv4Addr::new(127, 0, 0, 2), ttl)
        .a("b.pbx.test", Ipv4Addr::new(127, 0, 0, 3), ttl)
}

fn resolver(server: &DnsServer, timeout_ms: u64) -> SipResolver {
    SipResolver::new(&DnsSettings {
        servers: vec![server.addr],
        timeout: Duration::from_millis(timeout_ms),
        attempts: 1,
    })
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime")
}

fn targets(r: &SipResolver, uri: &str) -> Result<Vec<String>, DnsError> {
    runtime()
        .block_on(r.resolve(uri, &[Transport::Udp]))
        .map(|ts| ts.iter().map(ToString::to_string).collect())
}

#[test]
fn srv_targets_come_in_priority_order_from_a_loopback_dns_server() {
    let server = DnsServer::start(two_target_zone(5071, 5072, 60));
    let r = resolver(&server, 2000);
    assert_eq!(
        targets(&r, "sip:desk@pbx.test"),
        Ok(vec![
            "127.0.0.2:5071/udp".to_string(),
            "127.0.0.3:5072/udp".to_string()
        ])
    );
    // NAPTR first (none here), then SRV, then each target's address.
    let asked = server.all_queries();
    assert_eq!(
        asked.first().map(String::as_str),
        Some("NAPTR pbx.test"),
        "{asked:?}"
    );
    assert_eq!(server.queries("SRV", "_sip._udp.pbx.test"), 1, "{asked:?}");
}

#[test]
fn naptr_points_the_way_when_present() {
    let zone = Zone::default()
        .naptr("pbx.test", 10, 10, "SIP+D2U", "_sip._udp.sip.pbx.test", 60)
        .srv("_sip._udp.sip.pbx.test", 10, 0, 5080, "a.pbx.test", 60)
        .a("a.pbx.test", Ipv4Addr::new(127, 0, 0, 2), 60);
    let server = DnsServer::start(zone);
    assert_eq!(
        targets(&resolver(&server, 2000), "sip:pbx.test"),
        Ok(vec!["127.0.0.2:5080/udp".to_string()])
    );
    // The NAPTR's replacement was followed, not the default `_sip._udp.pbx.test`.
    assert_eq!(
        server.queries("SRV", "_sip._udp.pbx.test"),
        0,
        "{:?}",
        server.all_queries()
    );
}

#[test]
fn answers_are_cached_for_their_ttl_and_asked_again_after() {
    // A 3 s TTL: the first two resolutions fall well inside it even on a loaded machine.
    let server = DnsServer::start(two_target_zone(5071, 5072, 3));
    let r = resolver(&server, 2000);
    let rt = runtime();
    let resolve = || {
        rt.block_on(r.resolve("sip:desk@pbx.test", &[Transport::Udp]))
            .expect("resolves")
    };
    let first = resolve();
    let second = resolve();
    assert_eq!(first, second);
    // The second resolution came from the cache.
    assert_eq!(
        server.queries("SRV", "_sip._udp.pbx.test"),
        1,
        "{:?}",
        server.all_queries()
    );
    // Past the TTL the records are asked again.
    std::thread::sleep(Duration::from_millis(3500));
    resolve();
    assert_eq!(
        server.queries("SRV", "_sip._udp.pbx.test"),
        2,
        "{:?}",
        server.all_queries()
    );
    assert_eq!(
        server.queries("A", "a.pbx.test"),
        2,
        "{:?}",
        server.all_queries()
    );
}

#[test]
fn a_missing_name_and_a_silent_server_are_told_apart() {
    let server = DnsServer::start(two_target_zone(5071, 5072, 60));
    assert_eq!(
        targets(&resolver(&server, 2000), "sip:desk@nope.test"),
        Err(DnsError::NxDomain {
            name: "nope.test".into()
        })
    );
    let silent = DnsServer::silent();
    assert_eq!(
        targets(&resolver(&silent, 200), "sip:desk@pbx.test"),
        Err(DnsError::Timeout {
            name: "pbx.test".into()
        })
    );
    // An IP literal needs no DNS at all, even with a dead server.
    assert_eq!(
        targets(&resolver(&silent, 200), "sip:desk@192.0.2.7:5070"),
        Ok(vec!["192.0.2.7:5070/udp".to_string()])
    );
}

/// `ivr serve` whose call-back trunk is `sip:pbx.test` resolved by `dns`, `extra` config on top;
/// a caller leaves a voicemail from +15551230003 so that number may be called back.
fn ivr_with_trunk_by_name(dns: &DnsServer, extra: &str) -> Ivr {
    let config = format!(
        "{extra}\n[dns]\nservers = [\"{}\"]\ntimeout_ms = 1000\n\
         [staff]\nalgorithms = [\"MD5\", \"SHA-256\"]\n\
         [[staff.users]]\nname = \"alice\"\npassword = \"s3cret\"\n\
         [desk]\ncallback_trunk = \"sip:pbx.test\"\n",
        dns.addr
    );
    let ivr = Ivr::start_desk("desk.toml", &["alice".to_string()], &config);
    common::write_spoken_audio(ivr.dir());
    let caller = run_sipp(
        &ivr,
        "uac_caller_speaks_hangup.xml",
        &["-key", "caller", "+15551230003", "-d", "4000"],
    );
    assert!(caller.success(), "caller: {}\n{}", caller.errors, ivr.log());
    ivr.wait_for_log(&["event=\"voicemail_stored\""], WAIT);
    ivr
}

/// alice calls +15551230003 back through the trunk; the customer answers, alice hangs up.
fn call_back(ivr: &Ivr) {
    let back =
        common::staff::alice_calls_back(ivr, "staff_callback.xml", "+15551230003", &["-d", "1000"]);
    assert!(back.success(), "call-back: {}\n{}", back.errors, ivr.log());
}

#[test]
fn a_trunk_by_host_name_fails_over_to_the_second_srv_target_when_the_first_is_down() {
    if !require_tool("sipp") {
        return;
    }
    let dir = common::unique_temp_dir("dns-down");
    // Nothing listens at the first target; the customer's phone answers behind the second.
    let customer = Staff::start_at(&dir, "127.0.0.3", "staff_no_press.xml", 0);
    let down = common::free_port();
    let dns = DnsServer::start(two_target_zone(down, customer.port, 60));
    // T1 = 50 ms: the INVITE to the dead target times out (timer B, 64*T1) in 3.2 s.
    let ivr = ivr_with_trunk_by_name(&dns, "[sip]\nt1_ms = 50\n");
    call_back(&ivr);
    customer.assert_completed();
    let log = ivr.wait_for_log(&["event=\"callback_ended\""], WAIT);
    assert!(
        log.contains("event=\"callback_failover\"")
            && log.contains(&format!("failed=127.0.0.2:{down}")),
        "{log}"
    );
    assert!(log.contains("voicemails_acked=1"), "{log}");
    assert!(
        dns.queries("SRV", "_sip._udp.pbx.test") >= 1,
        "{:?}",
        dns.all_queries()
    );
}

#[test]
fn a_trunk_target_answering_503_hands_the_call_to_the_next() {
    if !require_tool("sipp") {
        return;
    }
    let dir = common::unique_temp_dir("dns-503");
    let unavailable = Staff::start_at(&dir, "127.0.0.2", "trunk_unavailable.xml", 0);
    let customer = Staff::start_at(&dir, "127.0.0.3", "staff_no_press.xml", 0);
    let dns = DnsServer::start(two_target_zone(unavailable.port, customer.port, 60));
    let ivr = ivr_with_trunk_by_name(&dns, "");
    call_back(&ivr);
    unavailable.assert_completed();
    customer.assert_completed();
    let log = ivr.wait_for_log(&["event=\"callback_ended\""], WAIT);
    assert!(
        log.contains("event=\"callback_failover\"") && log.contains("503"),
        "{log}"
    );
}

#[test]
fn a_trunk_name_that_does_not_resolve_refuses_the_call_back_with_503_and_says_why() {
    if !require_tool("sipp") {
        return;
    }
    // The zone has no pbx.test at all: NXDOMAIN.
    let dns = DnsServer::start(Zone::default().a("other.test", Ipv4Addr::LOCALHOST, 60));
    let ivr = ivr_with_trunk_by_name(&dns, "");
    let refused =
        common::staff::alice_calls_back(&ivr, "staff_callback_unresolved.xml", "+15551230003", &[]);
    assert!(
        refused.success(),
        "call-back: {}\n{}",
        refused.errors,
        ivr.log()
    );
    let log = ivr.wait_for_log(&["event=\"callback_refused\""], WAIT);
    assert!(log.contains("pbx.test: no such domain (NXDOMAIN)"), "{log}");
}

/// A fixed desk phone written as a host name (`sip:desk@pbx.test`): the desk leg goes to the
/// first SRV target, which is dead; its INVITE times out and the same leg is placed again to
/// the second target, whose phone answers, presses 1 and is bridged with the caller.
#[test]
fn a_desk_phone_by_host_name_rings_at_the_second_srv_target_when_the_first_is_down() {
    if !require_tool("sipp") {
        return;
    }
    let dir = common::unique_temp_dir("dns-desk");
    let phone = Staff::start_at(&dir, "127.0.0.3", "staff_accept_bye.xml", 0);
    let down = common::free_port();
    let dns = DnsServer::start(two_target_zone(down, phone.port, 60));
    // T1 = 50 ms: the INVITE to the dead target times out (timer B, 64*T1) in 3.2 s, well
    // inside the desk's ring time.
    let config = format!(
        "[sip]\nt1_ms = 50\n[dns]\nservers = [\"{}\"]\ntimeout_ms = 1000\n\
         [desk]\naccept_timeout_s = 4\nringback = \"us\"\nring_each_s = 15\n",
        dns.addr
    );
    let port_b = phone.port;
    let ivr = Ivr::start_desk("desk.toml", &["sip:desk@pbx.test".to_string()], &config);
    let caller = common::run_sipp(&ivr, "uac_caller.xml", &["-key", "caller", "+15551230001"]);
    assert!(caller.success(), "caller: {}\n{}", caller.errors, ivr.log());
    phone.assert_completed();
    let cdr = ivr.final_cdr(WAIT);
    assert_eq!(cdr["outcome"], "bridged", "{cdr:?}");
    assert_eq!(cdr["answered_by"], "sip:desk@pbx.test", "{cdr:?}");
    let log = ivr.log();
    assert!(
        log.contains("event=\"dial_failover\"")
            && log.contains(&format!("destination=127.0.0.2:{down}"))
            && log.contains(&format!("next=127.0.0.3:{port_b}")),
        "{log}"
    );
    assert!(
        dns.queries("SRV", "_sip._udp.pbx.test") >= 1,
        "{:?}",
        dns.all_queries()
    );
}
