//! A trunk whose registrar is written as a host name (issue 15 item 2): ivr looks it up over a
//! DNS server on loopback (SRV with two targets), finds the first one dead, registers at the
//! second with the digest sipp checks, refreshes there, and takes the provider's calls from
//! the addresses DNS gave, refusing the same call from anywhere else.

use crate::admin_support;
use crate::common;

use std::net::Ipv4Addr;
use std::time::Duration;

use common::dns::{DnsServer, Zone};
use common::staff::Staff;
use common::{Ivr, free_port, manifest_dir, require_tool, run_sipp_to, unique_temp_dir};

const DID: &str = "+442071234567";
const WAIT: Duration = Duration::from_secs(30);

#[test]
fn a_registrar_by_host_name_is_reached_at_the_second_srv_target_when_the_first_is_down() {
    if !require_tool("sipp") {
        return;
    }
    let dir = unique_temp_dir("trunk-dns");
    let registrar = Staff::start_at(&dir, "127.0.0.3", "trunk_registrar.xml", 0);
    let down = free_port();
    let dns = DnsServer::start(
        Zone::default()
            .srv("_sip._udp.carrier.test", 10, 0, down, "a.carrier.test", 60)
            .srv(
                "_sip._udp.carrier.test",
                20,
                0,
                registrar.port,
                "b.carrier.test",
                60,
            )
            .a("a.carrier.test", Ipv4Addr::new(127, 0, 0, 2), 60)
            .a("b.carrier.test", Ipv4Addr::new(127, 0, 0, 3), 60),
    );
    let path = dir.join("ivr.toml");
    let hangup = manifest_dir().join("tests/flows/hangup.toml");
    // T1 = 50 ms: the REGISTER to the dead target times out (timer F, 64*T1) in 3.2 s.
    std::fs::write(
        &path,
        format!(
            "[sip]\nt1_ms = 50\nunknown_sources = \"refuse\"\n\
             [dns]\nservers = [\"{}\"]\ntimeout_ms = 1000\n\
             [admin]\ntoken_hash = \"{}\"\n\
             [flows.numbers]\n\"{DID}\" = {hangup:?}\n\n\
             [[trunks]]\nname = \"carrier\"\nregistrar = \"sip:carrier.test\"\n\
             username = \"acct\"\npassword = \"s3cret\"\ndids = [\"{DID}\"]\n\
             retry_initial_s = 1\nretry_max_s = 4\n",
            dns.addr,
            admin_support::hash_token(admin_support::TOKEN)
        ),
    )
    .expect("config");
    let ivr = Ivr::start(&[
        "--config",
        path.to_str().expect("utf-8 path"),
        "--admin",
        "127.0.0.1:0",
    ]);
    let target_b = format!("127.0.0.3:{}", registrar.port);
    // sipp passes only if the digest answer and both refreshes verify in time.
    registrar.assert_completed();
    let log = ivr.wait_for_log(&["event=\"trunk_registered\""], WAIT);
    assert!(
        log.contains("event=\"trunk_resolved\"")
            && log.contains(&format!("failed=127.0.0.2:{down}"))
            && log.contains("event=\"trunk_registrar_failover\""),
        "{log}"
    );
    // The dead target cost no failure: the second target answered the same attempt.
    assert!(!log.contains("event=\"trunk_register_failed\""), "{log}");
    assert!(
        dns.queries("SRV", "_sip._udp.carrier.test") >= 1,
        "{:?}",
        dns.all_queries()
    );
    let status = super::trunk::http_get(ivr.admin_addr(), "/api/status");
    assert!(
        status.contains(&format!(r#""target":"{target_b}""#))
            && status.contains(r#""registered":true"#),
        "{status}"
    );

    // The provider's call comes from the address DNS gave: it is the trunk's...
    let from_b = run_sipp_to(
        ivr.sip_addr(),
        &dir,
        "trunk_provider_call.xml",
        &["-s", "acct", "-i", "127.0.0.3"],
    );
    assert!(from_b.success(), "{}\n{}", from_b.errors, ivr.log());
    let log = ivr.wait_for_log(&["event=\"trunk_call\""], WAIT);
    assert!(
        log.contains("trunk=carrier") && log.contains(&format!("dialled={DID}")),
        "{log}"
    );
    // ...and the same call from an address DNS did not give is refused.
    let from_elsewhere = run_sipp_to(
        ivr.sip_addr(),
        &dir,
        "trunk_refused.xml",
        &["-s", "acct", "-i", "127.0.0.4"],
    );
    assert!(
        from_elsewhere.success(),
        "{}\n{}",
        from_elsewhere.errors,
        ivr.log()
    );
    ivr.wait_for_log(&["unknown_source_refused", "127.0.0.4"], WAIT);
    let _ = std::fs::remove_dir_all(&dir);
}
