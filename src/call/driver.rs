//! Runs a call flow on a live call: the async shell around the sans-IO `flow::Run`.
//!
//! It turns the run's actions into media work (prompts, the beep, voicemail files) and SIP
//! commands (hang up), and what happens on the call into run events: digits from RTP (RFC 4733 or
//! in-band) and SIP INFO through one `DtmfReceiver`, the end of each playback, the run's timers and
//! the caller hanging up.

use std::collections::VecDeque;
use std::sync::Arc;

use tokio::sync::mpsc;
use tokio::time::Instant;
use tracing::{info, warn};

use super::call_writer::NotedVars;
use super::dial::{DialCall, DialRequest, DialResult};
use super::memory::{CallRecord, CallSummary};
use super::recording::{
    Job, Recording, Saved, end_recording, job, keep, probe_voicemail_dir, start_file, stopped,
    voicemail_failed,
};
use super::{Call, CallCommand, CallSettings, MediaCtx, handle_mid_call, recv_rtp};
use crate::flow::{Action, Event, Facts, Flow, Run};
use crate::live::LiveState;
use crate::media::dtmf::{DtmfDigit, DtmfReceiver};
use crate::media::recorder::{RecordingGate, StopReason, beep};
use crate::media::{Codec, RtpIn};
use crate::sip::{CallEvent, EndReason};
use crate::store::CallFact;

/// Everything the flow shell needs besides the run itself.
pub(super) struct Shell<'c, 'm> {
    pub call: &'c mut Call,
    pub ctx: &'c mut MediaCtx<'m>,
    pub settings: &'c CallSettings,
    pub codec: Codec,
    pub telephone_event: Option<u8>,
    pub record: &'c CallRecord,
    pub summary: &'c mut CallSummary,
}

impl Shell<'_, '_> {
    /// Runs `flow` until the call ends; returns why it ended.
    pub async fn run(
        self,
        flow: Arc<Flow>,
        facts: Facts,
        mut rtp_in: Option<mpsc::Receiver<RtpIn>>,
        deadline: Instant,
    ) -> EndReason {
        let Shell {
            call,
            ctx,
            settings,
            codec,
            telephone_event,
            record,
            summary,
        } = self;
        let call_id = call.call_id.clone();
        let mut run = Run::new(flow, facts);
        call.live_state(LiveState::InFlow);
        // Whether the live calls list says "recording" (checked each turn, told on a change).
        let mut shown_recording = false;
        let mut dtmf = DtmfReceiver::new(codec, telephone_event);
        // One entry per `Play`, answered in order by one `PlaybackDone` each.
        let mut jobs: VecDeque<Job> = VecDeque::new();
        let mut recording: Option<Recording> = None;
        // A finished recording the flow has not yet kept or discarded (voicemail review).
        let mut unkept: Option<Saved> = None;
        let mut hangup_sent = false;
        let mut decoded: Vec<i16> = Vec::with_capacity(160);
        let mut pending: VecDeque<Action> = run.start(Instant::now().into_std()).into();

        let mut noted = NotedVars::default();
        loop {
            while let Some(action) = pending.pop_front() {
                noted.note(&record.writer, run.vars());
                let ticket = run.vars().get("ticket").filter(|t| !t.is_empty()).cloned();
                if let Action::Dial {
                    targets,
                    strategy,
                    timeout,
                    ring_each,
                    whisper,
                } = action
                {
                    summary.desk_rung = true;
                    let dial = DialCall {
                        call,
                        ctx,
                        settings,
                        record,
                        summary,
                        rtp_in: &mut rtp_in,
                        deadline,
                    };
                    let req = DialRequest {
                        targets,
                        strategy,
                        timeout,
                        ring_each,
                        whisper,
                        ticket,
                    };
                    match dial.ring_desk(req).await {
                        DialResult::Outcome(outcome) => {
                            call.live_state(LiveState::InFlow);
                            pending.extend(
                                run.handle(Instant::now().into_std(), Event::DialDone(outcome)),
                            );
                        }
                        DialResult::CallerGone(reason) => {
                            run.handle(Instant::now().into_std(), Event::Hangup);
                            summary.vars = run.vars().clone();
                            return reason;
                        }
                    }
                    continue;
                }
                let event = execute(
                    action,
                    call,
                    ctx,
                    settings,
                    record,
                    &mut jobs,
                    &mut recording,
                    &mut hangup_sent,
                    Kept {
                        unkept: &mut unkept,
                        summary,
                        ticket,
                    },
                )
                .await;
                if let Some(ev) = event {
                    pending.extend(run.handle(Instant::now().into_std(), ev));
                }
            }
            noted.note(&record.writer, run.vars());
            let recording_now = recording.as_ref().is_some_and(|r| r.gate.is_some());
            if recording_now != shown_recording && !hangup_sent {
                shown_recording = recording_now;
                call.live_state(match recording_now {
                    true => LiveState::Recording,
                    false => LiveState::InFlow,
                });
            }
            // The call's own limits end once we have sent BYE (only its answer matters then, and a
            // deadline already passed would wake the loop without pause).
            let limits = match hangup_sent {
                true => [None, None],
                false => [Some(deadline.into_std()), ctx.media.rtp_deadline()],
            };
            let timer = [
                run.poll_timeout(),
                dtmf.poll_at(),
                recording
                    .as_ref()
                    .and_then(|r| r.gate.as_ref())
                    .map(|g| g.deadline()),
            ]
            .into_iter()
            .chain(limits)
            .flatten()
            .min();
            let timing = timer.is_some();
            let timer = timer.map_or_else(Instant::now, Instant::from_std);
            let playing = !jobs.is_empty();
            let intro_playing = recording.as_ref().is_some_and(|r| r.intro.is_some());
            tokio::select! {
                _ = async { if let Some(j) = jobs.front_mut() { j.as_mut().await } }, if playing => {
                    jobs.pop_front();
                    pending.extend(run.handle(Instant::now().into_std(), Event::PlaybackDone));
                }
                _ = async {
                    if let Some(j) = recording.as_mut().and_then(|r| r.intro.as_mut()) { j.as_mut().await }
                }, if intro_playing => {
                    if let Some(r) = recording.as_mut() {
                        r.intro = None;
                        match start_file(settings, &call_id, record.caller.as_str()) {
                            Ok(file) => {
                                info!(call_id = %call_id, event = "recording", "recording voicemail");
                                settings.memory.health.ok("voicemail");
                                r.gate = Some(RecordingGate::new(Instant::now().into_std(), r.max, r.silence));
                                r.file = Some(file);
                            }
                            Err(e) => {
                                // The directory was writable when the prompt started.
                                voicemail_failed(&call_id, settings, summary, &e);
                                recording = None;
                                pending.extend(run.handle(Instant::now().into_std(), Event::RecordFailed));
                            }
                        }
                    }
                }
                pkt = recv_rtp(&mut rtp_in) => {
                    let Some(pkt) = pkt else { continue };
                    let now = Instant::now().into_std();
                    if let Some(d) = dtmf.on_rtp(&pkt, now) {
                        settings.metrics.dtmf_digit(dtmf_method(d.source));
                        let acts = on_digit(&call_id, &mut run, &mut recording, d, &mut unkept, summary, record);
                        pending.extend(acts);
                        continue;
                    }
                    let Some(r) = recording.as_mut() else { continue };
                    let (Some(gate), Some(file)) = (r.gate.as_mut(), r.file.as_mut()) else { continue };
                    if pkt.payload_type != codec.payload_type() {
                        continue;
                    }
                    decoded.clear();
                    codec.decode(&pkt.payload, &mut decoded);
                    let stop = match file.write(&decoded) {
                        Ok(()) => gate.push(&decoded, now),
                        Err(e) => {
                            warn!(call_id = %call_id, error = %e, "voicemail write failed; keeping what was saved");
                            Some(StopReason::WriteFailed)
                        }
                    };
                    if let Some(reason) = stop {
                        let ev = stopped(record, recording.take(), reason, &mut unkept, summary);
                        pending.extend(run.handle(now, ev));
                    }
                }
                ev = call.events.recv() => {
                    let now = Instant::now().into_std();
                    match ev {
                        Some(CallEvent::Ended { reason }) => {
                            // Most messages end with the caller hanging up: keep them.
                            // Hanging up ends a message, and keeps one under review.
                            let saved = end_recording(record, recording.take(), StopReason::Hangup, summary)
                                .unwrap_or(None)
                                .or(unkept.take());
                            if let Some(saved) = saved {
                                let ticket = run.vars().get("ticket").filter(|t| !t.is_empty()).cloned();
                                keep(saved, settings, record, summary, ticket).await;
                            }
                            run.handle(now, Event::Hangup);
                            summary.vars = run.vars().clone();
                            return reason;
                        }
                        None => {
                            summary.vars = run.vars().clone();
                            return EndReason::LocalBye;
                        }
                        Some(CallEvent::Info { content_type, body }) => {
                            if let Some(d) = dtmf.on_info(content_type.as_deref(), &body, now) {
                                settings.metrics.dtmf_digit(dtmf_method(d.source));
                        let acts = on_digit(&call_id, &mut run, &mut recording, d, &mut unkept, summary, record);
                                pending.extend(acts);
                            }
                        }
                        Some(other) => handle_mid_call(call, ctx, other),
                    }
                }
                _ = tokio::time::sleep_until(timer), if timing => {
                    let now = Instant::now().into_std();
                    if Instant::now() >= deadline && !hangup_sent {
                        info!(call_id = %call_id, event = "max_duration", "call reached its maximum duration");
                        call.send(CallCommand::Hangup);
                        call.live_state(LiveState::Ending);
                        hangup_sent = true;
                    }
                    if !hangup_sent && let Some(timeout) = ctx.media.rtp_silence(now) {
                        call.hang_up_silent(ctx.media, timeout);
                        hangup_sent = true;
                    }
                    if let Some(d) = dtmf.poll(now) {
                        settings.metrics.dtmf_digit(dtmf_method(d.source));
                        let acts = on_digit(&call_id, &mut run, &mut recording, d, &mut unkept, summary, record);
                        pending.extend(acts);
                    }
                    let stop = recording
                        .as_mut()
                        .and_then(|r| r.gate.as_mut())
                        .and_then(|g| g.poll(now));
                    if let Some(reason) = stop {
                        let ev = stopped(record, recording.take(), reason, &mut unkept, summary);
                        pending.extend(run.handle(now, ev));
                    }
                    pending.extend(run.handle_timeout(now));
                }
            }
        }
    }
}

/// Carries out one action; returns the event that answers it at once, if any.
#[allow(clippy::too_many_arguments)]
async fn execute(
    action: Action,
    call: &mut Call,
    ctx: &mut MediaCtx<'_>,
    settings: &CallSettings,
    record: &CallRecord,
    jobs: &mut VecDeque<Job>,
    recording: &mut Option<Recording>,
    hangup_sent: &mut bool,
    kept: Kept<'_>,
) -> Option<Event> {
    let call_id = call.call_id.clone();
    match action {
        Action::Enter { node } => {
            info!(call_id = %call_id, event = "node", node = %node, "flow node");
            call.live_node(&node);
        }
        Action::Log { message } => {
            info!(call_id = %call_id, event = "flow", %message, "flow");
        }
        Action::Play { prompts, barge_in } => {
            let mut last = None;
            for name in &prompts {
                match settings.prompts.get(name) {
                    Some(p) => {
                        info!(call_id = %call_id, event = "prompt", prompt = %name, barge_in, "playing prompt");
                        if let Some((prompt, key)) = &record.incident
                            && prompt == name
                        {
                            record.writer.fact(CallFact::Incident(key.clone()));
                            kept.summary.incident = Some(key.clone());
                        }
                        last = Some(ctx.media.play(p.samples.clone()));
                    }
                    // Flows are checked against the prompt directory at start; this is a file
                    // removed since, and silence beats a dead call.
                    None => warn!(call_id = %call_id, prompt = %name, "prompt missing; skipped"),
                }
            }
            jobs.push_back(job(last));
        }
        Action::StopPlayback => {
            info!(call_id = %call_id, event = "barge_in", "prompt stopped by caller input");
            ctx.media.stop_playback();
        }
        Action::Hangup { reason } => {
            if settings.hold_after_prompt {
                info!(call_id = %call_id, event = "flow_end", %reason, "flow ended; holding the line until the caller hangs up");
            } else if !*hangup_sent {
                info!(call_id = %call_id, event = "flow_end", %reason, "flow ended; hanging up");
                call.send(CallCommand::Hangup);
                call.live_state(LiveState::Ending);
                *hangup_sent = true;
            }
        }
        // Handled by the run loop (it takes over the call while the desk rings).
        Action::Dial { .. } => {}
        Action::Record {
            prompt,
            max,
            finish_on,
            silence,
            min_length,
        } => {
            // Before the prompt: a caller must not hear "leave a message" when none can be
            // recorded; the flow's `on_error` decides what they hear instead.
            if let Err(e) = probe_voicemail_dir(settings, &call_id, record.caller.as_str()) {
                voicemail_failed(&call_id, settings, kept.summary, &e);
                return Some(Event::RecordFailed);
            }
            if let Some(p) = prompt.as_deref().and_then(|n| settings.prompts.get(n)) {
                info!(call_id = %call_id, event = "prompt", prompt = %p.name, barge_in = false, "playing prompt");
                ctx.media.play(p.samples.clone());
            }
            let tone = ctx.media.play(beep().into());
            *recording = Some(Recording {
                intro: Some(job(Some(tone))),
                gate: None,
                file: None,
                max,
                silence,
                min_length,
                finish_on,
            });
        }
        Action::PlayRecording { path } => {
            info!(call_id = %call_id, event = "play_recording", %path, "caller listens to their message");
            let samples: Vec<i16> = hound::WavReader::open(&path)
                .map(|mut r| r.samples::<i16>().filter_map(Result::ok).collect())
                .unwrap_or_default();
            let playback = (!samples.is_empty()).then(|| ctx.media.play(samples.into()));
            jobs.push_back(job(playback));
        }
        Action::KeepRecording { path } => match kept.unkept.take() {
            Some(saved) if saved.path.display().to_string() == path => {
                keep(saved, settings, record, kept.summary, kept.ticket).await;
            }
            other => {
                *kept.unkept = other;
                warn!(call_id = %call_id, %path, "asked to keep a recording that is not pending");
            }
        },
        Action::DiscardRecording { path } => {
            *kept.unkept = None;
            info!(call_id = %call_id, event = "recording_discarded", %path, "caller records again");
            if let Err(e) = std::fs::remove_file(&path) {
                warn!(call_id = %call_id, %path, error = %e, "could not delete discarded recording");
            }
        }
        Action::Webhook { event, vars } => {
            let ok = settings
                .memory
                .custom_event(&event, &record.call_id, &vars)
                .await;
            info!(call_id = %call_id, event = "webhook", name = %event, queued = ok, "flow webhook");
            return Some(Event::WebhookDone { ok });
        }
    }
    None
}

/// How `ivr_dtmf_digits_total{method}` names a digit's source.
fn dtmf_method(source: crate::media::dtmf::DtmfSource) -> &'static str {
    use crate::media::dtmf::DtmfSource;
    match source {
        DtmfSource::Rfc4733 => "rfc4733",
        DtmfSource::SipInfo => "info",
        DtmfSource::Inband => "inband",
    }
}

fn on_digit(
    call_id: &str,
    run: &mut Run,
    recording: &mut Option<Recording>,
    d: DtmfDigit,
    unkept: &mut Option<Saved>,
    summary: &mut CallSummary,
    record: &CallRecord,
) -> Vec<Action> {
    info!(call_id = %call_id, event = "digit", digit = %d.digit, source = ?d.source,
          duration_ms = d.duration_ms, "DTMF");
    summary.digits.push(d.digit);
    record.writer.fact(CallFact::Digits(summary.digits.clone()));
    let now = std::time::Instant::now();
    if let Some(r) = recording.as_ref() {
        if r.finish_on.contains(d.digit) && r.gate.is_some() {
            let ev = stopped(
                record,
                recording.take(),
                StopReason::FinishKey,
                unkept,
                summary,
            );
            return run.handle(now, ev);
        }
        // Other keys during a recording are part of the message, not commands.
        return Vec::new();
    }
    run.handle(now, Event::Digit(d.digit))
}

/// What `execute` needs to keep or discard a recording.
struct Kept<'a> {
    unkept: &'a mut Option<Saved>,
    summary: &'a mut CallSummary,
    ticket: Option<String>,
}
