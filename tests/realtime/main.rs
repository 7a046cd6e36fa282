//! The long real-time scenarios, each a call or several played in real time against a real
//! `ivr serve` (prompts at 20 ms a packet, SIP timers, sipp): the whole after-hours procedure,
//! the line's memory end to end, repeat callers, nothing lost across kill -9 and a full disk.
//! They wait far more than they compute, so they share one test binary: cargo runs test
//! binaries one after another, and four binaries of one or two long tests each kept the CPU idle
//! for minutes; together their tests overlap.

#[path = "../common/mod.rs"]
mod common;

mod after_hours_flow;
mod line;
mod memory_e2e;
mod nothing_lost;
mod repeat_caller;
