//! Node A is killed (SIGKILL) under the proxy: new calls keep being answered by node B. Three
//! ways the proxy learns, each measured and printed (the numbers belong in the README; timing is
//! never asserted, only that every call is answered):
//! 1. calls right after the kill: the one sent to A gets no answer, the proxy gives up on A
//!    after FR_TIMER and tries B (and marks A inactive for the calls after it);
//! 2. A restarted on its port: the next probe it answers puts it back;
//! 3. A killed again with no calls coming: the OPTIONS probes alone take it out.

use std::time::{Duration, Instant};

use crate::cluster::{self, Kamailio, TEST_DEFINES};
use crate::common;

const ANSWER_WAIT: Duration = Duration::from_secs(15);

#[test]
fn calls_are_answered_by_the_other_node_after_one_is_killed() {
    let Some(bin) = cluster::tools() else {
        return;
    };
    let a = cluster::start_node(0);
    let b = cluster::start_node(0);
    let a_addr = a.sip_addr();
    let kam = Kamailio::start(&bin, &[a_addr, b.sip_addr()], TEST_DEFINES);
    // Both nodes answer through the proxy first.
    for _ in 0..2 {
        cluster::quick_call(kam.addr(), ANSWER_WAIT);
    }
    assert_eq!(
        (
            cluster::calls_on_after(&a, 1),
            cluster::calls_on_after(&b, 1)
        ),
        (1, 1)
    );

    // 1. Calls right after the kill.
    cluster::kill_hard(&a);
    let killed = Instant::now();
    let setups: Vec<Duration> = (0..4)
        .map(|_| cluster::quick_call(kam.addr(), ANSWER_WAIT))
        .collect();
    let slowest = setups.iter().max().expect("calls");
    println!(
        "failover on timeout: after SIGKILL of A, calls answered in {setups:?} \
         (slowest {slowest:?}: the call the proxy first sent to A); all {} answered {:?} after the kill",
        setups.len(),
        killed.elapsed()
    );
    let down = kam.wait_for_line(
        &format!("ivr node sip:{a_addr} down"),
        killed,
        Duration::from_secs(20),
    );
    println!(
        "A marked down {:?} after the kill",
        down.duration_since(killed)
    );

    // 2. A back on its port: a probe finds it.
    let restarted_at = Instant::now();
    let a2 = cluster::start_node(a_addr.port());
    let up = kam.wait_for_line(
        &format!("ivr node sip:{a_addr} up"),
        restarted_at,
        Duration::from_secs(20),
    );
    println!(
        "A restarted: back in rotation {:?} after its start",
        up.duration_since(restarted_at)
    );
    for _ in 0..2 {
        cluster::quick_call(kam.addr(), ANSWER_WAIT);
    }
    assert_eq!(
        cluster::calls_on_after(&a2, 1),
        1,
        "calls on the restarted A"
    );

    // 3. Killed with no calls coming: the probes alone notice.
    cluster::kill_hard(&a2);
    let killed = Instant::now();
    let down = kam.wait_for_line(
        &format!("ivr node sip:{a_addr} down"),
        killed,
        Duration::from_secs(20),
    );
    println!(
        "probing alone: A marked down {:?} after the kill (no calls in between)",
        down.duration_since(killed)
    );
    let setups: Vec<Duration> = (0..4)
        .map(|_| cluster::quick_call(kam.addr(), ANSWER_WAIT))
        .collect();
    println!("calls after that, straight to B: answered in {setups:?}");

    // And a sipp caller (its own ACK and BYE along the route set) gets through B as well.
    let dir = common::unique_temp_dir("ha-after-failover");
    let run = common::run_sipp_to(
        kam.addr(),
        &dir,
        "uac_caller_hangup.xml",
        &["-key", "caller", "+15551230088", "-d", "200"],
    );
    assert!(run.success(), "sipp call after failover:\n{}", run.errors);
    // B took every call from the first kill on: 1 + 4 + 1 (of the two after A's return) + 4 + 1.
    assert_eq!(cluster::calls_on_after(&b, 11), 11, "calls on B");
    drop(kam);
}
