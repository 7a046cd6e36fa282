//! Staff registration (issue 6, first step): a sipp UAC registers with digest auth against the
//! real `ivr` binary. Right password → 200 with the binding; wrong password → 401 again.
//!
//! sipp 3.6 answers only the first `WWW-Authenticate` and only with MD5, so these servers run
//! with `staff.algorithms = ["MD5", "SHA-256"]`; the shipped default offers SHA-256 first
//! (RFC 8760), which the endpoint unit tests cover.

use crate::common;

use std::path::PathBuf;
use std::time::Duration;

use common::{Ivr, require_tool, run_sipp, unique_temp_dir};

const LOG_WAIT: Duration = Duration::from_secs(10);

/// A config file with one staff user, alice / s3cret.
fn staff_config() -> PathBuf {
    let path = unique_temp_dir("register-config").join("ivr.toml");
    std::fs::write(
        &path,
        "[staff]\nalgorithms = [\"MD5\", \"SHA-256\"]\n\n\
         [[staff.users]]\nname = \"alice\"\npassword = \"s3cret\"\ndisplay = \"Alice\"\n",
    )
    .unwrap_or_else(|e| panic!("writing {}: {e}", path.display()));
    path
}

fn start() -> Ivr {
    let config = staff_config();
    let ivr = Ivr::start(&["--config", config.to_str().expect("utf-8 temp path")]);
    // Read at start; the server no longer needs it.
    if let Some(dir) = config.parent() {
        let _ = std::fs::remove_dir_all(dir);
    }
    ivr
}

#[test]
fn sipp_registers_with_the_right_password() {
    if !require_tool("sipp") {
        return;
    }
    let ivr = start();
    let run = run_sipp(
        &ivr,
        "register_ok.xml",
        &["-s", "alice", "-au", "alice", "-ap", "s3cret"],
    );
    assert!(
        run.success(),
        "sipp register_ok.xml failed ({}):\n{}\n--- ivr log:\n{}",
        run.status,
        run.errors,
        ivr.log()
    );
    let log = ivr.wait_for_log(
        &["event=\"register\"", "user=alice", "expires=\"120\""],
        LOG_WAIT,
    );
    assert!(!log.contains("register_failed"), "{log}");
}

#[test]
fn sipp_wrong_password_is_challenged_again() {
    if !require_tool("sipp") {
        return;
    }
    let ivr = start();
    let run = run_sipp(
        &ivr,
        "register_wrong.xml",
        &["-s", "alice", "-au", "alice", "-ap", "not-the-password"],
    );
    assert!(
        run.success(),
        "sipp register_wrong.xml failed ({}):\n{}\n--- ivr log:\n{}",
        run.status,
        run.errors,
        ivr.log()
    );
    let log = ivr.wait_for_log(&["event=\"register_failed\"", "wrong password"], LOG_WAIT);
    assert!(!log.contains("event=\"register\""), "{log}");
}
