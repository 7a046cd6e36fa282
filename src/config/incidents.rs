//! `[incidents]`: outage announcements (issue 14). Incidents come from Alertmanager
//! (`POST /hooks/alertmanager` on the admin server) or `ivr incident set`; a flow announces the
//! prompt configured for the first active incident whose labels match.

use std::collections::BTreeMap;

use serde::Deserialize;

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IncidentsConfig {
    /// The bearer token Alertmanager sends (`Authorization: Bearer SECRET`); empty: the
    /// endpoint refuses every request with 503.
    #[serde(default)]
    pub alertmanager_secret: String,
    /// How long a firing alert without an `endsAt` stays active unless re-sent or resolved.
    #[serde(default = "default_ttl_minutes")]
    pub default_ttl_minutes: u32,
    /// Which prompt announces an incident with a given label, first match wins.
    #[serde(default)]
    pub prompts: Vec<IncidentPrompt>,
}

fn default_ttl_minutes() -> u32 {
    60
}

/// `[[incidents.prompts]]`: an incident whose label `label` equals `value` is announced with
/// prompt `prompt` (prompts/PROMPT.wav).
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct IncidentPrompt {
    pub label: String,
    pub value: String,
    pub prompt: String,
}

impl IncidentsConfig {
    /// The TTL as a span for a firing alert without `endsAt`.
    pub fn default_ttl(&self) -> std::time::Duration {
        std::time::Duration::from_secs(u64::from(self.default_ttl_minutes.max(1)) * 60)
    }

    /// One line per `[[incidents.prompts]]` whose prompt `has` lacks (`ivr check` and `serve`
    /// refuse them: an outage is the worst moment to find the announcement missing).
    pub fn missing_prompts(
        &self,
        has: impl Fn(&str) -> bool,
        dir: &std::path::Path,
    ) -> Vec<String> {
        self.prompts
            .iter()
            .filter(|p| !has(&p.prompt))
            .map(|p| {
                format!(
                    "[[incidents.prompts]] {} = {:?}: prompt `{}` has no file {} (add a line \
                     `{}|TEXT` to prompts.txt and run prompts/gen.sh, or record it)",
                    p.label,
                    p.value,
                    p.prompt,
                    dir.join(format!("{}.wav", p.prompt)).display(),
                    p.prompt
                )
            })
            .collect()
    }

    /// The first configured prompt whose label matches `labels` (an incident's).
    pub fn prompt_for(&self, labels: &BTreeMap<String, String>) -> Option<&str> {
        self.prompts
            .iter()
            .find(|p| labels.get(&p.label) == Some(&p.value))
            .map(|p| p.prompt.as_str())
    }
}
