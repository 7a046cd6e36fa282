//! CDR export as CSV (`ivr cdr export`), one row per call, for billing; and the same record as
//! JSON with the same names ([`cdr_json`]: the `call_ended` webhook and the admin API).
//!
//! Columns, in order ([`CDR_COLUMNS`]):
//!
//! | column | meaning |
//! | --- | --- |
//! | `call_id` | SIP Call-ID |
//! | `started_at` | call arrived, RFC 3339 UTC (`2026-11-28T03:30:00Z`) |
//! | `answered_at` | the line answered; empty if never |
//! | `ended_at` | call ended; empty while live |
//! | `talk_seconds` | billable seconds connected to staff; 0 if never bridged |
//! | `caller` | normalised number (E.164 where possible), `anonymous` when withheld |
//! | `client` | client name, empty for unknown callers |
//! | `after_hours` | `true` / `false` |
//! | `agreement` | the client has an After Hours Escalation Agreement: `true` / `false` |
//! | `rate_multiplier` | multiplier of the standard rate that applied (`1`, `2`, `1.5`) |
//! | `agreed_terms` | the caller pressed 1 to accept the after-hours terms: `true` / `false` |
//! | `digits` | every DTMF digit pressed, in order |
//! | `ticket` | the ticket number entered, empty if none |
//! | `outcome` | `bridged`, `voicemail`, `no_message`, `voicemail_failed`, `abandoned`, `closed_hours`, `rejected`; empty while live |
//! | `end_reason` | SIP end reason |
//! | `repeat` | repeat caller: `true` / `false` |
//! | `answered_by` | the desk member who accepted a bridged call; empty otherwise |
//! | `incident` | the incident whose announcement the caller heard (Alertmanager fingerprint or `ivr incident` name); empty otherwise |
//!
//! A cell that a spreadsheet would run as a formula (`=...`, `@...`) gets a leading `'`
//! ([`crate::text::csv_cell`]); E.164 numbers like `+15551230001` are kept as they are.

use super::Cdr;

/// The CDR as JSON, with the `ivr cdr export` column names (the `call_ended` webhook's `cdr`
/// and the admin API's `/api/cdrs`).
pub fn cdr_json(c: &Cdr) -> serde_json::Value {
    serde_json::json!({
        "call_id": c.call_id,
        "started_at": c.started_at.to_string(),
        "answered_at": c.answered_at.map(|t| t.to_string()),
        "ended_at": c.ended_at.map(|t| t.to_string()),
        "talk_seconds": c.talk_seconds,
        "caller": c.caller,
        "called": c.called,
        "client": c.client,
        "after_hours": c.after_hours,
        "agreement": c.agreement,
        "rate_multiplier": c.rate_multiplier,
        "agreed_terms": c.agreed_terms,
        "digits": c.digits,
        "ticket": c.ticket,
        "outcome": c.outcome.map(|o| o.as_str()),
        "end_reason": c.end_reason,
        "repeat": c.repeat,
        "answered_by": c.answered_by,
        "incident": c.incident,
    })
}

/// The header row of the export.
pub const CDR_COLUMNS: [&str; 18] = [
    "call_id",
    "started_at",
    "answered_at",
    "ended_at",
    "talk_seconds",
    "caller",
    "client",
    "after_hours",
    "agreement",
    "rate_multiplier",
    "agreed_terms",
    "digits",
    "ticket",
    "outcome",
    "end_reason",
    "repeat",
    "answered_by",
    "incident",
];

/// Write `cdrs` as CSV with a header row to `out`.
pub fn write_cdrs_csv<W: std::io::Write>(out: W, cdrs: &[Cdr]) -> std::io::Result<()> {
    let mut w = csv::Writer::from_writer(out);
    w.write_record(CDR_COLUMNS).map_err(std::io::Error::other)?;
    let time = |t: Option<jiff::Timestamp>| t.map(|t| t.to_string()).unwrap_or_default();
    for c in cdrs {
        let record: [String; 18] = [
            c.call_id.clone(),
            c.started_at.to_string(),
            time(c.answered_at),
            time(c.ended_at),
            c.talk_seconds.to_string(),
            c.caller.clone(),
            c.client.clone().unwrap_or_default(),
            c.after_hours.to_string(),
            c.agreement.to_string(),
            c.rate_multiplier.to_string(),
            c.agreed_terms.to_string(),
            c.digits.clone(),
            c.ticket.clone().unwrap_or_default(),
            c.outcome
                .map(|o| o.as_str().to_string())
                .unwrap_or_default(),
            c.end_reason.clone(),
            c.repeat.to_string(),
            c.answered_by.clone().unwrap_or_default(),
            c.incident.clone().unwrap_or_default(),
        ];
        // Caller, client, digits and end reason come from callers or their SIP packets.
        let record = record
            .iter()
            .map(|cell| crate::text::csv_cell(cell).into_owned());
        w.write_record(record).map_err(std::io::Error::other)?;
    }
    w.flush()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::Outcome;

    #[test]
    fn writes_header_and_quoted_rows() {
        let cdr = Cdr {
            call_id: "a@b".into(),
            caller: "+15551230001".into(),
            caller_raw: "5551230001".into(),
            called: "100".into(),
            client: Some("Smith, Jones & Co".into()),
            started_at: "2026-11-28T03:30:00Z".parse().expect("time"),
            answered_at: Some("2026-11-28T03:30:01Z".parse().expect("time")),
            ended_at: None,
            talk_seconds: 0,
            after_hours: true,
            agreement: true,
            rate_multiplier: 1.5,
            agreed_terms: true,
            digits: "51".into(),
            ticket: None,
            outcome: Some(Outcome::ClosedHours),
            end_reason: "BYE from caller".into(),
            repeat: false,
            answered_by: None,
            incident: Some("mail".into()),
        };
        let mut out = Vec::new();
        write_cdrs_csv(&mut out, &[cdr]).expect("write");
        let text = String::from_utf8(out).expect("utf8");
        let mut lines = text.lines();
        assert_eq!(lines.next(), Some(CDR_COLUMNS.join(",").as_str()));
        assert_eq!(
            lines.next(),
            Some(
                "a@b,2026-11-28T03:30:00Z,2026-11-28T03:30:01Z,,0,+15551230001,\
                 \"Smith, Jones & Co\",true,true,1.5,true,51,,closed_hours,BYE from caller,false,,mail"
            )
        );
        assert_eq!(lines.next(), None);
    }

    #[test]
    fn formula_cells_are_neutralised_but_numbers_kept() {
        let cdr = |caller: &str| Cdr {
            call_id: "x".into(),
            caller: caller.into(),
            caller_raw: caller.into(),
            called: "100".into(),
            client: Some("@SUM(A1)".into()),
            started_at: "2026-11-28T03:30:00Z".parse().expect("time"),
            answered_at: None,
            ended_at: None,
            talk_seconds: 0,
            after_hours: true,
            agreement: false,
            rate_multiplier: 2.0,
            agreed_terms: false,
            digits: String::new(),
            ticket: Some("=cmd|' /C calc'!A0".into()),
            outcome: None,
            end_reason: "-1)*cmd".into(),
            repeat: false,
            answered_by: None,
            incident: None,
        };
        let mut out = Vec::new();
        write_cdrs_csv(&mut out, &[cdr("=HYPERLINK(\"x\")"), cdr("+15551230001")]).expect("write");
        let mut rows = csv::Reader::from_reader(out.as_slice());
        let rows: Vec<csv::StringRecord> = rows.records().map(|r| r.expect("row")).collect();
        let col = |name: &str| CDR_COLUMNS.iter().position(|c| *c == name).expect("column");
        assert_eq!(&rows[0][col("caller")], "'=HYPERLINK(\"x\")");
        assert_eq!(&rows[0][col("client")], "'@SUM(A1)");
        assert_eq!(&rows[0][col("ticket")], "'=cmd|' /C calc'!A0");
        assert_eq!(&rows[0][col("end_reason")], "'-1)*cmd");
        assert_eq!(&rows[1][col("caller")], "+15551230001");
    }
}
