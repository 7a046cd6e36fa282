//! `record`: play a prompt and record the caller (TwiML `<Record>`, Asterisk `Record`): the
//! voicemail. The shell ends the recording on a `finish_on` digit, `silence` or `max`.
//!
//! ```toml
//! [nodes.voicemail]
//! type = "record"
//! prompt = "leave_message"   # optional
//! max = "3m"                 # default 3m
//! finish_on = "#"            # digits that end the recording; default "#", "" for none
//! silence = "5s"             # default 5s
//! review = "review_options"  # optional: after recording, 1 = listen, 2 = record again,
//!                            # 3 or # (or silence, or hanging up) = keep it
//! min_length = "1500ms"      # default 1500ms: shorter is no message
//! next = "goodbye"
//! on_empty = "no_message"    # optional: nothing said (too short or all silence); default `next`
//! on_error = "desk_again"    # where the call goes when the message cannot be recorded (the
//!                            # voicemail directory is not writable); default `next`, with a
//!                            # warning from `ivr check`
//! ```
//!
//! A recording shorter than `min_length`, or in which the caller never spoke, is not a message:
//! the shell deletes it and answers `RecordEmpty` (a caller hanging up at the tone, a robot, a
//! muted phone), so it never starts the callback promise. When the recording cannot even start
//! the shell answers `RecordFailed` before the prompt plays, so no flow promises a callback for a
//! message it cannot take.
//!
//! The recording's path is kept in the variable `recording` (absent when nothing was recorded).
//! The shell keeps a recording (stores it, starts the callback promise, tells the helpdesk) only
//! on `KeepRecording`; a caller who hangs up during the review keeps it too, since hanging up is
//! what most people do after leaving a message.

use std::time::{Duration, Instant};

use crate::flow::model::{Edge, Prompt, Target};
use crate::flow::parse::Reader;
use crate::flow::run::{Action, Cx, Event, Step, Wait};

#[derive(Clone, Debug)]
pub struct Record {
    pub prompt: Option<Prompt>,
    pub max: Duration,
    pub finish_on: String,
    pub silence: Duration,
    pub review: Option<Prompt>,
    /// Shorter recordings are not messages.
    pub min_length: Duration,
    pub next: Target,
    /// Where to go when the caller left no message; `None`: `next`.
    pub on_empty: Option<Target>,
    /// Where to go when the recording could not be made; `None`: `next`.
    pub on_error: Option<Target>,
}

/// The shortest message kept unless a node says otherwise: a name and a number take longer.
pub const DEFAULT_MIN_LENGTH: Duration = Duration::from_millis(1500);

/// How long the review menu waits for a key after its prompt before keeping the message.
pub const REVIEW_TIMEOUT: Duration = Duration::from_secs(8);

/// Where a `record` node is.
#[derive(Debug)]
pub(crate) enum Waiting {
    Recording,
    /// The review menu for the recording at `path`.
    Reviewing {
        path: String,
        /// Set once the options prompt has finished.
        deadline: Option<Instant>,
        /// The caller is listening to their message.
        listening: bool,
    },
}

impl Waiting {
    pub(crate) fn deadline(&self) -> Option<Instant> {
        match self {
            Waiting::Reviewing { deadline, .. } => *deadline,
            Waiting::Recording => None,
        }
    }
}

pub(crate) fn parse(r: &mut Reader<'_, '_>) -> Option<Record> {
    let prompt = r.prompt("prompt");
    let max = r.duration("max").unwrap_or(Duration::from_secs(180));
    let finish_on = match r.string("finish_on") {
        None => "#".to_string(),
        Some((s, span)) => {
            if let Some(bad) = s.chars().find(|c| !super::gather::is_dtmf(*c)) {
                let msg = format!(
                    "`finish_on` of node `{}` has `{bad}`, which is not a phone key",
                    r.node
                );
                r.error(
                    &span,
                    msg,
                    Some("use keys 0-9, *, #, A-D (or \"\" for none)".into()),
                );
            }
            s
        }
    };
    let silence = r.duration("silence").unwrap_or(Duration::from_secs(5));
    let review = r.prompt("review");
    let min_length = r.duration("min_length").unwrap_or(DEFAULT_MIN_LENGTH);
    if min_length >= max {
        let at = r.span_of("min_length").unwrap_or(r.at.clone());
        let msg = format!(
            "`min_length` of node `{}` is not below `max`: no message could be kept",
            r.node
        );
        r.error(
            &at,
            msg,
            Some("a few seconds at most, e.g. \"1500ms\"".into()),
        );
    }
    let next = r.required_target(
        "next",
        "add `next = \"NODE\"`: where the call goes after the recording",
    );
    let on_empty = r.target("on_empty");
    let on_error = r.target("on_error");
    if on_error.is_none() {
        let at = r.at.clone();
        let msg = format!(
            "record node `{}` has no `on_error`: when the voicemail directory cannot be written, \
             the call goes on to `next` without a message",
            r.node
        );
        r.sink.warning(
            &at,
            msg,
            Some(
                "add `on_error = \"NODE\"`: e.g. ring the desk again and ask the caller to call back"
                    .into(),
            ),
        );
    }
    Some(Record {
        prompt,
        max,
        finish_on,
        silence,
        review,
        min_length,
        next: next?,
        on_empty,
        on_error,
    })
}

impl Record {
    pub fn edges(&self) -> Vec<Edge<'_>> {
        let mut out = vec![super::edge("next", &self.next)];
        if let Some(t) = &self.on_empty {
            out.push(super::edge("empty", t));
        }
        if let Some(t) = &self.on_error {
            out.push(super::edge("error", t));
        }
        out
    }

    pub(crate) fn enter(&self, cx: &mut Cx<'_>) -> Step {
        self.start_recording(cx);
        Step::Wait(Wait::Record(Waiting::Recording))
    }

    fn start_recording(&self, cx: &mut Cx<'_>) {
        cx.out.push(Action::Record {
            prompt: self.prompt.as_ref().map(|p| p.name.clone()),
            max: self.max,
            finish_on: self.finish_on.clone(),
            silence: self.silence,
            min_length: self.min_length,
        });
    }

    /// Digits while recording are the shell's (it ends on `finish_on`); in the review they choose.
    pub(crate) fn on_event(&self, w: &mut Waiting, cx: &mut Cx<'_>, ev: &Event) -> Option<Step> {
        match (&mut *w, ev) {
            (Waiting::Recording, Event::RecordDone { path: None }) => {
                cx.vars.remove("recording");
                Some(Step::Goto(self.next.name.clone()))
            }
            (Waiting::Recording, Event::RecordEmpty) => {
                cx.vars.remove("recording");
                let to = self.on_empty.as_ref().unwrap_or(&self.next);
                cx.log(format!("record `{}`: no message left", cx.node));
                Some(Step::Goto(to.name.clone()))
            }
            (Waiting::Recording, Event::RecordFailed) => {
                cx.vars.remove("recording");
                let to = self.on_error.as_ref().unwrap_or(&self.next);
                cx.log(format!(
                    "record `{}`: the message could not be recorded; going to `{}`",
                    cx.node, to.name
                ));
                Some(Step::Goto(to.name.clone()))
            }
            (Waiting::Recording, Event::RecordDone { path: Some(p) }) => {
                cx.vars.insert("recording".into(), p.clone());
                match &self.review {
                    None => {
                        cx.out.push(Action::KeepRecording { path: p.clone() });
                        Some(Step::Goto(self.next.name.clone()))
                    }
                    Some(options) => {
                        cx.play(&[options], true);
                        *w = Waiting::Reviewing {
                            path: p.clone(),
                            deadline: None,
                            listening: false,
                        };
                        None
                    }
                }
            }
            (
                Waiting::Reviewing {
                    path,
                    deadline,
                    listening,
                },
                Event::PlaybackDone,
            ) => {
                if *listening {
                    // After listening, the options again.
                    *listening = false;
                    if let Some(options) = &self.review {
                        cx.play(&[options], true);
                    }
                } else {
                    *deadline = Some(cx.now + REVIEW_TIMEOUT);
                }
                let _ = path;
                None
            }
            (
                Waiting::Reviewing {
                    path,
                    deadline,
                    listening,
                },
                Event::Digit(d),
            ) => match d {
                '1' => {
                    cx.stop_playback();
                    cx.out.push(Action::PlayRecording { path: path.clone() });
                    cx.count_play();
                    *listening = true;
                    *deadline = None;
                    None
                }
                '2' => {
                    cx.stop_playback();
                    cx.out.push(Action::DiscardRecording { path: path.clone() });
                    cx.vars.remove("recording");
                    cx.log(format!("record `{}`: recording again", cx.node));
                    self.start_recording(cx);
                    *w = Waiting::Recording;
                    None
                }
                '3' | '#' => {
                    cx.stop_playback();
                    cx.out.push(Action::KeepRecording { path: path.clone() });
                    Some(Step::Goto(self.next.name.clone()))
                }
                _ => None,
            },
            _ => None,
        }
    }

    /// No key after the options: the message is kept.
    pub(crate) fn on_timeout(&self, w: &mut Waiting, cx: &mut Cx<'_>) -> Option<Step> {
        let Waiting::Reviewing { path, .. } = w else {
            return None;
        };
        cx.out.push(Action::KeepRecording { path: path.clone() });
        Some(Step::Goto(self.next.name.clone()))
    }
}
