//! A node asked to stop (SIGTERM) drains: its live calls go on, new calls get 503. It answers the
//! proxy's OPTIONS with 503 too (RFC 3261 §11.2: what an INVITE would get), so the probes take it
//! out of rotation before any caller is refused by it and sent on.

use std::time::{Duration, Instant};

use crate::cluster::{self, Kamailio, TEST_DEFINES};
use crate::common;

#[test]
fn a_draining_node_is_taken_out_by_the_probes_while_its_call_goes_on() {
    let Some(bin) = cluster::tools() else {
        return;
    };
    // A keeps its call up after the greeting (until the caller hangs up), so it stays draining.
    let a = cluster::start_node_with(0, &["--hold-after-prompt"]);
    let b = cluster::start_node(0);
    let a_addr = a.sip_addr();
    let kam = Kamailio::start(&bin, &[a_addr, b.sip_addr()], TEST_DEFINES);

    // A live call on A (placed on A directly), hung up by its caller after 12 s.
    let live = std::thread::spawn(move || {
        let dir = common::unique_temp_dir("ha-live-call");
        common::run_sipp_to(
            a_addr,
            &dir,
            "uac_caller_hangup.xml",
            &["-key", "caller", "+15551230099", "-d", "12000"],
        )
    });
    a.wait_for_log(&["event=\"answering\""], Duration::from_secs(10));

    unsafe { libc::kill(a.pid() as libc::pid_t, libc::SIGTERM) };
    let asked = Instant::now();
    let down = kam.wait_for_line(
        &format!("ivr node sip:{a_addr} down"),
        asked,
        Duration::from_secs(20),
    );
    println!(
        "draining A taken out by the probes {:?} after SIGTERM",
        down.duration_since(asked)
    );
    // Taken out for its answers, not for having exited: its call is still going on.
    assert!(
        !live.is_finished(),
        "A was taken out only once its call had ended (it answered the probes 200 while draining)"
    );
    for _ in 0..3 {
        cluster::quick_call(kam.addr(), Duration::from_secs(10));
    }
    assert_eq!(cluster::calls_on_after(&b, 3), 3, "calls on B");

    let run = live.join().expect("live call thread");
    assert!(
        run.success(),
        "the call on the draining node:\n{}",
        run.errors
    );
    assert!(
        !kam.log()
            .contains(&format!("ivr node sip:{a_addr} failed INVITE")),
        "a call was sent to the draining node; log:\n{}",
        kam.log()
    );
}
