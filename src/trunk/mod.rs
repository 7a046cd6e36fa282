//! Carrier SIP trunks (issue 15 item 1, `[[trunks]]` in `config/trunks.rs`): outbound
//! registration (`register.rs`, sans-IO; `shell.rs` runs it in the signalling loop), which trunk
//! an inbound call came from and for which DID (`inbound.rs`), and the one place host names will
//! be resolved (`resolve.rs`).

pub mod inbound;
pub mod register;
pub mod resolve;
pub mod shell;

pub use inbound::{InboundRules, Verdict};
pub use shell::{TrunkShell, TrunkStatus, TrunkStatuses};
