//! [`StoreMetrics`] on SQLite: the backlog gauges and the write timings.

use jiff::Timestamp;

use super::SqliteStore;
use crate::store::{Backlog, StoreError, StoreMetrics};

impl StoreMetrics for SqliteStore {
    fn location(&self) -> String {
        self.path().display().to_string()
    }

    fn time_writes(&self, histogram: prometheus::Histogram) {
        self.writer.time_writes(histogram);
    }

    fn backlog(&self, now: Timestamp) -> Result<Backlog, StoreError> {
        self.read("reading the backlog", |c| {
            Ok(crate::store::backlog::query(c, now)?)
        })
    }
}
