//! Carrier SIP trunks (issue 15 item 1, `[[trunks]]` in `config/trunks.rs`): outbound
//! registration (`register.rs`, sans-IO; `shell.rs` runs it in the signalling loop), which trunk
//! an inbound call came from and for which DID (`inbound.rs`), and where a registrar's
//! REGISTERs go, by IP or by RFC 3263 with failover (`targets.rs`).

pub mod inbound;
pub mod register;
pub mod shell;
pub mod targets;
pub mod wire;

pub use inbound::{InboundRules, Verdict};
pub use shell::{TrunkShell, TrunkStatus, TrunkStatuses};
