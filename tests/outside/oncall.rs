//! The on-call rota on the real binary: `ivr oncall` prints who is on call and the next changes,
//! `ivr simulate` says whom a dial rings, and a call to a desk group whose member is `oncall`
//! rings the phone of whoever is on call (sipp as the caller and as that phone), not the phone
//! of the colleague whose week it is not; `/api/staff` says whom `oncall` means.

use crate::admin_support;
use crate::common;

use std::process::Command;
use std::time::Duration;

use common::staff::Staff;
use common::{Ivr, cdr_rows, free_port, manifest_dir, require_tool, run_sipp, unique_temp_dir};

const WAIT: Duration = Duration::from_secs(40);

/// alice, bob (with a mobile) and carol, MD5 first (sipp 3.6 answers only the first challenge),
/// by the week from Monday 2026-11-30 09:00 New York time; bob covers Christmas.
const ROTA: &str = "[staff]\nalgorithms = [\"MD5\", \"SHA-256\"]\n\
    [[staff.users]]\nname = \"alice\"\npassword = \"alice-pw\"\n\
    [[staff.users]]\nname = \"bob\"\npassword = \"bob-pw\"\nmobile = \"+15550002\"\n\
    [[staff.users]]\nname = \"carol\"\npassword = \"carol-pw\"\n\
    [oncall]\nhandover = \"Mon 09:00\"\nstart = \"2026-11-30\"\n\
    rotation = [\"alice\", \"bob\", \"carol\"]\n\
    [[oncall.overrides]]\nuser = \"bob\"\nfrom = \"2026-12-24T17:00\"\nto = \"2026-12-27T09:00\"\n";

fn write_config(label: &str, extra: &str) -> std::path::PathBuf {
    let path = unique_temp_dir(label).join("ivr.toml");
    std::fs::write(&path, format!("{ROTA}{extra}")).expect("write config");
    path
}

fn ivr(args: &[&str], stdin: &str) -> (bool, String) {
    use std::io::Write as _;
    let mut child = Command::new(env!("CARGO_BIN_EXE_ivr"))
        .args(args)
        .current_dir(manifest_dir())
        .env_remove("RUST_LOG")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("spawn ivr");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(stdin.as_bytes())
        .expect("stdin");
    let out = child.wait_with_output().expect("ivr output");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

#[test]
fn oncall_prints_who_is_on_call_and_the_next_changes_in_local_time() {
    let config = write_config("oncall-cli", "");
    let (ok, out) = ivr(
        &[
            "oncall",
            "--config",
            config.to_str().expect("utf-8"),
            "--at",
            "2026-12-22T12:00:00-05:00",
            "--next",
            "3",
        ],
        "",
    );
    assert!(ok, "{out}");
    assert_eq!(
        out,
        "time: 2026-12-22T17:00:00Z (Tue 2026-12-22 12:00 EST America/New_York)\n\
         on call: alice (rotation) since Mon 2026-12-21 09:00 EST until Thu 2026-12-24 17:00 EST\n\
         next changes:\n  \
           Thu 2026-12-24 17:00 EST  bob <+15550002> (override)\n  \
           Sun 2026-12-27 09:00 EST  alice (rotation)\n  \
           Mon 2026-12-28 09:00 EST  bob <+15550002> (rotation)\n"
    );
    // A rota naming someone who is no staff user stops, naming the key.
    let bad = write_config("oncall-cli-bad", "");
    let text = std::fs::read_to_string(&bad)
        .expect("config")
        .replace("\"carol\"]\n", "\"zed\"]\n");
    std::fs::write(&bad, text).expect("write");
    let (ok, out) = ivr(&["oncall", "--config", bad.to_str().expect("utf-8")], "");
    assert!(!ok, "{out}");
    assert!(
        out.contains("oncall.rotation = \"zed\": not a [[staff.users]] name"),
        "{out}"
    );
}

/// `ivr simulate` of the desk flow on Christmas Day (bob, by the override) with `extra` config;
/// its output.
fn simulate_christmas(label: &str, extra: &str) -> String {
    let config = write_config(label, extra);
    let flow = manifest_dir().join("tests/flows/desk.toml");
    let (ok, out) = ivr(
        &[
            "simulate",
            flow.to_str().expect("utf-8"),
            "--config",
            config.to_str().expect("utf-8"),
            "--prompts",
            "prompts",
            "--at",
            "2026-12-25T10:00:00-05:00",
        ],
        "\n",
    );
    assert!(ok, "{out}");
    out
}

#[test]
fn simulate_says_whom_the_dial_rings_at_the_simulated_time() {
    let out = simulate_christmas(
        "oncall-simulate",
        "[[desk.groups]]\nname = \"desk\"\nmembers = [\"oncall\"]\n",
    );
    assert!(
        out.contains(
            "rings desk: oncall = bob (override) since Thu 2026-12-24 17:00 EST until Sun \
             2026-12-27 09:00 EST, if registered"
        ),
        "{out}"
    );
    // With an external trunk that allows bob's mobile, the dial names it as serve rings it.
    let out = simulate_christmas(
        "oncall-simulate-mobile",
        "[desk]\nexternal_trunk = \"carrier\"\nnumber_allow = [\"+1555*\"]\n\
         [[desk.groups]]\nname = \"desk\"\nmembers = [\"oncall\"]\n\
         [[trunks]]\nname = \"carrier\"\nregistrar = \"sip:127.0.0.1:5099\"\n\
         username = \"acct\"\npassword = \"pw\"\nregister = false\n",
    );
    assert!(
        out.contains(
            "rings desk: oncall = bob (override) since Thu 2026-12-24 17:00 EST until Sun \
             2026-12-27 09:00 EST, their phones if registered, and their mobile +15550002 \
             through the external trunk"
        ),
        "{out}"
    );
}

/// sipp registers `user` with a Contact at `port`, where its phone is (or nothing listens).
fn register(ivr: &Ivr, user: &str, password: &str, port: u16) {
    let port = port.to_string();
    let reg = run_sipp(
        ivr,
        "register_contact.xml",
        &[
            "-s",
            user,
            "-au",
            user,
            "-ap",
            password,
            "-key",
            "contact_port",
            &port,
        ],
    );
    assert!(
        reg.success(),
        "register {user}: {}\n{}",
        reg.errors,
        ivr.log()
    );
}

#[test]
fn a_call_rings_whoever_is_on_call_and_not_the_others() {
    if !require_tool("sipp") {
        return;
    }
    let dir = unique_temp_dir("oncall-call");
    let bob_phone = Staff::start(&dir, "staff_accept_bye.xml", 300);
    let config = write_config(
        "oncall-call",
        &format!(
            "[admin]\ntoken_hash = \"{}\"\n\
             [desk]\naccept_timeout_s = 4\n\
             [[desk.groups]]\nname = \"desk\"\nmembers = [\"oncall\"]\n",
            admin_support::hash_token(admin_support::TOKEN)
        ),
    );
    let flow = manifest_dir().join("tests/flows/desk.toml");
    // Tuesday 2026-12-08 22:00 in New York: bob's week (from Monday 12-07 09:00).
    let ivr = Ivr::start(&[
        "--config",
        config.to_str().expect("utf-8"),
        "--flow",
        flow.to_str().expect("utf-8"),
        "--now",
        "2026-12-09T03:00:00Z",
        "--admin",
        "127.0.0.1:0",
    ]);
    let admin = ivr.admin_addr();
    // Alice and bob both have a registered phone; alice's Contact is a port nobody answers on.
    register(&ivr, "alice", "alice-pw", free_port());
    register(&ivr, "bob", "bob-pw", bob_phone.port);
    // The staff page's `oncall` member: bob, ringable at his phone.
    let member = staff_oncall_member(admin);
    assert_eq!(member["on_call"], "bob", "{member:#}");
    assert_eq!(member["ringable"], true, "{member:#}");
    let contact = format!("sip:bob@127.0.0.1:{}", bob_phone.port);
    assert_eq!(
        member["contacts"],
        serde_json::json!([contact]),
        "{member:#}"
    );
    let caller = run_sipp(&ivr, "uac_caller.xml", &["-key", "caller", "+15551230004"]);
    assert!(caller.success(), "caller: {}\n{}", caller.errors, ivr.log());
    bob_phone.assert_completed();
    let log = ivr.wait_for_log(&["outcome=\"bridged\""], WAIT);
    assert!(
        log.contains("event=\"dial_oncall\" user=bob why=rotation"),
        "{log}"
    );
    let legs: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("event=\"dial_leg\""))
        .collect();
    assert!(
        !legs.is_empty()
            && legs
                .iter()
                .all(|l| l.contains("bob") && !l.contains("alice")),
        "only bob's phone rings: {legs:#?}"
    );
    let rows = cdr_rows(&ivr.dir().join("data"));
    let outcomes: Vec<(&str, &str)> = rows
        .iter()
        .map(|r| (r["outcome"].as_str(), r["answered_by"].as_str()))
        .collect();
    assert_eq!(outcomes, [("bridged", "bob")], "{rows:?}");
}

/// The desk group's `oncall` member on `/api/staff`, once the SIP thread has published bob's
/// registration (it does right after its 200 OK; the wait only absorbs scheduling).
fn staff_oncall_member(admin: std::net::SocketAddr) -> serde_json::Value {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async {
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        loop {
            let staff = admin_support::json(
                admin_support::client()
                    .get(admin_support::url(admin, "/api/staff"))
                    .header("Authorization", format!("Bearer {}", admin_support::TOKEN))
                    .send()
                    .await
                    .expect("GET /api/staff"),
            )
            .await;
            let member = staff["groups"][0]["members"][0].clone();
            if member["ringable"] == true || std::time::Instant::now() > deadline {
                return member;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
}
