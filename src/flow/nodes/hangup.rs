//! `hangup`: optionally play prompts (a goodbye), then end the call.
//!
//! ```toml
//! [nodes.goodbye]
//! type = "hangup"
//! prompt = "goodbye"
//! ```

use crate::flow::model::Prompt;
use crate::flow::parse::Reader;
use crate::flow::run::{Cx, Event, Step, Wait};

#[derive(Clone, Debug)]
pub struct Hangup {
    pub prompts: Vec<Prompt>,
}

pub(crate) fn parse(r: &mut Reader<'_, '_>) -> Option<Hangup> {
    Some(Hangup {
        prompts: r.prompts(false),
    })
}

impl Hangup {
    fn reason(cx: &Cx<'_>) -> String {
        format!("flow ended at `{}`", cx.node)
    }

    pub(crate) fn enter(&self, cx: &mut Cx<'_>) -> Step {
        let prompts: Vec<&Prompt> = self.prompts.iter().collect();
        // No barge-in: the goodbye carries instructions (open a ticket) the caller must hear.
        if cx.play(&prompts, false) {
            Step::Wait(Wait::HangupPrompt)
        } else {
            Step::Hangup(Self::reason(cx))
        }
    }

    pub(crate) fn on_event(&self, cx: &mut Cx<'_>, ev: &Event) -> Option<Step> {
        match ev {
            Event::PlaybackDone => Some(Step::Hangup(Self::reason(cx))),
            _ => None,
        }
    }
}
