//! Hostile and broken input against a real `ivr serve` (issue 11 and before): digest attacks, RTP
//! floods and strangers, malformed and flooding SIP over UDP and TCP, the parser fuzz corpus, and
//! bad configuration, flows and prompts.
//! One binary: these tests wait on sipp, timers and real time far more than they compute, so
//! they overlap instead of running one binary after another (each binary also costs a link).

#[path = "../common/mod.rs"]
mod common;

mod attack_digest;
mod attack_rtp;
mod attack_sip;
mod attack_tcp;
mod bad_input;
mod fuzz;
