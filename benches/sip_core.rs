//! Micro-benchmarks of the SIP core, each beside its baseline in the same run:
//! - parsing an INVITE once (our scan + Request-URI check) against rsip's full parse, which
//!   every request also went through before;
//! - one whole call through the endpoint (INVITE, 180, 200, ACK, BYE, 200) with 0, 10,000 and
//!   50,000 other transactions alive: with indexed matching and a timer heap the cost per call
//!   must not grow with the table.
//!
//! Run: `cargo bench --bench sip_core` (about a minute). Nothing leaves the process.

use std::net::SocketAddr;
use std::time::Instant;

use criterion::{BenchmarkId, Criterion, black_box, criterion_group, criterion_main};
use ivr::sip::endpoint::{CallEvent, Endpoint, EndpointConfig, Output};
use ivr::sip::message::{Transport, parse};

const SDP: &str = "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n\
m=audio 6000 RTP/AVP 0 101\r\na=rtpmap:0 PCMU/8000\r\na=rtpmap:101 telephone-event/8000\r\n";

fn invite(n: u64) -> String {
    format!(
        "INVITE sip:ivr@127.0.0.1:5060 SIP/2.0\r\n\
Via: SIP/2.0/UDP 127.0.0.2:5061;branch=z9hG4bK-{n};rport\r\n\
From: \"Caller\" <sip:+15551230001@127.0.0.2:5061>;tag=f{n}\r\n\
To: <sip:ivr@127.0.0.1:5060>\r\nCall-ID: {n}-bench@127.0.0.2\r\nCSeq: 1 INVITE\r\n\
Contact: <sip:+15551230001@127.0.0.2:5061>\r\nMax-Forwards: 70\r\nSubject: bench\r\n\
Content-Type: application/sdp\r\nContent-Length: {}\r\n\r\n{SDP}",
        SDP.len()
    )
}

fn in_dialog(method: &str, n: u64, to_tag: &str, cseq: u32) -> String {
    format!(
        "{method} sip:ivr@127.0.0.1:5060 SIP/2.0\r\n\
Via: SIP/2.0/UDP 127.0.0.2:5061;branch=z9hG4bK-{method}-{n};rport\r\n\
From: \"Caller\" <sip:+15551230001@127.0.0.2:5061>;tag=f{n}\r\n\
To: <sip:ivr@127.0.0.1:5060>;tag={to_tag}\r\nCall-ID: {n}-bench@127.0.0.2\r\n\
CSeq: {cseq} {method}\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n"
    )
}

fn parsing(c: &mut Criterion) {
    let msg = invite(1).into_bytes();
    let mut g = c.benchmark_group("parse INVITE");
    g.bench_function("ivr parse (scan + Request-URI)", |b| {
        b.iter(|| parse(black_box(&msg)).is_ok())
    });
    g.bench_function("baseline: rsip full parse", |b| {
        b.iter(|| rsip::Request::try_from(black_box(msg.as_slice())).is_ok())
    });
    // What every request cost before: the scan, then rsip again on the same bytes.
    g.bench_function("before: scan + rsip full parse", |b| {
        b.iter(|| parse(black_box(&msg)).is_ok() && rsip::Request::try_from(msg.as_slice()).is_ok())
    });
    g.finish();
}

struct Line {
    ep: Endpoint,
    now: Instant,
    next: u64,
    from: SocketAddr,
    local: SocketAddr,
}

impl Line {
    fn new() -> Self {
        Line {
            ep: Endpoint::new(EndpointConfig {
                max_calls: usize::MAX,
                max_pending_setups: usize::MAX,
                ..EndpointConfig::default()
            }),
            now: Instant::now(),
            next: 0,
            from: "127.0.0.2:5061".parse().expect("literal"),
            local: "127.0.0.1:5060".parse().expect("literal"),
        }
    }

    fn send(&mut self, msg: &str) -> Vec<Output> {
        self.ep.handle_message(
            self.now,
            msg.as_bytes(),
            self.from,
            Transport::Udp,
            self.local,
        );
        std::iter::from_fn(|| self.ep.poll_output()).collect()
    }

    /// INVITE in, answered; returns the call's number and our To tag. With `finish`, the caller
    /// ACKs and hangs up.
    fn call(&mut self, finish: bool) {
        let n = self.next;
        self.next += 1;
        let out = self.send(&invite(n));
        let Some(call) = out.iter().find_map(|o| match o {
            Output::Event(c, CallEvent::Incoming(_)) => Some(*c),
            _ => None,
        }) else {
            panic!("INVITE not taken")
        };
        self.ep.ring(self.now, call);
        self.ep.accept(self.now, call, SDP.to_string());
        let mut tag = String::new();
        while let Some(o) = self.ep.poll_output() {
            if let Output::Transmit { bytes, .. } = o {
                let text = String::from_utf8_lossy(&bytes);
                if let Some(t) = text
                    .lines()
                    .find(|l| l.starts_with("To:"))
                    .and_then(|l| l.split("tag=").nth(1))
                {
                    tag = t.to_string();
                }
            }
        }
        if finish {
            self.send(&in_dialog("ACK", n, &tag, 1));
            self.send(&in_dialog("BYE", n, &tag, 2));
        }
        black_box(self.ep.poll_timeout());
    }
}

fn call_with_live_transactions(c: &mut Criterion) {
    let mut g = c.benchmark_group("one call through the endpoint");
    for live in [0u64, 10_000, 50_000] {
        let mut line = Line::new();
        // Answered, never ACKed calls: each keeps its INVITE transaction and 2xx timer alive.
        for _ in 0..live {
            line.call(false);
        }
        g.bench_with_input(
            BenchmarkId::new("live transactions", live),
            &live,
            |b, _| b.iter(|| line.call(true)),
        );
    }
    g.finish();
}

criterion_group!(benches, parsing, call_with_live_transactions);
criterion_main!(benches);
