//! `play`: play one or more prompts, then go on (TwiML `<Play>`, Asterisk `Playback`).
//!
//! ```toml
//! [nodes.greeting]
//! type = "play"
//! prompts = ["after_hours_greeting", "rate_disclaimer"]   # or prompt = "x"
//! barge_in = false
//! next = "menu"
//! ```
//!
//! `prompt_var = "incident_prompt"` also plays the prompt a variable names, after `prompts`
//! (none when it is empty): the incident announcement configured in `[[incidents.prompts]]`.
//!
//! Without barge-in (the default: disclaimers must be heard) digits pressed meanwhile are kept
//! for the next `gather` (type-ahead). With `barge_in = true` the first digit stops the prompt,
//! is kept the same way, and the call moves on at once.

use crate::flow::model::{Edge, Prompt, Target};
use crate::flow::parse::Reader;
use crate::flow::run::{Cx, Event, Step, Wait};

#[derive(Clone, Debug)]
pub struct Play {
    pub prompts: Vec<Prompt>,
    /// A variable naming one more prompt to play (empty: none).
    pub prompt_var: Option<(String, crate::flow::diag::Span)>,
    pub barge_in: bool,
    pub next: Target,
}

/// A play node waiting for its prompts to end.
pub(crate) struct Waiting;

pub(crate) fn parse(r: &mut Reader<'_, '_>) -> Option<Play> {
    let prompt_var = r.string("prompt_var");
    let prompts = r.prompts(prompt_var.is_none());
    let barge_in = r.bool("barge_in").unwrap_or(false);
    let next = r.required_target(
        "next",
        "add `next = \"NODE\"`: where the call goes after the prompts",
    );
    Some(Play {
        prompts,
        prompt_var,
        barge_in,
        next: next?,
    })
}

impl Play {
    pub fn edges(&self) -> Vec<Edge<'_>> {
        vec![super::edge("next", &self.next)]
    }

    pub(crate) fn enter(&self, cx: &mut Cx<'_>) -> Step {
        let mut prompts: Vec<String> = self.prompts.iter().map(|p| p.name.clone()).collect();
        if let Some((var, _)) = &self.prompt_var
            && let Some(named) = cx.vars.get(var).filter(|n| !n.is_empty())
        {
            prompts.push(named.clone());
        }
        if cx.play_names(prompts, self.barge_in) {
            Step::Wait(Wait::Play(Waiting))
        } else {
            Step::Goto(self.next.name.clone())
        }
    }

    pub(crate) fn on_event(&self, _w: &mut Waiting, cx: &mut Cx<'_>, ev: &Event) -> Option<Step> {
        match ev {
            Event::PlaybackDone => Some(Step::Goto(self.next.name.clone())),
            Event::Digit(d) => {
                cx.typeahead.push(*d);
                if self.barge_in {
                    cx.stop_playback();
                    return Some(Step::Goto(self.next.name.clone()));
                }
                None
            }
            _ => None,
        }
    }
}
