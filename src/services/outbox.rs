//! The webhook outbox as the admin sees it: what is still owed, why it failed, retry now.

use jiff::Timestamp;

use crate::notify::Notifier;
use crate::store::{OutboxRow, OutboxStore, StoreError};

/// How many undelivered events a listing shows at most.
pub const LIST_LIMIT: u32 = 500;

/// Undelivered events, oldest first (pending ones and ones that failed, with the last error).
pub fn undelivered(store: &dyn OutboxStore) -> Result<Vec<OutboxRow>, StoreError> {
    store.undelivered_outbox(LIST_LIMIT)
}

/// Makes event `id` due at `now` and wakes the delivery worker; `false` when there is no such
/// undelivered event.
pub fn retry_now(
    store: &dyn OutboxStore,
    notifier: Option<&Notifier>,
    id: i64,
    now: Timestamp,
) -> Result<bool, StoreError> {
    let found = store.retry_outbox_now(id, now)?;
    if found && let Some(n) = notifier {
        n.wake();
    }
    Ok(found)
}
