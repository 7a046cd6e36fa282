//! Clients and the rate that applies to a call: which client a caller's number belongs to, and the
//! multiplier of the standard rate written into the call's CDR.
//!
//! Pure functions of the client list and the call's facts. The rule (docs/DESIGN.md, "Billing"):
//! in business hours 1x; after hours 2x, unless the caller's client has an After Hours Escalation
//! Agreement that names its own multiplier. An agreement without a multiplier keeps the standard
//! after-hours rate: the agreement's terms default to 2x unless specified.
//!
//! Clients come from config or from a CSV file (`name,numbers,agreement,rate_multiplier`, numbers
//! separated by `;`, e.g. `Acme,+15551230001;+1555999*,true,1.5`); [`validate`] checks either
//! source so that a bad entry stops the start with the client's name and the reason.

use std::collections::{HashMap, HashSet};
use std::path::Path;

use crate::repeat::CallerId;

/// The multiplier inside business hours.
pub const STANDARD_RATE: f64 = 1.0;
/// The multiplier after hours for callers without an agreement that says otherwise.
pub const AFTER_HOURS_RATE: f64 = 2.0;

/// A client of the support firm.
#[derive(Clone, Debug, PartialEq)]
pub struct Client {
    pub name: String,
    /// Exact E.164 numbers (`+15551230001`) or prefixes ending in `*` (`+1555123*`).
    pub numbers: Vec<String>,
    /// The client has an After Hours Escalation Agreement.
    pub agreement: bool,
    /// The agreed after-hours multiplier; only allowed with an agreement.
    pub rate_multiplier: Option<f64>,
}

/// A bad client entry or clients file.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum BillingError {
    #[error("client {client:?}: {reason}")]
    Client { client: String, reason: String },
    #[error("{file}:{line}: {reason}")]
    Csv {
        file: String,
        line: u64,
        reason: String,
    },
    #[error("cannot read clients file {file}: {reason}")]
    Read { file: String, reason: String },
}

/// The client whose number pattern matches `caller` best: an exact number beats any prefix, and
/// the longest prefix wins. Anonymous callers belong to no client.
pub fn client_for<'a>(clients: &'a [Client], caller: &CallerId) -> Option<&'a Client> {
    if caller.is_anonymous() {
        return None;
    }
    let number = caller.as_str();
    let mut best: Option<(usize, &Client)> = None;
    for client in clients {
        for pattern in &client.numbers {
            // Exact matches rank above every prefix: usize::MAX.
            let score = match pattern.strip_suffix('*') {
                Some(prefix) if number.starts_with(prefix) => prefix.len(),
                None if pattern == number => usize::MAX,
                _ => continue,
            };
            if best.is_none_or(|(s, _)| score > s) {
                best = Some((score, client));
            }
        }
    }
    best.map(|(_, client)| client)
}

/// The multiplier of the standard rate for a call: 1 in hours; after hours the client's agreed
/// rate, else `after_hours_default` (the configured `billing.after_hours_multiplier`, normally
/// [`AFTER_HOURS_RATE`]).
pub fn rate_multiplier(
    after_hours: bool,
    client: Option<&Client>,
    after_hours_default: f64,
) -> f64 {
    if !after_hours {
        return STANDARD_RATE;
    }
    match client {
        Some(Client {
            agreement: true,
            rate_multiplier: Some(m),
            ..
        }) => *m,
        _ => after_hours_default,
    }
}

/// Check a client list: names present and unique, patterns well formed (separators are removed
/// here, so `+1 555 123 0001` is fine), no number claimed by two clients, multipliers positive and
/// only under an agreement. Returns the list with patterns cleaned.
pub fn validate(clients: Vec<Client>) -> Result<Vec<Client>, BillingError> {
    let mut names: HashSet<String> = HashSet::new();
    let mut owners: HashMap<String, String> = HashMap::new();
    let mut out = Vec::with_capacity(clients.len());
    for mut client in clients {
        let fail = |reason: String| BillingError::Client {
            client: client.name.clone(),
            reason,
        };
        if client.name.trim().is_empty() {
            return Err(fail("the name is empty".into()));
        }
        if !names.insert(client.name.clone()) {
            return Err(fail("listed twice".into()));
        }
        if client.numbers.is_empty() {
            return Err(fail("no numbers".into()));
        }
        let mut cleaned = Vec::with_capacity(client.numbers.len());
        for raw in &client.numbers {
            let pattern = clean_pattern(raw).map_err(&fail)?;
            if let Some(other) = owners.insert(pattern.clone(), client.name.clone()) {
                return Err(fail(format!("number {pattern} also belongs to {other:?}")));
            }
            cleaned.push(pattern);
        }
        match client.rate_multiplier {
            Some(m) if !(m.is_finite() && m > 0.0) => {
                return Err(fail(format!(
                    "rate_multiplier {m} must be a positive number"
                )));
            }
            Some(m) if !client.agreement => {
                return Err(fail(format!(
                    "rate_multiplier {m} is set but agreement is false; the multiplier only \
                     applies under an agreement (set agreement = true or remove the multiplier)"
                )));
            }
            _ => {}
        }
        client.numbers = cleaned;
        out.push(client);
    }
    Ok(out)
}

/// A number pattern without visual separators; `+` and digits, or a prefix ending in `*`.
fn clean_pattern(raw: &str) -> Result<String, String> {
    let pattern: String = raw
        .chars()
        .filter(|c| !matches!(c, ' ' | '-' | '.' | '(' | ')' | '/'))
        .collect();
    let body = pattern.strip_suffix('*').unwrap_or(&pattern);
    let digits = body.strip_prefix('+').unwrap_or(body);
    if body.is_empty() && pattern == "*" {
        return Err("pattern \"*\" would match every caller; list numbers or prefixes".into());
    }
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err(format!(
            "number {raw:?} is not a number or prefix (expected +15551230001 or +1555123*)"
        ));
    }
    Ok(pattern)
}

/// Load clients from a CSV file (see the module docs); errors name `file:line`.
pub fn load_clients_csv(path: &Path) -> Result<Vec<Client>, BillingError> {
    let file = std::fs::File::open(path).map_err(|e| BillingError::Read {
        file: path.display().to_string(),
        reason: e.to_string(),
    })?;
    parse_clients_csv(file, &path.display().to_string())
}

/// Parse clients CSV from any reader; `origin` names it in errors.
pub fn parse_clients_csv(
    reader: impl std::io::Read,
    origin: &str,
) -> Result<Vec<Client>, BillingError> {
    let err = |line: u64, reason: String| BillingError::Csv {
        file: origin.to_string(),
        line,
        reason,
    };
    let mut csv = csv::ReaderBuilder::new()
        .has_headers(true)
        .trim(csv::Trim::All)
        .comment(Some(b'#'))
        .from_reader(reader);
    let expected = ["name", "numbers", "agreement", "rate_multiplier"];
    let headers = csv.headers().map_err(|e| err(1, e.to_string()))?.clone();
    if headers.iter().collect::<Vec<_>>() != expected {
        return Err(err(
            1,
            format!(
                "header is {:?}; expected {}",
                headers.iter().collect::<Vec<_>>().join(","),
                expected.join(",")
            ),
        ));
    }
    let mut clients = Vec::new();
    for record in csv.records() {
        let record = record.map_err(|e| {
            let line = e.position().map_or(0, |p| p.line());
            err(line, e.to_string())
        })?;
        let line = record.position().map_or(0, |p| p.line());
        let field = |i: usize| record.get(i).unwrap_or("");
        let agreement = match field(2).to_ascii_lowercase().as_str() {
            "true" | "yes" | "1" => true,
            "false" | "no" | "0" | "" => false,
            other => {
                return Err(err(line, format!("agreement {other:?} is not true/false")));
            }
        };
        let rate_multiplier = match field(3) {
            "" => None,
            m => Some(m.parse::<f64>().map_err(|_| {
                err(
                    line,
                    format!("rate_multiplier {m:?} is not a number (e.g. 1.5)"),
                )
            })?),
        };
        let client = Client {
            name: field(0).to_string(),
            numbers: field(1)
                .split(';')
                .map(str::trim)
                .filter(|n| !n.is_empty())
                .map(String::from)
                .collect(),
            agreement,
            rate_multiplier,
        };
        // Validate one at a time so the error carries this record's line.
        let mut checked = validate(clients.iter().cloned().chain([client]).collect())
            .map_err(|e| err(line, e.to_string()))?;
        clients.push(
            checked
                .pop()
                .ok_or_else(|| err(line, "lost record".into()))?,
        );
    }
    Ok(clients)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn client(name: &str, numbers: &[&str], agreement: bool, m: Option<f64>) -> Client {
        Client {
            name: name.into(),
            numbers: numbers.iter().map(|s| s.to_string()).collect(),
            agreement,
            rate_multiplier: m,
        }
    }

    fn num(s: &str) -> CallerId {
        CallerId::E164(s.into())
    }

    fn clients() -> Vec<Client> {
        validate(vec![
            client("Acme", &["+1555123*"], true, Some(1.5)),
            client("Acme Lab", &["+15551239*"], false, None),
            client("Boss", &["+15551230001"], true, None),
            client("Wide", &["+1555*"], false, None),
        ])
        .expect("valid clients")
    }

    #[test]
    fn longest_prefix_and_exact_numbers_win() {
        let list = clients();
        let name = |n: &str| client_for(&list, &num(n)).map(|c| c.name.as_str());
        assert_eq!(name("+15551230001"), Some("Boss"));
        assert_eq!(name("+15551230002"), Some("Acme"));
        assert_eq!(name("+15551239000"), Some("Acme Lab"));
        assert_eq!(name("+15557770000"), Some("Wide"));
        assert_eq!(name("+442079460000"), None);
        assert_eq!(client_for(&list, &CallerId::Anonymous), None);
    }

    #[test]
    fn multiplier_for_each_case() {
        let list = clients();
        let acme = list.iter().find(|c| c.name == "Acme");
        let boss = list.iter().find(|c| c.name == "Boss");
        let lab = list.iter().find(|c| c.name == "Acme Lab");
        // In hours: always the standard rate.
        assert_eq!(rate_multiplier(false, None, AFTER_HOURS_RATE), 1.0);
        assert_eq!(rate_multiplier(false, acme, AFTER_HOURS_RATE), 1.0);
        // After hours, unknown caller or no agreement: 2x.
        assert_eq!(rate_multiplier(true, None, AFTER_HOURS_RATE), 2.0);
        assert_eq!(rate_multiplier(true, lab, AFTER_HOURS_RATE), 2.0);
        // Agreement with its own multiplier.
        assert_eq!(rate_multiplier(true, acme, AFTER_HOURS_RATE), 1.5);
        // Agreement without a multiplier: the standard after-hours rate.
        assert_eq!(rate_multiplier(true, boss, AFTER_HOURS_RATE), 2.0);
    }

    #[test]
    fn validate_rejects_bad_entries() {
        let err = |c: Vec<Client>| validate(c).expect_err("invalid").to_string();
        assert!(err(vec![client("A", &["+1"], false, Some(1.5))]).contains("agreement is false"));
        assert!(err(vec![client("A", &["+1"], true, Some(0.0))]).contains("positive"));
        assert!(err(vec![client("A", &["abc"], true, None)]).contains("not a number or prefix"));
        assert!(err(vec![client("A", &["*"], true, None)]).contains("every caller"));
        assert!(err(vec![client("A", &[], true, None)]).contains("no numbers"));
        assert!(
            err(vec![
                client("A", &["+1555"], true, None),
                client("B", &["+1 555"], true, None)
            ])
            .contains("also belongs to \"A\"")
        );
        let ok = validate(vec![client("A", &["+1 (555) 123-0001"], true, None)]).expect("ok");
        assert_eq!(ok[0].numbers, ["+15551230001"]);
    }

    #[test]
    fn csv_loads_clients() {
        let text = "name,numbers,agreement,rate_multiplier\n\
                    # comment lines are skipped\n\
                    Acme,+1555123*; +15559990000,true,1.5\n\
                    Boss,+15551230001,yes,\n\
                    \"Smith, Jones & Co\",+44 20 7946 0000,false,\n";
        let list = parse_clients_csv(text.as_bytes(), "clients.csv").expect("parses");
        assert_eq!(
            list,
            vec![
                client("Acme", &["+1555123*", "+15559990000"], true, Some(1.5)),
                client("Boss", &["+15551230001"], true, None),
                client("Smith, Jones & Co", &["+442079460000"], false, None),
            ]
        );
    }

    #[test]
    fn csv_errors_name_file_and_line() {
        let bad_header = "name,number,agreement\nA,+1,true\n";
        assert_eq!(
            parse_clients_csv(bad_header.as_bytes(), "c.csv")
                .expect_err("bad header")
                .to_string(),
            "c.csv:1: header is \"name,number,agreement\"; expected \
             name,numbers,agreement,rate_multiplier"
        );
        let bad_agreement = "name,numbers,agreement,rate_multiplier\nA,+1,true,\nB,+2,maybe,\n";
        assert_eq!(
            parse_clients_csv(bad_agreement.as_bytes(), "c.csv")
                .expect_err("bad agreement")
                .to_string(),
            "c.csv:3: agreement \"maybe\" is not true/false"
        );
        let bad_rate = "name,numbers,agreement,rate_multiplier\nA,+1,true,double\n";
        assert!(
            parse_clients_csv(bad_rate.as_bytes(), "c.csv")
                .expect_err("bad rate")
                .to_string()
                .starts_with("c.csv:2: rate_multiplier \"double\"")
        );
        let dup = "name,numbers,agreement,rate_multiplier\nA,+1,true,\nB,+1,true,\n";
        assert_eq!(
            parse_clients_csv(dup.as_bytes(), "c.csv")
                .expect_err("duplicate")
                .to_string(),
            "c.csv:3: client \"B\": number +1 also belongs to \"A\""
        );
        let missing = Path::new("/nonexistent/clients.csv");
        assert!(
            load_clients_csv(missing)
                .expect_err("missing")
                .to_string()
                .starts_with("cannot read clients file /nonexistent/clients.csv:")
        );
    }
}
