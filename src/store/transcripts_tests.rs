use super::super::test_support::{TempDir, outbox_events, raw, t, voicemail};
use super::super::traits::*;
use super::*;

fn outcome(text: Result<&str, &str>) -> TranscriptOutcome {
    TranscriptOutcome {
        engine: "pocketsphinx".into(),
        at: t("2026-03-02T10:01:00Z"),
        text: text.map(str::to_string).map_err(str::to_string),
    }
}

#[test]
fn new_voicemails_are_owed_newest_first_until_their_outcome_is_stored_with_its_event() {
    let dir = TempDir::new("transcripts-owed");
    let store = SqliteStore::open(dir.path()).expect("open");
    let due = t("2026-03-02T10:20:00Z");
    let a = store
        .add_voicemail(&voicemail("c1", "+15550001", "2026-03-02T10:00:00Z"), due)
        .expect("a");
    let b = store
        .add_voicemail(&voicemail("c2", "+15550002", "2026-03-02T10:00:30Z"), due)
        .expect("b");
    let owed: Vec<i64> = store
        .transcripts_owed(10)
        .expect("owed")
        .iter()
        .map(|o| o.voicemail.id)
        .collect();
    assert_eq!(owed, [b, a]);

    let ev = super::super::test_support::event(
        "voicemail_transcribed",
        Some("c2"),
        "2026-03-02T10:01:00Z",
    );
    assert!(
        store
            .set_transcript(b, &outcome(Ok("my server is down")), Some(&ev))
            .expect("set")
    );
    // Stored once: a second outcome changes nothing and queues nothing.
    assert!(
        !store
            .set_transcript(b, &outcome(Ok("other")), Some(&ev))
            .expect("again")
    );
    assert_eq!(
        outbox_events(dir.path())
            .iter()
            .map(|(_, k)| k.as_str())
            .collect::<Vec<_>>(),
        ["voicemail_transcribed"]
    );
    let vm = store.voicemail(b).expect("read").expect("b");
    assert_eq!(vm.transcript.as_deref(), Some("my server is down"));
    assert_eq!(vm.transcript_engine.as_deref(), Some("pocketsphinx"));
    assert_eq!(vm.transcribed_at, Some(t("2026-03-02T10:01:00Z")));
    assert_eq!(vm.transcript_error, None);
    let owed = store.transcripts_owed(10).expect("owed");
    assert_eq!(owed.len(), 1);
    assert_eq!(owed[0].voicemail.id, a);
    assert!(
        !store
            .set_transcript(999, &outcome(Ok("x")), None)
            .expect("unknown")
    );
}

#[test]
fn failed_attempts_are_counted_and_a_final_error_is_stored_as_the_outcome() {
    let dir = TempDir::new("transcripts-failed");
    let store = SqliteStore::open(dir.path()).expect("open");
    let id = store
        .add_voicemail(
            &voicemail("c1", "+15550001", "2026-03-02T10:00:00Z"),
            t("2026-03-02T10:20:00Z"),
        )
        .expect("vm");
    assert_eq!(
        store.transcript_attempt_failed(id, "timed out").expect("1"),
        1
    );
    assert_eq!(
        store
            .transcript_attempt_failed(id, "timed out again")
            .expect("2"),
        2
    );
    let owed = store.transcripts_owed(10).expect("owed");
    assert_eq!(owed[0].attempts, 2);
    assert_eq!(
        owed[0].voicemail.transcript_error.as_deref(),
        Some("timed out again")
    );
    assert!(
        store
            .set_transcript(id, &outcome(Err("killed after 120s")), None)
            .expect("final")
    );
    assert!(store.transcripts_owed(10).expect("owed").is_empty());
    let vm = store.voicemail(id).expect("read").expect("vm");
    assert_eq!(vm.transcript, None);
    assert_eq!(vm.transcript_error.as_deref(), Some("killed after 120s"));
    let attempts: i64 = raw(dir.path())
        .query_row("SELECT transcript_attempts FROM voicemails", [], |r| {
            r.get(0)
        })
        .expect("attempts");
    assert_eq!(attempts, 3);
    // An attempt after the outcome counts nothing.
    assert_eq!(
        store.transcript_attempt_failed(id, "late").expect("late"),
        0
    );
}
