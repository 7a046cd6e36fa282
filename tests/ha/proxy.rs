//! The shipped Kamailio config passes Kamailio's own check, spreads calls over both nodes, and
//! carries each call's in-dialog requests between the caller and the node holding the call.

use std::process::Command;
use std::time::Duration;

use crate::cluster::{self, Kamailio, TEST_DEFINES};
use crate::common;

/// `kamailio -c` on the shipped file, as shipped and with the overrides the tests use; then
/// Kamailio started with it and the shipped dispatcher.list answers (`-c` only parses: the
/// modules' checks of their parameters, the list and the script's variables run at start).
#[test]
fn shipped_config_passes_kamailio_check() {
    let Some(bin) = cluster::kamailio_bin() else {
        return;
    };
    let list = common::manifest_dir().join("config/kamailio/dispatcher.list");
    let mut overridden = vec![
        "-A".to_string(),
        "LISTEN=127.0.0.1:5999".to_string(),
        "-A".to_string(),
        format!("DSLIST=\"{}\"", list.display()),
    ];
    for d in TEST_DEFINES {
        overridden.extend(["-A".to_string(), d.to_string()]);
    }
    for extra in [Vec::new(), overridden] {
        let out = Command::new(&bin)
            .arg("-c")
            .arg("-f")
            .arg(cluster::shipped_config())
            .args(&extra)
            .output()
            .expect("run kamailio -c");
        let text = String::from_utf8_lossy(&out.stderr).to_string()
            + &String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success() && text.contains("config file ok"),
            "kamailio -c {extra:?} failed:\n{text}"
        );
    }
    drop(Kamailio::start_with_list(&bin, &list, TEST_DEFINES));
}

/// Four calls at once through the proxy land two on each node (round robin). Each node's BYE
/// after its greeting reaches the caller through the proxy (the BYE sipp receives carries the
/// proxy's Via on top), and a caller's BYE sent to the proxy ends the call on its node.
#[test]
fn calls_spread_over_both_nodes_and_in_dialog_requests_go_through_the_proxy() {
    let Some(bin) = cluster::tools() else {
        return;
    };
    let a = cluster::start_node(0);
    let b = cluster::start_node(0);
    let kam = Kamailio::start(&bin, &[a.sip_addr(), b.sip_addr()], TEST_DEFINES);

    let runs: Vec<_> = (0..4)
        .map(|i| {
            let proxy = kam.addr();
            std::thread::spawn(move || {
                let dir = common::unique_temp_dir(&format!("ha-caller-{i}"));
                let messages = dir.join("messages.log");
                let run = common::run_sipp_to(
                    proxy,
                    &dir,
                    "uac_basic.xml",
                    &[
                        "-trace_msg",
                        "-message_file",
                        messages.to_str().expect("utf-8"),
                    ],
                );
                let text = std::fs::read_to_string(&messages).unwrap_or_default();
                (run, text)
            })
        })
        .collect();
    for run in runs {
        let (run, messages) = run.join().expect("sipp thread");
        assert!(
            run.success(),
            "call through the proxy failed:\n{}",
            run.errors
        );
        let bye = messages
            .split("UDP message received")
            .find(|m| m.contains("BYE sip:"))
            .unwrap_or_else(|| panic!("sipp received no BYE:\n{messages}"));
        let top_via = bye
            .lines()
            .find(|l| l.starts_with("Via:"))
            .expect("Via in BYE");
        assert!(
            top_via.contains(&kam.addr().to_string()),
            "the node's BYE did not come through the proxy: {top_via}\n{bye}"
        );
    }
    a.wait_for_log(&["event=\"cdr\""], Duration::from_secs(10));
    b.wait_for_log(&["event=\"cdr\""], Duration::from_secs(10));
    let (on_a, on_b) = (
        cluster::calls_on_after(&a, 2),
        cluster::calls_on_after(&b, 2),
    );
    assert_eq!((on_a, on_b), (2, 2), "calls per node");

    // The caller hangs up: its BYE goes to the proxy, which routes it to the node.
    let dir = common::unique_temp_dir("ha-caller-bye");
    let run = common::run_sipp_to(
        kam.addr(),
        &dir,
        "uac_caller_hangup.xml",
        &["-key", "caller", "+15551230077", "-d", "500"],
    );
    assert!(run.success(), "caller hang-up failed:\n{}", run.errors);
    let hung_up = |n: &common::Ivr| n.log().contains("event=\"bye\"");
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while !(hung_up(&a) || hung_up(&b)) && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(
        hung_up(&a) || hung_up(&b),
        "no node logged the caller's BYE; A:\n{}\nB:\n{}",
        a.log(),
        b.log()
    );
}

/// Pike at the proxy: a source sending faster than the limit is banned (no answer at all, not
/// even to a slow request afterwards), while another source is still answered.
#[test]
fn a_flooding_source_is_banned_at_the_proxy_and_others_are_still_answered() {
    let Some(bin) = cluster::kamailio_bin() else {
        return;
    };
    // No node is needed: the requests are OPTIONS to the proxy itself, which it answers.
    let nowhere: std::net::SocketAddr = format!("127.0.0.1:{}", common::free_port())
        .parse()
        .expect("address");
    let mut defines = TEST_DEFINES.to_vec();
    defines.extend(["PIKE_UNIT=2", "PIKE_DENSITY=10", "BAN_S=60"]);
    let kam = Kamailio::start(&bin, &[nowhere], &defines);

    let flooder = std::net::UdpSocket::bind("127.0.0.3:0").expect("bind 127.0.0.3");
    let answered = |sock: &std::net::UdpSocket, count: usize| -> usize {
        let local = sock.local_addr().expect("local");
        for i in 0..count {
            let ping = format!(
                "OPTIONS sip:{addr} SIP/2.0\r\nVia: SIP/2.0/UDP {local};branch=z9hG4bK-{b}-{i}\r\n\
                 Max-Forwards: 70\r\nFrom: <sip:t@{local}>;tag=f{i}\r\nTo: <sip:{addr}>\r\n\
                 Call-ID: {b}-{i}@test.invalid\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n",
                addr = kam.addr(),
                b = common::token(),
            );
            sock.send_to(ping.as_bytes(), kam.addr()).expect("send");
        }
        sock.set_read_timeout(Some(Duration::from_millis(700)))
            .expect("timeout");
        let mut buf = [0u8; 4096];
        let mut n = 0;
        while let Ok((len, _)) = sock.recv_from(&mut buf) {
            if buf[..len].starts_with(b"SIP/2.0 200") {
                n += 1;
            }
        }
        n
    };
    let flood = answered(&flooder, 100);
    assert!(flood < 100, "every one of 100 OPTIONS answered: no limit");
    assert_eq!(answered(&flooder, 1), 0, "the banned source was answered");
    let bystander = std::net::UdpSocket::bind("127.0.0.4:0").expect("bind 127.0.0.4");
    assert_eq!(
        answered(&bystander, 1),
        1,
        "another source was not answered"
    );
    assert!(kam.log().contains("flood from 127.0.0.3"), "{}", kam.log());
    println!("pike: {flood} of 100 OPTIONS sent at once answered before the ban");
}

/// A caller behind NAT names a private address (10.0.0.5) in its Contact and SDP while its
/// requests come from 127.0.0.1. The proxy rewrites both to where the INVITE came from, so the
/// node's RTP and, after the greeting, its BYE reach the caller.
#[test]
fn a_caller_behind_nat_gets_the_nodes_rtp_and_bye() {
    let Some(bin) = cluster::tools() else {
        return;
    };
    let node = cluster::start_node(0);
    let kam = Kamailio::start(&bin, &[node.sip_addr()], TEST_DEFINES);
    let media = std::net::UdpSocket::bind("127.0.0.1:0").expect("bind RTP");
    let ua = common::UdpUa::new(kam.addr());
    let ids = common::CallIds::new();
    let sdp = common::sdp_offer(media.local_addr().expect("local").port(), "0 101")
        .replace("127.0.0.1", "10.0.0.5");
    let invite = common::invite(&ua, &ids, &sdp).replace(
        &format!("Contact: <sip:tester@{}>", ua.local()),
        "Contact: <sip:tester@10.0.0.5:5060>",
    );
    ua.send(invite);
    let ok = loop {
        let m = ua.expect_response(&ids.call_id, |_| true, Duration::from_secs(10));
        match m.status() {
            Some(100 | 180 | 183) => continue,
            Some(200) => break m,
            other => panic!("unexpected {other:?} to INVITE:\n{}", m.text()),
        }
    };
    ua.send(cluster::along_routes(
        common::in_dialog(&ua, &ids, &ok, "ACK", 1),
        &ok,
    ));

    media
        .set_read_timeout(Some(Duration::from_secs(5)))
        .expect("timeout");
    let mut buf = [0u8; 2048];
    let rtp = media.recv_from(&mut buf);
    assert!(
        rtp.is_ok(),
        "no RTP from the node at the caller's public address; node log:\n{}",
        node.log()
    );
    let bye = ua.expect_request(&ids.call_id, "BYE", Duration::from_secs(20));
    ua.send(common::ok_for(&bye));
    node.wait_for_log(&["event=\"cdr\""], Duration::from_secs(10));
}

/// The caller over TCP (the proxy reaches the node over UDP and record-routes both sides), and a
/// caller putting the node on hold and back with re-INVITE and UPDATE through the proxy.
#[test]
fn tcp_callers_and_hold_go_through_the_proxy() {
    let Some(bin) = cluster::tools() else {
        return;
    };
    let node = cluster::start_node(0);
    let kam = Kamailio::start(&bin, &[node.sip_addr()], TEST_DEFINES);
    let dir = common::unique_temp_dir("ha-tcp");
    let run = common::run_sipp_to(kam.addr(), &dir, "uac_basic.xml", &["-t", "t1"]);
    assert!(
        run.success(),
        "TCP caller through the proxy:\n{}",
        run.errors
    );
    let dir = common::unique_temp_dir("ha-hold");
    let run = common::run_sipp_to(kam.addr(), &dir, "uac_hold.xml", &[]);
    assert!(run.success(), "hold through the proxy:\n{}", run.errors);
    assert_eq!(cluster::calls_on_after(&node, 2), 2, "calls on the node");
}
