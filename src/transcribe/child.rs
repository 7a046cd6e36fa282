//! Running an engine program: at low CPU priority, with a deadline after which it and anything
//! it started are killed, its output captured.

use std::io::Read;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use super::TranscribeError;

/// What a finished engine printed.
#[derive(Debug)]
pub struct Output {
    pub stdout: String,
}

/// How often a running engine is checked for exit (the deadline is only this precise).
const POLL: Duration = Duration::from_millis(50);
/// Niceness of an engine: transcription uses what CPU the calls leave (RTP pacing and SIP must
/// never wait behind it).
const NICE: i32 = 10;
/// Kept of an engine's stderr for the error message.
const STDERR_TAIL: usize = 400;

/// Set when the process is stopping: running engines are killed at once (checked every
/// [`POLL`]), so a shutdown never waits out an engine's timeout.
static CANCEL: AtomicBool = AtomicBool::new(false);

/// Kill every running engine and refuse new ones: `ivr serve` is stopping.
pub fn cancel_all() {
    CANCEL.store(true, Ordering::SeqCst);
}

/// Run `argv` (program first) until it exits or `timeout` passes. Exit 0 gives its output; a
/// missing program, another exit status or the deadline is an error naming the program.
pub fn run(argv: &[String], timeout: Duration) -> Result<Output, TranscribeError> {
    let (program, args) = argv.split_first().ok_or(TranscribeError::NoCommand)?;
    if CANCEL.load(Ordering::SeqCst) {
        return Err(TranscribeError::Cancelled);
    }
    let mut cmd = Command::new(program);
    cmd.args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        // Its own process group, so a timeout kills a wrapper script's children too.
        .process_group(0);
    let parent = libc::pid_t::try_from(std::process::id()).unwrap_or(0);
    // SAFETY: nice(2), prctl(2), getppid(2) and _exit(2) are async-signal-safe and touch no
    // memory of the parent.
    unsafe {
        cmd.pre_exec(move || {
            libc::nice(NICE);
            // The engine dies with ivr, also when ivr is killed (SIGKILL, OOM): a node that
            // dies mid-transcription must not leave a speech engine eating its machine. The
            // signal comes when the thread that spawned it ends, and that thread waits for the
            // engine below. If ivr died before this, nothing would send it: exit at once.
            libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
            if libc::getppid() != parent {
                libc::_exit(1);
            }
            Ok(())
        });
    }
    let mut child = cmd.spawn().map_err(|e| TranscribeError::Spawn {
        program: program.clone(),
        error: e.to_string(),
    })?;
    // Read both pipes on threads: an engine that fills one pipe while we wait on it would block.
    let reader = |pipe: Option<Box<dyn Read + Send>>| {
        std::thread::spawn(move || {
            let mut buf = Vec::new();
            if let Some(mut p) = pipe {
                let _ = p.read_to_end(&mut buf);
            }
            String::from_utf8_lossy(&buf).into_owned()
        })
    };
    let out = reader(
        child
            .stdout
            .take()
            .map(|p| Box::new(p) as Box<dyn Read + Send>),
    );
    let err = reader(
        child
            .stderr
            .take()
            .map(|p| Box::new(p) as Box<dyn Read + Send>),
    );
    let deadline = Instant::now() + timeout;
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break Ok(status),
            Ok(None) if CANCEL.load(Ordering::SeqCst) => {
                kill_group(child.id());
                let _ = child.wait();
                break Err(TranscribeError::Cancelled);
            }
            Ok(None) if Instant::now() >= deadline => {
                kill_group(child.id());
                let _ = child.wait();
                break Err(TranscribeError::Timeout {
                    program: program.clone(),
                    after: timeout,
                });
            }
            Ok(None) => std::thread::sleep(POLL),
            Err(e) => {
                kill_group(child.id());
                let _ = child.wait();
                break Err(TranscribeError::Spawn {
                    program: program.clone(),
                    error: e.to_string(),
                });
            }
        }
    };
    let stdout = out.join().unwrap_or_default();
    let stderr = err.join().unwrap_or_default();
    let status = status?;
    if !status.success() {
        return Err(TranscribeError::Failed {
            program: program.clone(),
            status: status.to_string(),
            stderr: tail(&stderr),
        });
    }
    Ok(Output { stdout })
}

/// Whether `program` can be run: a path that exists, or a name found on `PATH`.
pub fn installed(program: &str) -> bool {
    if program.contains('/') {
        return Path::new(program).is_file();
    }
    std::env::var_os("PATH")
        .is_some_and(|paths| std::env::split_paths(&paths).any(|dir| dir.join(program).is_file()))
}

fn kill_group(pid: u32) {
    if let Ok(pid) = i32::try_from(pid) {
        // SAFETY: kill(2) with a negative pid signals the child's own process group (set at
        // spawn), nothing else.
        unsafe {
            libc::kill(-pid, libc::SIGKILL);
        }
    }
}

/// The last lines of an engine's stderr, for an error message (engines log a lot).
fn tail(stderr: &str) -> String {
    let t = stderr.trim();
    let start = t.len().saturating_sub(STDERR_TAIL);
    let start = (start..=t.len())
        .find(|&i| t.is_char_boundary(i))
        .unwrap_or(0);
    t[start..].replace('\n', " | ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn argv(a: &[&str]) -> Vec<String> {
        a.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn output_of_a_program_that_succeeds() {
        let out = run(
            &argv(&["sh", "-c", "echo hello; echo log >&2"]),
            Duration::from_secs(10),
        )
        .unwrap();
        assert_eq!(out.stdout, "hello\n");
    }

    #[test]
    fn a_missing_program_is_an_error_naming_it() {
        let e = run(&argv(&["/nonexistent/engine"]), Duration::from_secs(10)).unwrap_err();
        assert!(e.to_string().contains("/nonexistent/engine"), "{e}");
        assert!(!installed("/nonexistent/engine"));
        assert!(installed("sh"));
    }

    #[test]
    fn a_failing_program_reports_status_and_stderr() {
        let e = run(
            &argv(&["sh", "-c", "echo no model >&2; exit 3"]),
            Duration::from_secs(10),
        )
        .unwrap_err();
        let s = e.to_string();
        assert!(
            s.contains("exit status: 3") && s.contains("no model"),
            "{s}"
        );
    }

    #[test]
    fn a_program_past_its_deadline_is_killed_with_its_children() {
        // The grandchild holds the stdout pipe: only killing the group lets run() return.
        let e = run(
            &argv(&["sh", "-c", "sleep 30 & sleep 30"]),
            Duration::from_millis(300),
        )
        .unwrap_err();
        assert!(matches!(e, TranscribeError::Timeout { .. }), "{e}");
    }
}
