//! Reaching the outside world (issue 15): carrier trunk registration and calls, call-backs
//! through a trunk, mobiles on the desk through the trunk, SIP host names by DNS, and the
//! on-call rota. One binary: the tests wait on sipp and timers far more than they compute, so
//! they overlap instead of running one binary after another (each binary also costs a link).

#[path = "../admin_support/mod.rs"]
mod admin_support;
#[path = "../common/mod.rs"]
mod common;

mod desk_mobile;
mod dns;
mod oncall;
mod trunk;
mod trunk_callback;
mod trunk_dns;
