//! `dial`: ring staff and bridge the caller to whoever answers (TwiML `<Dial>`, Asterisk `Dial`).
//!
//! ```toml
//! [nodes.ring_desk]
//! type = "dial"
//! targets = ["desk"]            # desk groups from config ([[desk.groups]]); never addresses
//! strategy = "simultaneous"     # or "sequential": members in order
//! timeout = "30s"               # overall ring time
//! ring_each = "15s"             # sequential: per member (default: [desk] ring_each_s)
//! whisper = "whisper_accept"    # optional: the "press 1 to accept" prompt staff hear after
//!                               # who is calling (default: whisper_accept)
//! on_no_answer = "voicemail"
//! on_busy = "voicemail"         # optional, default: on_no_answer
//! on_failed = "voicemail"       # optional, default: on_no_answer
//! next = "goodbye"              # optional: after an answered call ends; default: hang up
//! ```
//!
//! The interpreter only asks for the dial and follows the outcome; ringing and bridging are the
//! shell's (the bridge module). The outcome is kept in the variable `dial_status`.

use std::time::Duration;

use crate::flow::model::{Edge, Prompt, Target};
use crate::flow::parse::Reader;
use crate::flow::run::{Action, Cx, Event, Step, Wait};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Strategy {
    /// Ring every target at once; the first to answer wins.
    Simultaneous,
    /// Ring targets one after another, `timeout` each.
    Sequential,
}

/// How a dial ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DialOutcome {
    Answered,
    NoAnswer,
    Busy,
    Failed,
}

impl DialOutcome {
    pub fn as_str(self) -> &'static str {
        match self {
            DialOutcome::Answered => "answered",
            DialOutcome::NoAnswer => "no_answer",
            DialOutcome::Busy => "busy",
            DialOutcome::Failed => "failed",
        }
    }
}

#[derive(Clone, Debug)]
pub struct Dial {
    pub targets: Vec<String>,
    pub strategy: Strategy,
    pub timeout: Duration,
    pub ring_each: Option<Duration>,
    pub whisper: Option<Prompt>,
    pub on_no_answer: Target,
    pub on_busy: Option<Target>,
    pub on_failed: Option<Target>,
    pub next: Option<Target>,
}

pub(crate) fn parse(r: &mut Reader<'_, '_>) -> Option<Dial> {
    if !r.has("targets") {
        r.missing(
            "targets",
            "add `targets = [\"desk\"]`: desk groups (config [[desk.groups]]) to ring",
        );
    }
    let targets: Vec<String> = r
        .string_list("targets")
        .unwrap_or_default()
        .into_iter()
        .map(|(t, _)| t)
        .collect();
    if targets.is_empty() && r.has("targets") {
        let at = r.span_of("targets").unwrap_or(r.at.clone());
        let msg = format!("`targets` of node `{}` is empty", r.node);
        r.error(
            &at,
            msg,
            Some("name at least one desk group from the config".into()),
        );
    }
    let strategy = match r.string("strategy") {
        None => Strategy::Simultaneous,
        Some((s, _)) if s == "simultaneous" => Strategy::Simultaneous,
        Some((s, _)) if s == "sequential" => Strategy::Sequential,
        Some((s, span)) => {
            r.error(
                &span,
                format!("unknown strategy `{s}`"),
                Some("use \"simultaneous\" or \"sequential\"".into()),
            );
            Strategy::Simultaneous
        }
    };
    let timeout = r.duration("timeout").unwrap_or(Duration::from_secs(30));
    let ring_each = r.duration("ring_each");
    let whisper = r.prompt("whisper");
    let on_no_answer = r.required_target(
        "on_no_answer",
        "add `on_no_answer = \"NODE\"` (e.g. a voicemail): where the call goes when nobody answers",
    );
    let on_busy = r.target("on_busy");
    let on_failed = r.target("on_failed");
    let next = r.target("next");
    Some(Dial {
        targets,
        strategy,
        timeout,
        ring_each,
        whisper,
        on_no_answer: on_no_answer?,
        on_busy,
        on_failed,
        next,
    })
}

impl Dial {
    pub fn edges(&self) -> Vec<Edge<'_>> {
        let mut out = Vec::new();
        if let Some(n) = &self.next {
            out.push(super::edge("answered", n));
        }
        out.push(super::edge("no_answer", &self.on_no_answer));
        if let Some(t) = &self.on_busy {
            out.push(super::edge("busy", t));
        }
        if let Some(t) = &self.on_failed {
            out.push(super::edge("failed", t));
        }
        out
    }

    pub(crate) fn enter(&self, cx: &mut Cx<'_>) -> Step {
        cx.out.push(Action::Dial {
            targets: self.targets.clone(),
            strategy: self.strategy,
            timeout: self.timeout,
            ring_each: self.ring_each,
            whisper: self.whisper.as_ref().map(|p| p.name.clone()),
        });
        Step::Wait(Wait::Dial)
    }

    /// Digits during a dial belong to the bridge (staff and caller talk), so they are ignored.
    pub(crate) fn on_event(&self, cx: &mut Cx<'_>, ev: &Event) -> Option<Step> {
        let Event::DialDone(outcome) = ev else {
            return None;
        };
        cx.vars
            .insert("dial_status".into(), outcome.as_str().into());
        let target = match outcome {
            DialOutcome::Answered => {
                return Some(match &self.next {
                    Some(n) => Step::Goto(n.name.clone()),
                    None => Step::Hangup("call completed".into()),
                });
            }
            DialOutcome::NoAnswer => &self.on_no_answer,
            DialOutcome::Busy => self.on_busy.as_ref().unwrap_or(&self.on_no_answer),
            DialOutcome::Failed => self.on_failed.as_ref().unwrap_or(&self.on_no_answer),
        };
        Some(Step::Goto(target.name.clone()))
    }
}
