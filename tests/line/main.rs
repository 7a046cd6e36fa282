//! The line end to end on short scenarios: sipp calls and prompts, caller text, reload and
//! shutdown, incidents, webhooks over HTTP and HTTPS, the data directory and paths, the CLI.
//! One binary: these tests wait on sipp, timers and real time far more than they compute, so
//! they overlap instead of running one binary after another (each binary also costs a link).

#[path = "../admin_support/mod.rs"]
mod admin_support;
#[path = "../common/mod.rs"]
mod common;

mod caller_text;
mod cli;
mod data_dir;
mod incidents;
mod paths;
mod reload;
mod rtp_prompt;
mod shutdown;
mod sipp_calls;
mod store_cli;
mod webhooks;
mod webhooks_https;
