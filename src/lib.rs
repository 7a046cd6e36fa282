//! `ivr`: a telephony IVR call-flow engine for an IT support firm's after-hours line.
//!
//! Layers (see `docs/DESIGN.md`): `sip` (parse, transactions, dialogs, transport), `media`
//! (RTP, G.711, paced prompt player, receive statistics), `call` (one task per call that glues a
//! dialog to a media session), `config` (the `config/ivr.toml` settings), `fuzz` (fuzz targets for
//! everything read from the network, and the fuzzer that runs them).
//! `transcribe` turns kept voicemails into text offline, in a worker off the call path.

pub mod billing;
pub mod bridge;
pub mod call;
pub mod clock;
pub mod config;
pub mod dns;
pub mod drain;
pub mod flow;
pub mod fuzz;
pub mod health;
pub mod hours;
pub mod http;
pub mod live;
pub mod log_throttle;
pub mod media;
pub mod metrics;
pub mod notify;
pub mod oncall;
pub mod repeat;
pub mod server;
pub mod services;
pub mod sip;
pub mod sla;
pub mod store;
pub mod text;
pub mod transcribe;
pub mod trunk;
