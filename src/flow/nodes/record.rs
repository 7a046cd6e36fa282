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
//! next = "goodbye"
//! ```
//!
//! The recording's path is kept in the variable `recording` (absent when nothing was recorded).

use std::time::Duration;

use crate::flow::model::{Edge, Prompt, Target};
use crate::flow::parse::Reader;
use crate::flow::run::{Action, Cx, Event, Step, Wait};

#[derive(Clone, Debug)]
pub struct Record {
    pub prompt: Option<Prompt>,
    pub max: Duration,
    pub finish_on: String,
    pub silence: Duration,
    pub next: Target,
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
    let next = r.required_target(
        "next",
        "add `next = \"NODE\"`: where the call goes after the recording",
    );
    Some(Record {
        prompt,
        max,
        finish_on,
        silence,
        next: next?,
    })
}

impl Record {
    pub fn edges(&self) -> Vec<Edge<'_>> {
        vec![super::edge("next", &self.next)]
    }

    pub(crate) fn enter(&self, cx: &mut Cx<'_>) -> Step {
        cx.out.push(Action::Record {
            prompt: self.prompt.as_ref().map(|p| p.name.clone()),
            max: self.max,
            finish_on: self.finish_on.clone(),
            silence: self.silence,
        });
        Step::Wait(Wait::Record)
    }

    /// Digits while recording are the shell's (it ends on `finish_on`); ignored here.
    pub(crate) fn on_event(&self, cx: &mut Cx<'_>, ev: &Event) -> Option<Step> {
        let Event::RecordDone { path } = ev else {
            return None;
        };
        match path {
            Some(p) => {
                cx.vars.insert("recording".into(), p.clone());
            }
            None => {
                cx.vars.remove("recording");
            }
        }
        Some(Step::Goto(self.next.name.clone()))
    }
}
