//! Start-up recovery of voicemails a crash left behind.
//!
//! A recording is registered in the store when it ends; if the process dies mid-recording (or the
//! store failed then), the WAV is on disk but nobody owes a callback for it. At start every
//! `DATA/voicemail/*.wav` the store does not know is repaired (header sizes from the file length)
//! and registered, with its callback timer and a `voicemail_recorded` event, so no message is
//! ever silently dropped.

use std::collections::HashSet;
use std::path::Path;

use jiff::Timestamp;
use tracing::{error, info, warn};

use super::file_name::{self, unescape};
use super::memory::Memory;
use crate::media::recorder::{file_holds_message, repair_wav};
use crate::notify::event::{CallEnded, OutboxEvent, VoicemailRecorded};
use crate::store::{Cdr, NewVoicemail, Outcome};

/// Registers unknown voicemail files; returns how many were recovered.
pub fn recover_voicemails(memory: &Memory, data_dir: &Path) -> usize {
    let Some(store) = &memory.store else {
        return 0;
    };
    let dir = data_dir.join("voicemail");
    let Ok(entries) = std::fs::read_dir(&dir) else {
        return 0;
    };
    // Known by file name, not by path: the rows keep the path as the data directory was named
    // then, and a directory once named `var` (relative, as the built-in default was before
    // paths resolved against the install) and now `/srv/ivr/var` names the same files
    // differently. Taking them for new ones would register every voicemail twice.
    let known: HashSet<std::ffi::OsString> = match store.voicemails() {
        Ok(v) => v
            .into_iter()
            .filter_map(|v| v.path.file_name().map(ToOwned::to_owned))
            .collect(),
        Err(e) => {
            error!(error = %e, "voicemail recovery skipped: cannot list stored voicemails");
            return 0;
        }
    };
    // Only needed to name files whose Call-ID part was shortened; a failure leaves them named
    // by that part.
    let open_calls = store.open_calls(&memory.node).unwrap_or_default();
    let mut recovered = 0;
    for entry in entries.flatten() {
        let path = entry.path();
        if path.extension().and_then(|e| e.to_str()) != Some("wav")
            || path.file_name().is_some_and(|name| known.contains(name))
        {
            continue;
        }
        let duration = match repair_wav(&path) {
            Ok(Some(d)) => d,
            Ok(None) => wav_duration(&path),
            Err(e) => {
                warn!(path = %path.display(), error = %e, "unreadable voicemail file left as is");
                continue;
            }
        };
        // A crash just after the tone leaves a file with no message in it: no promise for it.
        match file_holds_message(&path, crate::flow::nodes::record::DEFAULT_MIN_LENGTH) {
            Ok(Err(why)) => {
                info!(path = %path.display(), length_ms = duration.as_millis() as u64, why = %why,
                      event = "no_message", "recording left by a crash holds no message: deleted");
                if let Err(e) = std::fs::remove_file(&path) {
                    warn!(path = %path.display(), error = %e, "could not delete a recording without a message");
                }
                continue;
            }
            Ok(Ok(())) => {}
            // Unreadable samples: registered all the same; a person listens and decides.
            Err(e) => {
                warn!(path = %path.display(), error = %e, "cannot judge a recovered voicemail")
            }
        }
        let (created_at, caller, call_id) = parse_name(&path, &open_calls);
        // The live call's record has the facts written while it ran (client, ticket).
        let call = open_calls.iter().find(|c| c.call_id == call_id);
        let client = call.and_then(|c| c.client.clone());
        let ticket = call.and_then(|c| c.ticket.clone());
        // A file whose call left no record: no agreement known, billed as after hours (the
        // line's default), multiplier unknown.
        let (agreement, after_hours) = call.map_or((false, true), |c| (c.agreement, c.after_hours));
        let rate_multiplier = call.map(|c| c.rate_multiplier);
        let due = crate::sla::due_at(created_at, memory.callback_sla);
        let vm = NewVoicemail {
            call_id: call_id.clone(),
            caller: caller.clone(),
            client: client.clone(),
            ticket: ticket.clone(),
            path: path.clone(),
            duration_ms: duration.as_millis() as u64,
            created_at,
        };
        // The store puts the id in the event, in the transaction that stores the voicemail.
        let events = memory.notifier.as_ref().map_or_else(Vec::new, |n| {
            let ev = OutboxEvent::voicemail_recorded(
                &call_id,
                created_at,
                VoicemailRecorded {
                    voicemail_id: 0,
                    caller: caller.clone(),
                    client,
                    agreement,
                    after_hours,
                    rate_multiplier,
                    ticket,
                    duration_ms: vm.duration_ms,
                    path: path.display().to_string(),
                    callback_due_at: due,
                },
            );
            n.voicemail_events(&ev)
        });
        match store.register_voicemail(&vm, due, &events) {
            Ok(id) => {
                recovered += 1;
                info!(voicemail_id = id, path = %path.display(), %caller, event = "voicemail_recovered",
                      "voicemail recovered after a crash");
                if let Some(n) = &memory.notifier {
                    n.wake();
                }
                crate::transcribe::wake();
            }
            Err(e) => error!(path = %path.display(), error = %e, "voicemail recovery failed"),
        }
    }
    recovered
}

/// Closes the CDRs of calls that were live when the process stopped (crash, kill, power loss),
/// keeping the facts written while they ran: outcome `bridged` when a desk member accepted,
/// `voicemail` when a message from the call was kept (or recovered), else `abandoned`,
/// and their `call_ended` events are queued. Returns how many were closed.
pub fn close_interrupted_calls(memory: &Memory) -> usize {
    let Some(store) = &memory.store else {
        return 0;
    };
    let open = match store.open_calls(&memory.node) {
        Ok(v) => v,
        Err(e) => {
            error!(error = %e, "cannot list calls left open by the last run");
            return 0;
        }
    };
    if open.is_empty() {
        return 0;
    }
    let with_voicemail: HashSet<String> = store
        .voicemails()
        .map(|v| v.into_iter().map(|v| v.call_id).collect())
        .unwrap_or_default();
    let now = memory.clock.now();
    let mut closed = 0;
    for mut cdr in open {
        cdr.ended_at = Some(now);
        // The facts written while the call ran say how far it got.
        cdr.outcome = Some(if cdr.answered_by.is_some() {
            Outcome::Bridged
        } else if with_voicemail.contains(&cdr.call_id) {
            Outcome::Voicemail
        } else {
            Outcome::Abandoned
        });
        cdr.end_reason = "ivr stopped during the call".into();
        if let Err(e) = store.call_ended(&cdr) {
            error!(call_id = %cdr.call_id, error = %e, "could not close an interrupted call");
            continue;
        }
        closed += 1;
        warn!(call_id = %cdr.call_id, event = "call_closed_after_restart", "call was live when ivr stopped; record closed");
        if let Some(n) = &memory.notifier {
            let ev = OutboxEvent::call_ended(
                &cdr.call_id,
                now,
                CallEnded {
                    cdr: crate::store::cdr_json(&cdr),
                },
            );
            if let Err(e) = n.enqueue_blocking(&ev) {
                error!(call_id = %cdr.call_id, error = %e, "call_ended for an interrupted call not queued");
            }
        }
    }
    closed
}

/// `<20261127T223000Z>_<caller>_<call-id>.wav` → (time, caller, call id); unknown parts fall
/// back to the file's modification time and "unknown".
fn parse_name(path: &Path, open_calls: &[Cdr]) -> (Timestamp, String, String) {
    let stem = path.file_stem().and_then(|s| s.to_str()).unwrap_or("");
    let mut parts = stem.splitn(3, '_');
    let stamp = parts.next().unwrap_or("");
    let caller = unescape(parts.next().unwrap_or("unknown"));
    let call_id = unescape(parts.next().unwrap_or(stem));
    // A shortened Call-ID (and caller) cannot be read back: the live call whose name part is the
    // same is the one (its CDR then closes as `voicemail`).
    let (caller, call_id) = match shortened_call_id_part(stem) {
        Some(id_part) => open_calls
            .iter()
            .find(|c| file_name::call_id_part(&c.call_id) == id_part)
            .map(|c| (c.caller.clone(), c.call_id.clone()))
            .unwrap_or((caller, call_id)),
        None => (caller, call_id),
    };
    let created = jiff::fmt::strtime::parse("%Y%m%dT%H%M%SZ", stamp)
        .and_then(|t| t.to_datetime())
        .and_then(|dt| jiff::tz::TimeZone::UTC.to_timestamp(dt))
        .ok()
        .or_else(|| {
            let modified = std::fs::metadata(path).and_then(|m| m.modified()).ok()?;
            Timestamp::try_from(modified).ok()
        })
        .unwrap_or_else(Timestamp::now);
    (created, caller, call_id)
}

/// The Call-ID part of a file stem when it was shortened (see `file_name`).
fn shortened_call_id_part(stem: &str) -> Option<&str> {
    let part = stem.splitn(3, '_').nth(2)?;
    file_name::is_shortened(part).then_some(part)
}

fn wav_duration(path: &Path) -> std::time::Duration {
    hound::WavReader::open(path)
        .map(|r| std::time::Duration::from_millis(u64::from(r.duration()) * 1000 / 8000))
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    use crate::notify::{DeliveryPolicy, Endpoint, Notifier, WebhookTargets};
    use crate::store::{SqliteStore, Store};

    fn memory(store: Arc<dyn Store>) -> Memory {
        let targets = WebhookTargets {
            primary: Some(Endpoint::new("http://127.0.0.1:9/hook", None).expect("endpoint")),
            ..WebhookTargets::default()
        };
        let notifier = Notifier::new(store.clone(), targets, DeliveryPolicy::default());
        let clock = crate::clock::Clock::system();
        Memory {
            store: Some(store),
            notifier: Some(notifier),
            clients: Vec::new(),
            repeat: crate::repeat::RepeatPolicy::default(),
            default_country: None,
            trusted_proxies: Vec::new(),
            after_hours_multiplier: 2.0,
            callback_sla: std::time::Duration::from_secs(1200),
            clock,
            health: crate::health::Health::new(clock),
            node: "test-node".into(),
        }
    }

    /// `secs` of a 440 Hz tone of `amplitude` (0: silence), as a recording would be.
    fn write_wav(path: &Path, secs: f64, amplitude: f64) {
        let spec = hound::WavSpec {
            channels: 1,
            sample_rate: 8000,
            bits_per_sample: 16,
            sample_format: hound::SampleFormat::Int,
        };
        let mut w = hound::WavWriter::create(path, spec).expect("wav");
        for i in 0..(secs * 8000.0) as usize {
            let t = i as f64 / 8000.0;
            let x = amplitude * (2.0 * std::f64::consts::PI * 440.0 * t).sin();
            w.write_sample(x as i16).expect("sample");
        }
        w.finalize().expect("finalize");
    }

    /// Item 4 of issue 12 for files a crash leaves: one cut at the tone and one of silence are
    /// no messages (deleted, no promise, no event); a spoken one is registered.
    #[test]
    fn recordings_left_by_a_crash_without_a_message_are_not_registered() {
        let dir = std::env::temp_dir().join(format!("ivr-recovery-empty-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("voicemail")).expect("voicemail dir");
        let short = dir.join("voicemail/20261127T223000Z_+15551230001_short.wav");
        let silent = dir.join("voicemail/20261127T223100Z_+15551230002_silent.wav");
        let spoken = dir.join("voicemail/20261127T223200Z_+15551230003_spoken.wav");
        write_wav(&short, 0.4, 3000.0);
        write_wav(&silent, 4.0, 0.0);
        write_wav(&spoken, 3.0, 3000.0);
        let store: Arc<dyn Store> = Arc::new(SqliteStore::open(&dir).expect("store"));
        let memory = memory(store.clone());
        assert_eq!(recover_voicemails(&memory, &dir), 1);
        let callers: Vec<String> = store
            .voicemails()
            .expect("voicemails")
            .into_iter()
            .map(|v| v.caller)
            .collect();
        assert_eq!(callers, ["+15551230003"]);
        assert!(
            !short.exists() && !silent.exists(),
            "files without a message kept"
        );
        assert!(spoken.exists());
        drop(memory);
        let _ = std::fs::remove_dir_all(&dir);
    }

    fn count(db: &rusqlite::Connection, sql: &str) -> i64 {
        db.query_row(sql, [], |r| r.get(0)).expect(sql)
    }

    /// A crash (here: a failing outbox insert) between storing a recovered voicemail and
    /// queueing its `voicemail_recorded` must not keep one without the other: the file stays
    /// unregistered and the next start registers it with its event.
    #[test]
    fn a_recovered_voicemail_and_its_event_are_stored_together() {
        let dir = std::env::temp_dir().join(format!("ivr-recovery-tx-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("voicemail")).expect("voicemail dir");
        let wav = dir.join("voicemail/20261127T223000Z_+15551230001_abc-1.wav");
        write_wav(&wav, 2.0, 3000.0);
        let store: Arc<dyn Store> = Arc::new(SqliteStore::open(&dir).expect("store"));
        let memory = memory(store);
        let db = rusqlite::Connection::open(dir.join(crate::store::DB_FILE)).expect("raw db");
        db.execute_batch(
            "CREATE TRIGGER no_events BEFORE INSERT ON outbox \
             BEGIN SELECT RAISE(ABORT, 'outbox unavailable'); END;",
        )
        .expect("trigger");

        recover_voicemails(&memory, &dir);
        let voicemails = count(&db, "SELECT count(*) FROM voicemails");
        let events = count(
            &db,
            "SELECT count(*) FROM outbox WHERE event_type = 'voicemail_recorded'",
        );
        assert_eq!(
            (voicemails, events),
            (0, 0),
            "a voicemail stored without its voicemail_recorded event (or the reverse)"
        );

        db.execute_batch("DROP TRIGGER no_events;")
            .expect("drop trigger");
        assert_eq!(recover_voicemails(&memory, &dir), 1);
        let id: i64 = db
            .query_row("SELECT id FROM voicemails", [], |r| r.get(0))
            .expect("voicemail row");
        let payload: String = db
            .query_row(
                "SELECT payload FROM outbox WHERE event_type = 'voicemail_recorded'",
                [],
                |r| r.get(0),
            )
            .expect("event row");
        let payload: serde_json::Value = serde_json::from_str(&payload).expect("json");
        assert_eq!(payload["voicemail_id"], id, "{payload}");
        assert_eq!(count(&db, "SELECT count(*) FROM sla_timers"), 1);
        drop(memory);
        let _ = std::fs::remove_dir_all(&dir);
    }

    /// A call killed while bridged keeps its facts and is billed as bridged, not abandoned.
    #[test]
    fn an_interrupted_call_keeps_its_facts_and_its_outcome_follows_them() {
        use crate::store::{CallFact, CallStart};
        let dir = std::env::temp_dir().join(format!("ivr-recovery-facts-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let store: Arc<dyn Store> = Arc::new(SqliteStore::open(&dir).expect("store"));
        let at: Timestamp = "2026-11-28T03:30:00Z".parse().expect("time");
        for id in ["bridged", "ringing"] {
            store
                .call_started(&CallStart {
                    call_id: id.into(),
                    caller: crate::repeat::normalise("+15551230001", None),
                    caller_raw: "+15551230001".into(),
                    called: "ivr".into(),
                    client: None,
                    started_at: at,
                    after_hours: true,
                    agreement: false,
                    rate_multiplier: 2.0,
                    repeat_rule: std::sync::Arc::new(crate::repeat::RepeatPolicy::default()),
                    node: "test-node".into(),
                })
                .expect("start");
            store
                .call_progress(
                    id,
                    &[
                        CallFact::Answered(at),
                        CallFact::Digits("5142#".into()),
                        CallFact::AgreedTerms(true),
                        CallFact::Ticket(Some("42".into())),
                    ],
                )
                .expect("facts");
        }
        store
            .call_progress("bridged", &[CallFact::AnsweredBy("alice".into())])
            .expect("accepted");
        let memory = memory(store.clone());
        assert_eq!(close_interrupted_calls(&memory), 2);
        let cdrs = store.cdrs_between(None, None).expect("cdrs");
        let outcomes: Vec<_> = cdrs
            .iter()
            .map(|c| (c.call_id.as_str(), c.outcome.map(|o| o.as_str())))
            .collect();
        assert_eq!(
            outcomes,
            [("bridged", Some("bridged")), ("ringing", Some("abandoned"))]
        );
        for c in &cdrs {
            assert_eq!(c.answered_at, Some(at), "{c:?}");
            assert_eq!(
                (c.digits.as_str(), c.agreed_terms),
                ("5142#", true),
                "{c:?}"
            );
            assert_eq!(c.ticket.as_deref(), Some("42"), "{c:?}");
            assert_eq!(c.end_reason, "ivr stopped during the call");
        }
        drop(memory);
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn names_carry_time_caller_and_call_id() {
        let (t, caller, call_id) = parse_name(
            Path::new("/x/20261127T223000Z_+15551230001_abc-123-127-0-0-1.wav"),
            &[],
        );
        assert_eq!(t.to_string(), "2026-11-27T22:30:00Z");
        assert_eq!(caller, "+15551230001");
        assert_eq!(call_id, "abc-123-127-0-0-1");
    }

    /// A data directory once named `var` and now `/abs/var`: the rows' paths say `var/...`,
    /// the scan finds `/abs/var/...`; the same voicemail must not be registered again.
    #[test]
    fn a_voicemail_stored_under_a_relative_data_dir_is_known_under_the_absolute_one() {
        let data = std::env::temp_dir().join(format!("ivr-recovery-rel-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&data);
        std::fs::create_dir_all(data.join("voicemail")).unwrap();
        let name = "20261127T223000Z_+15551230001_abc.wav";
        let spec = hound::WavSpec {
            channels: 1,
            sample_rate: 8000,
            bits_per_sample: 16,
            sample_format: hound::SampleFormat::Int,
        };
        let mut wav = hound::WavWriter::create(data.join("voicemail").join(name), spec).unwrap();
        (0..8000).for_each(|_| wav.write_sample(100i16).unwrap());
        wav.finalize().unwrap();
        use crate::store::VoicemailStore;
        let store = crate::store::SqliteStore::open(&data).unwrap();
        let at: Timestamp = "2026-11-27T22:30:00Z".parse().unwrap();
        store
            .add_voicemail(
                &NewVoicemail {
                    call_id: "abc".into(),
                    caller: "+15551230001".into(),
                    client: None,
                    ticket: None,
                    path: Path::new("var/voicemail").join(name),
                    duration_ms: 1000,
                    created_at: at,
                },
                at,
            )
            .unwrap();
        let store: std::sync::Arc<dyn crate::store::Store> = std::sync::Arc::new(store);
        let memory = Memory {
            store: Some(store.clone()),
            notifier: None,
            clients: Vec::new(),
            repeat: crate::repeat::RepeatPolicy {
                window: std::time::Duration::from_secs(1800),
                times: 2,
            },
            default_country: None,
            trusted_proxies: Vec::new(),
            after_hours_multiplier: 2.0,
            callback_sla: std::time::Duration::from_secs(1200),
            clock: crate::clock::Clock::system(),
            health: crate::health::Health::default(),
            node: "test-node".into(),
        };
        assert_eq!(recover_voicemails(&memory, &data), 0);
        assert_eq!(store.voicemails().unwrap().len(), 1);
        let _ = std::fs::remove_dir_all(&data);
    }

    #[test]
    fn a_shortened_call_id_is_known_by_its_name_part() {
        let long = "x".repeat(300);
        let stem = file_name::voicemail("20261127T223000Z", "+15551230001", &long);
        let stem = stem.trim_end_matches(".wav");
        assert_eq!(
            shortened_call_id_part(stem),
            Some(file_name::call_id_part(&long).as_str())
        );
        assert_eq!(shortened_call_id_part("20261127T223000Z_+1555_abc"), None);
    }
}
