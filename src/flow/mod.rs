//! Call flows: the TOML language admins write (`callflows/*.toml`), its checker and its
//! interpreter.
//!
//! - [`check`] reads a flow file into a validated [`Flow`] or a list of [`Diagnostics`]
//!   (`file:line:col: error: ...` with hints), the engine of `ivr check`.
//! - [`Run`] is the pure interpreter: `(state, event, now) -> actions`, one per call.
//! - [`simulate`] drives a `Run` from a terminal on a virtual clock (`ivr simulate`).
//! - [`to_dot`] draws a flow for Graphviz (`ivr graph`); [`layout`] lays it out in Rust for the
//!   admin page's SVG.
//!
//! Node types live one per file in [`nodes`]; conditions in [`cond`]; the facts conditions can
//! test in [`facts`].

pub mod check;
pub mod cond;
pub mod diag;
pub mod duration;
pub mod facts;
pub mod graph;
pub mod layout;
pub mod model;
pub mod nodes;
pub(crate) mod parse;
pub mod run;
pub mod simulate;

pub use check::{check, check_source};
pub use diag::{Diagnostic, Diagnostics, Severity};
pub use facts::Facts;
pub use graph::to_dot;
pub use model::{Flow, Node, NodeDef};
pub use nodes::{DialOutcome, Strategy};
pub use run::{Action, Event, Run};
pub use simulate::{simulate, simulate_recording, simulate_with_desk};

#[cfg(test)]
mod repeat_path_tests;
