//! The running `ivr serve` and the `ivr reload` command meet in the data directory: serve
//! writes its pid to `ivr.pid` and each reload's outcome to `reload.json`; `ivr reload` sends the
//! pid SIGHUP and waits for a newer outcome.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use thiserror::Error;

use super::LOCK_FILE;
pub use crate::services::reload::ReloadOutcome;

pub const PID_FILE: &str = "ivr.pid";
pub const OUTCOME_FILE: &str = "reload.json";

/// `DATA/ivr.pid` while serve runs; removed when dropped (a clean exit).
pub struct PidFile {
    path: PathBuf,
}

impl PidFile {
    pub fn write(dir: &Path) -> std::io::Result<PidFile> {
        let path = dir.join(PID_FILE);
        write_atomically(&path, format!("{}\n", std::process::id()).as_bytes())?;
        Ok(PidFile { path })
    }
}

impl Drop for PidFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

/// Writes via a temp file and a rename, mode 0600, so readers see the old file or the new one.
fn write_atomically(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    let tmp = path.with_extension("tmp");
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&tmp)?;
    f.write_all(bytes)?;
    f.sync_all()?;
    std::fs::rename(&tmp, path)
}

pub(super) fn write_outcome(dir: &Path, outcome: &ReloadOutcome) -> std::io::Result<()> {
    let json = serde_json::to_vec_pretty(outcome).map_err(std::io::Error::other)?;
    write_atomically(&dir.join(OUTCOME_FILE), &json)
}

fn read_outcome(dir: &Path) -> Option<ReloadOutcome> {
    let text = std::fs::read(dir.join(OUTCOME_FILE)).ok()?;
    serde_json::from_slice(&text).ok()
}

#[derive(Debug, Error)]
pub enum ControlError {
    #[error("no ivr serve is running on {} (no {} there)", dir.display(), PID_FILE)]
    NotRunning { dir: PathBuf },
    #[error("{} names pid {pid}, but no ivr holds the data directory's lock: a stale pid file left by an ivr that did not exit cleanly; no ivr serve is running on {}", dir.join(PID_FILE).display(), dir.display())]
    Stale { dir: PathBuf, pid: i32 },
    #[error("{} holds {text:?}, not a pid", path.display())]
    BadPid { path: PathBuf, text: String },
    #[error("cannot signal ivr serve (pid {pid}): {source}")]
    Signal { pid: i32, source: std::io::Error },
    #[error("ivr serve (pid {pid}) did not report the reload within {} s; see its log", timeout.as_secs())]
    NoAnswer { pid: i32, timeout: Duration },
}

/// Asks the `ivr serve` running on `dir` to reload (SIGHUP) and returns its outcome.
pub fn request_reload(dir: &Path, timeout: Duration) -> Result<ReloadOutcome, ControlError> {
    let pid_path = dir.join(PID_FILE);
    let text = std::fs::read_to_string(&pid_path).map_err(|_| ControlError::NotRunning {
        dir: dir.to_path_buf(),
    })?;
    let pid: i32 =
        text.trim()
            .parse()
            .ok()
            .filter(|p| *p > 0)
            .ok_or_else(|| ControlError::BadPid {
                path: pid_path.clone(),
                text: text.trim().to_string(),
            })?;
    // The lock is held for as long as serve runs (the kernel drops it however serve dies): a
    // lock we can take means the pid file is left over, and its pid may be someone else's now.
    if lock_is_free(dir) {
        return Err(ControlError::Stale {
            dir: dir.to_path_buf(),
            pid,
        });
    }
    let before = read_outcome(dir)
        .filter(|o| o.pid == pid as u32)
        .map_or(0, |o| o.generation);
    // SAFETY: kill only sends a signal; the pid belongs to the lock holder checked above.
    if unsafe { libc::kill(pid, libc::SIGHUP) } != 0 {
        return Err(ControlError::Signal {
            pid,
            source: std::io::Error::last_os_error(),
        });
    }
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(o) = read_outcome(dir).filter(|o| o.pid == pid as u32 && o.generation > before)
        {
            return Ok(o);
        }
        if Instant::now() >= deadline {
            return Err(ControlError::NoAnswer { pid, timeout });
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn lock_is_free(dir: &Path) -> bool {
    let Ok(file) = std::fs::OpenOptions::new()
        .read(true)
        .open(dir.join(LOCK_FILE))
    else {
        return true;
    };
    match file.try_lock() {
        Ok(()) => {
            let _ = file.unlock();
            true
        }
        Err(_) => false,
    }
}
