//! The admin server's view of the line ([`crate::http::Line`]): what the current set serves
//! (hours, prompts, desk groups, flows — asked each time, so a reload shows at once), the staff
//! bindings the signalling thread publishes whenever the registrar changes, and the reload.

use std::sync::Arc;

use tokio::sync::watch;

use super::reload::{LiveSettings, Reloader};
use crate::hours::BusinessHours;
use crate::http::{Line, ServedFlow};
use crate::services::reload::ReloadOutcome;
use crate::sip::Registration;

/// The registrar's bindings as the signalling thread last published them.
pub(super) type Registrations = Arc<[Registration]>;

pub(super) struct LineView {
    pub live: Arc<LiveSettings>,
    pub registrations: watch::Receiver<Registrations>,
    pub trunks: watch::Receiver<crate::trunk::TrunkStatuses>,
    pub reloader: Arc<Reloader>,
}

impl Line for LineView {
    fn reload(
        &self,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = ReloadOutcome> + Send + '_>> {
        Box::pin(self.reloader.reload())
    }

    fn last_reload(&self) -> ReloadOutcome {
        self.reloader.last()
    }

    fn hours(&self) -> BusinessHours {
        self.live.current().hours.clone()
    }

    fn prompts_loaded(&self) -> usize {
        self.live.current().prompts.len()
    }

    fn desk_and_flows(&self) -> (crate::bridge::DeskGroups, Vec<ServedFlow>) {
        let settings = self.live.current();
        let table = &settings.flows;
        let mut flows = vec![ServedFlow {
            numbers: vec!["default".into()],
            flow: table.default.clone(),
        }];
        let mut numbers: Vec<(&String, &Arc<crate::flow::Flow>)> = table.numbers.iter().collect();
        numbers.sort_by(|a, b| a.0.cmp(b.0));
        for (number, flow) in numbers {
            // One drawing per flow file, however many numbers it answers.
            match flows.iter_mut().find(|f| f.flow.file == flow.file) {
                Some(f) => f.numbers.push(number.clone()),
                None => flows.push(ServedFlow {
                    numbers: vec![number.clone()],
                    flow: flow.clone(),
                }),
            }
        }
        (settings.desk.groups.clone(), flows)
    }

    fn registrations(&self) -> Registrations {
        self.registrations.borrow().clone()
    }

    fn trunks(&self) -> crate::trunk::TrunkStatuses {
        self.trunks.borrow().clone()
    }
}
