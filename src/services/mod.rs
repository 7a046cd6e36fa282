//! What an operator does with the line's memory, shared by the CLI (`ivr voicemail`, `ivr cdr`)
//! and the admin web page and API (`src/http`): one implementation, so both say and do the same.
//! Blocking (they call the store); async callers run them on `spawn_blocking`.

pub mod cdrs;
pub mod incidents;
pub mod outbox;
pub mod reload;
pub mod voicemails;
