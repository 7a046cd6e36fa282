//! Helpers shared by the store's tests: temp directories removed on drop, a raw second
//! connection to check what is on disk, and sample calls, voicemails and events.

use std::path::{Path, PathBuf};

use jiff::Timestamp;
use rusqlite::Connection;

use super::*;
use crate::repeat::{RepeatPolicy, normalise};

/// A temp directory removed on drop.
pub(super) struct TempDir(PathBuf);

impl TempDir {
    pub(super) fn new(label: &str) -> TempDir {
        use std::sync::atomic::{AtomicU32, Ordering};
        static NEXT: AtomicU32 = AtomicU32::new(0);
        let dir = std::env::temp_dir().join(format!(
            "ivr-store-{label}-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("create temp dir");
        TempDir(dir)
    }

    pub(super) fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

pub(super) fn t(s: &str) -> Timestamp {
    s.parse().expect("test timestamp")
}

/// A plain connection to the same file, to see what is really stored.
pub(super) fn raw(dir: &Path) -> Connection {
    Connection::open(dir.join(DB_FILE)).expect("raw connection")
}

/// Every outbox row as (id, event type), read straight from the database file.
pub(super) fn outbox_events(dir: &Path) -> Vec<(i64, String)> {
    let conn = raw(dir);
    let mut stmt = conn
        .prepare("SELECT id, event_type FROM outbox")
        .expect("prepare");
    stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
        .expect("query")
        .collect::<Result<_, _>>()
        .expect("rows")
}

pub(super) fn start(call_id: &str, caller: &str, at: &str) -> CallStart {
    CallStart {
        call_id: call_id.into(),
        caller: normalise(caller, Some("1")),
        caller_raw: caller.into(),
        called: "100".into(),
        client: None,
        started_at: t(at),
        after_hours: true,
        agreement: false,
        rate_multiplier: 2.0,
        repeat_rule: std::sync::Arc::new(RepeatPolicy::default()),
        node: "node-a".into(),
    }
}

pub(super) fn voicemail(call_id: &str, caller: &str, at: &str) -> NewVoicemail {
    NewVoicemail {
        call_id: call_id.into(),
        caller: caller.into(),
        client: Some("Acme".into()),
        ticket: Some("T-42".into()),
        path: PathBuf::from(format!("voicemail/{call_id}.wav")),
        duration_ms: 12_500,
        created_at: t(at),
    }
}

pub(super) fn event(kind: &str, call_id: Option<&str>, at: &str) -> OutboxEvent {
    OutboxEvent {
        kind: EventKind::from_name(kind),
        call_id: call_id.map(String::from),
        target: Target::Primary,
        payload: serde_json::json!({ "event": kind, "call_id": call_id }),
        occurred_at: t(at),
    }
}

/// A voicemail whose recording is a real WAV in `dir` (8 kHz 16-bit mono, `ms` of a tone, as
/// the recorder writes them), with the file's bytes.
pub(super) fn voicemail_with_wav(dir: &Path, call_id: &str, ms: u32) -> (NewVoicemail, Vec<u8>) {
    let path = dir.join(format!("{call_id}.wav"));
    let spec = hound::WavSpec {
        channels: 1,
        sample_rate: 8000,
        bits_per_sample: 16,
        sample_format: hound::SampleFormat::Int,
    };
    let mut w = hound::WavWriter::create(&path, spec).expect("create wav");
    for n in 0..ms * 8 {
        let phase = f64::from(n) * 440.0 * std::f64::consts::TAU / 8000.0;
        w.write_sample((phase.sin() * 8000.0) as i16)
            .expect("sample");
    }
    w.finalize().expect("finish wav");
    let bytes = std::fs::read(&path).expect("read wav");
    let mut vm = voicemail(call_id, "+15551230001", "2026-11-28T03:00:00Z");
    vm.path = path;
    (vm, bytes)
}
