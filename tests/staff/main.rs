//! Ringing the after-hours desk: sipp and baresip staff phones registering, being rung, whispered
//! to, pressing 1 and being bridged with the caller, their media both ways.
//! One binary: these tests wait on sipp, timers and real time far more than they compute, so
//! they overlap instead of running one binary after another (each binary also costs a link).

#[path = "../common/mod.rs"]
mod common;

mod baresip_harness;
mod desk;
mod desk_baresip;
mod desk_media;
mod register;
