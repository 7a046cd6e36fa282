//! One file per node type, each holding the node's definition, how it reads its TOML keys
//! (`parse`), where it can go (`edges`) and how it runs (`enter`, `on_event`).

pub mod branch;
pub mod dial;
pub mod gather;
pub mod goto;
pub mod hangup;
pub mod play;
pub mod record;
pub mod set;
pub mod webhook;

pub use branch::{Branch, Case};
pub use dial::{Dial, DialOutcome, Strategy};
pub use gather::Gather;
pub use goto::Goto;
pub use hangup::Hangup;
pub use play::Play;
pub use record::Record;
pub use set::SetVars;
pub use webhook::Webhook;

use super::model::{Edge, Target};

/// `[("next", target)]` style edge lists.
pub(crate) fn edge<'a>(label: impl Into<String>, target: &'a Target) -> Edge<'a> {
    Edge {
        label: label.into(),
        target,
    }
}

/// Variable names: letters, digits and `_`, not starting with a digit.
pub(crate) fn is_var_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}
