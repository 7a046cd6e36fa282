//! A webhook receiver for the integration tests: HTTP/1.1 (or HTTPS, with a certificate from
//! a test CA) on a thread of the test, one request per connection, always 200; every request is
//! kept (headers and body) for assertions, and every failed TLS handshake by its error.

use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::Value;

/// How long [`Hook::wait_until`] waits (things that happen asynchronously, never timed asserts).
pub const HOOK_WAIT: Duration = Duration::from_secs(30);

#[derive(Clone, Debug)]
pub struct Hooked {
    pub headers: HashMap<String, String>,
    pub body: Vec<u8>,
}

impl Hooked {
    pub fn header(&self, name: &str) -> &str {
        self.headers.get(name).map(String::as_str).unwrap_or("")
    }
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).expect("webhook body is JSON")
    }
    pub fn event(&self) -> String {
        self.json()["event"].as_str().unwrap_or("").to_string()
    }
    pub fn call_id(&self) -> String {
        self.json()["call_id"].as_str().unwrap_or("").to_string()
    }
    pub fn delivery(&self) -> i64 {
        self.header("x-ivr-delivery")
            .parse()
            .expect("X-Ivr-Delivery")
    }
}

pub struct Hook {
    pub addr: SocketAddr,
    log: Arc<Mutex<Vec<Hooked>>>,
    tls_failures: Arc<Mutex<Vec<String>>>,
    https: bool,
    stop: Arc<AtomicBool>,
}

impl Hook {
    /// Listens on 127.0.0.1:`port` (0: any free port).
    pub fn start(port: u16) -> Hook {
        Hook::listen(port, None)
    }

    /// An HTTPS receiver on 127.0.0.1:`port` with the certificate of `tls`.
    pub fn start_https(port: u16, tls: Arc<rustls::ServerConfig>) -> Hook {
        Hook::listen(port, Some(tls))
    }

    fn listen(port: u16, tls: Option<Arc<rustls::ServerConfig>>) -> Hook {
        let listener = TcpListener::bind(("127.0.0.1", port)).expect("bind webhook receiver");
        let addr = listener.local_addr().expect("addr");
        let log = Arc::new(Mutex::new(Vec::new()));
        let tls_failures = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let https = tls.is_some();
        let (log2, failures2, stop2) = (log.clone(), tls_failures.clone(), stop.clone());
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                if stop2.load(Ordering::SeqCst) {
                    return;
                }
                let Ok(conn) = conn else { continue };
                let _ = conn.set_read_timeout(Some(Duration::from_secs(5)));
                let req = match &tls {
                    None => read_request(conn).ok().flatten(),
                    Some(cfg) => {
                        let server = rustls::ServerConnection::new(cfg.clone()).expect("TLS");
                        let mut stream = rustls::StreamOwned::new(server, conn);
                        match read_request(&mut stream) {
                            Ok(req) => req,
                            Err(e) => {
                                // The handshake's outcome: e.g. the client's "unknown CA" alert.
                                failures2.lock().unwrap().push(e.to_string());
                                None
                            }
                        }
                    }
                };
                if let Some(req) = req {
                    log2.lock().unwrap().push(req);
                }
            }
        });
        Hook {
            addr,
            log,
            tls_failures,
            https,
            stop,
        }
    }

    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    /// The URL to configure: `http(s)://127.0.0.1:PORT/hook`.
    pub fn url(&self) -> String {
        let scheme = if self.https { "https" } else { "http" };
        format!("{scheme}://{}/hook", self.addr)
    }

    /// The errors of the TLS connections that carried no request, in order.
    pub fn tls_failures(&self) -> Vec<String> {
        self.tls_failures.lock().unwrap().clone()
    }

    pub fn requests(&self) -> Vec<Hooked> {
        self.log.lock().unwrap().clone()
    }

    pub fn named(&self, event: &str) -> Vec<Hooked> {
        self.requests()
            .into_iter()
            .filter(|r| r.event() == event)
            .collect()
    }

    /// Waits until `cond` holds for the requests received so far.
    pub fn wait_until(&self, what: &str, cond: impl Fn(&[Hooked]) -> bool) -> Vec<Hooked> {
        let deadline = Instant::now() + HOOK_WAIT;
        loop {
            let reqs = self.requests();
            if cond(&reqs) {
                return reqs;
            }
            assert!(
                Instant::now() < deadline,
                "webhooks: timed out waiting for {what}; got {:?}",
                reqs.iter()
                    .map(|r| (r.event(), r.call_id()))
                    .collect::<Vec<_>>()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Hook {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Wake the accept loop so the thread sees the flag.
        let _ = TcpStream::connect(self.addr);
    }
}

/// One request from `conn`, answered 200; `Ok(None)` when the peer sent nothing (the wake-up
/// connection of `Drop`). An error is the connection's (or the TLS handshake's).
fn read_request(mut conn: impl Read + Write) -> std::io::Result<Option<Hooked>> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    let head_end = loop {
        let n = conn.read(&mut chunk)?;
        if n == 0 {
            return Ok(None);
        }
        buf.extend_from_slice(&chunk[..n]);
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).to_string();
    let headers: HashMap<String, String> = head
        .lines()
        .skip(1)
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    let len: usize = headers
        .get("content-length")
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    while buf.len() < head_end + len {
        let n = conn.read(&mut chunk)?;
        if n == 0 {
            break;
        }
        buf.extend_from_slice(&chunk[..n]);
    }
    let _ = conn.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\nconnection: close\r\n\r\n");
    let _ = conn.flush();
    Ok(Some(Hooked {
        headers,
        body: buf[head_end..].to_vec(),
    }))
}
