//! The rendered text is read back with a real Prometheus text-format parser, so what is checked
//! is what a Prometheus server would scrape.

use std::time::Duration;

use prometheus_parse::{Scrape, Value};

use super::*;
use crate::store::{Backlog, NewVoicemail, OutboxEvent, SqliteStore, Store};

fn scrape(m: &Metrics) -> Scrape {
    let text = m.render();
    Scrape::parse(text.lines().map(|l| Ok(l.to_string()))).expect("valid exposition text")
}

/// The value of the sample `name` whose labels include every pair of `labels`.
fn value(s: &Scrape, name: &str, labels: &[(&str, &str)]) -> Option<Value> {
    s.samples
        .iter()
        .find(|x| x.metric == name && labels.iter().all(|(k, v)| x.labels.get(k) == Some(*v)))
        .map(|x| x.value.clone())
}

fn number(s: &Scrape, name: &str, labels: &[(&str, &str)]) -> f64 {
    match value(s, name, labels) {
        Some(Value::Counter(v) | Value::Gauge(v) | Value::Untyped(v)) => v,
        other => panic!("{name}{labels:?}: expected a number, got {other:?}"),
    }
}

/// (upper bound, cumulative count) of each bucket of histogram `name`.
fn buckets(s: &Scrape, name: &str) -> Vec<(f64, f64)> {
    match value(s, name, &[]) {
        Some(Value::Histogram(b)) => b.iter().map(|c| (c.less_than, c.count)).collect(),
        other => panic!("{name}: expected a histogram, got {other:?}"),
    }
}

#[test]
fn every_metric_is_documented_prefixed_and_typed() {
    let m = Metrics::new();
    // A family with labels shows once it has a series: give each one.
    m.sip_message(Direction::In, b"OPTIONS sip:x SIP/2.0\r\n\r\n");
    m.sip_message(Direction::Out, b"SIP/2.0 200 OK\r\n\r\n");
    m.desk_ring("busy");
    let s = scrape(&m);
    let families = [
        "ivr_calls_active",
        "ivr_calls_total",
        "ivr_sip_requests_total",
        "ivr_sip_responses_total",
        "ivr_sip_transactions",
        "ivr_rtp_packets_total",
        "ivr_rtp_packets_lost_total",
        "ivr_rtp_jitter_seconds",
        "ivr_dtmf_digits_total",
        "ivr_desk_rings_total",
        "ivr_store_write_duration_seconds",
        "ivr_dropped_total",
        "ivr_voicemails_pending_sla",
        "ivr_voicemails_overdue",
        "ivr_outbox_events",
        "ivr_outbox_oldest_event_age_seconds",
    ];
    for f in families {
        assert!(f.starts_with("ivr_"), "{f}: no ivr_ prefix");
        let help = s.docs.get(f).unwrap_or_else(|| panic!("{f} has no HELP"));
        assert!(!help.is_empty(), "{f}: empty HELP");
    }
    assert_eq!(
        s.docs.len(),
        families.len(),
        "metrics not in the README list: {:?}",
        s.docs
            .keys()
            .filter(|k| !families.contains(&k.as_str()))
            .collect::<Vec<_>>()
    );
    // Known label values are present from the start, at zero, so rates work from the first scrape.
    assert_eq!(
        number(&s, "ivr_calls_total", &[("outcome", "voicemail")]),
        0.0
    );
    assert_eq!(
        number(&s, "ivr_dropped_total", &[("reason", "rtp_foreign_source")]),
        0.0
    );
    assert_eq!(
        number(&s, "ivr_dtmf_digits_total", &[("method", "inband")]),
        0.0
    );
}

#[test]
fn calls_count_active_while_running_and_total_by_outcome() {
    let m = Metrics::new();
    let a = m.call_started();
    let b = m.call_started();
    assert_eq!(number(&scrape(&m), "ivr_calls_active", &[]), 2.0);
    m.call_ended("voicemail");
    drop(a);
    let s = scrape(&m);
    assert_eq!(number(&s, "ivr_calls_active", &[]), 1.0);
    assert_eq!(
        number(&s, "ivr_calls_total", &[("outcome", "voicemail")]),
        1.0
    );
    assert_eq!(
        number(&s, "ivr_calls_total", &[("outcome", "bridged")]),
        0.0
    );
    drop(b);
    assert_eq!(number(&scrape(&m), "ivr_calls_active", &[]), 0.0);
}

#[test]
fn sip_messages_count_by_method_and_code_and_fold_the_unknown() {
    let m = Metrics::new();
    m.sip_message(
        Direction::In,
        b"INVITE sip:100@127.0.0.1 SIP/2.0\r\nVia: x\r\n\r\n",
    );
    m.sip_message(Direction::In, b"INVITE sip:100@127.0.0.1 SIP/2.0\r\n\r\n");
    m.sip_message(Direction::Out, b"SIP/2.0 180 Ringing\r\n\r\n");
    m.sip_message(Direction::Out, b"SIP/2.0 200 OK\r\n\r\n");
    m.sip_message(Direction::In, b"SIP/2.0 486 Busy Here\r\n\r\n");
    // A caller's invented method and a nonsense code must not become label values.
    m.sip_message(Direction::In, b"FROBNICATE sip:x SIP/2.0\r\n\r\n");
    m.sip_message(Direction::In, b"SIP/2.0 999 Odd\r\n\r\n");
    m.sip_message(Direction::In, b"\x00\x01garbage");
    m.set_sip_transactions(3);
    let s = scrape(&m);
    let req = |d, method| {
        number(
            &s,
            "ivr_sip_requests_total",
            &[("direction", d), ("method", method)],
        )
    };
    let resp = |d, code| {
        number(
            &s,
            "ivr_sip_responses_total",
            &[("direction", d), ("code", code)],
        )
    };
    assert_eq!(req("in", "INVITE"), 2.0);
    assert_eq!(req("in", "other"), 1.0);
    assert_eq!(resp("out", "180"), 1.0);
    assert_eq!(resp("out", "200"), 1.0);
    assert_eq!(resp("in", "486"), 1.0);
    assert_eq!(resp("in", "other"), 1.0);
    assert!(value(&s, "ivr_sip_requests_total", &[("method", "FROBNICATE")]).is_none());
    let requests: usize = s
        .samples
        .iter()
        .filter(|x| x.metric == "ivr_sip_requests_total")
        .count();
    assert_eq!(requests, 2, "garbage is not counted as a request");
    assert_eq!(number(&s, "ivr_sip_transactions", &[]), 3.0);
}

#[test]
fn media_digits_desk_and_drops_are_counted() {
    let m = Metrics::new();
    let rtp = m.rtp_counters();
    rtp.received.inc_by(100);
    rtp.sent.inc_by(120);
    m.rtp_counters().sent.inc_by(50);
    m.rtp_session(4, Some(Duration::from_micros(3_500)));
    m.rtp_session(0, None);
    m.dtmf_digit("rfc4733");
    m.dtmf_digit("rfc4733");
    m.dtmf_digit("info");
    m.desk_ring("no_answer");
    m.desk_ring("answered");
    m.dropped(DropReason::SipRateLimit, 5);
    m.dropped(DropReason::TcpPerSourceLimit, 0);
    let s = scrape(&m);
    assert_eq!(
        number(&s, "ivr_rtp_packets_total", &[("direction", "in")]),
        100.0
    );
    assert_eq!(
        number(&s, "ivr_rtp_packets_total", &[("direction", "out")]),
        170.0
    );
    assert_eq!(number(&s, "ivr_rtp_packets_lost_total", &[]), 4.0);
    // One call had audio: one jitter observation, 3.5 ms, in the (2 ms, 5 ms] bucket.
    let jitter = buckets(&s, "ivr_rtp_jitter_seconds");
    let count_le = |le: f64| jitter.iter().find(|(b, _)| *b == le).map(|(_, c)| *c);
    assert_eq!(count_le(0.002), Some(0.0));
    assert_eq!(count_le(0.005), Some(1.0));
    assert_eq!(count_le(f64::INFINITY), Some(1.0));
    assert!((number(&s, "ivr_rtp_jitter_seconds_sum", &[]) - 0.0035).abs() < 1e-9);
    assert_eq!(
        number(&s, "ivr_dtmf_digits_total", &[("method", "rfc4733")]),
        2.0
    );
    assert_eq!(
        number(&s, "ivr_dtmf_digits_total", &[("method", "info")]),
        1.0
    );
    assert_eq!(
        number(&s, "ivr_desk_rings_total", &[("outcome", "no_answer")]),
        1.0
    );
    assert_eq!(
        number(&s, "ivr_desk_rings_total", &[("outcome", "answered")]),
        1.0
    );
    assert_eq!(
        number(&s, "ivr_dropped_total", &[("reason", "sip_rate_limit")]),
        5.0
    );
    assert_eq!(
        number(
            &s,
            "ivr_dropped_total",
            &[("reason", "tcp_per_source_limit")]
        ),
        0.0
    );
}

#[test]
fn backlog_gauges_are_read_at_scrape_time() {
    let m = Metrics::new();
    let backlog = Arc::new(Mutex::new(Backlog {
        voicemails_pending: 2,
        voicemails_overdue: 1,
        outbox_events: 7,
        outbox_oldest_age: Some(Duration::from_millis(90_500)),
    }));
    let probe = backlog.clone();
    m.set_backlog_probe(move || Some(*probe.lock().expect("lock")));
    let s = scrape(&m);
    assert_eq!(number(&s, "ivr_voicemails_pending_sla", &[]), 2.0);
    assert_eq!(number(&s, "ivr_voicemails_overdue", &[]), 1.0);
    assert_eq!(number(&s, "ivr_outbox_events", &[]), 7.0);
    assert_eq!(number(&s, "ivr_outbox_oldest_event_age_seconds", &[]), 90.5);
    *backlog.lock().expect("lock") = Backlog::default();
    let s = scrape(&m);
    assert_eq!(number(&s, "ivr_outbox_events", &[]), 0.0);
    assert_eq!(number(&s, "ivr_outbox_oldest_event_age_seconds", &[]), 0.0);
}

/// A temp directory removed on drop.
struct TempDir(std::path::PathBuf);

impl TempDir {
    fn new(label: &str) -> TempDir {
        let dir = std::env::temp_dir().join(format!("ivr-metrics-{label}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("create temp dir");
        TempDir(dir)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn ts(s: &str) -> jiff::Timestamp {
    s.parse().expect("test timestamp")
}

#[test]
fn a_real_store_times_its_writes_and_reports_its_backlog() {
    let dir = TempDir::new("store");
    let store: Arc<dyn Store> = Arc::new(SqliteStore::open(&dir.0).expect("open store"));
    let m = Metrics::new();
    store.time_writes(m.store_write_histogram());
    let now = ts("2026-12-01T22:00:00Z");
    let vm = |call_id: &str| NewVoicemail {
        call_id: call_id.into(),
        caller: "+15550100".into(),
        client: None,
        ticket: None,
        path: format!("voicemail/{call_id}.wav").into(),
        duration_ms: 4_000,
        created_at: ts("2026-12-01T21:30:00Z"),
    };
    // One promise still running, one broken, one kept.
    store
        .add_voicemail(&vm("a"), ts("2026-12-01T22:10:00Z"))
        .expect("vm a");
    store
        .add_voicemail(&vm("b"), ts("2026-12-01T21:50:00Z"))
        .expect("vm b");
    let kept = store
        .add_voicemail(&vm("c"), ts("2026-12-01T21:50:00Z"))
        .expect("vm c");
    store
        .ack_voicemail(kept, "desk", ts("2026-12-01T21:45:00Z"))
        .expect("ack");
    let event = |at: &str| OutboxEvent {
        kind: crate::store::EventKind::CallEnded,
        call_id: None,
        target: crate::store::Target::Primary,
        payload: serde_json::json!({}),
        occurred_at: ts(at),
    };
    store
        .enqueue(&event("2026-12-01T21:58:00Z"))
        .expect("event");
    let delivered = store
        .enqueue(&event("2026-12-01T21:00:00Z"))
        .expect("event");
    store.mark_delivered(delivered, now).expect("delivered");
    let probe = store.clone();
    m.set_backlog_probe(move || probe.backlog(now).ok());
    let s = scrape(&m);
    assert_eq!(number(&s, "ivr_voicemails_pending_sla", &[]), 1.0);
    assert_eq!(number(&s, "ivr_voicemails_overdue", &[]), 1.0);
    assert_eq!(number(&s, "ivr_outbox_events", &[]), 1.0);
    assert_eq!(
        number(&s, "ivr_outbox_oldest_event_age_seconds", &[]),
        120.0
    );
    // Seven writes above, each timed from queueing to commit.
    assert_eq!(
        number(&s, "ivr_store_write_duration_seconds_count", &[]),
        7.0
    );
    assert!(number(&s, "ivr_store_write_duration_seconds_sum", &[]) > 0.0);
}
