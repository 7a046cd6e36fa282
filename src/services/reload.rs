//! What a hot reload did, as `ivr reload` prints it (read from `DATA/reload.json`), `POST
//! /api/reload` returns it and the admin page shows it: one type for the three.

use serde::{Deserialize, Serialize};

/// What a reload did, as `ivr reload` prints it and `POST /api/reload` returns it (JSON).
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
pub struct ReloadOutcome {
    /// The serving process; with `generation`, tells one outcome from an older one.
    pub pid: u32,
    /// 0 for the set loaded at start, then one more per reload attempt (failed ones included).
    pub generation: u64,
    pub ok: bool,
    /// Why the old set was kept (file:line for flow errors).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// When (RFC 3339, the wall clock).
    pub at: String,
    /// Flows by dialled number (`default` for flows.default), compared with the set replaced.
    #[serde(default)]
    pub flows_added: Vec<String>,
    #[serde(default)]
    pub flows_removed: Vec<String>,
    #[serde(default)]
    pub flows_changed: Vec<String>,
    /// Prompts in the set now serving.
    pub prompts: usize,
    /// Keys whose new value only takes effect after a restart; the running process keeps the old.
    #[serde(default)]
    pub restart_needed: Vec<String>,
}
