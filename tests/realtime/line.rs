//! `ivr serve` for the real-time tests, on a data directory the test chooses (a restart reuses
//! it), at an after-hours clock, killed on drop; and its sipp callers.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use crate::common::{free_media_port, free_port, manifest_dir};

/// Friday 2026-11-27 22:30 in America/New_York (the default `[hours]` zone): after hours.
pub const AFTER_HOURS: &str = "2026-11-27T22:30:00-05:00";

/// `tests/flows/<name>`.
fn test_flow(name: &str) -> PathBuf {
    manifest_dir().join("tests/flows").join(name)
}

pub struct Line {
    child: Child,
    pub addr: SocketAddr,
    log_path: PathBuf,
}

/// `ivr serve` exited (or never said it listens): its exit status and log.
#[derive(Debug)]
pub struct StartFailure {
    pub status: Option<ExitStatus>,
    pub log: String,
}

impl Line {
    /// Starts `ivr serve` with `config` (TOML text, written to `<dir>/<label>.toml`), the flow
    /// `tests/flows/<flow>` and the after-hours clock; the log goes to `<dir>/<label>.log`.
    pub fn start(dir: &Path, data: &Path, flow: &str, config: &str, label: &str) -> Line {
        Line::start_at(dir, data, &test_flow(flow), config, label)
    }

    /// [`Line::start`] with the flow file at `flow` (e.g. the shipped one).
    pub fn start_at(dir: &Path, data: &Path, flow: &Path, config: &str, label: &str) -> Line {
        Line::try_start_at(dir, data, flow, config, label)
            .unwrap_or_else(|f| panic!("ivr serve did not start ({:?}); log:\n{}", f.status, f.log))
    }

    pub fn try_start(
        dir: &Path,
        data: &Path,
        flow: &str,
        config: &str,
        label: &str,
    ) -> Result<Line, StartFailure> {
        Line::try_start_at(dir, data, &test_flow(flow), config, label)
    }

    fn try_start_at(
        dir: &Path,
        data: &Path,
        flow: &Path,
        config: &str,
        label: &str,
    ) -> Result<Line, StartFailure> {
        let config_path = dir.join(format!("{label}.toml"));
        std::fs::write(&config_path, config).expect("write config");
        let log_path = dir.join(format!("{label}.log"));
        let log = std::fs::File::create(&log_path).expect("create log");
        let mut child = crate::common::db::ivr_command(data)
            .arg("serve")
            .arg("--config")
            .arg(&config_path)
            .args(["--sip", "127.0.0.1:0", "--now", AFTER_HOURS])
            .arg("--data")
            .arg(data)
            .arg("--prompts")
            .arg(manifest_dir().join("prompts"))
            .arg("--flow")
            .arg(flow)
            // The log assertions rely on the default `info` filter and plain (non-ANSI) output.
            .env_remove("RUST_LOG")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::from(log))
            .spawn()
            .expect("spawn ivr");
        let stdout = child.stdout.take().expect("piped stdout");
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            let mut lines = BufReader::new(stdout).lines();
            let _ = tx.send(lines.next().and_then(Result::ok));
            for _ in lines {}
        });
        let first = rx.recv_timeout(Duration::from_secs(20)).ok().flatten();
        let addr = first.as_deref().and_then(|l| {
            l.strip_prefix("ivr: SIP listening on ")?
                .strip_suffix(" (UDP and TCP)")?
                .parse::<SocketAddr>()
                .ok()
        });
        match addr {
            Some(addr) => Ok(Line {
                child,
                addr,
                log_path,
            }),
            None => {
                let deadline = Instant::now() + Duration::from_secs(5);
                let mut status = None;
                while Instant::now() < deadline {
                    if let Ok(Some(s)) = child.try_wait() {
                        status = Some(s);
                        break;
                    }
                    std::thread::sleep(Duration::from_millis(50));
                }
                if status.is_none() {
                    let _ = child.kill();
                    let _ = child.wait();
                }
                Err(StartFailure {
                    status,
                    log: std::fs::read_to_string(&log_path).unwrap_or_default(),
                })
            }
        }
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log_path).unwrap_or_default()
    }

    /// Waits until the log holds `needle` at least `count` times.
    pub fn wait_for_log(&self, needle: &str, count: usize, timeout: Duration) -> String {
        let deadline = Instant::now() + timeout;
        loop {
            let log = self.log();
            if log.matches(needle).count() >= count {
                return log;
            }
            assert!(
                Instant::now() < deadline,
                "ivr log lacks {count} x {needle:?} after {timeout:?}; log:\n{log}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// SIGKILL (what `Child::kill` sends on Unix): no shutdown code runs.
    pub fn sigkill(&mut self) {
        self.child.kill().expect("SIGKILL ivr");
        let status = self.child.wait().expect("reap ivr");
        assert!(!status.success(), "killed ivr exited cleanly: {status}");
    }

    /// A sipp caller for `tests/sipp/<scenario>` with From user `caller`, run in `cwd`.
    pub fn sipp(&self, scenario: &str, caller: &str, cwd: &Path, tag: &str) -> Command {
        let scenario_path = manifest_dir().join("tests/sipp").join(scenario);
        assert!(
            scenario_path.is_file(),
            "missing {}",
            scenario_path.display()
        );
        let out = std::fs::File::create(cwd.join(format!("sipp-{tag}.out"))).expect("sipp out");
        let mut cmd = Command::new("sipp");
        cmd.arg(self.addr.to_string())
            .arg("-sf")
            .arg(&scenario_path)
            .args(["-key", "caller", caller])
            .args(["-i", "127.0.0.1"])
            .args(["-p", &free_port().to_string()])
            // sipp binds -mp and the three ports above it (audio and video RTP/RTCP).
            .args(["-mp", &free_media_port().to_string()])
            .args(["-m", "1", "-timeout", "45s", "-timeout_error", "-nostdin"])
            .arg("-trace_err")
            .arg("-error_file")
            .arg(cwd.join(format!("sipp-{tag}-errors.log")))
            .current_dir(cwd)
            .stdin(Stdio::null())
            .stdout(out.try_clone().expect("clone"))
            .stderr(out);
        cmd
    }

    /// Runs one sipp call to completion and asserts it succeeded.
    pub fn call(&self, scenario: &str, caller: &str, cwd: &Path, tag: &str) {
        // Ports are probed free, then sipp binds them: another process may take one in between.
        // sipp then exits before sending anything, so trying again with new ports is safe.
        let errors = cwd.join(format!("sipp-{tag}-errors.log"));
        let mut attempt = 0;
        let status = loop {
            attempt += 1;
            let status = self
                .sipp(scenario, caller, cwd, tag)
                .status()
                .expect("run sipp");
            let bind_failed = std::fs::read_to_string(&errors).is_ok_and(|e| {
                e.contains("Unable to bind") || e.contains("Address already in use")
            });
            if !status.success() && bind_failed && attempt < 3 {
                let _ = std::fs::remove_file(&errors);
                continue;
            }
            break status;
        };
        if !status.success() {
            let read = |name: String| std::fs::read_to_string(cwd.join(name)).unwrap_or_default();
            panic!(
                "sipp {scenario} as {caller} failed ({status}):\n--- errors:\n{}\n--- output:\n{}\n--- ivr log:\n{}",
                read(format!("sipp-{tag}-errors.log")),
                read(format!("sipp-{tag}.out")),
                self.log()
            );
        }
    }
}

impl Drop for Line {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
