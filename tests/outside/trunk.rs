//! Carrier trunks (issue 15 item 1) against sipp playing the provider: its registrar challenges
//! ivr's REGISTER with 401 and checks the digest answer (`verifyauth`), grants a short expiry
//! that ivr refreshes before it runs out, and its proxy delivers a call to the registered
//! Contact, which ivr answers and routes by the trunk's DID. A registrar that does not answer,
//! then answers 503, is retried with backoff until it registers. A call from an address that is
//! no trunk's is refused with `[sip] unknown_sources = "refuse"`.

use crate::admin_support;
use crate::common;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use common::{
    Ivr, free_media_port, free_port, manifest_dir, require_tool, run_sipp_to, unique_temp_dir,
};

const DID: &str = "+442071234567";
const LOG_WAIT: Duration = Duration::from_secs(20);

/// `ivr serve` with one trunk registering at 127.0.0.1:`registrar_port` (acct / s3cret), its DID
/// answered by the hang-up flow, and `extra` config on top.
fn start_ivr(registrar_port: u16, extra: &str) -> Ivr {
    start_ivr_with(registrar_port, extra, &[])
}

fn start_ivr_with(registrar_port: u16, extra: &str, args: &[&str]) -> Ivr {
    let path = unique_temp_dir("trunk-config").join("ivr.toml");
    let hangup = manifest_dir().join("tests/flows/hangup.toml");
    std::fs::write(
        &path,
        format!(
            "{extra}\n[flows.numbers]\n\"{DID}\" = {hangup:?}\n\n\
             [[trunks]]\nname = \"carrier\"\nregistrar = \"sip:127.0.0.1:{registrar_port}\"\n\
             username = \"acct\"\npassword = \"s3cret\"\ndids = [\"{DID}\"]\n\
             retry_initial_s = 1\nretry_max_s = 4\n"
        ),
    )
    .unwrap_or_else(|e| panic!("writing {}: {e}", path.display()));
    let mut all = vec!["--config", path.to_str().expect("utf-8 temp path")];
    all.extend_from_slice(args);
    Ivr::start(&all)
}

/// A plain HTTP/1.1 GET on the admin server with the test token.
pub(crate) fn http_get(addr: std::net::SocketAddr, path: &str) -> String {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(addr).expect("connect admin");
    let token = admin_support::TOKEN;
    write!(s, "GET {path} HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {token}\r\nConnection: close\r\n\r\n").expect("send");
    let mut out = String::new();
    s.read_to_string(&mut out).expect("read");
    out
}

/// sipp as a UAS (the provider's registrar) on 127.0.0.1:`port`, one run of `scenario`.
struct SippServer {
    child: Child,
    errors: PathBuf,
}

impl SippServer {
    fn spawn(dir: &Path, scenario: &str, port: u16) -> SippServer {
        let errors = dir.join(format!("sipp-{scenario}-errors.log"));
        let out = std::fs::File::create(dir.join(format!("sipp-{scenario}-stdout.log")))
            .expect("sipp stdout file");
        let child = Command::new("sipp")
            .arg("-sf")
            .arg(manifest_dir().join("tests/sipp").join(scenario))
            .args(["-i", "127.0.0.1", "-p", &port.to_string()])
            .args(["-mp", &free_media_port().to_string()])
            .args(["-m", "1", "-timeout", "60s", "-timeout_error", "-nostdin"])
            .arg("-trace_err")
            .arg("-error_file")
            .arg(&errors)
            .current_dir(dir)
            .stdin(Stdio::null())
            .stdout(out.try_clone().expect("clone"))
            .stderr(out)
            .spawn()
            .unwrap_or_else(|e| panic!("running sipp: {e}"));
        SippServer { child, errors }
    }

    /// Waits for the scenario to end; panics with sipp's error log and ivr's log unless it
    /// passed.
    fn finish(mut self, ivr: &Ivr) {
        let status = self.child.wait().expect("sipp wait");
        assert!(
            status.success(),
            "sipp registrar failed ({status}):\n{}\n--- ivr log:\n{}",
            std::fs::read_to_string(&self.errors).unwrap_or_default(),
            ivr.log()
        );
    }
}

impl Drop for SippServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn registers_with_digest_refreshes_and_answers_the_carriers_call() {
    if !require_tool("sipp") {
        return;
    }
    let dir = unique_temp_dir("trunk-sipp");
    let port = free_port();
    let registrar = SippServer::spawn(&dir, "trunk_registrar.xml", port);
    // Give sipp a moment to bind before ivr's first REGISTER (a lost first one is retried
    // after 1 s anyway).
    std::thread::sleep(Duration::from_millis(300));
    let ivr = start_ivr_with(
        port,
        &format!(
            "[sip]\nunknown_sources = \"refuse\"\n[admin]\ntoken_hash = \"{}\"\n",
            admin_support::hash_token(admin_support::TOKEN)
        ),
        &["--admin", "127.0.0.1:0"],
    );
    // The scenario passes only if the challenge answer and both refreshes verify, each arriving
    // before the previous 4 s grant ran out.
    registrar.finish(&ivr);
    // sipp has sent its last 200; ivr logs it a moment later.
    let deadline = std::time::Instant::now() + LOG_WAIT;
    let log = loop {
        let log = ivr.wait_for_log(&["trunk registered", "granted_s=4"], LOG_WAIT);
        if log.matches("trunk registered").count() >= 3 || std::time::Instant::now() > deadline {
            break log;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(
        log.matches("trunk registered").count() >= 3,
        "first registration and two refreshes: {log}"
    );
    assert!(!log.contains("trunk_lapsed"), "{log}");
    let admin = ivr.admin_addr();
    let metrics = http_get(admin, "/metrics");
    assert!(
        metrics.contains("ivr_trunk_registered{trunk=\"carrier\"} 1"),
        "{metrics}"
    );
    assert!(
        metrics.contains("ivr_trunk_register_attempts_total{trunk=\"carrier\"}"),
        "{metrics}"
    );
    let status = http_get(admin, "/api/status");
    assert!(
        status.contains(r#""name":"carrier""#)
            && status.contains(r#""state":"registered""#)
            && status.contains(r#""registered":true"#),
        "{status}"
    );

    // The carrier delivers a call to the registered Contact (sip:acct@ivr).
    let run = run_sipp_to(
        ivr.sip_addr(),
        &dir,
        "trunk_provider_call.xml",
        &["-s", "acct"],
    );
    assert!(
        run.success(),
        "carrier call failed:\n{}\n--- ivr log:\n{}",
        run.errors,
        ivr.log()
    );
    let log = ivr.wait_for_log(&["event=\"trunk_call\"", "node=bye"], LOG_WAIT);
    assert!(
        log.contains("trunk=carrier") && log.contains(&format!("dialled={DID}")),
        "the call is the trunk's, for its DID: {log}"
    );

    // The same call from another host: refused.
    let run = run_sipp_to(
        ivr.sip_addr(),
        &dir,
        "trunk_refused.xml",
        &["-s", "acct", "-i", "127.0.0.2"],
    );
    assert!(
        run.success(),
        "403 expected:\n{}\n--- ivr log:\n{}",
        run.errors,
        ivr.log()
    );
    ivr.wait_for_log(&["unknown_source_refused", "127.0.0.2"], LOG_WAIT);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn unanswered_then_503_registrar_is_retried_with_backoff_until_it_registers() {
    if !require_tool("sipp") {
        return;
    }
    let dir = unique_temp_dir("trunk-sipp-503");
    let port = free_port();
    // Nothing listens yet: REGISTERs time out after 64*T1 (T1 = 50 ms here).
    let ivr = start_ivr(port, "[sip]\nt1_ms = 50\n");
    let log = ivr.wait_for_log(
        &["trunk registration failed", "transaction timeout"],
        LOG_WAIT,
    );
    assert!(log.contains("next try in"), "{log}");
    let registrar = SippServer::spawn(&dir, "trunk_registrar_503.xml", port);
    registrar.finish(&ivr);
    let log = ivr.wait_for_log(&["registrar answered 503", "granted_s=60"], LOG_WAIT);
    // The 503's Retry-After (1 s) was the wait before the next try.
    assert!(log.contains("retry_in_ms=1000"), "{log}");
    assert!(log.contains("trunk registered"), "{log}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn calls_from_elsewhere_are_answered_by_default() {
    if !require_tool("sipp") {
        return;
    }
    let dir = unique_temp_dir("trunk-sipp-default");
    // No registrar at all: the trunk's inbound side still applies, and the default policy
    // answers a call from another host as before trunks existed.
    let ivr = start_ivr(free_port(), "");
    let run = run_sipp_to(
        ivr.sip_addr(),
        &dir,
        "trunk_provider_call.xml",
        &["-s", DID, "-i", "127.0.0.2"],
    );
    assert!(
        run.success(),
        "call expected to be answered:\n{}\n--- ivr log:\n{}",
        run.errors,
        ivr.log()
    );
    let log = ivr.wait_for_log(&["node=bye"], LOG_WAIT);
    assert!(
        !log.contains("event=\"trunk_call\""),
        "not a trunk call: {log}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn shutdown_removes_the_binding_with_expires_zero() {
    if !require_tool("sipp") {
        return;
    }
    let dir = unique_temp_dir("trunk-sipp-unregister");
    let port = free_port();
    let registrar = SippServer::spawn(&dir, "trunk_registrar_unregister.xml", port);
    std::thread::sleep(Duration::from_millis(300));
    let ivr = start_ivr(port, "");
    ivr.wait_for_log(&["trunk registered", "granted_s=60"], LOG_WAIT);
    let status = Command::new("kill")
        .args(["-TERM", &ivr.pid().to_string()])
        .status()
        .expect("run kill");
    assert!(status.success());
    // The scenario passes only on an authenticated REGISTER with Expires: 0.
    registrar.finish(&ivr);
    ivr.wait_for_log(&["trunk unregistered", "shutdown_done"], LOG_WAIT);
    let _ = std::fs::remove_dir_all(&dir);
}
