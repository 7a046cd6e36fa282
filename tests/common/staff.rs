//! A sipp UAS playing a staff phone (tests/sipp/staff_*.xml), waiting for ivr's INVITE: the
//! desk tests ring it, and the admin tests watch the call ring and bridge it.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use super::{Ivr, SippRun, free_port, manifest_dir, run_sipp};

/// How long a staff scenario may run.
const WAIT: Duration = Duration::from_secs(40);

/// A sipp UAS playing a staff phone, waiting for ivr's INVITE.
pub struct Staff {
    child: Child,
    name: &'static str,
    pub port: u16,
    err_file: PathBuf,
    out_file: PathBuf,
}

impl Staff {
    /// `pause_ms` is the scenario's `<pause/>` (how long it rings before answering).
    pub fn start(dir: &Path, scenario: &'static str, pause_ms: u64) -> Staff {
        Staff::start_at(dir, "127.0.0.1", scenario, pause_ms)
    }

    /// Like [`Staff::start`], listening on another loopback address (`127.0.0.3`): the DNS
    /// tests give each SRV target its own host.
    pub fn start_at(dir: &Path, ip: &str, scenario: &'static str, pause_ms: u64) -> Staff {
        Staff::start_with(dir, ip, free_port(), scenario, pause_ms, &[])
    }

    /// Like [`Staff::start_at`] on `port`, with more sipp options (`-trace_msg`,
    /// `-message_file F`).
    pub fn start_with(
        dir: &Path,
        ip: &str,
        port: u16,
        scenario: &'static str,
        pause_ms: u64,
        extra: &[&str],
    ) -> Staff {
        let media_port = super::free_media_port();
        let stem = scenario.trim_end_matches(".xml");
        let err_file = dir.join(format!("staff-{stem}-{port}-errors.log"));
        let out_file = dir.join(format!("staff-{stem}-{port}.log"));
        let out = std::fs::File::create(&out_file).expect("staff log");
        let child = Command::new("sipp")
            .arg("-sf")
            .arg(manifest_dir().join("tests/sipp").join(scenario))
            .args(["-i", ip, "-p", &port.to_string()])
            .args(["-mp", &media_port.to_string()])
            .args(["-m", "1", "-timeout", "60s", "-timeout_error", "-nostdin"])
            .args(["-d", &pause_ms.to_string()])
            .arg("-trace_err")
            .arg("-error_file")
            .arg(&err_file)
            .args(extra)
            .current_dir(dir)
            .stdin(Stdio::null())
            .stdout(out.try_clone().expect("clone"))
            .stderr(out)
            .spawn()
            .unwrap_or_else(|e| panic!("starting sipp: {e}"));
        Staff {
            child,
            name: scenario,
            port,
            err_file,
            out_file,
        }
    }

    pub fn uri(&self) -> String {
        format!("sip:staff@127.0.0.1:{}", self.port)
    }

    /// Waits for the scenario to finish and asserts it completed.
    pub fn assert_completed(mut self) {
        let deadline = Instant::now() + WAIT;
        let status: ExitStatus = loop {
            if let Some(s) = self.child.try_wait().expect("wait") {
                break s;
            }
            if Instant::now() > deadline {
                let _ = self.child.kill();
                panic!("staff {} still running after {WAIT:?}", self.name);
            }
            std::thread::sleep(Duration::from_millis(50));
        };
        assert!(
            status.success(),
            "staff phone {} failed ({status}):\n{}\n{}",
            self.name,
            std::fs::read_to_string(&self.err_file).unwrap_or_default(),
            std::fs::read_to_string(&self.out_file)
                .unwrap_or_default()
                .chars()
                .rev()
                .take(3000)
                .collect::<String>()
                .chars()
                .rev()
                .collect::<String>()
        );
    }
}

impl Drop for Staff {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Staff user alice (password `s3cret`) calls `number` back through the line from a sipp phone
/// running `tests/sipp/<scenario>`, answering the line's 407 with her credentials; `extra` adds
/// sipp options (e.g. `-d 2000`, how long she stays on the call).
pub fn alice_calls_back(ivr: &Ivr, scenario: &str, number: &str, extra: &[&str]) -> SippRun {
    // sipp's digest uri defaults to the server's address; the Request-URI is what must match
    // (sipp puts "sip:" in front of -auth_uri itself).
    let auth_uri = format!("{number}@{}", ivr.sip_addr());
    let mut args = vec![
        "-s",
        "alice",
        "-au",
        "alice",
        "-ap",
        "s3cret",
        "-key",
        "number",
        number,
        "-auth_uri",
        &auth_uri,
    ];
    args.extend(extra);
    run_sipp(ivr, scenario, &args)
}
