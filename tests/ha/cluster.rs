//! The pieces of a two-node set-up: `ivr serve` nodes configured to sit behind a proxy, and
//! Kamailio running the shipped `config/kamailio/kamailio.cfg` on a free loopback port, with a
//! dispatcher list naming the nodes and short timers given as `-A` defines.

use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::common::{self, Ivr};

/// The Kamailio binary (Debian installs it in /usr/sbin, which is not on every user's PATH), or
/// `None` after the usual skip message (a failure with `IVR_REQUIRE_INTEROP=1`).
pub fn kamailio_bin() -> Option<PathBuf> {
    let on_path = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|d| d.join("kamailio"))
            .find(|p| p.is_file())
    });
    let found = on_path.or_else(|| {
        let p = PathBuf::from("/usr/sbin/kamailio");
        p.is_file().then_some(p)
    });
    common::require_found(found.is_some(), "kamailio", "kamailio").then(|| found.expect("found"))
}

/// Kamailio and sipp: both or the test is skipped.
pub fn tools() -> Option<PathBuf> {
    let kamailio = kamailio_bin()?;
    common::require_tool("sipp").then_some(kamailio)
}

pub fn shipped_config() -> PathBuf {
    common::manifest_dir().join("config/kamailio/kamailio.cfg")
}

/// Where a node of a cluster keeps its memory: one PostgreSQL database the nodes share, and the
/// node's name in it (`[cluster] node`, which marks its call records and the webhook events it
/// has leased). Without one, each node keeps its own SQLite in the data directory
/// [`Ivr::start_on`] makes for it.
pub struct SharedStore<'a> {
    pub db: &'a str,
    pub node: &'a str,
}

impl SharedStore<'_> {
    fn toml(&self) -> String {
        format!(
            "[store]\nurl = \"{}\"\n[cluster]\nnode = \"{}\"\n",
            self.db, self.node
        )
    }
}

/// An `ivr serve` node on 127.0.0.1:`port` (0: any free port), with the proxy on loopback
/// trusted: exempt from the per-source limits (every caller arrives from its address; Kamailio
/// limits per source instead) and allowed to assert identities. It answers at once (no ringing,
/// no answer delay), so a call's set-up time is the proxy's and the failover's.
pub fn start_node(port: u16) -> Ivr {
    start_node_with(port, &[])
}

/// [`start_node`] with more `ivr serve` arguments.
pub fn start_node_with(port: u16, extra: &[&str]) -> Ivr {
    start_configured(port, None, "", extra)
}

/// [`start_node`] on the cluster's shared store, with `more_toml` (sections the base config
/// does not have, e.g. `[webhooks]`) and more `ivr serve` arguments.
pub fn start_shared_node(port: u16, store: &SharedStore, more_toml: &str, extra: &[&str]) -> Ivr {
    start_configured(port, Some(store), more_toml, extra)
}

fn start_configured(
    port: u16,
    store: Option<&SharedStore>,
    more_toml: &str,
    extra: &[&str],
) -> Ivr {
    let dir = common::unique_temp_dir("ha-config");
    let config = dir.join("ivr.toml");
    let store = store.map(SharedStore::toml).unwrap_or_default();
    std::fs::write(
        &config,
        format!(
            "[sip.limits]\nexempt = [\"127.0.0.1/32\"]\n[callers]\ntrusted_proxies = [\"127.0.0.1\"]\n\
             [call]\nring_ms = 0\nanswer_delay_ms = 0\n{store}{more_toml}"
        ),
    )
    .expect("write node config");
    let mut args: Vec<&str> = vec!["--config", config.to_str().expect("utf-8 temp path")];
    args.extend(extra);
    Ivr::start_on(&format!("127.0.0.1:{port}"), &args)
}

/// How many calls a node has finished (its `cdr` log lines).
pub fn calls_on(node: &Ivr) -> usize {
    node.log().matches("event=\"cdr\"").count()
}

/// [`calls_on`] once it reaches `expected` (a call's record is logged just after it ends), or
/// what it is after 10 s.
pub fn calls_on_after(node: &Ivr, expected: usize) -> usize {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let n = calls_on(node);
        if n >= expected || Instant::now() > deadline {
            return n;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Timers for the tests: probe every second, a node is out after two missed probes, and an
/// INVITE a node does not answer within a second is tried on the next one.
pub const TEST_DEFINES: &[&str] = &[
    "DS_PING_INTERVAL=1",
    "DS_PROBING_THRESHOLD=2",
    "FR_TIMER=1000",
    "CHILDREN=2",
];

/// A running Kamailio (foreground, logging to stderr); stopped with SIGTERM on drop, so its
/// main process takes its worker processes with it.
pub struct Kamailio {
    child: Child,
    addr: SocketAddr,
    dir: PathBuf,
    /// Every stderr line with the time it was read.
    lines: Arc<Mutex<Vec<(Instant, String)>>>,
}

impl Kamailio {
    /// Starts `bin` with the shipped config in front of `nodes` (dispatcher set 1).
    pub fn start(bin: &Path, nodes: &[SocketAddr], defines: &[&str]) -> Kamailio {
        let dir = common::unique_temp_dir("kamailio");
        let list: String = nodes.iter().map(|n| format!("1 sip:{n} 0 0\n")).collect();
        let list_path = dir.join("dispatcher.list");
        std::fs::write(&list_path, list).expect("write dispatcher list");
        Kamailio::start_in(bin, dir, &list_path, defines)
    }

    /// Starts `bin` with the shipped config and the dispatcher list `list_path`.
    pub fn start_with_list(bin: &Path, list_path: &Path, defines: &[&str]) -> Kamailio {
        Kamailio::start_in(bin, common::unique_temp_dir("kamailio"), list_path, defines)
    }

    /// Starts `bin` with its runtime files and log in `dir`.
    fn start_in(bin: &Path, dir: PathBuf, list_path: &Path, defines: &[&str]) -> Kamailio {
        let addr: SocketAddr = format!("127.0.0.1:{}", common::free_port())
            .parse()
            .expect("address");
        let mut command = Command::new(bin);
        command
            .args(["-DD", "-E", "-m", "32", "-M", "4", "-f"])
            .arg(shipped_config())
            .arg("-Y")
            .arg(&dir)
            .arg("-P")
            .arg(dir.join("kamailio.pid"))
            .args(["-A", &format!("LISTEN={addr}")])
            .args(["-A", &format!("DSLIST=\"{}\"", list_path.display())]);
        for d in defines {
            command.args(["-A", d]);
        }
        let mut child = command
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("spawning kamailio: {e}"));
        let lines = Arc::new(Mutex::new(Vec::new()));
        let stderr = child.stderr.take().expect("piped stderr");
        let (sink, log_path) = (lines.clone(), dir.join("kamailio.log"));
        std::thread::spawn(move || {
            let mut file = std::fs::File::create(log_path).ok();
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if let Some(f) = file.as_mut() {
                    let _ = writeln!(f, "{line}");
                }
                sink.lock().expect("log lock").push((Instant::now(), line));
            }
        });
        let mut k = Kamailio {
            child,
            addr,
            dir,
            lines,
        };
        k.wait_ready();
        k
    }

    /// Until Kamailio answers an OPTIONS to itself (its sockets are bound, its workers run).
    fn wait_ready(&mut self) {
        let sock = UdpSocket::bind("127.0.0.1:0").expect("bind");
        sock.set_read_timeout(Some(Duration::from_millis(200)))
            .expect("timeout");
        let local = sock.local_addr().expect("local");
        let deadline = Instant::now() + Duration::from_secs(20);
        let mut buf = [0u8; 4096];
        while Instant::now() < deadline {
            if let Ok(Some(status)) = self.child.try_wait() {
                // Give the log reader a moment to collect the last lines.
                std::thread::sleep(Duration::from_millis(100));
                panic!("kamailio exited ({status}); log:\n{}", self.log());
            }
            let ping = format!(
                "OPTIONS sip:{addr} SIP/2.0\r\nVia: SIP/2.0/UDP {local};branch=z9hG4bK-{b}\r\n\
                 Max-Forwards: 70\r\nFrom: <sip:test@{local}>;tag={t}\r\nTo: <sip:{addr}>\r\n\
                 Call-ID: {b}@test.invalid\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n",
                addr = self.addr,
                b = common::token(),
                t = common::token(),
            );
            let _ = sock.send_to(ping.as_bytes(), self.addr);
            if let Ok((n, _)) = sock.recv_from(&mut buf)
                && buf[..n].starts_with(b"SIP/2.0 200")
            {
                return;
            }
        }
        panic!("kamailio did not answer OPTIONS; log:\n{}", self.log());
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    pub fn log(&self) -> String {
        let lines = self.lines.lock().expect("log lock");
        lines.iter().map(|(_, l)| format!("{l}\n")).collect()
    }

    /// When the first line after `since` containing `needle` was logged, waiting up to `timeout`.
    pub fn wait_for_line(&self, needle: &str, since: Instant, timeout: Duration) -> Instant {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some((at, _)) = self
                .lines
                .lock()
                .expect("log lock")
                .iter()
                .find(|(at, l)| *at >= since && l.contains(needle))
            {
                return *at;
            }
            assert!(
                Instant::now() < deadline,
                "kamailio logged no {needle:?} within {timeout:?}; log:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

impl Drop for Kamailio {
    fn drop(&mut self) {
        // SIGTERM: the main process stops its workers (SIGKILL would orphan them, sockets bound).
        unsafe { libc::kill(self.child.id() as libc::pid_t, libc::SIGTERM) };
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        if std::thread::panicking() {
            eprintln!("kamailio files kept in {}", self.dir.display());
        } else {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}

/// Kills `node` at once (SIGKILL: no drain, no goodbye to the proxy).
pub fn kill_hard(node: &Ivr) {
    unsafe { libc::kill(node.pid() as libc::pid_t, libc::SIGKILL) };
}

/// One short call through the proxy by hand: INVITE, wait for the 200 (skipping 100 and 180),
/// then ACK and BYE along the Record-Route set, as a caller behind a proxy must (RFC 3261
/// §12.1.2, §12.2.1.1), and wait for the BYE's 200. Returns the INVITE-to-200 time.
pub fn quick_call(proxy: SocketAddr, answer_wait: Duration) -> Duration {
    quick_call_from(proxy, "tester", answer_wait)
}

/// [`quick_call`] from the caller `user` (the From user part, the number the line sees), so
/// calls of a test can come from different numbers, or the same one twice.
pub fn quick_call_from(proxy: SocketAddr, user: &str, answer_wait: Duration) -> Duration {
    let ua = common::UdpUa::new(proxy);
    let ids = common::CallIds::new();
    let sdp = common::sdp_offer(common::free_media_port(), "0 101");
    let from = |req: String| req.replace("<sip:tester@", &format!("<sip:{user}@"));
    let sent = Instant::now();
    ua.send(from(common::invite(&ua, &ids, &sdp)));
    let ok = loop {
        let m = ua.expect_response(&ids.call_id, |_| true, answer_wait);
        match m.status() {
            Some(100 | 180 | 183) => continue,
            Some(200) => break m,
            other => panic!("unexpected {other:?} to INVITE:\n{}", m.text()),
        }
    };
    let setup = sent.elapsed();
    ua.send(along_routes(
        from(common::in_dialog(&ua, &ids, &ok, "ACK", 1)),
        &ok,
    ));
    ua.send(along_routes(
        from(common::in_dialog(&ua, &ids, &ok, "BYE", 2)),
        &ok,
    ));
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let m = ua.expect_response(&ids.call_id, |s| s == 200, left);
        // (A 200 to the INVITE retransmitted before our ACK arrived is skipped.)
        if m.header("CSeq").is_some_and(|c| c.contains("BYE")) {
            return setup;
        }
    }
}

/// `req` (an in-dialog request of the caller) with the route set of `ok`, the 200 to its INVITE:
/// the Record-Route, last first (RFC 3261 §12.1.2).
pub fn along_routes(req: String, ok: &common::SipMsg) -> String {
    let mut routes: Vec<&str> = ok.headers_named("Record-Route").collect();
    routes.reverse();
    assert!(
        !routes.is_empty(),
        "the proxy did not record-route:\n{}",
        ok.text()
    );
    let route = format!("Route: {}\r\n", routes.join(", "));
    req.replacen("Max-Forwards", &format!("{route}Max-Forwards"), 1)
}
