//! Webhook delivery end to end: the real worker and `reqwest` posting to a tiny HTTP/1.1 server
//! on 127.0.0.1 that this test starts, records every request, and can be told to fail or to be
//! down (its port closed). Backoff is shortened to milliseconds so the faults play out in
//! seconds; waits are generous timeouts, never timed assertions.

use crate::common;

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use ivr::notify::{
    BackoffPolicy, CallStarted, DeliveryPolicy, Endpoint, EventKind, Notifier, OutboxEvent, Target,
    WebhookTargets, verify,
};
use ivr::sla::{self, SlaPolicy, SlaWheel};
use ivr::store::{MemoryStore, OutboxRow};
use ivr::store::{SlaState, SlaTimer};
use jiff::Timestamp;
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

const SECRET: &str = "whsec_test_secret";
const WAIT: Duration = Duration::from_secs(30);

// ---------------------------------------------------------------------------------------------
// The test HTTP server.

#[derive(Clone, Debug)]
struct Request {
    headers: HashMap<String, String>,
    body: Vec<u8>,
    /// The status the server answered.
    status: u16,
}

impl Request {
    fn json(&self) -> Value {
        serde_json::from_slice(&self.body).expect("body is JSON")
    }
    fn header(&self, name: &str) -> &str {
        self.headers.get(name).map(String::as_str).unwrap_or("")
    }
    fn delivery(&self) -> i64 {
        self.header("x-ivr-delivery").parse().expect("delivery id")
    }
}

type Responder = Arc<dyn Fn(&Request) -> u16 + Send + Sync>;

struct Server {
    addr: SocketAddr,
    log: Arc<Mutex<Vec<Request>>>,
    task: JoinHandle<()>,
}

impl Server {
    /// Listens on `port` (0: any) and answers each request with `respond(request)`.
    async fn start(port: u16, respond: Responder) -> Server {
        let listener = TcpListener::bind(("127.0.0.1", port)).await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let log = Arc::new(Mutex::new(Vec::new()));
        let log2 = log.clone();
        let task = tokio::spawn(async move {
            while let Ok((conn, _)) = listener.accept().await {
                let (log, respond) = (log2.clone(), respond.clone());
                tokio::spawn(async move {
                    let _ = serve(conn, &log, &respond).await;
                });
            }
        });
        Server { addr, log, task }
    }

    fn url(&self) -> String {
        format!("http://{}/hook", self.addr)
    }

    /// Closes the port (the listener is dropped with its task): connections are refused.
    fn stop(&self) {
        self.task.abort();
    }

    fn requests(&self) -> Vec<Request> {
        self.log.lock().unwrap().clone()
    }

    /// Requests answered 2xx, in arrival order.
    fn accepted(&self) -> Vec<Request> {
        self.requests()
            .into_iter()
            .filter(|r| (200..300).contains(&r.status))
            .collect()
    }
}

/// One request per connection (`Connection: close`): enough for `reqwest` and simplest.
async fn serve(
    mut conn: TcpStream,
    log: &Mutex<Vec<Request>>,
    respond: &Responder,
) -> std::io::Result<()> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    let head_end = loop {
        let n = conn.read(&mut chunk).await?;
        if n == 0 {
            return Ok(());
        }
        buf.extend_from_slice(&chunk[..n]);
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).to_string();
    let mut headers = HashMap::new();
    for line in head.lines().skip(1) {
        if let Some((k, v)) = line.split_once(':') {
            headers.insert(k.trim().to_ascii_lowercase(), v.trim().to_string());
        }
    }
    let len: usize = headers
        .get("content-length")
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    while buf.len() < head_end + len {
        let n = conn.read(&mut chunk).await?;
        if n == 0 {
            break;
        }
        buf.extend_from_slice(&chunk[..n]);
    }
    let mut req = Request {
        headers,
        body: buf[head_end..].to_vec(),
        status: 0,
    };
    req.status = respond(&req);
    log.lock().unwrap().push(req.clone());
    let reply = format!(
        "HTTP/1.1 {} Test\r\ncontent-length: 0\r\nconnection: close\r\n\r\n",
        req.status
    );
    conn.write_all(reply.as_bytes()).await?;
    conn.shutdown().await
}

fn ok() -> Responder {
    Arc::new(|_| 200)
}

/// A port nothing listens on (bound and released; nobody else takes loopback ports here).
fn closed_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().port()
}

// ---------------------------------------------------------------------------------------------
// Worker helpers.

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

fn primary(url: &str) -> WebhookTargets {
    WebhookTargets {
        primary: Some(Endpoint::new(url, Some(SECRET.into())).unwrap()),
        ..WebhookTargets::default()
    }
}

struct Worker {
    notifier: Notifier,
    stop: Option<oneshot::Sender<()>>,
    handle: JoinHandle<()>,
}

impl Worker {
    fn start(store: Arc<dyn ivr::store::OutboxStore>, targets: WebhookTargets) -> Worker {
        let notifier = Notifier::new(store, targets, fast_policy());
        let (tx, rx) = oneshot::channel();
        let handle = notifier
            .spawn(async move {
                let _ = rx.await;
            })
            .unwrap();
        Worker {
            notifier,
            stop: Some(tx),
            handle,
        }
    }

    /// Graceful stop, like a process shutting down.
    async fn stop(mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        tokio::time::timeout(WAIT, self.handle)
            .await
            .expect("worker stops")
            .unwrap();
    }
}

fn started(call: &str, n: u32) -> OutboxEvent {
    OutboxEvent::call_started(
        call,
        Timestamp::now(),
        CallStarted {
            caller: format!("+1555000{n:04}"),
            called: "+15559990000".into(),
            client: None,
            after_hours: true,
            repeat: false,
        },
    )
}

async fn eventually(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + WAIT;
    while !cond() {
        assert!(tokio::time::Instant::now() < deadline, "timed out: {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn all_delivered(rows: &[OutboxRow]) -> bool {
    rows.iter().all(|e| e.delivered_at.is_some())
}

/// Each accepted delivery id once; per call, ids strictly increasing; every signature valid.
fn check_once_in_order(accepted: &[Request], expected_ids: &[i64]) {
    let mut ids: Vec<i64> = accepted.iter().map(Request::delivery).collect();
    let mut per_call: BTreeMap<String, Vec<i64>> = BTreeMap::new();
    for r in accepted {
        let body = r.json();
        assert_eq!(
            body["id"].as_i64(),
            Some(r.delivery()),
            "body id = X-Ivr-Delivery"
        );
        assert_eq!(body["event"].as_str(), Some(r.header("x-ivr-event")));
        assert!(
            verify(
                SECRET.as_bytes(),
                r.header("x-ivr-timestamp"),
                &r.body,
                r.header("x-ivr-signature")
            ),
            "bad signature on delivery {}",
            r.delivery()
        );
        let call = body["call_id"].as_str().unwrap_or("").to_string();
        per_call.entry(call).or_default().push(r.delivery());
    }
    for (call, ids) in &per_call {
        assert!(
            ids.windows(2).all(|w| w[0] < w[1]),
            "call {call}: out of order or repeated: {ids:?}"
        );
    }
    ids.sort_unstable();
    assert_eq!(ids, expected_ids, "each event accepted exactly once");
}

// ---------------------------------------------------------------------------------------------
// The tests.

#[tokio::test]
async fn delivers_each_event_once_in_order_signed() {
    let server = Server::start(0, ok()).await;
    let store = Arc::new(MemoryStore::new());
    let w = Worker::start(store.clone(), primary(&server.url()));
    let mut ids = Vec::new();
    for n in 0..4 {
        for call in ["call-a", "call-b"] {
            ids.push(w.notifier.enqueue(started(call, n)).await.unwrap().unwrap());
        }
    }
    eventually("all delivered", || all_delivered(&store.snapshot())).await;
    let accepted = server.accepted();
    check_once_in_order(&accepted, &ids);
    let r = &accepted[0];
    assert_eq!(r.header("content-type"), "application/json");
    assert!(r.header("x-ivr-signature").starts_with("sha256="));
    let body = r.json();
    assert_eq!(body["event"], "call_started");
    assert_eq!(body["data"]["after_hours"], true);
    assert!(body["occurred_at"].as_str().unwrap().ends_with('Z'));
    w.stop().await;
}

#[tokio::test]
async fn server_down_then_up_across_a_restart_loses_nothing() {
    let port = closed_port();
    let url = format!("http://127.0.0.1:{port}/hook");
    let store = Arc::new(MemoryStore::new());
    let w = Worker::start(store.clone(), primary(&url));
    let mut ids = Vec::new();
    for n in 0..3 {
        for call in ["call-a", "call-b", "call-c"] {
            ids.push(w.notifier.enqueue(started(call, n)).await.unwrap().unwrap());
        }
    }
    // Refused connections: the heads back off, nothing is delivered, nothing is dropped.
    eventually("several failed attempts", || {
        store.snapshot().iter().any(|e| e.attempts >= 3)
    })
    .await;
    let snap = store.snapshot();
    assert!(snap.iter().all(|e| e.delivered_at.is_none()));
    let err = snap.iter().find_map(|e| e.last_error.clone()).unwrap();
    assert!(err.contains("error sending request"), "{err}");
    // Only queue heads were tried: later events of a call wait behind the first.
    for e in &snap[3..] {
        assert_eq!(e.attempts, 0, "row {} tried out of order", e.id);
    }

    // "Restart": the worker stops; a new one on the same store finds the endpoint back.
    w.stop().await;
    let server = Server::start(port, ok()).await;
    let w = Worker::start(store.clone(), primary(&url));
    eventually("all delivered", || all_delivered(&store.snapshot())).await;
    check_once_in_order(&server.accepted(), &ids);
    assert_eq!(
        server.requests().len(),
        ids.len(),
        "no request beyond one per event"
    );

    // Down again mid-stream, then back: new events are held, then delivered.
    server.stop();
    let more = vec![
        w.notifier
            .enqueue(started("call-a", 7))
            .await
            .unwrap()
            .unwrap(),
        w.notifier
            .enqueue(started("call-a", 8))
            .await
            .unwrap()
            .unwrap(),
    ];
    eventually("a failed attempt", || {
        store
            .snapshot()
            .iter()
            .any(|e| e.id == more[0] && e.attempts >= 1)
    })
    .await;
    let server2 = Server::start(port, ok()).await;
    eventually("all delivered", || all_delivered(&store.snapshot())).await;
    check_once_in_order(&server2.accepted(), &more);
    w.stop().await;
}

#[tokio::test]
async fn http_500_twice_then_200_retries_and_delivers_once() {
    let hits = Arc::new(AtomicUsize::new(0));
    let h = hits.clone();
    let server = Server::start(
        0,
        Arc::new(move |_| {
            if h.fetch_add(1, Ordering::SeqCst) < 2 {
                500
            } else {
                200
            }
        }),
    )
    .await;
    let store = Arc::new(MemoryStore::new());
    let w = Worker::start(store.clone(), primary(&server.url()));
    let id = w
        .notifier
        .enqueue(started("call-a", 1))
        .await
        .unwrap()
        .unwrap();
    eventually("delivered", || all_delivered(&store.snapshot())).await;
    let reqs = server.requests();
    assert_eq!(reqs.len(), 3);
    assert!(reqs.iter().all(|r| r.delivery() == id));
    assert_eq!(
        reqs.iter().map(|r| r.status).collect::<Vec<_>>(),
        [500, 500, 200]
    );
    let row = &store.snapshot()[0];
    assert_eq!(row.attempts, 2);
    assert!(row.last_error.as_deref().unwrap().contains("HTTP 500"));
    w.stop().await;
}

#[tokio::test]
async fn a_failing_call_does_not_hold_up_another() {
    let heal = Arc::new(AtomicBool::new(false));
    let heal2 = heal.clone();
    let server = Server::start(
        0,
        Arc::new(move |r: &Request| {
            let failing = r.json()["call_id"] == "call-a" && !heal2.load(Ordering::SeqCst);
            if failing { 503 } else { 200 }
        }),
    )
    .await;
    let store = Arc::new(MemoryStore::new());
    let w = Worker::start(store.clone(), primary(&server.url()));
    let a1 = w
        .notifier
        .enqueue(started("call-a", 1))
        .await
        .unwrap()
        .unwrap();
    let b1 = w
        .notifier
        .enqueue(started("call-b", 1))
        .await
        .unwrap()
        .unwrap();
    let a2 = w
        .notifier
        .enqueue(started("call-a", 2))
        .await
        .unwrap()
        .unwrap();
    let b2 = w
        .notifier
        .enqueue(started("call-b", 2))
        .await
        .unwrap()
        .unwrap();

    eventually("call b delivered", || {
        let s = store.snapshot();
        s.iter()
            .filter(|e| e.id == b1 || e.id == b2)
            .all(|e| e.delivered_at.is_some())
    })
    .await;
    eventually("call a retried", || {
        store
            .snapshot()
            .iter()
            .any(|e| e.id == a1 && e.attempts >= 2)
    })
    .await;
    // a2 has never been sent while a1 fails.
    assert!(server.requests().iter().all(|r| r.delivery() != a2));
    let s = store.snapshot();
    assert!(
        s.iter()
            .filter(|e| e.id == a1 || e.id == a2)
            .all(|e| e.delivered_at.is_none())
    );

    heal.store(true, Ordering::SeqCst);
    eventually("all delivered", || all_delivered(&store.snapshot())).await;
    check_once_in_order(&server.accepted(), &[a1, b1, a2, b2]);
    w.stop().await;
}

#[tokio::test]
async fn events_without_an_endpoint_are_kept_not_dropped() {
    let store = Arc::new(MemoryStore::new());
    let w = Worker::start(store.clone(), WebhookTargets::default());
    let id = w
        .notifier
        .enqueue(started("call-a", 1))
        .await
        .unwrap()
        .unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let s = store.snapshot();
    assert_eq!(s.len(), 1);
    assert_eq!((s[0].id, s[0].attempts), (id, 0));
    assert!(s[0].delivered_at.is_none());
    w.stop().await;

    // Configured later (a restart with a URL): the backlog goes out.
    let server = Server::start(0, ok()).await;
    let w = Worker::start(store.clone(), primary(&server.url()));
    eventually("delivered", || all_delivered(&store.snapshot())).await;
    check_once_in_order(&server.accepted(), &[id]);
    w.stop().await;
}

#[tokio::test]
async fn filtered_events_are_not_queued() {
    let store = Arc::new(MemoryStore::new());
    let targets = WebhookTargets {
        primary: Some(
            Endpoint::new("http://127.0.0.1:9/hook", None)
                .unwrap()
                .with_events(vec!["voicemail_recorded".into()]),
        ),
        ..WebhookTargets::default()
    };
    let n = Notifier::new(store.clone(), targets, fast_policy());
    assert_eq!(n.enqueue(started("call-a", 1)).await.unwrap(), None);
    assert!(store.snapshot().is_empty());
}

#[tokio::test]
async fn overdue_callback_escalates_once_to_the_escalation_endpoint() {
    let primary_srv = Server::start(0, ok()).await;
    let escalation_srv = Server::start(0, ok()).await;
    let store = Arc::new(MemoryStore::new());
    let recorded_at = Timestamp::now() - jiff::SignedDuration::from_mins(21);
    store.add_sla_timer(SlaTimer {
        voicemail_id: 5,
        due_at: sla::due_at(recorded_at, sla::DEFAULT_SLA),
        state: SlaState::Pending,
        call_id: "call-v".into(),
        caller: "+15551230000".into(),
        client: None,
        ticket: Some("T-77".into()),
        created_at: recorded_at,
    });
    let targets = WebhookTargets {
        primary: Some(Endpoint::new(&primary_srv.url(), Some(SECRET.into())).unwrap()),
        escalation: Some(Endpoint::new(&escalation_srv.url(), Some(SECRET.into())).unwrap()),
        ..WebhookTargets::default()
    };
    let w = Worker::start(store.clone(), targets);
    let (tx, rx) = oneshot::channel::<()>();
    let sla_task = sla::spawn(
        SlaWheel::new(store.clone()),
        w.notifier.clone(),
        SlaPolicy {
            max_sleep: Duration::from_millis(100),
            store_retry: Duration::from_millis(50),
            ..SlaPolicy::default()
        },
        async move {
            let _ = rx.await;
        },
    );
    eventually("escalation delivered", || {
        escalation_srv.accepted().len() == 1
    })
    .await;
    // A few more SLA ticks change nothing: exactly one escalation.
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(store.snapshot().len(), 1);
    let _ = tx.send(());
    sla_task.await.unwrap();
    w.stop().await;

    let accepted = escalation_srv.accepted();
    assert_eq!(accepted.len(), 1);
    check_once_in_order(&accepted, &[store.snapshot()[0].id]);
    let body = accepted[0].json();
    assert_eq!(body["event"], "callback_overdue");
    assert_eq!(body["call_id"], "call-v");
    assert_eq!(body["data"]["voicemail_id"], 5);
    assert_eq!(body["data"]["ticket"], "T-77");
    assert!(primary_srv.requests().is_empty());
    assert!(store.escalated_at(5).is_some());
    assert_eq!(store.snapshot()[0].event.kind, EventKind::CallbackOverdue);
    assert_eq!(store.snapshot()[0].event.target, Target::Escalation);
}

#[tokio::test]
async fn sqlite_outbox_survives_a_restart_while_the_server_is_down() {
    if common::db::sqlite_only("the SQLite outbox file reopened in this process") {
        return;
    }
    use ivr::store::{OutboxStore, SqliteStore};

    let dir = common::unique_temp_dir("webhooks-sqlite");
    let port = closed_port();
    let url = format!("http://127.0.0.1:{port}/hook");
    let pending = |s: &SqliteStore| s.pending_outbox(Timestamp::MAX, 1000).unwrap();

    let mut ids = Vec::new();
    {
        let store = Arc::new(SqliteStore::open(&dir).unwrap());
        let w = Worker::start(store.clone(), primary(&url));
        for n in 0..3 {
            for call in ["call-a", "call-b"] {
                ids.push(w.notifier.enqueue(started(call, n)).await.unwrap().unwrap());
            }
        }
        eventually("failed attempts recorded in the file", || {
            pending(&store).iter().any(|r| r.attempts >= 2)
        })
        .await;
        w.stop().await;
    }

    // A new process: the database reopened from disk, the receiver back.
    let server = Server::start(port, ok()).await;
    let store = Arc::new(SqliteStore::open(&dir).unwrap());
    let w = Worker::start(store.clone(), primary(&url));
    eventually("all delivered", || pending(&store).is_empty()).await;
    check_once_in_order(&server.accepted(), &ids);
    assert_eq!(server.requests().len(), ids.len());
    w.stop().await;
    let _ = std::fs::remove_dir_all(&dir);
}
