//! `goto`: jump to another node (Asterisk's `Goto`); handy to share a tail between branches.
//!
//! ```toml
//! [nodes.again]
//! type = "goto"
//! next = "menu"
//! ```

use crate::flow::model::{Edge, Target};
use crate::flow::parse::Reader;
use crate::flow::run::{Cx, Step};

#[derive(Clone, Debug)]
pub struct Goto {
    pub next: Target,
}

pub(crate) fn parse(r: &mut Reader<'_, '_>) -> Option<Goto> {
    let next = r.required_target("next", "add `next = \"NODE\"`: the node to jump to");
    Some(Goto { next: next? })
}

impl Goto {
    pub fn edges(&self) -> Vec<Edge<'_>> {
        vec![super::edge("next", &self.next)]
    }

    pub(crate) fn enter(&self, _cx: &mut Cx<'_>) -> Step {
        Step::Goto(self.next.name.clone())
    }
}
