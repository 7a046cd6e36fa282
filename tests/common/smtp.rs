//! A real SMTP server on loopback for the mail tests: `tests/common/smtp_server.py` (Python's
//! aiosmtpd, Debian `python3-aiosmtpd`), plain, STARTTLS or implicit TLS, with or without AUTH.
//! Each message it accepts is kept as received (`N.eml`) with its envelope (`N.json`).

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

/// How the test server protects the connection.
pub enum SmtpTls<'a> {
    Plain,
    /// STARTTLS required, with this certificate and key (PEM files).
    Starttls(&'a Path, &'a Path),
    /// TLS from the first byte.
    Implicit(&'a Path, &'a Path),
}

/// One accepted message.
pub struct Received {
    pub raw: Vec<u8>,
    pub envelope: Value,
}

pub struct SmtpServer {
    child: Child,
    pub port: u16,
    pub dir: PathBuf,
}

/// A Python that can import aiosmtpd: Debian's (`/usr/bin/python3`, where the package puts it)
/// before whatever `python3` is first on PATH.
fn python() -> Option<PathBuf> {
    ["/usr/bin/python3", "python3"]
        .into_iter()
        .map(PathBuf::from)
        .find(|p| {
            Command::new(p)
                .args(["-c", "import aiosmtpd"])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .is_ok_and(|s| s.success())
        })
}

/// Whether the server can run; prints a SKIP (or fails under `IVR_REQUIRE_INTEROP=1`) if not.
pub fn available() -> bool {
    super::require_found(python().is_some(), "aiosmtpd", "python3-aiosmtpd")
}

impl SmtpServer {
    /// Starts the server on 127.0.0.1:`port`, keeping messages in `dir`; `auth` is
    /// `Some((user, password))` to require AUTH. Waits until it listens.
    pub fn start(
        port: u16,
        dir: &Path,
        tls: SmtpTls<'_>,
        auth: Option<(&str, &str)>,
    ) -> SmtpServer {
        std::fs::create_dir_all(dir).expect("mail dir");
        let python = python().expect("python3 with aiosmtpd (check smtp::available first)");
        let script = super::manifest_dir().join("tests/common/smtp_server.py");
        let mut cmd = Command::new(python);
        cmd.arg(script)
            .args(["--port", &port.to_string()])
            .arg("--dir")
            .arg(dir);
        match tls {
            SmtpTls::Plain => {}
            SmtpTls::Starttls(cert, key) => {
                cmd.arg("--starttls").arg(cert).arg(key);
            }
            SmtpTls::Implicit(cert, key) => {
                cmd.arg("--smtps").arg(cert).arg(key);
            }
        }
        if let Some((user, password)) = auth {
            cmd.args(["--auth", &format!("{user}:{password}")]);
        }
        let log = std::fs::File::create(dir.join("server.log")).expect("server log");
        let mut child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(log)
            .spawn()
            .expect("start the SMTP server");
        let stdout = child.stdout.take().expect("stdout");
        let mut line = String::new();
        std::io::BufRead::read_line(&mut std::io::BufReader::new(stdout), &mut line)
            .expect("read the server's first line");
        assert!(
            line.starts_with("READY"),
            "SMTP server did not start: {line:?}; log:\n{}",
            std::fs::read_to_string(dir.join("server.log")).unwrap_or_default()
        );
        SmtpServer {
            child,
            port,
            dir: dir.to_path_buf(),
        }
    }

    /// Every message accepted so far, in order.
    pub fn received(&self) -> Vec<Received> {
        let mut out = Vec::new();
        for n in 1.. {
            let eml = self.dir.join(format!("{n}.eml"));
            let json = self.dir.join(format!("{n}.json"));
            let (Ok(raw), Ok(meta)) = (std::fs::read(&eml), std::fs::read(&json)) else {
                break;
            };
            out.push(Received {
                raw,
                envelope: serde_json::from_slice(&meta).expect("envelope JSON"),
            });
        }
        out
    }

    /// Waits up to `wait` for at least `n` messages; returns them all.
    pub fn wait_for(&self, n: usize, wait: Duration) -> Vec<Received> {
        let deadline = Instant::now() + wait;
        loop {
            let got = self.received();
            if got.len() >= n {
                return got;
            }
            assert!(
                Instant::now() < deadline,
                "{} message(s) after {wait:?}, expected {n}; server log:\n{}",
                got.len(),
                std::fs::read_to_string(self.dir.join("server.log")).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Drop for SmtpServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
