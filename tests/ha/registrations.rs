//! Staff phones registered through the proxy (issue 16): Kamailio forwards the REGISTER to a node
//! with a Path naming itself and the phone's address (RFC 3327), the node stores and echoes it,
//! and a desk call's INVITE to the phone carries that Path as its Route: it reaches the phone
//! through the proxy, record-routed, so the phone's BYE finds the node holding the call.
//!
//! One node here: two nodes need a store they share, and `serve` takes only SQLite on this
//! branch (each node its own file). The store's side of sharing (a binding written by one node
//! read by another) is the conformance suite's; the node-to-node merge is `call::dial::remote`'s.

use std::process::Command;
use std::time::Duration;

use crate::cluster::{self, Kamailio, TEST_DEFINES};
use crate::common::{self, Ivr, staff::Staff};

const WAIT: Duration = Duration::from_secs(40);

/// A node behind the proxy (as `cluster::start_node`) with staff user alice in the desk group
/// and the desk flow.
fn desk_node() -> Ivr {
    let dir = common::unique_temp_dir("ha-reg-config");
    let config = dir.join("ivr.toml");
    std::fs::write(
        &config,
        "[sip.limits]\nexempt = [\"127.0.0.1/32\"]\n[callers]\ntrusted_proxies = [\"127.0.0.1\"]\n\
         [call]\nring_ms = 0\nanswer_delay_ms = 0\n\
         [staff]\nalgorithms = [\"MD5\", \"SHA-256\"]\n\
         [[staff.users]]\nname = \"alice\"\npassword = \"s3cret\"\n\
         [desk]\naccept_timeout_s = 4\nringback = \"us\"\nring_each_s = 15\nredirect_hosts = []\n\
         [[desk.groups]]\nname = \"desk\"\nmembers = [\"alice\"]\n",
    )
    .expect("write node config");
    let flow = common::manifest_dir().join("tests/flows/desk.toml");
    Ivr::start_on(
        "127.0.0.1:0",
        &[
            "--config",
            config.to_str().expect("utf-8"),
            "--flow",
            flow.to_str().expect("utf-8"),
        ],
    )
}

/// sipp registers alice through `proxy` from `port` (where the phone will listen: the proxy's
/// Path names the address the REGISTER came from), Contact on the same port.
fn register_through(proxy: std::net::SocketAddr, dir: &std::path::Path, port: u16) {
    let port = port.to_string();
    let err = dir.join("register-errors.log");
    let out = Command::new("sipp")
        .arg(proxy.to_string())
        .arg("-sf")
        .arg(common::manifest_dir().join("tests/sipp/register_contact.xml"))
        .args(["-i", "127.0.0.1", "-p", &port])
        .args(["-m", "1", "-timeout", "30s", "-timeout_error", "-nostdin"])
        .args(["-s", "alice", "-au", "alice", "-ap", "s3cret"])
        .args(["-key", "contact_port", &port])
        .arg("-trace_err")
        .arg("-error_file")
        .arg(&err)
        .current_dir(dir)
        .output()
        .expect("run sipp");
    assert!(
        out.status.success(),
        "REGISTER through the proxy failed: {}\n{}",
        std::fs::read_to_string(&err).unwrap_or_default(),
        String::from_utf8_lossy(&out.stdout)
    );
}

#[test]
fn a_phone_registered_through_the_proxy_is_rung_through_it_and_bridged() {
    let Some(bin) = cluster::tools() else {
        return;
    };
    let node = desk_node();
    let kam = Kamailio::start(&bin, &[node.sip_addr()], TEST_DEFINES);
    let dir = common::unique_temp_dir("ha-reg");
    let port = common::free_port();

    register_through(kam.addr(), &dir, port);
    // The node stored the proxy's Path (naming the proxy, and the phone's address as received).
    let log = node.wait_for_log(&["event=\"register\"", "user=alice"], WAIT);
    let line = log
        .lines()
        .find(|l| l.contains("event=\"register\"") && l.contains("user=alice"))
        .expect("register line");
    assert!(
        line.contains(&format!("path=<sip:{};lr;received=", kam.addr())),
        "the REGISTER reached the node without the proxy's Path: {line}"
    );

    let messages = dir.join("phone-messages.log");
    let phone = Staff::start_with(
        &dir,
        "127.0.0.1",
        port,
        "staff_accept_bye_routed.xml",
        500,
        &[
            "-trace_msg",
            "-message_file",
            messages.to_str().expect("utf-8"),
        ],
    );
    let caller = common::run_sipp_to(
        kam.addr(),
        &dir,
        "uac_caller.xml",
        &["-key", "caller", "+15551230002"],
    );
    assert!(
        caller.success(),
        "caller: {}\n{}",
        caller.errors,
        node.log()
    );
    phone.assert_completed();
    node.wait_for_log(&["outcome=\"bridged\""], WAIT);

    // The INVITE the phone got came through the proxy: its Via on top, its Record-Route.
    let text = std::fs::read_to_string(&messages)
        .expect("phone's messages")
        .replace("\r\n", "\n");
    let invite = text
        .split("\n\n")
        .find(|m| m.contains("INVITE sip:alice@"))
        .unwrap_or_else(|| panic!("no INVITE in the phone's messages:\n{text}"));
    let top_via = invite
        .lines()
        .find(|l| l.starts_with("Via:"))
        .expect("a Via");
    assert!(
        top_via.contains(&kam.addr().to_string()),
        "the INVITE did not come through the proxy (top {top_via:?}):\n{invite}"
    );
    assert!(
        invite
            .lines()
            .any(|l| l.starts_with("Record-Route:") && l.contains(&kam.addr().to_string())),
        "the proxy did not record-route the INVITE to the phone:\n{invite}"
    );
}

/// The shared store between nodes, with the node's own store (its SQLite file, or its database
/// under IVR_TEST_STORE=postgres) standing in for the shared one (this test process is the
/// "other node"): a phone registered with another node (a row
/// this node's registrar never saw) is rung by a desk call here and bridged; and a phone that
/// registers here is written through to the store for the other nodes.
#[test]
fn a_phone_registered_with_another_node_is_rung_from_the_store_and_local_ones_are_written_to_it() {
    if !common::require_tool("sipp") {
        return;
    }
    use ivr::store::Binding;

    let node = desk_node();
    let dir = common::unique_temp_dir("ha-reg-shared");
    let phone = Staff::start(&dir, "staff_accept_bye.xml", 500);
    let store = common::db::open_store(&node.dir().join("data"));
    let now = jiff::Timestamp::now();
    store
        .put_binding(&Binding {
            user: "alice".into(),
            contact: phone.uri(),
            source: format!("127.0.0.1:{}", phone.port).parse().expect("addr"),
            transport: "udp".into(),
            path: Vec::new(),
            expires_at: now + jiff::SignedDuration::from_secs(600),
            node: "other-node".into(),
        })
        .expect("the other node's binding");

    let caller = common::run_sipp(&node, "uac_caller.xml", &["-key", "caller", "+15551230003"]);
    assert!(
        caller.success(),
        "caller: {}\n{}",
        caller.errors,
        node.log()
    );
    phone.assert_completed();
    node.wait_for_log(&["outcome=\"bridged\""], WAIT);

    // alice registers a phone with this node directly: the node writes it to the store.
    let port = common::free_port().to_string();
    let reg = common::run_sipp(
        &node,
        "register_contact.xml",
        &[
            "-s",
            "alice",
            "-au",
            "alice",
            "-ap",
            "s3cret",
            "-key",
            "contact_port",
            &port,
        ],
    );
    assert!(reg.success(), "register: {}\n{}", reg.errors, node.log());
    let contact = format!("sip:alice@127.0.0.1:{port}");
    let deadline = std::time::Instant::now() + WAIT;
    let written = loop {
        let rows = store
            .bindings("alice", jiff::Timestamp::now())
            .expect("read bindings");
        if let Some(b) = rows.into_iter().find(|b| b.contact == contact) {
            break b;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the node's registration never reached the store:\n{}",
            node.log()
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    assert_ne!(written.node, "other-node");
    assert_eq!((written.transport.as_str(), written.path.len()), ("udp", 0));
    assert!(written.expires_at > jiff::Timestamp::now() + jiff::SignedDuration::from_secs(60));
}
