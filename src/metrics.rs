//! The process's Prometheus metrics: one registry of typed handles, rendered in the text
//! exposition format when scraped (`GET /metrics`).
//!
//! Counters and histograms are moved by the shells where things happen (the signalling loop,
//! call tasks, the store writer); sans-IO cores count in their own stats and the shell copies
//! them in. Gauges that describe stored state (voicemails pending their callback SLA, the
//! webhook outbox) are read from the store at scrape time, so they are never stale or out of
//! step with the database after a restart.
//!
//! Label values come from small fixed sets (methods, status codes, outcomes, reasons): anything
//! a caller wrote is folded into `other`, so a flood of odd requests cannot grow the registry.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use prometheus::{
    Encoder, Gauge, Histogram, HistogramOpts, IntCounter, IntCounterVec, IntGauge, Opts, Registry,
    TextEncoder,
};

use crate::store::Backlog;

/// Why a packet, request or connection was dropped or refused (`ivr_dropped_total{reason}`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DropReason {
    /// An out-of-dialog request over its source's rate (`sip.limits`): 503 or silence.
    SipRateLimit,
    /// An INVITE over its source's cap on half-open calls.
    SipHalfOpenLimit,
    /// A new call refused with 503 because the line is full or calls are still being set up.
    SipOverload,
    /// RTP from an address the session's latch does not believe.
    RtpForeignSource,
    /// A TCP connection refused: `max_connections` were open.
    TcpConnectionLimit,
    /// A TCP connection refused: its source had `max_per_source` open.
    TcpPerSourceLimit,
}

impl DropReason {
    pub const ALL: [DropReason; 6] = [
        DropReason::SipRateLimit,
        DropReason::SipHalfOpenLimit,
        DropReason::SipOverload,
        DropReason::RtpForeignSource,
        DropReason::TcpConnectionLimit,
        DropReason::TcpPerSourceLimit,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            DropReason::SipRateLimit => "sip_rate_limit",
            DropReason::SipHalfOpenLimit => "sip_half_open_limit",
            DropReason::SipOverload => "sip_overload",
            DropReason::RtpForeignSource => "rtp_foreign_source",
            DropReason::TcpConnectionLimit => "tcp_connection_limit",
            DropReason::TcpPerSourceLimit => "tcp_per_source_limit",
        }
    }
}

/// Which way a SIP message or RTP packet went.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Direction {
    In,
    Out,
}

impl Direction {
    fn as_str(self) -> &'static str {
        match self {
            Direction::In => "in",
            Direction::Out => "out",
        }
    }
}

/// SIP methods counted by name; any other method is `other`.
const SIP_METHODS: [&str; 14] = [
    "INVITE",
    "ACK",
    "BYE",
    "CANCEL",
    "OPTIONS",
    "REGISTER",
    "INFO",
    "UPDATE",
    "PRACK",
    "SUBSCRIBE",
    "NOTIFY",
    "REFER",
    "MESSAGE",
    "PUBLISH",
];

/// DTMF methods, as `ivr_dtmf_digits_total{method}` names them.
pub const DTMF_METHODS: [&str; 3] = ["rfc4733", "info", "inband"];

/// Reads the stored backlog (voicemails, outbox) at scrape time. Blocks on the store.
type BacklogProbe = Box<dyn Fn() -> Option<Backlog> + Send + Sync>;

/// The registry and its handles. Cheap to clone: every clone moves the same metrics.
#[derive(Clone)]
pub struct Metrics(Arc<Inner>);

struct Inner {
    registry: Registry,
    calls_active: IntGauge,
    calls: IntCounterVec,
    sip_requests: IntCounterVec,
    sip_responses: IntCounterVec,
    sip_transactions: IntGauge,
    rtp_packets: IntCounterVec,
    rtp_lost: IntCounter,
    rtp_jitter: Histogram,
    dtmf_digits: IntCounterVec,
    desk_rings: IntCounterVec,
    store_write: Histogram,
    dropped: IntCounterVec,
    voicemails_pending: IntGauge,
    voicemails_overdue: IntGauge,
    outbox_events: IntGauge,
    outbox_oldest_age: Gauge,
    backlog: Mutex<Option<BacklogProbe>>,
    trunks: TrunkMetrics,
}

/// Carrier trunk registrations, labelled by trunk name (from the config, so a bounded set).
struct TrunkMetrics {
    registered: prometheus::IntGaugeVec,
    attempts: IntCounterVec,
    failures: IntCounterVec,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Metrics")
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

/// Registers `m` and returns it. Registration fails only for a duplicate or malformed name,
/// which the unit tests rule out for every metric here, so a failure is a programming error.
fn register<M: prometheus::core::Collector + Clone + 'static>(r: &Registry, m: M) -> M {
    #[allow(clippy::expect_used)]
    r.register(Box::new(m.clone()))
        .expect("metric names are unique and valid (tested)");
    m
}

#[allow(clippy::expect_used)]
fn counter_vec(r: &Registry, name: &str, help: &str, labels: &[&str]) -> IntCounterVec {
    register(
        r,
        IntCounterVec::new(Opts::new(name, help), labels).expect("valid metric"),
    )
}

#[allow(clippy::expect_used)]
fn int_gauge(r: &Registry, name: &str, help: &str) -> IntGauge {
    register(r, IntGauge::new(name, help).expect("valid metric"))
}

#[allow(clippy::expect_used)]
fn histogram(r: &Registry, name: &str, help: &str, buckets: Vec<f64>) -> Histogram {
    register(
        r,
        Histogram::with_opts(HistogramOpts::new(name, help).buckets(buckets)).expect("valid"),
    )
}

impl Metrics {
    #[allow(clippy::expect_used)]
    pub fn new() -> Metrics {
        let r = Registry::new();
        let calls_active = int_gauge(&r, "ivr_calls_active", "Calls in progress.");
        let calls = counter_vec(
            &r,
            "ivr_calls_total",
            "Calls ended, by the outcome their call detail record gives.",
            &["outcome"],
        );
        let sip_requests = counter_vec(
            &r,
            "ivr_sip_requests_total",
            "SIP requests received (in) and sent (out), retransmissions included, by method.",
            &["direction", "method"],
        );
        let sip_responses = counter_vec(
            &r,
            "ivr_sip_responses_total",
            "SIP responses received (in) and sent (out), retransmissions included, by status code.",
            &["direction", "code"],
        );
        let sip_transactions = int_gauge(
            &r,
            "ivr_sip_transactions",
            "SIP transactions live in the endpoint (server and client).",
        );
        let rtp_packets = counter_vec(
            &r,
            "ivr_rtp_packets_total",
            "RTP packets of every leg (callers and staff phones): received from the believed source (in) and sent (out), counted as they pass.",
            &["direction"],
        );
        let rtp_lost = int_counter(
            &r,
            "ivr_rtp_packets_lost_total",
            "RTP packets callers sent that never arrived (RFC 3550 cumulative loss), counted when a call's media ends.",
        );
        let rtp_jitter = histogram(
            &r,
            "ivr_rtp_jitter_seconds",
            "Interarrival jitter (RFC 3550) of each call's received audio at the call's end.",
            vec![0.001, 0.002, 0.005, 0.01, 0.02, 0.03, 0.05, 0.1, 0.2],
        );
        let dtmf_digits = counter_vec(
            &r,
            "ivr_dtmf_digits_total",
            "DTMF digits taken from callers, by how they came (rfc4733, info, inband).",
            &["method"],
        );
        let desk_rings = counter_vec(
            &r,
            "ivr_desk_rings_total",
            "Times the desk was rung, by how it ended (answered, no_answer, busy, failed).",
            &["outcome"],
        );
        let store_write = histogram(
            &r,
            "ivr_store_write_duration_seconds",
            "Time a store write waits from queueing until it is committed durably (or fails).",
            vec![
                0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
            ],
        );
        let dropped = counter_vec(
            &r,
            "ivr_dropped_total",
            "Requests, packets and connections dropped or refused, by reason.",
            &["reason"],
        );
        let voicemails_pending = int_gauge(
            &r,
            "ivr_voicemails_pending_sla",
            "Voicemails not acknowledged whose callback SLA has not run out yet.",
        );
        let voicemails_overdue = int_gauge(
            &r,
            "ivr_voicemails_overdue",
            "Voicemails not acknowledged whose callback SLA has run out.",
        );
        let outbox_events = int_gauge(
            &r,
            "ivr_outbox_events",
            "Webhook events in the outbox not delivered yet.",
        );
        let outbox_oldest_age = register(
            &r,
            Gauge::new(
                "ivr_outbox_oldest_event_age_seconds",
                "Age of the oldest undelivered webhook event (0 when the outbox is empty).",
            )
            .expect("valid metric"),
        );
        for reason in DropReason::ALL {
            dropped.with_label_values(&[reason.as_str()]);
        }
        for method in DTMF_METHODS {
            dtmf_digits.with_label_values(&[method]);
        }
        for d in [Direction::In, Direction::Out] {
            rtp_packets.with_label_values(&[d.as_str()]);
        }
        for o in crate::store::Outcome::ALL {
            calls.with_label_values(&[o.as_str()]);
        }
        let trunks = TrunkMetrics {
            registered: register(
                &r,
                prometheus::IntGaugeVec::new(
                    Opts::new(
                        "ivr_trunk_registered",
                        "1 while the trunk's provider holds our registration, else 0.",
                    ),
                    &["trunk"],
                )
                .expect("valid metric"),
            ),
            attempts: counter_vec(
                &r,
                "ivr_trunk_register_attempts_total",
                "REGISTER requests sent to a trunk's registrar (challenge answers and refreshes included).",
                &["trunk"],
            ),
            failures: counter_vec(
                &r,
                "ivr_trunk_register_failures_total",
                "Trunk registrations that failed (refused, timed out, credentials rejected) and went into backoff.",
                &["trunk"],
            ),
        };
        Metrics(Arc::new(Inner {
            trunks,
            registry: r,
            calls_active,
            calls,
            sip_requests,
            sip_responses,
            sip_transactions,
            rtp_packets,
            rtp_lost,
            rtp_jitter,
            dtmf_digits,
            desk_rings,
            store_write,
            dropped,
            voicemails_pending,
            voicemails_overdue,
            outbox_events,
            outbox_oldest_age,
            backlog: Mutex::new(None),
        }))
    }

    pub fn trunk_registered(&self, trunk: &str, registered: bool) {
        self.0
            .trunks
            .registered
            .with_label_values(&[trunk])
            .set(i64::from(registered));
    }

    pub fn trunk_register_attempt(&self, trunk: &str) {
        self.0.trunks.attempts.with_label_values(&[trunk]).inc();
        self.0.trunks.failures.with_label_values(&[trunk]);
    }

    pub fn trunk_register_failure(&self, trunk: &str) {
        self.0.trunks.failures.with_label_values(&[trunk]).inc();
    }

    /// Where scrape-time gauges read the stored backlog from (the store, once it is open).
    pub fn set_backlog_probe(&self, probe: impl Fn() -> Option<Backlog> + Send + Sync + 'static) {
        *self.0.backlog.lock().unwrap_or_else(|e| e.into_inner()) = Some(Box::new(probe));
    }

    /// A call task started; the guard counts it as active until dropped (however the task ends).
    pub fn call_started(&self) -> ActiveCall {
        self.0.calls_active.inc();
        ActiveCall(self.clone())
    }

    /// A call ended with `outcome` (its CDR's).
    pub fn call_ended(&self, outcome: &str) {
        self.0.calls.with_label_values(&[outcome]).inc();
    }

    /// One SIP message on the wire: a request counts by method, a response by status code.
    /// Unparseable first lines are not counted (the parser logs and drops them).
    pub fn sip_message(&self, direction: Direction, bytes: &[u8]) {
        let line = bytes.split(|&b| b == b'\r' || b == b'\n').next();
        let Some(line) = line.and_then(|l| std::str::from_utf8(l).ok()) else {
            return;
        };
        let d = direction.as_str();
        if let Some(rest) = line.strip_prefix("SIP/2.0 ") {
            let code = rest.split(' ').next().unwrap_or("");
            let code = match code.parse::<u16>() {
                Ok(c) if (100..700).contains(&c) => code,
                _ => "other",
            };
            self.0.sip_responses.with_label_values(&[d, code]).inc();
        } else if line.ends_with("SIP/2.0") {
            let method = line.split(' ').next().unwrap_or("");
            let method = SIP_METHODS
                .iter()
                .find(|m| **m == method)
                .copied()
                .unwrap_or("other");
            self.0.sip_requests.with_label_values(&[d, method]).inc();
        }
    }

    pub fn set_sip_transactions(&self, live: usize) {
        self.0
            .sip_transactions
            .set(i64::try_from(live).unwrap_or(i64::MAX));
    }

    /// The RTP packet counters every media session (callers' and staff legs) adds to as packets
    /// pass ([`crate::media::MediaHandle::count_into`]).
    pub fn rtp_counters(&self) -> crate::media::PacketCounters {
        crate::media::PacketCounters {
            received: self.0.rtp_packets.with_label_values(&["in"]),
            sent: self.0.rtp_packets.with_label_values(&["out"]),
        }
    }

    /// A caller's media session ended: its cumulative loss and its final jitter (`None` when no
    /// audio arrived, which says nothing about the network). The packets themselves were
    /// counted as they passed.
    pub fn rtp_session(&self, lost: u64, jitter: Option<Duration>) {
        self.0.rtp_lost.inc_by(lost);
        if let Some(j) = jitter {
            self.0.rtp_jitter.observe(j.as_secs_f64());
        }
    }

    /// One digit from a caller, by method (one of [`DTMF_METHODS`]).
    pub fn dtmf_digit(&self, method: &'static str) {
        self.0.dtmf_digits.with_label_values(&[method]).inc();
    }

    /// The desk was rung and it ended with `outcome`.
    pub fn desk_ring(&self, outcome: &'static str) {
        self.0.desk_rings.with_label_values(&[outcome]).inc();
    }

    /// The histogram store writes are timed into (the store observes it itself).
    pub fn store_write_histogram(&self) -> Histogram {
        self.0.store_write.clone()
    }

    pub fn dropped(&self, reason: DropReason, count: u64) {
        if count > 0 {
            self.0
                .dropped
                .with_label_values(&[reason.as_str()])
                .inc_by(count);
        }
    }

    /// Every metric in the Prometheus text exposition format (version 0.0.4). Reads the store
    /// for the backlog gauges, so call it off the async runtime (`spawn_blocking`).
    pub fn render(&self) -> String {
        self.refresh_backlog();
        let mut out = Vec::new();
        // Encoding into a Vec cannot fail for metrics this registry validated at registration.
        if let Err(e) = TextEncoder::new().encode(&self.0.registry.gather(), &mut out) {
            tracing::error!(error = %e, "metrics: cannot encode");
        }
        String::from_utf8(out).unwrap_or_default()
    }

    /// The content type of [`Metrics::render`]'s text, for the HTTP response.
    pub const CONTENT_TYPE: &'static str = "text/plain; version=0.0.4; charset=utf-8";

    fn refresh_backlog(&self) {
        let probe = self.0.backlog.lock().unwrap_or_else(|e| e.into_inner());
        // No store (unavailable or not opened yet): the gauges keep their last values.
        let Some(b) = probe.as_ref().and_then(|p| p()) else {
            return;
        };
        let i = &self.0;
        i.voicemails_pending
            .set(i64::try_from(b.voicemails_pending).unwrap_or(i64::MAX));
        i.voicemails_overdue
            .set(i64::try_from(b.voicemails_overdue).unwrap_or(i64::MAX));
        i.outbox_events
            .set(i64::try_from(b.outbox_events).unwrap_or(i64::MAX));
        i.outbox_oldest_age
            .set(b.outbox_oldest_age.map_or(0.0, |a| a.as_secs_f64()));
    }
}

#[allow(clippy::expect_used)]
fn int_counter(r: &Registry, name: &str, help: &str) -> IntCounter {
    register(r, IntCounter::new(name, help).expect("valid metric"))
}

/// Counts one call as active while it lives.
pub struct ActiveCall(Metrics);

impl Drop for ActiveCall {
    fn drop(&mut self) {
        self.0.0.calls_active.dec();
    }
}

#[cfg(test)]
#[path = "metrics_tests.rs"]
mod tests;
