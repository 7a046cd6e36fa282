//! Hot reload on the real binary: `ivr reload` and SIGHUP re-read the flow, a live call finishes
//! on the flow it started with, the next call runs the new one, and a broken flow keeps the old
//! set with the error's file:line on `ivr reload`'s stderr.
//!
//! Each flow names its nodes after itself (`a_menu`, `b_menu`, ...), so the log's
//! `event="node"` lines say which flow a call runs.

use crate::common;

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

use common::{CallIds, Ivr, UdpUa, place_call, sdp_offer, unique_temp_dir};

const SIP_WAIT: Duration = Duration::from_secs(10);
const WAIT: Duration = Duration::from_secs(30);

/// A menu (`<tag>_menu`) that waits `timeout` for a key, then plays `after` (`<tag>_after`) and
/// hangs up.
fn flow(tag: &str, menu_prompt: &str, after: &str, timeout: &str) -> String {
    format!(
        "name = \"flow-{tag}\"\nstart = \"{tag}_menu\"\n\n\
         [nodes.{tag}_menu]\ntype = \"gather\"\nprompt = \"{menu_prompt}\"\n\
         digits = {{ \"5\" = \"{tag}_done\" }}\ntimeout = \"{timeout}\"\nretries = 0\non_fail = \"{tag}_after\"\n\n\
         [nodes.{tag}_after]\ntype = \"play\"\nprompt = \"{after}\"\nnext = \"{tag}_done\"\n\n\
         [nodes.{tag}_done]\ntype = \"hangup\"\n"
    )
}

/// The log lines of one call.
fn call_lines(ivr: &Ivr, call_id: &str) -> String {
    ivr.log()
        .lines()
        .filter(|l| l.contains(call_id))
        .collect::<Vec<_>>()
        .join("\n")
}

/// Waits until call `call_id` has logged `needle`; returns the call's lines.
fn wait_call(ivr: &Ivr, call_id: &str, needle: &str) -> String {
    let deadline = std::time::Instant::now() + WAIT;
    loop {
        let lines = call_lines(ivr, call_id);
        if lines.contains(needle) {
            return lines;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "call {call_id} never logged {needle:?}; log:\n{}",
            ivr.log()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn ivr_reload(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_ivr"))
        .arg("reload")
        .args(args)
        .output()
        .expect("running ivr reload")
}

fn data_arg(ivr: &Ivr) -> PathBuf {
    ivr.dir().join("data")
}

fn write(path: &Path, text: &str) {
    std::fs::write(path, text).unwrap_or_else(|e| panic!("writing {}: {e}", path.display()));
}

/// The outcome file once it reports `generation`.
fn outcome(data: &Path, generation: u64) -> serde_json::Value {
    let deadline = std::time::Instant::now() + WAIT;
    loop {
        if let Ok(text) = std::fs::read_to_string(data.join("reload.json")) {
            let v: serde_json::Value = serde_json::from_str(&text).expect("reload.json is JSON");
            if v["generation"] == generation {
                return v;
            }
        }
        assert!(
            std::time::Instant::now() < deadline,
            "reload.json never reached generation {generation}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn reload_swaps_flows_for_new_calls_and_keeps_live_ones() {
    let dir = unique_temp_dir("reload");
    let flow_path = dir.join("flow.toml");
    let config_path = dir.join("ivr.toml");
    write(&flow_path, &flow("a", "press_5", "goodbye", "8s"));
    write(&config_path, "[sla]\ncallback_minutes = 30\n");
    let ivr = Ivr::start(&[
        "--config",
        config_path.to_str().expect("utf-8"),
        "--flow",
        flow_path.to_str().expect("utf-8"),
    ]);
    let data = data_arg(&ivr);
    let data_s = data.to_str().expect("utf-8").to_string();
    let pid_file = data.join("ivr.pid");
    assert_eq!(
        std::fs::read_to_string(&pid_file).expect("ivr.pid").trim(),
        ivr.pid().to_string()
    );
    let mode = std::fs::metadata(&pid_file)
        .expect("pid meta")
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600, "ivr.pid mode {mode:o}");

    // A live call on flow A, waiting in A's menu.
    let ua = UdpUa::new(ivr.sip_addr());
    let live = CallIds::new();
    let _live_ok = place_call(&ua, &live, &sdp_offer(9, "0 101"), SIP_WAIT);
    wait_call(&ivr, &live.call_id, "node=a_menu");

    // Flow B, reloaded by `ivr reload`.
    write(&flow_path, &flow("b", "open_hours", "call_again", "1s"));
    let out = ivr_reload(&["--data", &data_s]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "ivr reload failed: {stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_str(&stdout).expect("ivr reload prints JSON");
    assert_eq!(v["ok"], true, "{v}");
    assert_eq!(v["generation"], 1, "{v}");
    assert_eq!(v["flows_changed"], serde_json::json!(["default"]), "{v}");
    assert_eq!(v["restart_needed"], serde_json::json!([]), "{v}");

    // The next call runs B.
    let ua2 = UdpUa::new(ivr.sip_addr());
    let next = CallIds::new();
    let _next_ok = place_call(&ua2, &next, &sdp_offer(9, "0 101"), SIP_WAIT);
    wait_call(&ivr, &next.call_id, "node=b_menu");
    // The live call finishes on A: its menu times out into A's goodbye, never into B.
    let lines = wait_call(&ivr, &live.call_id, "prompt=goodbye");
    assert!(lines.contains("node=a_after"), "{lines}");
    assert!(
        !lines.contains("node=b_"),
        "live call moved to flow B:\n{lines}"
    );

    // A broken flow: `ivr reload` exits 1 naming file:line; the old set (B) keeps serving.
    let broken = flow("c", "open_hours", "call_again", "1s")
        .replace("next = \"c_done\"", "next = \"c_nowhere\"");
    let line = broken
        .lines()
        .position(|l| l.contains("c_nowhere"))
        .expect("broken line")
        + 1;
    write(&flow_path, &broken);
    let out = ivr_reload(&["--data", &data_s]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "stderr: {stderr}");
    let at = format!("{}:{line}", flow_path.display());
    assert!(stderr.contains(&at), "stderr lacks {at}: {stderr}");
    assert!(stderr.contains("c_nowhere"), "{stderr}");
    let v = outcome(&data, 2);
    assert_eq!(v["ok"], false, "{v}");
    let ua3 = UdpUa::new(ivr.sip_addr());
    let after_broken = CallIds::new();
    let _ok3 = place_call(&ua3, &after_broken, &sdp_offer(9, "0 101"), SIP_WAIT);
    wait_call(&ivr, &after_broken.call_id, "node=b_menu");
    ivr.wait_for_log(&["event=\"reload_failed\""], WAIT);

    // SIGHUP with a valid change (flow D, and a key that needs a restart).
    write(&flow_path, &flow("d", "press_5", "goodbye", "1s"));
    write(&config_path, "[sla]\ncallback_minutes = 45\n");
    let pid = libc::pid_t::try_from(ivr.pid()).expect("pid");
    // SAFETY: kill only sends a signal to our own child.
    assert_eq!(unsafe { libc::kill(pid, libc::SIGHUP) }, 0);
    let v = outcome(&data, 3);
    assert_eq!(v["ok"], true, "{v}");
    assert_eq!(v["restart_needed"], serde_json::json!(["sla"]), "{v}");
    ivr.wait_for_log(&["event=\"reload_restart_needed\" key=sla"], WAIT);
    let ua4 = UdpUa::new(ivr.sip_addr());
    let after_hup = CallIds::new();
    let _ok4 = place_call(&ua4, &after_hup, &sdp_offer(9, "0 101"), SIP_WAIT);
    wait_call(&ivr, &after_hup.call_id, "node=d_menu");

    // A clean exit removes the pid file.
    // SAFETY: as above.
    assert_eq!(unsafe { libc::kill(pid, libc::SIGTERM) }, 0);
    ivr.wait_for_log(&["event=\"shutdown\""], WAIT);
    // The second one hangs up the calls still live (this UA never answers their BYEs).
    // SAFETY: as above.
    assert_eq!(unsafe { libc::kill(pid, libc::SIGTERM) }, 0);
    let deadline = std::time::Instant::now() + WAIT;
    while pid_file.exists() {
        assert!(
            std::time::Instant::now() < deadline,
            "ivr.pid left after exit"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn reload_without_a_running_ivr_says_so() {
    let data = unique_temp_dir("reload-none");
    let out = ivr_reload(&["--data", data.to_str().expect("utf-8")]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("no ivr serve is running"), "{stderr}");

    // A pid file nobody's lock stands behind: stale, and no signal is sent to that pid.
    write(&data.join("ivr.pid"), &format!("{}\n", std::process::id()));
    write(&data.join("ivr.lock"), "");
    let out = ivr_reload(&["--data", data.to_str().expect("utf-8")]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("stale pid file"), "{stderr}");

    // `--config` finds the data directory the config names (relative to the config file).
    let conf_dir = unique_temp_dir("reload-conf");
    write(&conf_dir.join("ivr.toml"), "[data]\ndir = \"elsewhere\"\n");
    let out = ivr_reload(&[
        "--config",
        conf_dir.join("ivr.toml").to_str().expect("utf-8"),
    ]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    let named = format!("running on {}", conf_dir.join("elsewhere").display());
    assert!(stderr.contains(&named), "lacks {named:?}: {stderr}");
}
