//! The worker's passes on a real SQLite store with a real engine child (`sh`).

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use super::*;
use crate::notify::{DeliveryPolicy, Endpoint, EventKind, WebhookTargets};
use crate::store::{NewVoicemail, SqliteStore, Store};
use crate::transcribe::CommandEngine;

struct Dir(PathBuf);

impl Dir {
    fn new(label: &str) -> Dir {
        static N: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let dir = std::env::temp_dir().join(format!(
            "ivr-transcribe-worker-{label}-{}-{n}",
            std::process::id()
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("mkdir");
        Dir(dir)
    }
}

impl Drop for Dir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A store holding one voicemail (file `vm.wav` in `dir`, never read by the `sh` engines) and
/// a worker running `script` (`$0` is the WAV's path) with `max_attempts`.
fn setup(dir: &Path, script: &str, max_attempts: u32) -> (Arc<dyn Store>, TranscriptWorker, i64) {
    let store: Arc<dyn Store> = Arc::new(SqliteStore::open(&dir.join("data")).expect("open"));
    let wav = dir.join("vm.wav");
    std::fs::write(&wav, b"not read").expect("wav");
    let now = jiff::Timestamp::now();
    let id = store
        .add_voicemail(
            &NewVoicemail {
                call_id: "c1".into(),
                caller: "+15550001".into(),
                client: Some("Acme".into()),
                ticket: None,
                path: wav,
                duration_ms: 3000,
                created_at: now,
            },
            now,
        )
        .expect("voicemail");
    let targets = WebhookTargets {
        primary: Some(Endpoint::new("http://127.0.0.1:9/hook", None).expect("endpoint")),
        ..WebhookTargets::default()
    };
    let notifier = Notifier::new(store.clone(), targets, DeliveryPolicy::default());
    let engine = CommandEngine::new(
        vec!["sh".into(), "-c".into(), script.into(), "{wav}".into()],
        Duration::from_secs(10),
    );
    let worker = TranscriptWorker {
        store: store.clone(),
        engine: Arc::new(engine),
        notifier: Some(notifier),
        max_attempts,
        clock: Clock::system(),
        data_dir: dir.join("data"),
    };
    (store, worker, id)
}

fn transcribed_events(store: &dyn Store) -> Vec<serde_json::Value> {
    store
        .pending_outbox(jiff::Timestamp::now(), 100)
        .expect("outbox")
        .into_iter()
        .filter(|r| r.event.kind == EventKind::VoicemailTranscribed)
        .map(|r| r.event.payload)
        .collect()
}

#[tokio::test]
async fn a_failed_attempt_is_retried_and_a_later_text_is_stored_with_its_event() {
    let dir = Dir::new("retry");
    // Fails the first time (leaving a mark beside the WAV), then hears the message.
    let script = "if [ -e \"$0.tried\" ]; then echo 'my server is down'; \
                  else touch \"$0.tried\"; echo busy >&2; exit 1; fi";
    let (store, worker, id) = setup(&dir.0, script, 3);

    let first = worker.pass().await.expect("pass 1");
    assert_eq!(
        first,
        Pass {
            transcribed: 0,
            failed: 0,
            retrying: 1
        }
    );
    let owed = store.transcripts_owed(10).expect("owed");
    assert_eq!(owed.len(), 1);
    assert_eq!(owed[0].attempts, 1);
    assert!(transcribed_events(&*store).is_empty());

    let second = worker.pass().await.expect("pass 2");
    assert_eq!(
        second,
        Pass {
            transcribed: 1,
            failed: 0,
            retrying: 0
        }
    );
    let vm = store.voicemail(id).expect("read").expect("vm");
    assert_eq!(vm.transcript.as_deref(), Some("my server is down"));
    assert_eq!(vm.transcript_engine.as_deref(), Some("command:sh"));
    assert_eq!(vm.transcript_error, None);
    let events = transcribed_events(&*store);
    assert_eq!(events.len(), 1);
    assert_eq!(events[0]["voicemail_id"], id);
    assert_eq!(events[0]["transcript"], "my server is down");
    assert_eq!(events[0]["client"], "Acme");
    assert_eq!(events[0]["error"], serde_json::Value::Null);
    // Nothing owed any more: a third pass does nothing.
    assert_eq!(worker.pass().await.expect("pass 3"), Pass::default());
}

#[tokio::test]
async fn after_the_last_attempt_the_error_is_the_outcome_and_is_sent() {
    let dir = Dir::new("give-up");
    let (store, worker, id) = setup(&dir.0, "echo out of memory >&2; exit 9", 2);
    assert_eq!(worker.pass().await.expect("1").retrying, 1);
    assert_eq!(worker.pass().await.expect("2").failed, 1);
    let vm = store.voicemail(id).expect("read").expect("vm");
    assert_eq!(vm.transcript, None);
    let error = vm.transcript_error.expect("error stored");
    assert!(
        error.contains("out of memory") && error.contains("exit status: 9"),
        "{error}"
    );
    let events = transcribed_events(&*store);
    assert_eq!(events.len(), 1);
    assert_eq!(events[0]["transcript"], serde_json::Value::Null);
    assert_eq!(events[0]["error"], error.as_str());
    assert!(store.transcripts_owed(10).expect("owed").is_empty());
}

#[tokio::test]
async fn a_missing_file_fails_at_once_without_retries() {
    let dir = Dir::new("missing-file");
    let (store, _, id) = setup(&dir.0, "exit 0", 3);
    std::fs::remove_file(dir.0.join("vm.wav")).expect("rm");
    // The default engine reads the file itself: a missing one is permanent.
    let worker = TranscriptWorker {
        store: store.clone(),
        engine: Arc::new(super::super::PocketSphinx::from_config(
            &crate::config::TranscriptionConfig::default(),
        )),
        notifier: None,
        max_attempts: 3,
        clock: Clock::system(),
        data_dir: dir.0.join("data"),
    };
    assert_eq!(worker.pass().await.expect("pass").failed, 1);
    let vm = store.voicemail(id).expect("read").expect("vm");
    assert!(
        vm.transcript_error
            .as_deref()
            .is_some_and(|e| e.contains("cannot read the voicemail")),
        "{vm:?}"
    );
}
