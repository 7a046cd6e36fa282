//! HTTPS webhooks and custom headers, on loopback: a receiver with a certificate from a CA made
//! in the test (tests/common/tls.rs), the real worker, and the real `ivr serve`. Without the CA
//! configured the certificate is refused in plain words and retried; with it (a restart, since
//! `[webhooks]` does not hot-reload) the same events arrive once each.

use crate::common;

use std::collections::{BTreeMap, HashSet};
use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::hook::{Hook, Hooked};
use common::tls::TestCa;
use common::{CallIds, Ivr, UdpUa, in_dialog, manifest_dir, place_call, sdp_offer};
use ivr::notify::{
    BackoffPolicy, CallStarted, DeliveryPolicy, Endpoint, EventKind, Notifier, OutboxEvent, Target,
    WebhookTargets, verify,
};
use ivr::store::{MemoryStore, OutboxRow};
use jiff::Timestamp;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

const SECRET: &str = "whsec_https_test";
const WAIT: Duration = Duration::from_secs(30);
const SIP_WAIT: Duration = Duration::from_secs(10);
/// What an admin must read when the receiver's CA is not trusted (the port follows).
const NOT_TRUSTED: &str = "certificate not trusted (unknown issuer) for 127.0.0.1:";
const SET_CA: &str = "set webhooks.ca_file";

// ---------------------------------------------------------------------------------------------
// The worker on its own.

fn fast_policy() -> DeliveryPolicy {
    DeliveryPolicy {
        backoff: BackoffPolicy {
            base: Duration::from_millis(20),
            cap: Duration::from_millis(200),
            jitter: 0.2,
        },
        request_timeout: Duration::from_secs(5),
        max_sleep: Duration::from_millis(500),
        store_retry: Duration::from_millis(50),
        ..DeliveryPolicy::default()
    }
}

struct Worker {
    notifier: Notifier,
    stop: oneshot::Sender<()>,
    handle: JoinHandle<()>,
}

impl Worker {
    fn start(store: Arc<MemoryStore>, targets: WebhookTargets) -> Worker {
        let notifier = Notifier::new(store, targets, fast_policy());
        let (stop, rx) = oneshot::channel();
        let handle = notifier
            .spawn(async move {
                let _ = rx.await;
            })
            .expect("worker starts");
        Worker {
            notifier,
            stop,
            handle,
        }
    }

    async fn stop(self) {
        let _ = self.stop.send(());
        tokio::time::timeout(WAIT, self.handle)
            .await
            .expect("worker stops")
            .unwrap();
    }
}

fn started(call: &str) -> OutboxEvent {
    OutboxEvent::call_started(
        call,
        Timestamp::now(),
        CallStarted {
            caller: "+15550001111".into(),
            called: "+15559990000".into(),
            client: None,
            after_hours: true,
            repeat: false,
        },
    )
}

fn https_target(url: &str, ca_file: Option<&Path>) -> WebhookTargets {
    WebhookTargets {
        primary: Some(Endpoint::new(url, Some(SECRET.into())).unwrap()),
        escalation: None,
        ca_file: ca_file.map(Path::to_path_buf),
    }
}

async fn eventually(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + WAIT;
    while !cond() {
        assert!(tokio::time::Instant::now() < deadline, "timed out: {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn delivered(rows: &[OutboxRow]) -> bool {
    rows.iter().all(|e| e.delivered_at.is_some())
}

fn assert_signed(r: &Hooked) {
    assert!(
        verify(
            SECRET.as_bytes(),
            r.header("x-ivr-timestamp"),
            &r.body,
            r.header("x-ivr-signature")
        ),
        "bad or missing X-Ivr-Signature: {:?}",
        r.headers
    );
}

fn temp_ca(ca: &TestCa, label: &str) -> std::path::PathBuf {
    let path = common::unique_temp_dir(label).join("ca.pem");
    ca.write_pem(&path);
    path
}

#[tokio::test]
async fn https_delivery_trusts_the_configured_ca_and_keeps_the_signature() {
    let ca = TestCa::new("ivr test CA");
    let hook = Hook::start_https(0, ca.server_config("127.0.0.1"));
    let store = Arc::new(MemoryStore::new());
    let ca_file = temp_ca(&ca, "https-ok");
    let w = Worker::start(store.clone(), https_target(&hook.url(), Some(&ca_file)));
    let id = w
        .notifier
        .enqueue(started("call-a"))
        .await
        .unwrap()
        .unwrap();
    eventually("delivered over HTTPS", || delivered(&store.snapshot())).await;
    w.stop().await;
    let reqs = hook.requests();
    assert_eq!(reqs.len(), 1, "one request");
    assert_eq!(reqs[0].delivery(), id);
    assert_eq!(reqs[0].event(), "call_started");
    assert_signed(&reqs[0]);
    assert_eq!(store.snapshot()[0].attempts, 0, "first try succeeded");
}

#[tokio::test]
async fn an_untrusted_certificate_is_named_retried_and_delivered_once_the_ca_is_set() {
    let ca = TestCa::new("private helpdesk CA");
    let hook = Hook::start_https(0, ca.server_config("127.0.0.1"));
    let store = Arc::new(MemoryStore::new());
    // The system's CAs only: the private CA is unknown.
    let w = Worker::start(store.clone(), https_target(&hook.url(), None));
    let id = w
        .notifier
        .enqueue(started("call-a"))
        .await
        .unwrap()
        .unwrap();
    eventually("retried after certificate failures", || {
        store.snapshot().iter().any(|e| e.attempts >= 3)
    })
    .await;
    w.stop().await;
    let row = store.snapshot()[0].clone();
    assert!(row.delivered_at.is_none());
    let err = row.last_error.expect("last_error");
    eprintln!("last_error: {err}\nreceiver saw: {:?}", hook.tls_failures());
    let want = format!("{NOT_TRUSTED}{} — {SET_CA}", hook.port());
    assert!(err.starts_with(&want), "last_error {err:?} lacks {want:?}");
    assert!(
        hook.requests().is_empty(),
        "no request crossed the refused handshake"
    );
    // Each attempt reached the receiver and was turned down by the client's check.
    let failures = hook.tls_failures();
    assert!(failures.len() >= 3, "{failures:?}");
    assert!(
        failures.iter().all(|f| f.contains("UnknownCA")),
        "{failures:?}"
    );

    // Restarted with the CA: the same event goes out, once.
    let ca_file = temp_ca(&ca, "https-fixed");
    let w = Worker::start(store.clone(), https_target(&hook.url(), Some(&ca_file)));
    eventually("delivered after the fix", || delivered(&store.snapshot())).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    w.stop().await;
    let reqs = hook.requests();
    assert_eq!(reqs.len(), 1, "delivered exactly once");
    assert_eq!(reqs[0].delivery(), id);
    assert_signed(&reqs[0]);
}

#[tokio::test]
async fn a_certificate_for_another_host_is_named_as_such() {
    let ca = TestCa::new("ivr test CA");
    // Trusted CA, but the certificate names 127.0.0.2 and the URL 127.0.0.1.
    let hook = Hook::start_https(0, ca.server_config("127.0.0.2"));
    let store = Arc::new(MemoryStore::new());
    let ca_file = temp_ca(&ca, "https-name");
    let w = Worker::start(store.clone(), https_target(&hook.url(), Some(&ca_file)));
    w.notifier.enqueue(started("call-a")).await.unwrap();
    eventually("a failed attempt", || {
        store.snapshot().iter().any(|e| e.attempts >= 1)
    })
    .await;
    w.stop().await;
    let err = store.snapshot()[0].last_error.clone().unwrap();
    assert!(
        err.starts_with(&format!(
            "certificate not valid for this host name (it is for 127.0.0.2) for 127.0.0.1:{}",
            hook.port()
        )),
        "{err}"
    );
}

#[tokio::test]
async fn an_https_url_to_a_plain_http_port_says_so() {
    // A plain HTTP server answers the TLS ClientHello the way nginx and friends do: 400.
    let plain = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = plain.local_addr().unwrap().port();
    std::thread::spawn(move || {
        use std::io::{Read, Write};
        for mut conn in plain.incoming().map_while(Result::ok) {
            let _ = conn.read(&mut [0u8; 1024]);
            let _ = conn.write_all(b"HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\n\r\n");
        }
    });
    let store = Arc::new(MemoryStore::new());
    let url = format!("https://127.0.0.1:{port}/hook");
    let w = Worker::start(store.clone(), https_target(&url, None));
    w.notifier.enqueue(started("call-a")).await.unwrap();
    eventually("a failed attempt", || {
        store.snapshot().iter().any(|e| e.attempts >= 1)
    })
    .await;
    w.stop().await;
    let err = store.snapshot()[0].last_error.clone().unwrap();
    eprintln!("last_error: {err}");
    assert!(
        err.starts_with("TLS handshake failed (")
            && err.ends_with(&format!(
                "for 127.0.0.1:{port} — check that the URL's port speaks HTTPS"
            )),
        "{err}"
    );
}

#[tokio::test]
async fn each_target_gets_its_own_headers() {
    let primary = Hook::start(0);
    let escalation = Hook::start(0);
    let store = Arc::new(MemoryStore::new());
    let headers = |pairs: &[(&str, &str)]| -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    };
    let targets = WebhookTargets {
        primary: Some(
            Endpoint::new(&primary.url(), Some(SECRET.into()))
                .unwrap()
                .with_headers(&headers(&[("Authorization", "Bearer helpdesk-token")]))
                .unwrap(),
        ),
        escalation: Some(
            Endpoint::new(&escalation.url(), Some(SECRET.into()))
                .unwrap()
                .with_headers(&headers(&[("X-Api-Key", "pager-key")]))
                .unwrap(),
        ),
        ca_file: None,
    };
    let w = Worker::start(store.clone(), targets);
    w.notifier.enqueue(started("call-a")).await.unwrap();
    let overdue = OutboxEvent {
        kind: EventKind::CallbackOverdue,
        target: Target::Escalation,
        ..started("call-b")
    };
    w.notifier.enqueue(overdue).await.unwrap();
    eventually("both delivered", || {
        store.snapshot().len() == 2 && delivered(&store.snapshot())
    })
    .await;
    w.stop().await;
    let p = &primary.requests()[0];
    assert_eq!(p.header("authorization"), "Bearer helpdesk-token");
    assert_eq!(p.header("x-api-key"), "");
    assert_signed(p);
    let e = &escalation.requests()[0];
    assert_eq!(e.header("x-api-key"), "pager-key");
    assert_eq!(e.header("authorization"), "");
    assert_signed(e);
}

// ---------------------------------------------------------------------------------------------
// The real `ivr serve`.

/// A directory with `ivr.toml` (written by each step) and the data directory the runs share.
struct Site {
    dir: std::path::PathBuf,
}

impl Site {
    fn new(label: &str) -> Site {
        Site {
            dir: common::unique_temp_dir(label),
        }
    }

    fn config(&self) -> std::path::PathBuf {
        self.dir.join("ivr.toml")
    }

    fn data(&self) -> std::path::PathBuf {
        self.dir.join("data")
    }

    fn write_config(&self, text: &str) {
        std::fs::write(self.config(), text).expect("write ivr.toml");
    }

    /// `ivr serve` on this site's config and data directory, run from elsewhere (so a
    /// relative `ca_file` must resolve against the config file's directory).
    fn serve(&self) -> Ivr {
        let flow = manifest_dir().join("tests/flows/greeting.toml");
        Ivr::serve_files(
            &std::env::temp_dir(),
            &self.config(),
            &self.data(),
            Some(&flow),
            &[],
        )
    }

    /// `(id, event, attempts, delivered, last_error)` of every outbox row.
    fn outbox(&self) -> Vec<(i64, String, i64, bool, Option<String>)> {
        crate::common::db::rows(
            &self.data(),
            "SELECT id, event_type, attempts, delivered_at, last_error FROM outbox ORDER BY id",
        )
        .into_iter()
        .map(|r| {
            let [id, event, attempts, delivered, error] =
                <[Option<String>; 5]>::try_from(r).expect("5 columns");
            let number = |v: Option<String>| v.expect("not NULL").parse().expect("a number");
            (
                number(id),
                event.expect("event_type"),
                number(attempts),
                delivered.is_some(),
                error,
            )
        })
        .collect()
    }
}

/// One call answered and hung up by us: its call_started and call_ended events are queued.
fn one_call(ivr: &Ivr) -> String {
    let ua = UdpUa::new(ivr.sip_addr());
    let ids = CallIds::new();
    let ok = place_call(&ua, &ids, &sdp_offer(9, "0 101"), SIP_WAIT);
    ua.send(in_dialog(&ua, &ids, &ok, "BYE", 2));
    let resp = ua.expect_response(&ids.call_id, |s| s >= 200, SIP_WAIT);
    assert_eq!(resp.status(), Some(200), "BYE answer:\n{}", resp.text());
    ids.call_id
}

fn wait_until<T>(what: &str, ivr: &Ivr, mut cond: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + WAIT;
    loop {
        if let Some(v) = cond() {
            return v;
        }
        assert!(
            Instant::now() < deadline,
            "timed out waiting for {what}; ivr log:\n{}",
            ivr.log()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn webhooks_config(url: &str, extra: &str) -> String {
    format!("[call]\nring_ms = 0\n\n[webhooks]\nurl = \"{url}\"\nsecret = \"{SECRET}\"\n{extra}\n")
}

#[test]
fn serve_retries_an_untrusted_https_receiver_until_restarted_with_its_ca() {
    let ca = TestCa::new("private helpdesk CA");
    let hook = Hook::start_https(0, ca.server_config("127.0.0.1"));
    let site = Site::new("https-serve");
    site.write_config(&webhooks_config(&hook.url(), ""));

    let ivr = site.serve();
    let call_id = one_call(&ivr);
    let want = format!("{NOT_TRUSTED}{} — {SET_CA}", hook.port());
    let rows = wait_until("certificate failures retried", &ivr, || {
        let rows = site.outbox();
        rows.iter().any(|r| r.2 >= 2).then_some(rows)
    });
    for (id, event, attempts, done, err) in &rows {
        assert!(
            !done,
            "row {id} ({event}) delivered through an untrusted certificate"
        );
        if *attempts > 0 {
            let err = err.as_deref().unwrap_or("");
            assert!(err.starts_with(&want), "row {id}: last_error {err:?}");
        }
    }
    let log = ivr.wait_for_log(&["webhook delivery failed, will retry", &want], WAIT);
    eprintln!(
        "log line: {}",
        log.lines().find(|l| l.contains(&want)).unwrap_or_default()
    );
    assert!(!log.contains("https is not supported"), "{log}");
    assert!(hook.requests().is_empty());
    drop(ivr);

    // The fix: the CA next to the config, named relative to it; a restart on the same data.
    ca.write_pem(&site.dir.join("helpdesk-ca.pem"));
    site.write_config(&webhooks_config(
        &hook.url(),
        "ca_file = \"helpdesk-ca.pem\"",
    ));
    let ivr = site.serve();
    let rows = wait_until("every queued event delivered", &ivr, || {
        let rows = site.outbox();
        let events: HashSet<&str> = rows.iter().map(|r| r.1.as_str()).collect();
        (rows.iter().all(|r| r.3) && events.contains("call_ended")).then_some(rows.clone())
    });
    std::thread::sleep(Duration::from_millis(500));
    let reqs = hook.requests();
    let mut ids: Vec<i64> = reqs.iter().map(Hooked::delivery).collect();
    ids.sort_unstable();
    let rows_ids: Vec<i64> = rows.iter().map(|r| r.0).collect();
    assert_eq!(ids, rows_ids, "each queued event delivered exactly once");
    for r in &reqs {
        assert_eq!(r.call_id(), call_id);
        assert_signed(r);
    }
    assert!(
        reqs.iter().any(|r| r.event() == "call_started"),
        "{:?}",
        reqs.iter().map(Hooked::event).collect::<Vec<_>>()
    );

    // A reload that names a missing CA file is refused with the file named; the line keeps
    // running on what it has.
    site.write_config(&webhooks_config(&hook.url(), "ca_file = \"gone.pem\""));
    let out = Command::new(env!("CARGO_BIN_EXE_ivr"))
        .args(["reload", "--data"])
        .arg(site.data())
        .output()
        .expect("ivr reload");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        !out.status.success(),
        "reload accepted a missing CA file: {text}"
    );
    assert!(
        text.contains("webhooks.ca_file") && text.contains("gone.pem"),
        "{text}"
    );
}

#[test]
fn a_missing_or_empty_ca_file_stops_check_and_serve_naming_the_file() {
    let site = Site::new("https-bad-ca");
    std::fs::write(site.dir.join("not-a-ca.pem"), "just text\n").unwrap();
    for (name, why) in [
        ("missing.pem", "cannot read the CA file"),
        ("not-a-ca.pem", "holds no certificate"),
    ] {
        site.write_config(&webhooks_config(
            "https://127.0.0.1:9/hook",
            &format!("ca_file = \"{name}\""),
        ));
        let abs = site.dir.join(name);
        let check = Command::new(env!("CARGO_BIN_EXE_ivr"))
            .arg("check")
            .arg("--config")
            .arg(site.config())
            .output()
            .expect("ivr check");
        let err = String::from_utf8_lossy(&check.stderr);
        assert!(!check.status.success(), "ivr check accepted {name}");
        assert!(
            err.contains("webhooks.ca_file") && err.contains(&*abs.to_string_lossy()),
            "{err}"
        );
        assert!(err.contains(why), "{err}");
        let serve = Command::new(env!("CARGO_BIN_EXE_ivr"))
            .args(["serve", "--sip", "127.0.0.1:0", "--admin", "", "--config"])
            .arg(site.config())
            .arg("--data")
            .arg(site.data())
            .env_remove("RUST_LOG")
            .output()
            .expect("ivr serve");
        let err = String::from_utf8_lossy(&serve.stderr);
        assert!(!serve.status.success(), "ivr serve started with {name}");
        assert!(
            err.contains(&*abs.to_string_lossy()) && err.contains(why),
            "{err}"
        );
    }
}

#[test]
fn serve_sends_the_bearer_header_and_never_logs_it() {
    const TOKEN: &str = "hd-tok-6f1d9a7c2e";
    let ca = TestCa::new("helpdesk CA");
    let hook = Hook::start_https(0, ca.server_config("127.0.0.1"));
    let site = Site::new("https-headers");
    ca.write_pem(&site.dir.join("ca.pem"));
    // Debug logging everywhere: the token must not show up even there.
    site.write_config(&format!(
        "[log]\nfilter = \"debug\"\n\n{}",
        webhooks_config(
            &hook.url(),
            &format!(
                "ca_file = \"ca.pem\"\nheaders = {{ Authorization = \"Bearer {TOKEN}\" }}\n\
                 escalation_headers = {{ X-Api-Key = \"{TOKEN}-esc\" }}"
            ),
        )
    ));
    let ivr = site.serve();
    let call_id = one_call(&ivr);
    let reqs = hook.wait_until("call_started and call_ended", |r| {
        r.iter().any(|h| h.event() == "call_ended")
    });
    for r in &reqs {
        assert_eq!(r.call_id(), call_id);
        assert_eq!(r.header("authorization"), format!("Bearer {TOKEN}"));
        assert_signed(r);
    }
    // The log shows the deliveries (a debug line each) and the TLS work, never the token.
    let log = ivr.wait_for_log(&["webhook delivered", "webhook HTTPS trust loaded"], WAIT);
    assert!(!log.contains(TOKEN), "the token is in the log:\n{log}");
}
