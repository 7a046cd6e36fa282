//! Issue 11, rows 3 and 7, against the real binary over loopback: idle and half-sent TCP
//! connections from "other hosts" (127.0.0.2, 127.0.0.3) are refused past the caps and closed on
//! time while calls over TCP and UDP still go through; and a sweep of datagrams from many source
//! addresses at a wildcard listener leaves memory bounded.

use crate::common;

use std::io::{ErrorKind, Read, Write};
use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpStream, UdpSocket};
use std::time::{Duration, Instant};

use common::{CallIds, Ivr, SipMsg, UdpUa, in_dialog, invite, ok_for, sdp_offer, token};

const IDLE_S: u64 = 3;
const MESSAGE_S: u64 = 2;
const PER_SOURCE: usize = 8;
/// Beyond a deadline, how late a close may come before the test calls it missing (a loaded
/// machine running other tests).
const SLACK: Duration = Duration::from_secs(6);

const ATTACKER: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 2);
const SLOW_ATTACKER: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 3);

/// Short TCP deadlines and caps, and one staff user (alice / s3cret).
fn tcp_config() -> String {
    let path = common::unique_temp_dir("attack-tcp").join("ivr.toml");
    std::fs::write(
        &path,
        format!(
            "[sip]\ntcp_idle_timeout_s = {IDLE_S}\ntcp_message_timeout_s = {MESSAGE_S}\n\
             tcp_max_per_source = {PER_SOURCE}\ntcp_max_connections = 64\n\n\
             [[staff.users]]\nname = \"alice\"\npassword = \"s3cret\"\n"
        ),
    )
    .expect("write config");
    path.to_str().expect("utf-8 temp path").to_string()
}

/// A TCP connection to `server` from `ip` (any free port).
fn connect_from(ip: Ipv4Addr, server: SocketAddr) -> TcpStream {
    let s = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None)
        .expect("TCP socket");
    s.bind(&SocketAddr::new(IpAddr::V4(ip), 0).into())
        .unwrap_or_else(|e| panic!("bind {ip}: {e}"));
    s.connect(&server.into()).expect("connect to ivr");
    s.into()
}

fn closed_by_peer(e: &std::io::Error) -> bool {
    matches!(
        e.kind(),
        ErrorKind::ConnectionReset | ErrorKind::ConnectionAborted | ErrorKind::BrokenPipe
    )
}

/// Whether the server closes `s` (EOF or reset) before `deadline`; bytes read are ignored.
fn closed_before(s: &mut TcpStream, deadline: Instant) -> bool {
    let mut chunk = [0u8; 4096];
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return false;
        }
        s.set_read_timeout(Some(left)).expect("read timeout");
        match s.read(&mut chunk) {
            Ok(0) => return true,
            Ok(_) => continue,
            Err(e) if closed_by_peer(&e) => return true,
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                return false;
            }
            Err(e) => panic!("reading from ivr: {e}"),
        }
    }
}

/// What came next on a SIP-over-TCP connection.
#[derive(Debug)]
enum Next {
    Message(SipMsg),
    Closed,
    Nothing,
}

/// SIP over one TCP connection, framed by Content-Length.
struct TcpUa {
    stream: TcpStream,
    buf: Vec<u8>,
}

impl TcpUa {
    fn new(stream: TcpStream) -> TcpUa {
        TcpUa {
            stream,
            buf: Vec::new(),
        }
    }

    fn local(&self) -> SocketAddr {
        self.stream.local_addr().expect("local addr")
    }

    /// Sends `text`; false when the server has closed the connection.
    fn send(&mut self, text: &str) -> bool {
        match self.stream.write_all(text.as_bytes()) {
            Ok(()) => true,
            Err(e) if closed_by_peer(&e) => false,
            Err(e) => panic!("writing to ivr: {e}"),
        }
    }

    fn next(&mut self, timeout: Duration) -> Next {
        let deadline = Instant::now() + timeout;
        let mut chunk = [0u8; 4096];
        loop {
            if let Some(m) = self.take_message() {
                return Next::Message(m);
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Next::Nothing;
            }
            self.stream.set_read_timeout(Some(left)).expect("timeout");
            match self.stream.read(&mut chunk) {
                Ok(0) => return Next::Closed,
                Ok(n) => self.buf.extend_from_slice(&chunk[..n]),
                Err(e) if closed_by_peer(&e) => return Next::Closed,
                Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                    return Next::Nothing;
                }
                Err(e) => panic!("reading from ivr: {e}"),
            }
        }
    }

    fn take_message(&mut self) -> Option<SipMsg> {
        while self.buf.starts_with(b"\r\n") {
            self.buf.drain(..2);
        }
        let end = self.buf.windows(4).position(|w| w == b"\r\n\r\n")? + 4;
        let head = String::from_utf8_lossy(&self.buf[..end]).to_string();
        let length: usize = head
            .lines()
            .filter_map(|l| l.split_once(':'))
            .find(|(n, _)| n.trim().eq_ignore_ascii_case("Content-Length"))
            .and_then(|(_, v)| v.trim().parse().ok())
            .unwrap_or(0);
        if self.buf.len() < end + length {
            return None;
        }
        let bytes: Vec<u8> = self.buf.drain(..end + length).collect();
        Some(SipMsg::parse(&bytes).expect("parseable SIP from ivr"))
    }

    /// The next message that satisfies `want`, skipping others; panics naming `what` otherwise.
    fn expect(&mut self, what: &str, timeout: Duration, want: impl Fn(&SipMsg) -> bool) -> SipMsg {
        let deadline = Instant::now() + timeout;
        loop {
            match self.next(deadline.saturating_duration_since(Instant::now())) {
                Next::Message(m) if want(&m) => return m,
                Next::Message(_) => continue,
                other => panic!("waiting for {what} over TCP: {other:?}"),
            }
        }
    }
}

/// An OPTIONS over TCP from `local`.
fn options(local: SocketAddr, server: SocketAddr) -> String {
    format!(
        "OPTIONS sip:ivr@{server} SIP/2.0\r\n\
         Via: SIP/2.0/TCP {local};branch=z9hG4bK-{}\r\n\
         Max-Forwards: 70\r\n\
         From: <sip:probe@{local}>;tag={}\r\n\
         To: <sip:ivr@{server}>\r\n\
         Call-ID: {}@attack\r\n\
         CSeq: 1 OPTIONS\r\n\
         Content-Length: 0\r\n\r\n",
        token(),
        token(),
        token()
    )
}

/// A call over TCP from 127.0.0.1: answered, then the line's BYE after the greeting arrives
/// over the same connection. Returns how long the connection sat quiet between ACK and BYE.
fn tcp_call(server: SocketAddr) -> Duration {
    let mut ua = TcpUa::new(connect_from(Ipv4Addr::LOCALHOST, server));
    let local = ua.local();
    let rtp = UdpSocket::bind("127.0.0.1:0").expect("RTP socket");
    let sdp = sdp_offer(rtp.local_addr().expect("rtp addr").port(), "0 101");
    let ids = CallIds::new();
    let invite = format!(
        "INVITE sip:ivr@{server} SIP/2.0\r\n\
         Via: SIP/2.0/TCP {local};branch={}\r\n\
         Max-Forwards: 70\r\n\
         From: <sip:tcp-caller@{local}>;tag={}\r\n\
         To: <sip:ivr@{server}>\r\n\
         Call-ID: {}\r\n\
         CSeq: 1 INVITE\r\n\
         Contact: <sip:tcp-caller@{local};transport=tcp>\r\n\
         Content-Type: application/sdp\r\n\
         Content-Length: {}\r\n\r\n{sdp}",
        ids.branch,
        ids.from_tag,
        ids.call_id,
        sdp.len()
    );
    assert!(ua.send(&invite), "ivr closed the TCP call's connection");
    let ok = ua.expect("200 to the INVITE", Duration::from_secs(15), |m| {
        m.status() == Some(200)
    });
    let target = ok.contact_uri().expect("Contact in 200");
    let to = ok.header("To").expect("To in 200");
    let ack = format!(
        "ACK {target} SIP/2.0\r\n\
         Via: SIP/2.0/TCP {local};branch=z9hG4bK-{}\r\n\
         Max-Forwards: 70\r\n\
         From: <sip:tcp-caller@{local}>;tag={}\r\n\
         To: {to}\r\n\
         Call-ID: {}\r\n\
         CSeq: 1 ACK\r\n\
         Content-Length: 0\r\n\r\n",
        token(),
        ids.from_tag,
        ids.call_id
    );
    assert!(ua.send(&ack), "ivr closed the TCP call's connection");
    let acked = Instant::now();
    let bye = ua.expect("the line's BYE", Duration::from_secs(30), |m| {
        m.method() == Some("BYE")
    });
    let quiet = acked.elapsed();
    assert!(
        ua.send(&ok_for(&bye)),
        "ivr closed the TCP call's connection"
    );
    quiet
}

/// A call over UDP from 127.0.0.1: answered, greeting, the line's BYE.
fn udp_call(server: SocketAddr) {
    let ua = UdpUa::new(server);
    let rtp = UdpSocket::bind("127.0.0.1:0").expect("RTP socket");
    let ids = CallIds::new();
    let sdp = sdp_offer(rtp.local_addr().expect("rtp addr").port(), "0 101");
    ua.send(invite(&ua, &ids, &sdp));
    let ok = ua.expect_response(&ids.call_id, |s| s == 200, Duration::from_secs(15));
    ua.send(in_dialog(&ua, &ids, &ok, "ACK", 1));
    let bye = ua.expect_request(&ids.call_id, "BYE", Duration::from_secs(30));
    ua.send(ok_for(&bye));
}

#[test]
fn idle_and_half_sent_tcp_connections_are_capped_and_closed_while_calls_go_through() {
    let config = tcp_config();
    let ivr = Ivr::start(&["--config", &config]);
    let server = ivr.sip_addr();

    // Half-sent messages from 127.0.0.3: a head cut off, 60 KB of header lines never ended, and
    // a head dripped a byte at a time.
    let slow_start = Instant::now();
    let mut slow = Vec::new();
    let mut cut = TcpUa::new(connect_from(SLOW_ATTACKER, server));
    let text = options(cut.local(), server);
    assert!(cut.send(&text[..text.len() / 2]));
    slow.push(cut.stream);
    let mut big = TcpUa::new(connect_from(SLOW_ATTACKER, server));
    let mut text = options(big.local(), server);
    text.truncate(text.len() - 4);
    while text.len() < 60_000 {
        text.push_str("\r\nX-Padding: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa");
    }
    assert!(big.send(&text));
    slow.push(big.stream);
    let drip = connect_from(SLOW_ATTACKER, server);
    let mut drip_writer = drip.try_clone().expect("clone");
    let text = options(drip.local_addr().expect("local addr"), server);
    std::thread::spawn(move || {
        for b in text.as_bytes() {
            if drip_writer.write_all(&[*b]).is_err() {
                return;
            }
            std::thread::sleep(Duration::from_millis(300));
        }
    });
    slow.push(drip);

    // Idle connections from 127.0.0.2, each saying one OPTIONS: the first PER_SOURCE are served,
    // the rest are refused (closed at once).
    let mut idle = Vec::new();
    let mut refused = 0;
    for _ in 0..PER_SOURCE + 4 {
        let mut ua = TcpUa::new(connect_from(ATTACKER, server));
        let text = options(ua.local(), server);
        let served = ua.send(&text)
            && match ua.next(Duration::from_secs(10)) {
                Next::Message(m) => m.status() == Some(200),
                Next::Closed => false,
                Next::Nothing => panic!("no answer and no close on a TCP connection"),
            };
        if served {
            idle.push((ua.stream, Instant::now()));
        } else {
            refused += 1;
        }
    }
    assert_eq!(
        (idle.len(), refused),
        (PER_SOURCE, 4),
        "connections served and refused from one address (tcp_max_per_source = {PER_SOURCE})"
    );

    // Calls from 127.0.0.1 during the attack, over TCP and UDP.
    let tcp = std::thread::spawn(move || tcp_call(server));
    let udp = std::thread::spawn(move || udp_call(server));

    for (i, s) in slow.iter_mut().enumerate() {
        let deadline = slow_start + Duration::from_secs(MESSAGE_S) + SLACK;
        assert!(
            closed_before(s, deadline),
            "half-sent message #{i} still open {:?} after its first byte (tcp_message_timeout_s = {MESSAGE_S})",
            slow_start.elapsed()
        );
    }
    for (i, (s, last)) in idle.iter_mut().enumerate() {
        let deadline = *last + Duration::from_secs(IDLE_S) + SLACK;
        assert!(
            closed_before(s, deadline),
            "idle connection #{i} still open {:?} after its last message (tcp_idle_timeout_s = {IDLE_S})",
            last.elapsed()
        );
    }

    let quiet = tcp.join().expect("TCP call");
    assert!(
        quiet > Duration::from_secs(IDLE_S + 1),
        "the call's connection must outlast the idle timeout for this test to mean anything: {quiet:?}"
    );
    udp.join().expect("UDP call");

    // The closed connections freed their slots.
    let mut again = TcpUa::new(connect_from(ATTACKER, server));
    let text = options(again.local(), server);
    assert!(again.send(&text));
    let m = again.expect("200 to OPTIONS", Duration::from_secs(10), |_| true);
    assert_eq!(m.status(), Some(200), "{}", m.text());

    ivr.wait_for_log(
        &[
            "event=\"tcp_refused\"",
            "event=\"tcp_slow_closed\"",
            "event=\"tcp_idle_closed\"",
        ],
        Duration::from_secs(5),
    );
}

/// A REGISTER for alice over `ua`, with `extra` header lines.
fn register(ua: &TcpUa, server: SocketAddr, cseq: u32, extra: &str) -> String {
    let local = ua.local();
    format!(
        "REGISTER sip:{server} SIP/2.0\r\n\
         Via: SIP/2.0/TCP {local};branch=z9hG4bK-{}\r\n\
         Max-Forwards: 70\r\n\
         From: <sip:alice@{server}>;tag=reg\r\n\
         To: <sip:alice@{server}>\r\n\
         Call-ID: reg-{}@attack\r\n\
         CSeq: {cseq} REGISTER\r\n\
         Contact: <sip:alice@{local};transport=tcp>\r\n\
         Expires: 3600\r\n\
         {extra}Content-Length: 0\r\n\r\n",
        token(),
        local.port()
    )
}

#[test]
fn a_connection_a_phone_registered_over_outlives_the_idle_timeout() {
    let config = tcp_config();
    let ivr = Ivr::start(&["--config", &config]);
    let server = ivr.sip_addr();

    // alice's phone registers over TCP (behind NAT it can only be reached this way).
    let mut phone = TcpUa::new(connect_from(Ipv4Addr::LOCALHOST, server));
    assert!(phone.send(&register(&phone, server, 1, "")));
    let challenge = phone.expect("401", Duration::from_secs(10), |m| m.status() == Some(401));
    let www = challenge
        .headers_named("WWW-Authenticate")
        .find(|c| c.contains("MD5"))
        .expect("an MD5 challenge")
        .to_string();
    let uri = format!("sip:{server}");
    let auth = ivr::sip::auth::answer_challenge(&www, "REGISTER", &uri, "alice", "s3cret", "cn", 1)
        .expect("answer the challenge");
    let extra = format!("Authorization: {auth}\r\n");
    assert!(phone.send(&register(&phone, server, 2, &extra)));
    let ok = phone.expect("200", Duration::from_secs(10), |m| {
        m.status().is_some_and(|s| s >= 200)
    });
    assert_eq!(ok.status(), Some(200), "{}", ok.text());
    let registered = Instant::now();

    // A connection with nothing on it, opened at the same time, as the control.
    let mut bystander = TcpUa::new(connect_from(Ipv4Addr::LOCALHOST, server));
    let text = options(bystander.local(), server);
    assert!(bystander.send(&text));
    bystander.expect("200 to OPTIONS", Duration::from_secs(10), |m| {
        m.status() == Some(200)
    });
    assert!(
        closed_before(
            &mut bystander.stream,
            Instant::now() + Duration::from_secs(IDLE_S) + SLACK
        ),
        "a connection without a call or binding must close after tcp_idle_timeout_s = {IDLE_S}"
    );
    assert!(registered.elapsed() > Duration::from_secs(IDLE_S));

    // The phone's connection is still open and served.
    let text = options(phone.local(), server);
    assert!(
        phone.send(&text),
        "the registered phone's connection was closed"
    );
    let m = phone.expect("200 to OPTIONS", Duration::from_secs(10), |m| {
        m.status().is_some()
    });
    assert_eq!(m.status(), Some(200), "{}", m.text());
}

/// Sources swept: 127.10.0.0 upwards, one UDP socket each.
const SWEEP: u32 = 60_000;

fn vm_rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("proc status");
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmRSS in /proc status")
}

/// An OPTIONS from `sock` to `server` with `call_id`.
fn udp_options(sock: &UdpSocket, server: SocketAddr, call_id: &str) -> String {
    let local = sock.local_addr().expect("local addr");
    format!(
        "OPTIONS sip:ivr@{server} SIP/2.0\r\n\
         Via: SIP/2.0/UDP {local};branch=z9hG4bK-{}\r\n\
         Max-Forwards: 70\r\n\
         From: <sip:sweep@{local}>;tag=1\r\n\
         To: <sip:ivr@{server}>\r\n\
         Call-ID: {call_id}\r\n\
         CSeq: 1 OPTIONS\r\n\
         Content-Length: 0\r\n\r\n",
        token(),
    )
}

/// One OPTIONS from each of `count` source addresses from `first` on, in batches, each batch
/// followed by a probe's round trip so the server has read it before the next (the kernel would
/// drop a burst bigger than the socket buffer, and the server would never see those sources).
fn sweep(server: SocketAddr, first: u32, count: u32, probe: &UdpUa) {
    let base = u32::from(Ipv4Addr::new(127, 10, 0, 0));
    for batch in (first..first + count).collect::<Vec<_>>().chunks(100) {
        for n in batch {
            let ip = Ipv4Addr::from(base + n);
            let s = UdpSocket::bind(SocketAddr::new(IpAddr::V4(ip), 0))
                .unwrap_or_else(|e| panic!("bind {ip}: {e}"));
            s.send_to(udp_options(&s, server, "sweep").as_bytes(), server)
                .expect("send OPTIONS");
        }
        let call_id = format!("{}@probe", token());
        probe.send(udp_options(&probe.sock, server, &call_id));
        probe.expect_response(&call_id, |s| s == 200, Duration::from_secs(10));
    }
}

#[test]
fn a_sweep_of_source_addresses_leaves_memory_bounded() {
    // A wildcard listen address is where ivr must learn its own address per peer; only loopback
    // packets are sent.
    // The probe that paces the sweep is one source sending hundreds of OPTIONS: exempt it from
    // the per-source limits. The sweep's own sources send one each and fill that table too: it is
    // bounded by max_sources (default 10,000 entries, ~1.6 MiB, checked in sip::admission's
    // tests); kept small here so this test measures the local-address cache.
    let config = common::unique_temp_dir("sweep").join("ivr.toml");
    std::fs::write(
        &config,
        "[sip.limits]\nexempt = [\"127.0.0.1\"]\nmax_sources = 1000\n",
    )
    .expect("write config");
    let ivr = Ivr::start_on("0.0.0.0:0", &["--config", config.to_str().expect("utf-8")]);
    let server = SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), ivr.sip_addr().port());
    let probe = UdpUa::new(server);
    // Warm up (allocator arenas, buffers) before the baseline.
    sweep(server, 0, 2_000, &probe);
    let before = vm_rss_kib(ivr.pid());
    sweep(server, 2_000, SWEEP, &probe);
    let after = vm_rss_kib(ivr.pid());
    eprintln!("VmRSS before {before} KiB, after {SWEEP} sources {after} KiB");
    assert!(
        after <= before + 2_048,
        "memory grew with the number of sources: VmRSS {before} KiB -> {after} KiB after {SWEEP} sources"
    );
    let log = ivr.wait_for_log(&["event=\"local_ip_cache_full\""], Duration::from_secs(5));
    for line in log.lines().filter(|l| l.contains("local_ip_cache_full")) {
        let field = |name: &str| -> u64 {
            line.split_whitespace()
                .find_map(|w| w.strip_prefix(&format!("{name}=")))
                .and_then(|v| v.parse().ok())
                .unwrap_or_else(|| panic!("{name} in {line}"))
        };
        assert!(
            field("entries") <= field("capacity"),
            "the local-address cache outgrew its capacity: {line}"
        );
    }
}
