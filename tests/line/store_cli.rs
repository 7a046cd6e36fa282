//! `ivr cdr export` and `ivr voicemail ack|list` run as the real binary against a data directory
//! filled through the library's store API.

use crate::common;

use std::path::Path;
use std::process::{Command, Output};

use ivr::repeat::{RepeatPolicy, normalise};
use ivr::store::traits::*;
use ivr::store::{
    AckOutcome, CallStart, Cdr, NewVoicemail, Outcome, SqliteStore, Store, Voicemail,
};
use jiff::Timestamp;

fn t(s: &str) -> Timestamp {
    s.parse().expect("test timestamp")
}

/// `ivr args` on the store of the `--data` directory they name (see `common::db`).
fn ivr(args: &[&str]) -> Output {
    common::db::ivr_with_args(args)
        .env_remove("RUST_LOG")
        .output()
        .expect("run ivr")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// Record a whole call through the API, as the call shell will.
fn call(
    store: &dyn Store,
    id: &str,
    caller: &str,
    at: &str,
    client: Option<(&str, bool, f64)>,
    after_hours: bool,
    outcome: Outcome,
) {
    let caller_id = normalise(caller, Some("1"));
    let (client_name, agreement, rate) = match client {
        Some((name, agreement, rate)) => (Some(name.to_string()), agreement, rate),
        None => (None, false, if after_hours { 2.0 } else { 1.0 }),
    };
    let start = CallStart {
        call_id: id.into(),
        caller: caller_id.clone(),
        caller_raw: caller.into(),
        called: "100".into(),
        client: client_name.clone(),
        started_at: t(at),
        after_hours,
        agreement,
        rate_multiplier: rate,
        repeat_rule: std::sync::Arc::new(RepeatPolicy::default()),
        node: "test-node".into(),
    };
    let repeat = store.call_started(&start).expect("start").repeat;
    let started = t(at);
    store
        .call_ended(&Cdr {
            call_id: id.into(),
            caller: caller_id.as_str().into(),
            caller_raw: caller.into(),
            called: "100".into(),
            client: client_name,
            started_at: started,
            answered_at: Some(started + jiff::SignedDuration::from_secs(1)),
            ended_at: Some(started + jiff::SignedDuration::from_secs(300)),
            talk_seconds: if outcome == Outcome::Bridged { 240 } else { 0 },
            after_hours,
            agreement,
            rate_multiplier: rate,
            agreed_terms: after_hours,
            digits: "51".into(),
            ticket: Some(format!("T-{id}")),
            outcome: Some(outcome),
            end_reason: "BYE from caller".into(),
            repeat,
            answered_by: (outcome == Outcome::Bridged).then(|| "alice".into()),
            incident: None,
        })
        .expect("end");
}

/// The store of data directory `dir` (SQLite, or PostgreSQL under IVR_TEST_STORE) with calls.
fn filled_store(dir: &Path) -> Box<dyn Store> {
    let store = common::db::open_store(dir);
    call(
        store.as_ref(),
        "in-hours",
        "5551230001",
        "2026-11-27T15:00:00Z",
        None,
        false,
        Outcome::ClosedHours,
    );
    call(
        store.as_ref(),
        "no-agreement",
        "5559990000",
        "2026-11-28T03:00:00Z",
        None,
        true,
        Outcome::Voicemail,
    );
    call(
        store.as_ref(),
        "agreement",
        "5551230001",
        "2026-11-28T04:00:00Z",
        Some(("Acme, Inc.", true, 1.5)),
        true,
        Outcome::Bridged,
    );
    call(
        store.as_ref(),
        "repeat",
        "+1 555 123 0001",
        "2026-11-28T04:10:00Z",
        Some(("Acme, Inc.", true, 1.5)),
        true,
        Outcome::Bridged,
    );
    store
}

fn csv_rows(csv_text: &str) -> Vec<Vec<String>> {
    let mut reader = csv::Reader::from_reader(csv_text.as_bytes());
    let header: Vec<String> = reader
        .headers()
        .expect("header")
        .iter()
        .map(String::from)
        .collect();
    assert_eq!(header, ivr::store::CDR_COLUMNS);
    reader
        .records()
        .map(|r| r.expect("record").iter().map(String::from).collect())
        .collect()
}

#[test]
fn cdr_export_writes_every_call_with_its_multiplier() {
    let dir = common::unique_temp_dir("cdr-export");
    drop(filled_store(&dir));
    let out = ivr(&["cdr", "export", "--data", dir.to_str().expect("utf8")]);
    assert!(out.status.success(), "stderr: {}", text(&out.stderr));
    let rows = csv_rows(&text(&out.stdout));
    // call_id, caller, client, after_hours, agreement, rate_multiplier, outcome, repeat
    let summary: Vec<[&str; 8]> = rows
        .iter()
        .map(|r| {
            [
                r[0].as_str(),
                r[5].as_str(),
                r[6].as_str(),
                r[7].as_str(),
                r[8].as_str(),
                r[9].as_str(),
                r[13].as_str(),
                r[15].as_str(),
            ]
        })
        .collect();
    assert_eq!(
        summary,
        [
            [
                "in-hours",
                "+15551230001",
                "",
                "false",
                "false",
                "1",
                "closed_hours",
                "false"
            ],
            [
                "no-agreement",
                "+15559990000",
                "",
                "true",
                "false",
                "2",
                "voicemail",
                "false"
            ],
            [
                "agreement",
                "+15551230001",
                "Acme, Inc.",
                "true",
                "true",
                "1.5",
                "bridged",
                "false"
            ],
            [
                "repeat",
                "+15551230001",
                "Acme, Inc.",
                "true",
                "true",
                "1.5",
                "bridged",
                "true"
            ],
        ]
    );
    let agreement = &rows[2];
    assert_eq!(agreement[1], "2026-11-28T04:00:00Z");
    assert_eq!(agreement[2], "2026-11-28T04:00:01Z");
    assert_eq!(agreement[3], "2026-11-28T04:05:00Z");
    assert_eq!(agreement[4], "240");
    assert_eq!(agreement[10], "true");
    assert_eq!(agreement[11], "51");
    assert_eq!(agreement[12], "T-agreement");
    assert_eq!(agreement[14], "BYE from caller");

    // --from/--to select by start time (half-open), --out writes a file.
    let file = dir.join("night.csv");
    let out = ivr(&[
        "cdr",
        "export",
        "--data",
        dir.to_str().expect("utf8"),
        "--from",
        "2026-11-27T22:00:00-05:00",
        "--to",
        "2026-11-28T04:10:00Z",
        "--out",
        file.to_str().expect("utf8"),
    ]);
    assert!(out.status.success(), "stderr: {}", text(&out.stderr));
    assert!(out.stdout.is_empty());
    assert!(text(&out.stderr).contains("wrote 2 call records"));
    let rows = csv_rows(&std::fs::read_to_string(&file).expect("read export"));
    let ids: Vec<&str> = rows.iter().map(|r| r[0].as_str()).collect();
    assert_eq!(ids, ["no-agreement", "agreement"]);
    let _ = std::fs::remove_dir_all(&dir);
}

fn add_voicemail(store: &dyn Store) -> i64 {
    store
        .add_voicemail(
            &NewVoicemail {
                call_id: "no-agreement".into(),
                caller: "+15559990000".into(),
                client: None,
                ticket: Some("T-9".into()),
                path: "voicemail/no-agreement.wav".into(),
                duration_ms: 8_000,
                created_at: t("2020-11-28T03:01:00Z"),
            },
            t("2020-11-28T03:21:00Z"),
        )
        .expect("voicemail")
}

#[test]
fn voicemail_ack_acks_once_and_rejects_unknown_ids() {
    let dir = common::unique_temp_dir("vm-ack");
    let store = filled_store(&dir);
    let id = add_voicemail(store.as_ref());
    let data = dir.to_str().expect("utf8");
    let id_arg = id.to_string();

    let out = ivr(&["voicemail", "list", "--data", data]);
    assert!(out.status.success(), "stderr: {}", text(&out.stderr));
    let list = text(&out.stdout);
    assert!(list.contains(&format!("{id}\t2020-11-28T03:01:00Z\t+15559990000\t-\tT-9\t8.0\tOVERDUE since 2020-11-28T03:21:00Z\tvoicemail/no-agreement.wav")), "{list}");

    let out = ivr(&["voicemail", "ack", &id_arg, "--by", "alice", "--data", data]);
    assert!(out.status.success(), "stderr: {}", text(&out.stderr));
    assert_eq!(
        text(&out.stdout),
        format!("voicemail {id} acknowledged by alice; its callback timer is stopped\n")
    );
    let vm: Voicemail = store.voicemail(id).expect("read").expect("exists");
    assert_eq!(vm.acked_by.as_deref(), Some("alice"));
    assert!(vm.acked_at.is_some());
    assert!(
        store
            .due_sla_timers(t("2030-01-01T00:00:00Z"))
            .expect("due")
            .is_empty()
    );

    let out = ivr(&["voicemail", "ack", &id_arg, "--by", "bob", "--data", data]);
    assert!(out.status.success(), "stderr: {}", text(&out.stderr));
    let again = text(&out.stdout);
    assert!(
        again.starts_with(&format!(
            "voicemail {id} was already acknowledged by alice at "
        )),
        "{again}"
    );
    // The first acknowledgement stands.
    assert!(matches!(
        store.ack_voicemail(id, "carol", Timestamp::now()),
        Ok(AckOutcome::AlreadyAcked { by, .. }) if by == "alice"
    ));

    let out = ivr(&["voicemail", "ack", "999", "--data", data]);
    assert_eq!(out.status.code(), Some(1));
    let err = text(&out.stderr);
    assert!(
        err.contains("no voicemail with id 999 in") && err.contains("ivr voicemail list"),
        "{err}"
    );

    let out = ivr(&["voicemail", "list", "--data", data]);
    assert!(text(&out.stdout).contains("acked by alice at "));
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn wrong_data_directory_is_an_error_not_a_new_database() {
    if common::db::sqlite_only("a data directory without ivr.db") {
        return;
    }
    let dir = common::unique_temp_dir("no-db");
    let out = ivr(&["cdr", "export", "--data", dir.to_str().expect("utf8")]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("ivr.db not found"),
        "{}",
        text(&out.stderr)
    );
    assert!(!dir.join("ivr.db").exists());
    let _ = std::fs::remove_dir_all(&dir);
}

/// Run `ivr args` with `dir` read-only: a read-only bind mount in a private mount namespace when
/// root (mode bits do not stop root), mode 0555 otherwise. `None` when neither is possible.
fn ivr_with_read_only_dir(dir: &Path, args: &[&str]) -> Option<Output> {
    use std::os::unix::fs::PermissionsExt;
    let probe = dir.join("probe");
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o555)).expect("chmod");
    let root = std::fs::write(&probe, b"x").is_ok();
    let _ = std::fs::remove_file(&probe);
    if !root {
        let out = ivr(args);
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o755)).expect("chmod");
        return Some(out);
    }
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    let d = dir.to_str().expect("utf8");
    let script =
        r#"d="$1"; shift; mount --bind "$d" "$d" && mount -o remount,bind,ro "$d" && exec "$@""#;
    let out = Command::new("unshare")
        .args(["-m", "sh", "-c", script, "sh", d, env!("CARGO_BIN_EXE_ivr")])
        .args(args)
        .output()
        .ok()?;
    // unshare or mount not permitted here: sh/unshare report it before ivr runs.
    let err = text(&out.stderr);
    if err.contains("unshare:") || err.contains("mount:") {
        return None;
    }
    Some(out)
}

#[test]
fn read_only_data_directory_gives_a_clear_error() {
    if common::db::sqlite_only("a read-only directory holding ivr.db") {
        return;
    }
    let dir = common::unique_temp_dir("ro-data");
    let store = filled_store(&dir);
    let id = add_voicemail(store.as_ref());
    drop(store);
    let data = dir.to_str().expect("utf8").to_string();
    let id_arg = id.to_string();
    let Some(out) = ivr_with_read_only_dir(
        &dir,
        &[
            "voicemail",
            "ack",
            &id_arg,
            "--by",
            "alice",
            "--data",
            &data,
        ],
    ) else {
        eprintln!(
            "note: skipped: cannot make a directory read-only here (root without mount namespaces)"
        );
        return;
    };
    assert_eq!(out.status.code(), Some(1), "stdout: {}", text(&out.stdout));
    let err = text(&out.stderr);
    assert!(
        err.contains(&format!("data directory {data} is read-only: ")),
        "stderr: {err}"
    );
    // Nothing was acknowledged.
    let store = SqliteStore::open(&dir).expect("reopen writable");
    assert_eq!(
        store.voicemail(id).expect("read").expect("exists").acked_at,
        None
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// Issue 16: `IVR_STORE_URL` names the store for the CLI over `--data` (so a password need
/// not sit in a config file, and the CLI reads what a line started with it writes); a bad one
/// is an error that names the variable but not the password. Before, the variable was ignored
/// and this export failed with "ivr.db not found" in the empty `--data` directory.
#[test]
fn ivr_store_url_in_the_environment_names_the_store_for_the_cli() {
    let root = common::unique_temp_dir("store-env");
    let db = root.join("elsewhere/calls.db");
    std::fs::create_dir_all(db.parent().expect("parent")).expect("mkdir");
    let store = SqliteStore::open_path(&db).expect("create the database");
    call(
        &store,
        "env-call",
        "+15550100",
        "2026-11-28T03:00:00Z",
        None,
        true,
        Outcome::Voicemail,
    );
    drop(store);
    let empty = root.join("data");
    std::fs::create_dir_all(&empty).expect("mkdir");
    let export = |url: &str| {
        Command::new(env!("CARGO_BIN_EXE_ivr"))
            .args(["cdr", "export", "--data"])
            .arg(&empty)
            .env("IVR_STORE_URL", url)
            .env_remove("RUST_LOG")
            .output()
            .expect("run ivr")
    };
    let out = export(&format!("sqlite://{}", db.display()));
    assert!(out.status.success(), "stderr: {}", text(&out.stderr));
    assert!(
        text(&out.stdout).contains("env-call"),
        "{}",
        text(&out.stdout)
    );
    assert!(!empty.join("ivr.db").exists());

    let out = export("mysql://ivr:s3cret@db/ivr");
    let err = text(&out.stderr);
    assert!(!out.status.success());
    assert!(
        err.contains("IVR_STORE_URL") && err.contains("unknown store"),
        "{err}"
    );
    assert!(!err.contains("s3cret"), "{err}");
    let _ = std::fs::remove_dir_all(&root);
}
