//! What the flow knows about a call before it starts: business hours, the numbers, and (as later
//! issues add them) the caller's history and their client's agreement.
//!
//! Conditions name facts by string (`open`, `caller.repeat`); [`FACTS`] is the one registry that
//! maps those names to fields, so `ivr check` can list them and reject typos. Adding a fact is a
//! field here plus one line in [`FACTS`]; nothing else in the flow engine changes.

/// The facts of one call, filled in by the call shell (or by `ivr simulate` from flags).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Facts {
    /// Inside business hours (see `hours`).
    pub open: bool,
    /// Today is a listed holiday.
    pub holiday: bool,
    /// The caller's number (From / P-Asserted-Identity user part).
    pub caller: String,
    /// The dialled number (Request-URI user part).
    pub called: String,
    /// The same number called the line just before, within the repeat window.
    pub caller_repeat: bool,
    /// The number agreed to the after-hours terms (CDR `agreed_terms`) on a call that started
    /// within the repeat window: the agreement may carry over to this call.
    pub caller_agreed_recently: bool,
    /// The number belongs to a known client.
    pub caller_known: bool,
    /// The caller's client has an After Hours Escalation Agreement.
    pub client_agreement: bool,
    /// An incident (outage announcement, `ivr incident` or Alertmanager) is active.
    pub incident_active: bool,
    /// The prompt configured for the first active incident with one (`[[incidents.prompts]]`),
    /// empty when none matches; the flow reads it as the variable `incident_prompt`.
    pub incident_prompt: String,
}

/// One yes/no fact a condition can name.
#[derive(Debug)]
pub struct FactDef {
    pub name: &'static str,
    pub doc: &'static str,
    pub get: fn(&Facts) -> bool,
}

/// Every fact conditions may use, in the order `ivr check` lists them.
pub const FACTS: &[FactDef] = &[
    FactDef {
        name: "open",
        doc: "inside business hours",
        get: |f| f.open,
    },
    FactDef {
        name: "holiday",
        doc: "today is a holiday",
        get: |f| f.holiday,
    },
    FactDef {
        name: "caller.repeat",
        doc: "same number called just before",
        get: |f| f.caller_repeat,
    },
    FactDef {
        name: "caller.known",
        doc: "the number belongs to a known client",
        get: |f| f.caller_known,
    },
    FactDef {
        name: "client.agreement",
        doc: "the client has an escalation agreement",
        get: |f| f.client_agreement,
    },
    FactDef {
        name: "caller.agreed_recently",
        doc: "same number agreed to the terms within the repeat window",
        get: |f| f.caller_agreed_recently,
    },
    FactDef {
        name: "incident.active",
        doc: "an incident (outage) is active: `ivr incident set` or Alertmanager",
        get: |f| f.incident_active,
    },
];

/// The registered fact called `name`.
pub fn lookup(name: &str) -> Option<&'static FactDef> {
    FACTS.iter().find(|f| f.name == name)
}

/// `open, holiday, ...` for messages.
pub fn known_list() -> String {
    FACTS.iter().map(|f| f.name).collect::<Vec<_>>().join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn registry_reads_fields() {
        let facts = Facts {
            open: true,
            client_agreement: true,
            ..Facts::default()
        };
        let on: Vec<&str> = FACTS
            .iter()
            .filter(|f| (f.get)(&facts))
            .map(|f| f.name)
            .collect();
        assert_eq!(on, ["open", "client.agreement"]);
        assert!(lookup("caller.repeat").is_some());
        assert!(lookup("caller.repeats").is_none());
    }
}
