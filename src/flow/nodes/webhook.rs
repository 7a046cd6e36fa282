//! `webhook`: tell the helpdesk something happened (an event name plus all call variables).
//! The shell queues it in the durable outbox and answers at once, so the caller never waits on
//! the network.
//!
//! ```toml
//! [nodes.notify]
//! type = "webhook"
//! event = "after_hours_request"
//! next = "ring_desk"
//! on_error = "ring_desk"   # optional: when the webhook could not even be queued; default: next
//! ```

use crate::flow::model::{Edge, Target};
use crate::flow::parse::Reader;
use crate::flow::run::{Action, Cx, Event, Step, Wait};

#[derive(Clone, Debug)]
pub struct Webhook {
    pub event: String,
    pub next: Target,
    pub on_error: Option<Target>,
}

pub(crate) fn parse(r: &mut Reader<'_, '_>) -> Option<Webhook> {
    if !r.has("event") {
        r.missing(
            "event",
            "add `event = \"NAME\"`: the event name receivers subscribe to",
        );
    }
    let event = r.string("event");
    let next = r.required_target(
        "next",
        "add `next = \"NODE\"`: where the call goes after the webhook",
    );
    let on_error = r.target("on_error");
    Some(Webhook {
        event: event?.0,
        next: next?,
        on_error,
    })
}

impl Webhook {
    pub fn edges(&self) -> Vec<Edge<'_>> {
        let mut out = vec![super::edge("next", &self.next)];
        if let Some(t) = &self.on_error {
            out.push(super::edge("error", t));
        }
        out
    }

    pub(crate) fn enter(&self, cx: &mut Cx<'_>) -> Step {
        cx.out.push(Action::Webhook {
            event: self.event.clone(),
            vars: cx.vars.clone(),
        });
        Step::Wait(Wait::Webhook)
    }

    pub(crate) fn on_event(&self, cx: &mut Cx<'_>, ev: &Event) -> Option<Step> {
        match ev {
            Event::WebhookDone { ok } => {
                let target = match (&self.on_error, ok) {
                    (Some(t), false) => t,
                    _ => &self.next,
                };
                if !ok {
                    cx.log(format!("webhook `{}` failed", self.event));
                }
                Some(Step::Goto(target.name.clone()))
            }
            Event::Digit(d) => {
                cx.typeahead.push(*d);
                None
            }
            _ => None,
        }
    }
}
