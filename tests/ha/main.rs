//! Two `ivr` nodes behind Kamailio (issue 16): the shipped `config/kamailio/` started on
//! loopback in front of two `ivr serve` nodes. Calls spread over both nodes, the in-dialog
//! requests of either side go through the proxy, and when a node is killed new calls are
//! answered by the other (the failover times are measured and printed, never asserted).
//! `store_pg` runs two nodes on one shared PostgreSQL store; `combined` puts both together:
//! Kamailio, two nodes, one PostgreSQL, and a node killed holding a voicemail's webhooks.
//! One binary, like tests/outside: the tests wait on calls and timers far more than they compute.

#[path = "../common/mod.rs"]
mod common;
use common::pg;

mod cluster;
mod combined;
mod drain;
mod failover;
mod proxy;
mod registrations;
mod store_pg;
mod voicemail_audio;
