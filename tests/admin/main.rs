//! The admin server and what watches the line: API and pages, live calls, staff and flows, metrics
//! under a real sipp call, and a real browser.
//! One binary: these tests wait on sipp, timers and real time far more than they compute, so
//! they overlap instead of running one binary after another (each binary also costs a link).

#[path = "../admin_support/mod.rs"]
mod admin_support;
#[path = "../common/mod.rs"]
mod common;

mod browser;
mod http_admin;
mod http_admin_pages;
mod http_live;
mod http_staff_flows;
mod metrics_sipp;
