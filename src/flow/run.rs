//! The interpreter: one call's position in a flow, as a sans-IO state machine.
//!
//! The call shell owns the clock, the audio and the network. It calls [`Run::start`], then feeds
//! every [`Event`] to [`Run::handle`] and sleeps until [`Run::poll_timeout`] to call
//! [`Run::handle_timeout`]; each call returns the [`Action`]s to perform, in order. Nothing here
//! reads a clock or touches a file, so tests drive whole calls on a virtual clock.
//!
//! Contract with the shell about playback: every `Play` is answered by exactly one
//! `PlaybackDone`, in order, also when the shell cut it short after `StopPlayback`. The run counts
//! outstanding playbacks, so the late `PlaybackDone` of a prompt stopped by barge-in is never
//! mistaken for the end of the next node's prompt.
//!
//! Type-ahead: digits pressed while a prompt plays without barge-in (or between nodes) are kept
//! and consumed by the next `gather`, as real IVRs do, so a caller who knows the menu can press
//! 5 during the greeting.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::facts::Facts;
use super::model::{Flow, Node, Prompt};
use super::nodes::{DialOutcome, Strategy, gather, play};

/// Node transitions allowed without waiting for an event; more means the flow spins (the check
/// rejects such loops, this is the belt to its braces).
pub const MAX_HOPS: usize = 100;

/// Call variables the interpreter maintains; `set` and `store` may not write them.
pub const BUILTIN_VARS: &[&str] = &[
    "caller",
    "called",
    "digits",
    "attempts",
    "dial_status",
    "recording",
    "incident_prompt",
];

/// Something that happened on the call.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Event {
    /// The last `Play` finished (or was stopped). One per `Play`, in order.
    PlaybackDone,
    /// A DTMF digit (0-9 * # A-D) from any detector.
    Digit(char),
    /// A `Dial` ended: after the bridged call when answered, else with the reason.
    DialDone(DialOutcome),
    /// A `Record` ended; `path` is the saved recording, `None` when nothing was recorded.
    RecordDone { path: Option<String> },
    /// A `Record` ended without a message (too short, or the caller never spoke); the shell
    /// has deleted the recording.
    RecordEmpty,
    /// A `Record` could not record at all (the voicemail directory cannot be written). Sent
    /// instead of playing the node's prompt, so the caller hears no promise about a message.
    RecordFailed,
    /// A `Webhook` was handed over (queued in the outbox: `ok`) or refused.
    WebhookDone { ok: bool },
    /// The caller hung up.
    Hangup,
}

/// Something the shell must do.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Action {
    /// Play the prompts in order (names of `prompts/NAME.wav`); with `barge_in` the run will
    /// send `StopPlayback` on the first digit.
    Play {
        prompts: Vec<String>,
        barge_in: bool,
    },
    /// Stop the current playback (a `PlaybackDone` still follows).
    StopPlayback,
    /// End the call.
    Hangup { reason: String },
    /// Ring staff and bridge the caller to whoever answers; answer with `DialDone`.
    Dial {
        targets: Vec<String>,
        strategy: Strategy,
        timeout: Duration,
        ring_each: Option<Duration>,
        whisper: Option<String>,
    },
    /// Play `prompt`, a tone, then record the caller; answer with `RecordDone`, or
    /// `RecordEmpty` when what was recorded is shorter than `min_length` or silence, or
    /// `RecordFailed` when nothing can be recorded.
    Record {
        prompt: Option<String>,
        max: Duration,
        finish_on: String,
        silence: Duration,
        min_length: Duration,
    },
    /// Play the caller's own recording (the voicemail review); answered by `PlaybackDone`.
    PlayRecording { path: String },
    /// The recording at `path` is final: store it, start the callback promise, notify.
    KeepRecording { path: String },
    /// The caller chose to record again: delete the recording at `path`.
    DiscardRecording { path: String },
    /// Send a webhook with the call variables; answer with `WebhookDone`.
    Webhook {
        event: String,
        vars: BTreeMap<String, String>,
    },
    /// The run entered a node (for the call log).
    Enter { node: String },
    /// Something worth a line in the call log.
    Log { message: String },
}

/// What the current node waits for.
pub(crate) enum Wait {
    Nothing,
    Play(play::Waiting),
    Gather(gather::Waiting),
    Dial,
    Record(super::nodes::record::Waiting),
    Webhook,
    HangupPrompt,
}

/// What a node decided.
pub(crate) enum Step {
    Goto(String),
    Wait(Wait),
    Hangup(String),
}

/// What a node may touch while it runs.
pub(crate) struct Cx<'a> {
    pub now: Instant,
    pub facts: &'a Facts,
    pub vars: &'a mut BTreeMap<String, String>,
    pub typeahead: &'a mut String,
    pub out: &'a mut Vec<Action>,
    playing: &'a mut u32,
    pub node: &'a str,
}

impl Cx<'_> {
    /// Emits `Play` (nothing for an empty list) and counts it as outstanding.
    pub fn play(&mut self, prompts: &[&Prompt], barge_in: bool) -> bool {
        self.play_names(prompts.iter().map(|p| p.name.clone()).collect(), barge_in)
    }

    /// [`Cx::play`] by name (a prompt named by a variable has no place in the flow file).
    pub fn play_names(&mut self, prompts: Vec<String>, barge_in: bool) -> bool {
        if prompts.is_empty() {
            return false;
        }
        self.out.push(Action::Play { prompts, barge_in });
        *self.playing += 1;
        true
    }

    /// Counts a playback the node emitted itself (a recording), answered by `PlaybackDone`.
    pub fn count_play(&mut self) {
        *self.playing += 1;
    }

    pub fn stop_playback(&mut self) {
        if *self.playing > 0 {
            self.out.push(Action::StopPlayback);
        }
    }

    pub fn log(&mut self, message: String) {
        self.out.push(Action::Log { message });
    }
}

/// One call's position in a flow.
pub struct Run {
    flow: Arc<Flow>,
    facts: Facts,
    vars: BTreeMap<String, String>,
    current: Option<usize>,
    wait: Wait,
    typeahead: String,
    /// `Play`s not yet answered by `PlaybackDone`.
    playing: u32,
    finished: bool,
}

impl Run {
    pub fn new(flow: Arc<Flow>, facts: Facts) -> Run {
        let mut vars = BTreeMap::new();
        vars.insert("caller".to_string(), facts.caller.clone());
        vars.insert("called".to_string(), facts.called.clone());
        // Only when there is one: an empty variable would show up in every webhook's vars.
        if !facts.incident_prompt.is_empty() {
            vars.insert("incident_prompt".to_string(), facts.incident_prompt.clone());
        }
        Run {
            flow,
            facts,
            vars,
            current: None,
            wait: Wait::Nothing,
            typeahead: String::new(),
            playing: 0,
            finished: false,
        }
    }

    /// Enters the `start` node.
    pub fn start(&mut self, now: Instant) -> Vec<Action> {
        let mut out = Vec::new();
        if self.current.is_none() && !self.finished {
            let start = self.flow.start.name.clone();
            self.go(start, now, &mut out);
        }
        out
    }

    pub fn handle(&mut self, now: Instant, ev: Event) -> Vec<Action> {
        let mut out = Vec::new();
        if self.finished {
            return out;
        }
        match ev {
            Event::Hangup => {
                self.finished = true;
                self.wait = Wait::Nothing;
                let at = self.current_node().unwrap_or("(not started)").to_string();
                out.push(Action::Log {
                    message: format!("caller hung up in node `{at}`"),
                });
                return out;
            }
            Event::PlaybackDone => {
                self.playing = self.playing.saturating_sub(1);
                if self.playing > 0 {
                    // The end of a prompt we already stopped; the current one still plays.
                    return out;
                }
            }
            _ => {}
        }
        let step = self.dispatch(now, &mut out, |node, wait, cx| match (node, wait) {
            (Node::Play(n), Wait::Play(w)) => n.on_event(w, cx, &ev),
            (Node::Gather(n), Wait::Gather(w)) => n.on_event(w, cx, &ev),
            (Node::Dial(n), Wait::Dial) => n.on_event(cx, &ev),
            (Node::Record(n), Wait::Record(w)) => n.on_event(w, cx, &ev),
            (Node::Webhook(n), Wait::Webhook) => n.on_event(cx, &ev),
            (Node::Hangup(n), Wait::HangupPrompt) => n.on_event(cx, &ev),
            _ => None,
        });
        if let Some(step) = step {
            self.apply(step, now, &mut out);
        }
        out
    }

    /// When `handle_timeout` should be called next, if at all.
    pub fn poll_timeout(&self) -> Option<Instant> {
        match &self.wait {
            Wait::Gather(w) if !self.finished => w.deadline(),
            Wait::Record(w) if !self.finished => w.deadline(),
            _ => None,
        }
    }

    pub fn handle_timeout(&mut self, now: Instant) -> Vec<Action> {
        let mut out = Vec::new();
        if self.finished || self.poll_timeout().is_none_or(|d| d > now) {
            return out;
        }
        let step = self.dispatch(now, &mut out, |node, wait, cx| match (node, wait) {
            (Node::Gather(n), Wait::Gather(w)) => n.on_timeout(w, cx),
            (Node::Record(n), Wait::Record(w)) => n.on_timeout(w, cx),
            _ => None,
        });
        if let Some(step) = step {
            self.apply(step, now, &mut out);
        }
        out
    }

    pub fn vars(&self) -> &BTreeMap<String, String> {
        &self.vars
    }

    /// The node the call is in (or ended in).
    pub fn current_node(&self) -> Option<&str> {
        self.current.map(|i| self.flow.nodes[i].name.as_str())
    }

    pub fn is_finished(&self) -> bool {
        self.finished
    }

    pub fn flow(&self) -> &Arc<Flow> {
        &self.flow
    }

    /// Runs `f` on the current node with its wait state; `None` from `f` keeps waiting.
    fn dispatch(
        &mut self,
        now: Instant,
        out: &mut Vec<Action>,
        f: impl FnOnce(&Node, &mut Wait, &mut Cx<'_>) -> Option<Step>,
    ) -> Option<Step> {
        let flow = Arc::clone(&self.flow);
        let def = &flow.nodes[self.current?];
        let mut cx = Cx {
            now,
            facts: &self.facts,
            vars: &mut self.vars,
            typeahead: &mut self.typeahead,
            out,
            playing: &mut self.playing,
            node: &def.name,
        };
        f(&def.node, &mut self.wait, &mut cx)
    }

    fn apply(&mut self, step: Step, now: Instant, out: &mut Vec<Action>) {
        match step {
            Step::Goto(target) => self.go(target, now, out),
            Step::Wait(w) => self.wait = w,
            Step::Hangup(reason) => self.hang_up(reason, out),
        }
    }

    fn hang_up(&mut self, reason: String, out: &mut Vec<Action>) {
        self.finished = true;
        self.wait = Wait::Nothing;
        out.push(Action::Hangup { reason });
    }

    /// Enters `target` and follows nodes that finish at once until one waits.
    fn go(&mut self, mut target: String, now: Instant, out: &mut Vec<Action>) {
        let flow = Arc::clone(&self.flow);
        for _ in 0..MAX_HOPS {
            let Some(index) = flow.index_of(&target) else {
                // `check` makes this unreachable; a hand-built flow still must not panic.
                out.push(Action::Log {
                    message: format!("node `{target}` does not exist"),
                });
                return self.hang_up("flow error".into(), out);
            };
            self.current = Some(index);
            self.wait = Wait::Nothing;
            let def = &flow.nodes[index];
            out.push(Action::Enter {
                node: def.name.clone(),
            });
            let mut cx = Cx {
                now,
                facts: &self.facts,
                vars: &mut self.vars,
                typeahead: &mut self.typeahead,
                out,
                playing: &mut self.playing,
                node: &def.name,
            };
            let step = match &def.node {
                Node::Play(n) => n.enter(&mut cx),
                Node::Gather(n) => n.enter(&mut cx),
                Node::Branch(n) => n.enter(&mut cx),
                Node::Set(n) => n.enter(&mut cx),
                Node::Goto(n) => n.enter(&mut cx),
                Node::Hangup(n) => n.enter(&mut cx),
                Node::Dial(n) => n.enter(&mut cx),
                Node::Record(n) => n.enter(&mut cx),
                Node::Webhook(n) => n.enter(&mut cx),
            };
            match step {
                Step::Goto(next) => target = next,
                Step::Wait(w) => {
                    self.wait = w;
                    return;
                }
                Step::Hangup(reason) => return self.hang_up(reason, out),
            }
        }
        out.push(Action::Log {
            message: format!(
                "flow loop: {MAX_HOPS} nodes in a row without waiting for the caller (last: `{target}`)"
            ),
        });
        self.hang_up("flow loop".into(), out);
    }
}

#[cfg(test)]
#[path = "run_tests.rs"]
mod tests;
