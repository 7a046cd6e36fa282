//! Call detail records, filtered for the admin page and exported as CSV.

use jiff::Timestamp;

use crate::store::{CallStore, Cdr, Outcome, StoreError};

/// Which CDRs: started in `[from, to)`, of `client`, ending with `outcome` (each optional).
#[derive(Clone, Debug, Default)]
pub struct CdrFilter {
    pub from: Option<Timestamp>,
    pub to: Option<Timestamp>,
    pub client: Option<String>,
    pub outcome: Option<Outcome>,
}

/// The CDRs `filter` selects, in start order.
pub fn find(store: &dyn CallStore, filter: &CdrFilter) -> Result<Vec<Cdr>, StoreError> {
    let mut cdrs = store.cdrs_between(filter.from, filter.to)?;
    cdrs.retain(|c| {
        filter
            .client
            .as_deref()
            .is_none_or(|want| c.client.as_deref() == Some(want))
            && filter.outcome.is_none_or(|want| c.outcome == Some(want))
    });
    Ok(cdrs)
}

/// `cdrs` as the CSV of `ivr cdr export`.
pub fn write_csv(out: impl std::io::Write, cdrs: &[Cdr]) -> std::io::Result<()> {
    crate::store::write_cdrs_csv(out, cdrs)
}
