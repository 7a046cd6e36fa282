//! The transcription worker: a tokio task of `ivr serve` that transcribes every kept voicemail
//! owed a transcript, one at a time, on a blocking thread (the engine child runs at low CPU
//! priority), and stores each outcome with its `voicemail_transcribed` event in one transaction.
//!
//! It never touches a call: calls store their voicemail and [`wake`] it, nothing waits for it.
//! The work list is the store's (voicemails with no outcome), so a restart carries on where the
//! last run stopped. A failed attempt (engine crashed, timed out) is retried on a later pass,
//! at most `transcription.max_attempts` attempts in all; then the error is the stored outcome
//! and the event says `transcript: null, error: "..."`, so the helpdesk is never left waiting
//! for a transcript that will not come. An unreadable file fails at once (retrying cannot help).

use std::future::Future;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Notify;
use tracing::{info, warn};

use super::{TranscribeError, Transcriber};
use crate::clock::Clock;
use crate::notify::{Notifier, OutboxEvent, VoicemailTranscribed};
use crate::services::voicemails::{self, Audio};
use crate::store::{OwedTranscript, StoreError, TranscriptOutcome, VoicemailStore};

/// Voicemails looked at per pass (the rest wait for the next pass, which follows at once).
const BATCH: u32 = 20;
/// How long the worker sleeps with nothing to do before looking again, e.g. after a failed
/// attempt (a retry waits this long) or a store error. A kept voicemail wakes it at once.
const IDLE: Duration = Duration::from_secs(30);

/// Wakes the worker: one per process, so the call path need not carry a handle to it.
static WAKE: Notify = Notify::const_new();

/// Tell the worker a voicemail was kept. Cheap, never blocks; a no-op when no worker runs.
pub fn wake() {
    WAKE.notify_one();
}

pub struct TranscriptWorker {
    pub store: Arc<dyn VoicemailStore>,
    pub engine: Arc<dyn Transcriber>,
    /// Decides whether the event is wanted (an endpoint's `events` filter) and is woken to send
    /// it; `None`: outcomes are stored, no event is queued.
    pub notifier: Option<Notifier>,
    pub max_attempts: u32,
    pub clock: Clock,
    /// Where voicemail files are when their stored path has moved (`DATA/voicemail/NAME`).
    pub data_dir: PathBuf,
}

/// What one pass did.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Pass {
    pub transcribed: usize,
    /// Final errors stored (the event says why).
    pub failed: usize,
    /// Failed attempts that will be tried again.
    pub retrying: usize,
}

/// Start the worker with `engine` ([`super::engine`] of `config`), if it can run here; else
/// log, once, why transcription is off.
pub fn start(
    config: &crate::config::Config,
    engine: Result<Box<dyn super::Transcriber>, String>,
    store: Arc<dyn VoicemailStore>,
    notifier: &Notifier,
    clock: Clock,
    stop: impl Future<Output = ()> + Send + 'static,
) -> Option<tokio::task::JoinHandle<()>> {
    let t = &config.transcription;
    match engine {
        Ok(engine) => Some(
            TranscriptWorker {
                store,
                engine: Arc::from(engine),
                notifier: Some(notifier.clone()),
                max_attempts: t.max_attempts,
                clock,
                data_dir: config.data.dir.clone(),
            }
            .spawn(stop),
        ),
        Err(why) => {
            if t.enabled() {
                warn!("{why}; voicemails are kept without transcripts");
            } else {
                info!("{why}");
            }
            None
        }
    }
}

impl TranscriptWorker {
    /// Run until `stop` resolves.
    pub fn spawn(
        self,
        stop: impl Future<Output = ()> + Send + 'static,
    ) -> tokio::task::JoinHandle<()> {
        let worker = Arc::new(self);
        tokio::spawn(async move {
            tokio::pin!(stop);
            info!(engine = %worker.engine.name(), "transcription worker started");
            loop {
                // Stopping kills a running engine (its attempt is not counted: the voicemail is
                // owed a transcript at the next start) instead of waiting out its timeout.
                let pass = tokio::select! {
                    pass = worker.pass() => pass,
                    () = &mut stop => {
                        super::child::cancel_all();
                        break;
                    }
                };
                let sleep = match pass {
                    // Did something: look again at once (more may be owed than one batch),
                    // unless an attempt failed: its retry waits, not spending every attempt in
                    // one burst.
                    Ok(p) if p.transcribed + p.failed > 0 && p.retrying == 0 => Duration::ZERO,
                    Ok(_) => IDLE,
                    Err(e) => {
                        warn!(error = %e, "transcription: cannot read the voicemails owed a transcript");
                        IDLE
                    }
                };
                tokio::select! {
                    () = &mut stop => break,
                    () = WAKE.notified() => {}
                    () = tokio::time::sleep(sleep) => {}
                }
            }
        })
    }

    /// Transcribe every voicemail owed a transcript once (up to a batch), newest first.
    pub async fn pass(&self) -> Result<Pass, StoreError> {
        let store = self.store.clone();
        let owed = blocking(move || store.transcripts_owed(BATCH)).await?;
        let mut pass = Pass::default();
        for o in owed {
            match self.one(o).await {
                Ok(Done::Text) => pass.transcribed += 1,
                Ok(Done::Failed) => pass.failed += 1,
                Ok(Done::Retry) => pass.retrying += 1,
                Err(e) => warn!(error = %e, "transcription: cannot store an outcome"),
            }
        }
        Ok(pass)
    }

    async fn one(&self, owed: OwedTranscript) -> Result<Done, StoreError> {
        let vm = &owed.voicemail;
        let id = vm.id;
        let engine = self.engine.name();
        if owed.attempts >= self.max_attempts {
            // Out of attempts already (max_attempts was lowered): the last error is final.
            let error = vm
                .transcript_error
                .clone()
                .unwrap_or_else(|| "no attempts left".into());
            return self.store_outcome(&owed, Err(error)).await;
        }
        let store = self.store.clone();
        let data_dir = self.data_dir.clone();
        let audio = blocking(move || voicemails::audio(&*store, id, &data_dir)).await?;
        let path = match &audio {
            Some(Audio::File(p) | Audio::Missing(p)) => p.clone(),
            // Recorded on another node (PostgreSQL store): the copy goes to a scratch file.
            Some(Audio::Bytes(_)) => ScratchWav::path_for(id),
            // Gone since it was listed: its stored path, for the engine's error.
            None => vm.path.clone(),
        };
        let transcriber = self.engine.clone();
        let wav = path.clone();
        let started = std::time::Instant::now();
        let result = tokio::task::spawn_blocking(move || {
            // Engines read a file; the scratch copy lives as long as the engine runs.
            let _scratch = match audio {
                Some(Audio::Bytes(bytes)) => Some(ScratchWav::write(&wav, &bytes)?),
                _ => None,
            };
            transcriber.transcribe(&wav)
        })
        .await
        .unwrap_or_else(|e| {
            Err(TranscribeError::Spawn {
                program: engine.clone(),
                error: format!("the transcription thread failed: {e}"),
            })
        });
        let took_ms = started.elapsed().as_millis() as u64;
        match result {
            Ok(text) => {
                info!(voicemail_id = id, call_id = %vm.call_id, engine = %self.engine.name(),
                      took_ms, words = text.split_whitespace().count(), "voicemail transcribed");
                self.store_outcome(&owed, Ok(text)).await
            }
            Err(TranscribeError::Cancelled) => Ok(Done::Retry),
            Err(e) => {
                let attempt = owed.attempts + 1;
                let last = e.is_permanent() || attempt >= self.max_attempts;
                warn!(voicemail_id = id, call_id = %vm.call_id, path = %path.display(),
                      engine = %self.engine.name(), attempt, max_attempts = self.max_attempts,
                      final_attempt = last, took_ms, error = %e, "voicemail transcription failed");
                if last {
                    return self.store_outcome(&owed, Err(e.to_string())).await;
                }
                let store = self.store.clone();
                let error = e.to_string();
                blocking(move || store.transcript_attempt_failed(id, &error)).await?;
                Ok(Done::Retry)
            }
        }
    }

    async fn store_outcome(
        &self,
        owed: &OwedTranscript,
        text: Result<String, String>,
    ) -> Result<Done, StoreError> {
        let vm = &owed.voicemail;
        let at = self.clock.now();
        let engine = self.engine.name();
        let done = if text.is_ok() {
            Done::Text
        } else {
            Done::Failed
        };
        let ev = OutboxEvent::voicemail_transcribed(
            &vm.call_id,
            at,
            VoicemailTranscribed {
                voicemail_id: vm.id,
                caller: vm.caller.clone(),
                client: vm.client.clone(),
                ticket: vm.ticket.clone(),
                transcript: text.as_ref().ok().cloned(),
                engine: engine.clone(),
                error: text.as_ref().err().cloned(),
            },
        );
        let event = self
            .notifier
            .as_ref()
            .and_then(|n| n.targets().accepts(&ev).then(|| ev.clone()));
        let outcome = TranscriptOutcome { engine, at, text };
        let store = self.store.clone();
        let id = vm.id;
        let stored = blocking(move || store.set_transcript(id, &outcome, event.as_ref())).await?;
        if let (true, Some(n)) = (stored, &self.notifier) {
            n.wake();
        }
        Ok(done)
    }
}

/// A voicemail's audio from the store written out for an engine (engines read files), only
/// readable by this user (it is a caller's voice); removed on drop.
struct ScratchWav(PathBuf);

impl ScratchWav {
    /// Where voicemail `id`'s copy goes: the temp directory, not `DATA/voicemail`, where
    /// start-up recovery would take it for a recording never registered.
    fn path_for(id: i64) -> PathBuf {
        std::env::temp_dir().join(format!("ivr-transcribe-{}-{id}.wav", std::process::id()))
    }

    fn write(path: &std::path::Path, wav: &[u8]) -> Result<ScratchWav, TranscribeError> {
        use std::io::Write;
        use std::os::unix::fs::OpenOptionsExt;
        // A new file, never one found there: the temp directory is shared, and a link planted
        // at this name must not be followed (a leftover of ours is removed first).
        let _ = std::fs::remove_file(path);
        let scratch = ScratchWav(path.to_path_buf());
        std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(path)
            .and_then(|mut f| f.write_all(wav))
            .map_err(|e| TranscribeError::Scratch {
                path: path.display().to_string(),
                error: e.to_string(),
            })?;
        Ok(scratch)
    }
}

impl Drop for ScratchWav {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

enum Done {
    Text,
    Failed,
    Retry,
}

async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, StoreError> + Send + 'static,
) -> Result<T, StoreError> {
    tokio::task::spawn_blocking(f).await.unwrap_or_else(|e| {
        Err(StoreError::Database {
            doing: "running a transcription store task".into(),
            reason: e.to_string(),
        })
    })
}

#[cfg(test)]
#[path = "worker_tests.rs"]
mod tests;
