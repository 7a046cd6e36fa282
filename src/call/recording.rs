//! The voicemail files of a call's flow: probing the directory before the prompt, the file
//! opened after the tone, and what happens when a recording ends: finished and kept, cut short by
//! a full disk and kept as far as it got, or deleted because it holds no message.

use std::future::Future;
use std::path::PathBuf;
use std::pin::Pin;

use tracing::{error, info, warn};

use super::CallSettings;
use super::memory::{CallRecord, CallSummary};
use crate::flow::Event;
use crate::media::Playback;
use crate::media::recorder::{NoMessage, Recorder, RecordingGate, StopReason, keep_what_fits};

pub(super) type Job = Pin<Box<dyn Future<Output = ()> + Send>>;

/// The job that ends with `playback` (at once when there is nothing to play).
pub(super) fn job(playback: Option<Playback>) -> Job {
    Box::pin(async move {
        if let Some(p) = playback {
            p.await;
        }
    })
}

/// A finished voicemail file.
pub(super) struct Saved {
    pub path: PathBuf,
    pub duration_ms: u64,
}

/// A voicemail in progress.
pub(super) struct Recording {
    /// The prompt and beep; audio is kept once they are done.
    pub intro: Option<Job>,
    /// Set when the intro ends: from then on audio is written.
    pub gate: Option<RecordingGate>,
    /// Opened when the intro ends (the directory was probed before the prompt).
    pub file: Option<Recorder>,
    pub max: std::time::Duration,
    pub silence: std::time::Duration,
    pub min_length: std::time::Duration,
    pub finish_on: String,
}

/// A recording ended by `reason` (not a hang-up): the event for the run. A recording without a
/// message is deleted and the run hears `RecordEmpty`.
pub(super) fn stopped(
    record: &CallRecord,
    recording: Option<Recording>,
    reason: StopReason,
    unkept: &mut Option<Saved>,
    summary: &mut CallSummary,
) -> Event {
    match end_recording(record, recording, reason, summary) {
        Ok(saved) => recorded(saved, unkept),
        Err(_) => Event::RecordEmpty,
    }
}

/// Finishes a recording, or deletes it when it holds no message (too short, or the caller never
/// spoke: see `RecordingGate::message`): such a file is no voicemail, starts no callback promise
/// and tells the helpdesk nothing. A recording ended during its prompt is no message either,
/// but the caller never reached the tone, so the call is not marked as one without a message.
pub(super) fn end_recording(
    record: &CallRecord,
    recording: Option<Recording>,
    reason: StopReason,
    summary: &mut CallSummary,
) -> Result<Option<Saved>, NoMessage> {
    let call_id = &record.call_id;
    let verdict = recording.as_ref().and_then(|r| {
        let length = r.file.as_ref()?.duration();
        Some(match &r.gate {
            Some(gate) => gate
                .message(length, r.min_length)
                .map_err(|why| (why, true)),
            None => Err((NoMessage::TooShort, false)),
        })
    });
    let Some(Err((why, reached_tone))) = verdict else {
        return Ok(finish(record, recording, reason));
    };
    if let Some(file) = recording.and_then(|r| r.file) {
        let path = file.path().to_path_buf();
        let length_ms = file.duration().as_millis() as u64;
        drop(file);
        info!(call_id = %call_id, event = "no_message", path = %path.display(), length_ms,
              why = %why, reason = ?reason, "no message: recording deleted, no callback promised");
        if let Err(e) = std::fs::remove_file(&path) {
            warn!(call_id = %call_id, path = %path.display(), error = %e,
                  "could not delete a recording without a message");
        }
    }
    summary.no_message |= reached_tone;
    Err(why)
}

/// A recording ended: the run decides (directly or after the caller's review) whether to keep it.
pub(super) fn recorded(saved: Option<Saved>, unkept: &mut Option<Saved>) -> Event {
    let path = saved.as_ref().map(|s| s.path.display().to_string());
    *unkept = saved;
    Event::RecordDone { path }
}

/// Registers a kept voicemail: store, callback timer, webhook.
pub(super) async fn keep(
    saved: Saved,
    settings: &CallSettings,
    record: &CallRecord,
    summary: &mut CallSummary,
    ticket: Option<String>,
) {
    summary.voicemail = true;
    settings
        .memory
        .voicemail_recorded(record, &saved.path, saved.duration_ms, ticket)
        .await;
}

pub(super) fn finish(
    record: &CallRecord,
    recording: Option<Recording>,
    reason: StopReason,
) -> Option<Saved> {
    let call_id = &record.call_id;
    let file = recording?.file?;
    let duration = file.duration();
    let path = file.path().to_path_buf();
    let failed = match file.finish() {
        Ok(path) if reason != StopReason::WriteFailed => {
            info!(call_id = %call_id, event = "recorded", path = %path.display(),
                  duration_ms = duration.as_millis() as u64, reason = ?reason, "voicemail saved");
            record.health.ok("voicemail");
            return Some(Saved {
                path,
                duration_ms: duration.as_millis() as u64,
            });
        }
        Ok(_) => "the disk refused part of the audio".to_string(),
        Err(e) => e.to_string(),
    };
    // A full disk: the message is kept as far as it reached the disk, and an operator must act.
    match keep_what_fits(&path) {
        Ok(kept) => {
            let problem = format!(
                "voicemail {} cut short at {} ms of {} ms: {failed}",
                path.display(),
                kept.as_millis(),
                duration.as_millis()
            );
            record.health.fail("voicemail", &problem);
            error!(call_id = %call_id, event = "recorded", path = %path.display(), duration_ms = kept.as_millis() as u64,
                   error = %failed, "voicemail cut short by a write failure (disk full?); keeping what was written");
            Some(Saved {
                path,
                duration_ms: kept.as_millis() as u64,
            })
        }
        Err(e) => {
            record.health.fail(
                "voicemail",
                format!("voicemail {} lost: {failed}; {e}", path.display()),
            );
            error!(call_id = %call_id, path = %path.display(), error = %failed, repair_error = %e,
                   "voicemail could not be written at all (disk full?)");
            None
        }
    }
}

/// Whether a voicemail can be created now: creates the file `start_file` would, and deletes it
/// again (the recording itself starts after the prompt and the tone, so that a crash meanwhile
/// leaves no empty file for the start-up recovery to register).
pub(super) fn probe_voicemail_dir(
    settings: &CallSettings,
    call_id: &str,
    caller: &str,
) -> Result<(), hound::Error> {
    let file = start_file(settings, call_id, caller)?;
    let path = file.path().to_path_buf();
    drop(file);
    std::fs::remove_file(&path)?;
    Ok(())
}

/// No voicemail can be recorded: an ERROR, the `voicemail` health check failing, and the CDR
/// outcome `voicemail_failed` (unless a message is kept after all).
pub(super) fn voicemail_failed(
    call_id: &str,
    settings: &CallSettings,
    summary: &mut CallSummary,
    e: &hound::Error,
) {
    let dir = settings.data_dir.join("voicemail");
    error!(call_id = %call_id, event = "voicemail_failed", dir = %dir.display(), error = %e,
           "cannot record voicemail: the voicemail directory cannot be written; no message taken");
    settings.memory.health.fail(
        "voicemail",
        format_args!("cannot create a voicemail in {}: {e}", dir.display()),
    );
    summary.voicemail_failed = true;
}

/// `DATA/voicemail/<UTC time>_<caller>_<call-id>.wav` (see `file_name`): the caller in the name
/// lets a recording cut off by a crash be registered to the right number at the next start.
pub(super) fn start_file(
    settings: &CallSettings,
    call_id: &str,
    caller: &str,
) -> Result<Recorder, hound::Error> {
    let stamp = settings.clock.now().strftime("%Y%m%dT%H%M%SZ").to_string();
    let path: PathBuf = settings
        .data_dir
        .join("voicemail")
        .join(super::file_name::voicemail(&stamp, caller, call_id));
    Recorder::create(&path)
}
