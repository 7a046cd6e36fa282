//! Telling the helpdesk (issue 14): voicemail by email through a real SMTP server, and offline
//! transcription with a real engine. One binary: the tests wait on calls, SMTP and engines far
//! more than they compute, so they overlap instead of running binary after binary.

#[path = "../admin_support/mod.rs"]
mod admin_support;
#[path = "../common/mod.rs"]
mod common;

mod email;
mod transcription;
