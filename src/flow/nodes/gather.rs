//! `gather`: play a prompt and read digits (TwiML `<Gather>`, Asterisk `Read`/`Background`).
//!
//! ```toml
//! [nodes.menu]
//! type = "gather"
//! prompt = "press_5"             # or prompts = [...]; optional
//! barge_in = true                # default: the first digit stops the prompt
//! digits = { "5" = "terms" }     # exact input -> node
//! max_digits = 1                 # default: longest key in `digits`, or 20 with `store`
//! terminator = "#"               # ends input early, not part of it; default "#", "" for none
//! timeout = "5s"                 # first digit, counted from the end of the prompt; default 5s
//! inter_digit_timeout = "3s"     # default 3s
//! retries = 2                    # extra attempts after the first; default 2
//! no_input_prompt = "no_input"   # optional, before a retry after silence
//! invalid_prompt = "invalid_input" # optional, before a retry after a wrong input
//! on_fail = "goodbye"            # after the last failed attempt
//! store = "ticket"               # optional: keep free input in variable `ticket` ...
//! next = "thanks"                # ... and go here with it (required with `store`)
//! ```
//!
//! Input ends on the terminator, at `max_digits`, when the inter-digit timeout passes, or (without
//! `store`) as soon as no longer `digits` key could still match (so "5" needs no wait). Then: a
//! `digits` key wins; otherwise with `store` any input goes to `next`. Pressing only the
//! terminator with `store` is a deliberate "skip": the variable is set to "" and the call goes to
//! `next`. Silence is never a skip: it is "no input" and counts as a failed attempt.
//! The variables `digits` (the input) and `attempts` (tries used, from 1) are set either way.

use std::time::{Duration, Instant};

use crate::flow::model::{Edge, Prompt, Target};
use crate::flow::parse::Reader;
use crate::flow::run::{BUILTIN_VARS, Cx, Event, Step, Wait};

#[derive(Clone, Debug)]
pub struct Gather {
    pub prompts: Vec<Prompt>,
    pub barge_in: bool,
    /// Exact input -> node, in file order.
    pub digits: Vec<(String, Target)>,
    pub max_digits: usize,
    pub terminator: Option<char>,
    pub timeout: Duration,
    pub inter_digit_timeout: Duration,
    pub retries: u32,
    pub no_input_prompt: Option<Prompt>,
    pub invalid_prompt: Option<Prompt>,
    pub on_fail: Target,
    pub store: Option<String>,
    pub next: Option<Target>,
}

/// The keys of a phone keypad (RFC 4733 events 0-15).
pub fn is_dtmf(c: char) -> bool {
    matches!(c, '0'..='9' | '*' | '#' | 'A'..='D')
}

pub(crate) fn parse(r: &mut Reader<'_, '_>) -> Option<Gather> {
    let prompts = r.prompts(false);
    let barge_in = r.bool("barge_in").unwrap_or(true);
    let terminator = match r.string("terminator") {
        None => Some('#'),
        Some((s, span)) => {
            let mut chars = s.chars();
            match (chars.next(), chars.next()) {
                (None, _) => None,
                (Some(c), None) if is_dtmf(c) => Some(c),
                _ => {
                    let msg = format!(
                        "`terminator` of node `{}` must be one phone key, not \"{s}\"",
                        r.node
                    );
                    r.error(
                        &span,
                        msg,
                        Some("use one of 0-9, *, #, A-D, or \"\" for none".into()),
                    );
                    None
                }
            }
        }
    };
    let table = r.string_table("digits").unwrap_or_default();
    let mut digits = Vec::new();
    for (key, key_span, node, node_span) in table {
        if key.is_empty() || !key.chars().all(is_dtmf) {
            let msg = format!(
                "digits key \"{key}\" in node `{}` is not something a phone can send",
                r.node
            );
            r.error(
                &key_span,
                msg,
                Some("keys are made of 0-9, *, #, A-D, like \"5\" or \"*9\"".into()),
            );
        } else if let Some(t) = terminator.filter(|t| key.contains(*t)) {
            let msg = format!(
                "digits key \"{key}\" in node `{}` contains the terminator `{t}`, so it can never be entered",
                r.node
            );
            r.error(
                &key_span,
                msg,
                Some("use another key, or change `terminator` (\"\" for none)".into()),
            );
        }
        digits.push((
            key,
            Target {
                name: node,
                span: node_span,
            },
        ));
    }
    let store = match r.string("store") {
        Some((name, span)) if BUILTIN_VARS.contains(&name.as_str()) => {
            r.error(
                &span,
                format!("`{name}` is a built-in variable and cannot be stored into"),
                Some("pick another name".into()),
            );
            None
        }
        Some((name, span)) if !super::is_var_name(&name) => {
            r.error(
                &span,
                format!("`{name}` is not a variable name"),
                Some("use letters, digits and `_`, starting with a letter".into()),
            );
            None
        }
        other => other.map(|(n, _)| n),
    };
    let longest = digits
        .iter()
        .map(|(k, _)| k.chars().count())
        .max()
        .unwrap_or(0);
    let default_max = if store.is_some() {
        longest.max(20)
    } else {
        longest.max(1)
    };
    let max_digits = r
        .int("max_digits", 1..=64)
        .map_or(default_max, |n| n as usize);
    if let Some(span) = r.span_of("max_digits") {
        for (key, _) in digits
            .iter()
            .filter(|(k, _)| k.chars().count() > max_digits)
        {
            let msg = format!(
                "digits key \"{key}\" in node `{}` is longer than max_digits = {max_digits}, so it can never be entered",
                r.node
            );
            r.error(
                &span,
                msg,
                Some(format!("raise `max_digits` to {}", key.chars().count())),
            );
        }
    }
    let timeout = r.duration("timeout").unwrap_or(Duration::from_secs(5));
    let inter_digit_timeout = r
        .duration("inter_digit_timeout")
        .unwrap_or(Duration::from_secs(3));
    let retries = r.int("retries", 0..=10).unwrap_or(2) as u32;
    let no_input_prompt = r.prompt("no_input_prompt");
    let invalid_prompt = r.prompt("invalid_prompt");
    let on_fail = r.required_target(
        "on_fail",
        "add `on_fail = \"NODE\"`: where the call goes after the last failed attempt",
    );
    let next = r.target("next");
    if digits.is_empty() && store.is_none() && !r.has("store") {
        let at = r.at.clone();
        let msg = format!(
            "gather `{}` has neither `digits` nor `store`, so no input can ever be valid",
            r.node
        );
        r.error(&at, msg, Some("add `digits = { \"1\" = \"NODE\" }`, or `store = \"VAR\"` with `next` for free input".into()));
    }
    match (&store, &next) {
        (Some(_), None) => r.missing(
            "next",
            "with `store`, add `next = \"NODE\"`: where the call goes with the input",
        ),
        (None, Some(n)) if !r.has("store") => {
            let msg = format!("`next` in gather `{}` is only used with `store`", r.node);
            r.error(
                &n.span,
                msg,
                Some(
                    "add `store = \"VAR\"` to accept free input, or remove `next` and use `digits`"
                        .into(),
                ),
            );
        }
        _ => {}
    }
    Some(Gather {
        prompts,
        barge_in,
        digits,
        max_digits,
        terminator,
        timeout,
        inter_digit_timeout,
        retries,
        no_input_prompt,
        invalid_prompt,
        on_fail: on_fail?,
        store,
        next,
    })
}

/// A gather in progress.
pub(crate) struct Waiting {
    /// 1 for the first try.
    attempt: u32,
    input: String,
    /// Prompt still playing (no timer runs yet).
    prompting: bool,
    deadline: Option<Instant>,
}

impl Waiting {
    pub fn deadline(&self) -> Option<Instant> {
        self.deadline
    }
}

enum Failure {
    NoInput,
    Invalid,
}

impl Gather {
    pub fn edges(&self) -> Vec<Edge<'_>> {
        let mut out: Vec<Edge<'_>> = self
            .digits
            .iter()
            .map(|(k, t)| super::edge(format!("\"{k}\""), t))
            .collect();
        if let (Some(var), Some(next)) = (&self.store, &self.next) {
            out.push(super::edge(format!("input -> {var}"), next));
        }
        out.push(super::edge("fail", &self.on_fail));
        out
    }

    pub(crate) fn all_prompts(&self) -> Vec<&Prompt> {
        self.prompts
            .iter()
            .chain(&self.no_input_prompt)
            .chain(&self.invalid_prompt)
            .collect()
    }

    pub(crate) fn enter(&self, cx: &mut Cx<'_>) -> Step {
        let mut w = Waiting {
            attempt: 1,
            input: String::new(),
            prompting: false,
            deadline: None,
        };
        match self.begin(&mut w, cx, None) {
            Some(step) => step,
            None => Step::Wait(Wait::Gather(w)),
        }
    }

    pub(crate) fn on_event(&self, w: &mut Waiting, cx: &mut Cx<'_>, ev: &Event) -> Option<Step> {
        match ev {
            Event::PlaybackDone if w.prompting => self.collect(w, cx),
            Event::Digit(d) if w.prompting && !self.barge_in => {
                // Kept until the prompt ends, then read as input.
                cx.typeahead.push(*d);
                None
            }
            Event::Digit(d) => {
                if w.prompting {
                    cx.stop_playback();
                    w.prompting = false;
                }
                self.feed(w, cx, *d)
            }
            _ => None,
        }
    }

    pub(crate) fn on_timeout(&self, w: &mut Waiting, cx: &mut Cx<'_>) -> Option<Step> {
        w.deadline = None;
        if w.input.is_empty() {
            self.fail(w, cx, Failure::NoInput)
        } else {
            self.complete(w, cx, false)
        }
    }

    /// Starts an attempt: type-ahead first (then the prompt is skipped: the caller already
    /// knows what to press), else the prompt (after `feedback`), else straight to the timer.
    fn begin(&self, w: &mut Waiting, cx: &mut Cx<'_>, feedback: Option<&Prompt>) -> Option<Step> {
        w.input.clear();
        w.deadline = None;
        if !cx.typeahead.is_empty() {
            return self.collect(w, cx);
        }
        let list: Vec<&Prompt> = feedback.into_iter().chain(&self.prompts).collect();
        if cx.play(&list, self.barge_in) {
            w.prompting = true;
            None
        } else {
            self.collect(w, cx)
        }
    }

    /// The prompt is over: read buffered digits, then wait for more.
    fn collect(&self, w: &mut Waiting, cx: &mut Cx<'_>) -> Option<Step> {
        w.prompting = false;
        let buffered = std::mem::take(cx.typeahead);
        let mut chars = buffered.chars();
        for c in chars.by_ref() {
            if let Some(step) = self.feed(w, cx, c) {
                // Digits beyond this input belong to the next gather.
                let rest: String = chars.collect();
                cx.typeahead.insert_str(0, &rest);
                return Some(step);
            }
        }
        if w.input.is_empty() {
            w.deadline = Some(cx.now + self.timeout);
        }
        None
    }

    fn feed(&self, w: &mut Waiting, cx: &mut Cx<'_>, c: char) -> Option<Step> {
        if Some(c) == self.terminator {
            return self.complete(w, cx, true);
        }
        w.input.push(c);
        // Without `store`, stop as soon as the answer is certain: the input is a key no
        // longer key extends, or no key starts with it (invalid, no need to wait).
        let decided = self.store.is_none()
            && !self
                .digits
                .iter()
                .any(|(k, _)| k.len() > w.input.len() && k.starts_with(&w.input));
        if w.input.chars().count() >= self.max_digits || decided {
            return self.complete(w, cx, false);
        }
        w.deadline = Some(cx.now + self.inter_digit_timeout);
        None
    }

    fn complete(&self, w: &mut Waiting, cx: &mut Cx<'_>, terminated: bool) -> Option<Step> {
        w.deadline = None;
        cx.vars.insert("digits".into(), w.input.clone());
        cx.vars.insert("attempts".into(), w.attempt.to_string());
        if let Some((_, target)) = self.digits.iter().find(|(k, _)| *k == w.input) {
            return Some(Step::Goto(target.name.clone()));
        }
        if let (Some(var), Some(next)) = (&self.store, &self.next)
            && (!w.input.is_empty() || terminated)
        {
            cx.vars.insert(var.clone(), w.input.clone());
            return Some(Step::Goto(next.name.clone()));
        }
        let why = if w.input.is_empty() && !terminated {
            Failure::NoInput
        } else {
            Failure::Invalid
        };
        self.fail(w, cx, why)
    }

    fn fail(&self, w: &mut Waiting, cx: &mut Cx<'_>, why: Failure) -> Option<Step> {
        cx.vars.insert("digits".into(), w.input.clone());
        cx.vars.insert("attempts".into(), w.attempt.to_string());
        let (what, feedback) = match why {
            Failure::NoInput => ("no input", self.no_input_prompt.as_ref()),
            Failure::Invalid => ("invalid input", self.invalid_prompt.as_ref()),
        };
        if w.attempt > self.retries {
            cx.log(format!(
                "gather `{}`: {what} on the last of {} attempts",
                cx.node, w.attempt
            ));
            return Some(Step::Goto(self.on_fail.name.clone()));
        }
        cx.log(format!(
            "gather `{}`: {what} on attempt {}",
            cx.node, w.attempt
        ));
        w.attempt += 1;
        self.begin(w, cx, feedback)
    }
}
