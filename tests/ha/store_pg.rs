//! `[store] url = "postgres://..."` on the real binary (issue 16): two `ivr serve` nodes share
//! one throw-away PostgreSQL database. A caller leaves a voicemail on node A; the call record
//! (marked with node A's name) and the voicemail are rows in PostgreSQL, `ivr cdr export`
//! reads them through the same URL, and each webhook event reaches a real HTTP receiver exactly
//! once although both nodes' outbox workers poll the same outbox (each event is leased to one).
//!
//! Skips (SKIP line) without PostgreSQL or sipp; fails instead with IVR_REQUIRE_INTEROP=1.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use crate::common::hook::Hook;
use crate::common::{self, Ivr, manifest_dir, require_tool, run_sipp, unique_temp_dir};
use crate::pg;

const CALLER: &str = "+15551230001";
/// Generous wait for what happens asynchronously (never a timed assertion).
const WAIT: Duration = Duration::from_secs(30);

/// A node's config: the shared database, its own name, the one webhook receiver.
fn node_config(dir: &Path, node: &str, db: &str, hook: &Hook) -> std::path::PathBuf {
    let path = dir.join(format!("{node}.toml"));
    let text = format!(
        "[call]\nring_ms = 0\n\n[webhooks]\nurl = \"{}\"\n\n[store]\nurl = \"{db}\"\n\n\
         [cluster]\nnode = \"{node}\"\n",
        hook.url()
    );
    std::fs::write(&path, text).expect("write config");
    path
}

fn start_node(config: &Path) -> Ivr {
    let flow = manifest_dir().join("tests/flows/voicemail.toml");
    Ivr::start(&[
        "--config",
        config.to_str().expect("utf-8 path"),
        "--flow",
        flow.to_str().expect("utf-8 path"),
    ])
}

/// Rows of `sql` as text columns.
fn query(db: &str, sql: &str) -> Vec<Vec<Option<String>>> {
    common::db::pg_rows(db, sql).unwrap_or_else(|e| panic!("{sql}: {e}"))
}

#[test]
fn two_nodes_on_one_postgres_keep_the_call_and_deliver_each_webhook_once() {
    if !require_tool("sipp") {
        return;
    }
    let Some(db) = pg::database() else {
        return;
    };
    let dir = unique_temp_dir("store-pg");
    let hook = Hook::start(0);
    let a = start_node(&node_config(&dir, "node-a", &db, &hook));
    let b = start_node(&node_config(&dir, "node-b", &db, &hook));
    for node in [&a, &b] {
        let log = node.wait_for_log(&["store opened"], WAIT);
        assert!(log.contains("postgresql://postgres@127.0.0.1"), "{log}");
        assert!(!log.contains("STORE UNAVAILABLE"), "{log}");
    }

    common::write_tone_audio(a.dir(), 3);
    let run = run_sipp(&a, "uac_voicemail_once.xml", &["-key", "caller", CALLER]);
    assert!(run.success(), "sipp failed:\n{}\n{}", run.errors, a.log());
    hook.wait_until("call_ended", |r| {
        r.iter().any(|r| r.event() == "call_ended")
    });

    // The call and its voicemail are in PostgreSQL, the call marked with the node that took it.
    let calls = query(&db, "SELECT call_id, outcome, node, caller FROM calls");
    assert_eq!(calls.len(), 1, "{calls:?}");
    let call_id = calls[0][0].clone().expect("call_id");
    assert_eq!(calls[0][1].as_deref(), Some("voicemail"), "{calls:?}");
    assert_eq!(calls[0][2].as_deref(), Some("node-a"), "{calls:?}");
    assert_eq!(calls[0][3].as_deref(), Some(CALLER), "{calls:?}");
    let vms = query(&db, "SELECT call_id, caller FROM voicemails");
    assert_eq!(
        vms,
        [[Some(call_id.clone()), Some(CALLER.to_string())]],
        "{vms:?}"
    );

    // The CLI reads the same database through the config's URL.
    let out = Command::new(env!("CARGO_BIN_EXE_ivr"))
        .args(["cdr", "export", "--config"])
        .arg(dir.join("node-b.toml"))
        .output()
        .expect("run ivr cdr export");
    let csv = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(csv.contains(&call_id) && csv.contains("voicemail"), "{csv}");

    // Wait until the outbox says every event is delivered, then count what the receiver got.
    let deadline = Instant::now() + WAIT;
    loop {
        let left = query(
            &db,
            "SELECT COUNT(*)::TEXT FROM outbox WHERE delivered_at IS NULL",
        );
        if left[0][0].as_deref() == Some("0") {
            break;
        }
        assert!(Instant::now() < deadline, "outbox not delivered: {left:?}");
        std::thread::sleep(Duration::from_millis(50));
    }
    let mut seen: BTreeMap<String, u32> = BTreeMap::new();
    for r in hook.requests() {
        *seen.entry(r.event()).or_default() += 1;
    }
    let once: BTreeMap<String, u32> = ["call_started", "voicemail_recorded", "call_ended"]
        .into_iter()
        .map(|e| (e.to_string(), 1))
        .collect();
    assert_eq!(seen, once, "each event exactly once");
    let queued = query(&db, "SELECT COUNT(*)::TEXT FROM outbox");
    assert_eq!(queued[0][0].as_deref(), Some("3"), "{queued:?}");
    drop((a, b));
    let _ = std::fs::remove_dir_all(&dir);
}

/// A node that dies holding an event's lease: another node's worker leaves the event alone
/// until the lease runs out, then delivers it, once. (Reading the outbox without leases, as the
/// worker did before, it was sent at once, under the dead node's lease: delivered_at before
/// lease_until.)
#[test]
fn an_event_leased_by_a_dead_node_goes_out_once_from_another_after_the_lease() {
    use ivr::notify::WebhookTargets;
    use ivr::notify::{CallStarted, DeliveryPolicy, Endpoint, Notifier, OutboxEvent};
    use ivr::store::{OutboxStore, PgStore};
    use jiff::{SignedDuration, Timestamp};
    use std::sync::Arc;

    let Some(db) = pg::database() else {
        return;
    };
    // Connected here, off any runtime (the blocking client runs its own).
    let store = Arc::new(PgStore::connect(&db).expect("connect"));
    let event = OutboxEvent::call_started(
        "dead-node-call",
        Timestamp::now(),
        CallStarted {
            caller: CALLER.into(),
            called: "+15559990000".into(),
            client: None,
            after_hours: true,
            repeat: false,
        },
    );
    let id = store.enqueue(&event).expect("enqueue");
    let now = Timestamp::now();
    let lease_until = now + SignedDuration::from_secs(2);
    let held = store
        .claim_outbox("node-dead", now, lease_until, 10)
        .expect("claim");
    assert_eq!(held.iter().map(|r| r.id).collect::<Vec<_>>(), [id]);

    let hook = Hook::start(0);
    let targets = WebhookTargets {
        primary: Some(Endpoint::new(&hook.url(), None).expect("endpoint")),
        ..WebhookTargets::default()
    };
    let policy = DeliveryPolicy {
        node: "node-b".into(),
        lease: Duration::from_secs(10),
        max_sleep: Duration::from_millis(100),
        store_retry: Duration::from_millis(50),
        ..DeliveryPolicy::default()
    };
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let worker = {
        let _in_rt = rt.enter();
        Notifier::new(store.clone(), targets, policy)
            .spawn(async move {
                let _ = stopped.await;
            })
            .expect("worker")
    };
    hook.wait_until("the event", |r| !r.is_empty());
    let delivered = query(
        &db,
        &format!("SELECT delivered_at::TEXT FROM outbox WHERE id = {id}"),
    );
    let delivered_at: i64 = delivered[0][0]
        .as_deref()
        .unwrap_or_else(|| panic!("not marked delivered: {delivered:?}"))
        .parse()
        .expect("ms");
    assert!(
        delivered_at >= lease_until.as_millisecond(),
        "sent at {delivered_at}, inside node-dead's lease (until {})",
        lease_until.as_millisecond()
    );
    let _ = stop.send(());
    rt.block_on(worker).expect("worker stops");
    let got: Vec<i64> = hook.requests().iter().map(|r| r.delivery()).collect();
    assert_eq!(got, [id], "delivered once");
}

/// A database that is down at start is like an unopenable SQLite file: a loud error, and the
/// line still answers (without memory). Needs no PostgreSQL: nothing listens on the port.
#[test]
fn an_unreachable_database_at_start_still_answers_calls() {
    if !require_tool("sipp") {
        return;
    }
    let dir = unique_temp_dir("store-pg-down");
    let port = crate::common::free_port();
    let config = dir.join("ivr.toml");
    std::fs::write(
        &config,
        format!("[store]\nurl = \"postgres://ivr:s3cret@127.0.0.1:{port}/ivr\"\n"),
    )
    .expect("write config");
    let ivr = Ivr::start(&["--config", config.to_str().expect("utf-8 path")]);
    let log = ivr.wait_for_log(&["STORE UNAVAILABLE"], WAIT);
    assert!(log.contains("ERROR"), "{log}");
    assert!(!log.contains("s3cret"), "the password was logged:\n{log}");
    let run = run_sipp(&ivr, "uac_caller.xml", &["-key", "caller", CALLER]);
    assert!(run.success(), "sipp failed:\n{}\n{}", run.errors, ivr.log());
    let log = ivr.wait_for_log(&["event=\"ended\""], WAIT);
    assert!(!log.contains("panicked"), "{log}");
    drop(ivr);
    let _ = std::fs::remove_dir_all(&dir);
}
