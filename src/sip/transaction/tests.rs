//! The transaction state machines on a virtual clock: schedules of timers A–L, retransmissions
//! answered, ACK and final-response handling.

use super::*;

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

/// Drive a transaction on a virtual clock: jump from deadline to deadline until it has none
/// or `until` is passed, recording (offset, actions) for every firing.
fn run<T>(
    tx: &mut T,
    base: Instant,
    until: Duration,
    deadline: impl Fn(&T) -> Option<Instant>,
    mut fire: impl FnMut(&mut T, Instant) -> Vec<TxAction>,
) -> Vec<(Duration, Vec<TxAction>)> {
    let mut log = Vec::new();
    while let Some(at) = deadline(tx) {
        if at - base > until {
            break;
        }
        let actions = fire(tx, at);
        log.push((at - base, actions));
    }
    log
}

fn transmit_offsets(log: &[(Duration, Vec<TxAction>)]) -> Vec<Duration> {
    log.iter()
        .filter(|(_, a)| a.iter().any(|a| matches!(a, TxAction::Transmit(_))))
        .map(|(t, _)| *t)
        .collect()
}

const OK: Bytes = Bytes::from_static(b"SIP/2.0 200 OK\r\n\r\n");
const RINGING: Bytes = Bytes::from_static(b"SIP/2.0 180 Ringing\r\n\r\n");
const BUSY: Bytes = Bytes::from_static(b"SIP/2.0 486 Busy Here\r\n\r\n");
const BYE: Bytes = Bytes::from_static(b"BYE sip:a@b SIP/2.0\r\n\r\n");
const INVITE: Bytes = Bytes::from_static(b"INVITE sip:a@b SIP/2.0\r\n\r\n");
const ACK: Bytes = Bytes::from_static(b"ACK sip:a@b SIP/2.0\r\n\r\n");

fn ist_run(
    tx: &mut InviteServerTx,
    base: Instant,
    until: Duration,
) -> Vec<(Duration, Vec<TxAction>)> {
    run(
        tx,
        base,
        until,
        |t| t.next_deadline(),
        |t, now| t.on_timeout(now),
    )
}

/// The 2xx schedule both reliable and unreliable transports use.
fn ok_schedule() -> Vec<Duration> {
    [
        500, 1500, 3500, 7500, 11500, 15500, 19500, 23500, 27500, 31500,
    ]
    .into_iter()
    .map(ms)
    .collect()
}

#[test]
fn ok_retransmitted_until_timeout_without_ack() {
    for reliable in [false, true] {
        let base = Instant::now();
        let mut tx = InviteServerTx::new(reliable, Timers::default());
        assert_eq!(tx.respond(base, 200, OK), vec![TxAction::Transmit(OK)]);
        assert_eq!(tx.state(), InviteServerState::Accepted);
        let log = ist_run(&mut tx, base, Duration::from_secs(60));
        assert_eq!(transmit_offsets(&log), ok_schedule(), "reliable={reliable}");
        let (at, last) = log.last().expect("timer L fired");
        assert_eq!(*at, Duration::from_secs(32));
        assert_eq!(last, &vec![TxAction::Timeout, TxAction::Terminated]);
        assert_eq!(tx.state(), InviteServerState::Terminated);
        assert_eq!(tx.next_deadline(), None);
    }
}

#[test]
fn ack_stops_ok_retransmission_then_timer_l_terminates_quietly() {
    let base = Instant::now();
    let mut tx = InviteServerTx::new(false, Timers::default());
    tx.respond(base, 200, OK);
    let log = ist_run(&mut tx, base, ms(1700));
    assert_eq!(transmit_offsets(&log), vec![ms(500), ms(1500)]);
    assert!(!tx.is_acked());
    assert_eq!(tx.on_ack(base + ms(1700)), vec![]);
    assert!(tx.is_acked());
    // A retransmitted ACK or INVITE is absorbed.
    assert_eq!(tx.on_ack(base + ms(1800)), vec![]);
    assert_eq!(tx.on_request_retransmission(base + ms(1900)), vec![]);
    assert_eq!(tx.state(), InviteServerState::Accepted);
    let log = ist_run(&mut tx, base, Duration::from_secs(60));
    assert_eq!(
        log,
        vec![(Duration::from_secs(32), vec![TxAction::Terminated])]
    );
    assert_eq!(tx.state(), InviteServerState::Terminated);
}

#[test]
fn late_wakeup_sends_one_retransmission_and_keeps_schedule() {
    let base = Instant::now();
    let mut tx = InviteServerTx::new(false, Timers::default());
    tx.respond(base, 200, OK);
    // Woke up at 4 s: the 0.5, 1.5 and 3.5 s firings collapse into one.
    assert_eq!(tx.on_timeout(base + ms(4000)), vec![TxAction::Transmit(OK)]);
    assert_eq!(tx.next_deadline(), Some(base + ms(7500)));
}

#[test]
fn invite_retransmission_resends_last_response() {
    let base = Instant::now();
    let mut tx = InviteServerTx::new(false, Timers::default());
    assert_eq!(tx.on_request_retransmission(base), vec![]);
    tx.respond(base, 180, RINGING);
    assert_eq!(tx.state(), InviteServerState::Proceeding);
    assert_eq!(
        tx.next_deadline(),
        None,
        "provisionals are not retransmitted by timer"
    );
    assert_eq!(
        tx.on_request_retransmission(base + ms(500)),
        vec![TxAction::Transmit(RINGING)]
    );
    tx.respond(base + ms(1000), 200, OK);
    assert_eq!(
        tx.on_request_retransmission(base + ms(1100)),
        vec![TxAction::Transmit(OK)]
    );
    // Same for a non-2xx final.
    let mut tx = InviteServerTx::new(false, Timers::default());
    tx.respond(base, 180, RINGING);
    tx.respond(base, 486, BUSY);
    assert_eq!(
        tx.on_request_retransmission(base + ms(100)),
        vec![TxAction::Transmit(BUSY)]
    );
}

#[test]
fn busy_over_udp_timer_g_then_ack_then_timer_i() {
    let base = Instant::now();
    let mut tx = InviteServerTx::new(false, Timers::default());
    assert_eq!(tx.respond(base, 486, BUSY), vec![TxAction::Transmit(BUSY)]);
    assert_eq!(tx.state(), InviteServerState::Completed);
    let log = ist_run(&mut tx, base, ms(12000));
    assert_eq!(
        transmit_offsets(&log),
        vec![ms(500), ms(1500), ms(3500), ms(7500), ms(11500)]
    );
    let ack_at = base + ms(12000);
    assert_eq!(tx.on_ack(ack_at), vec![]);
    assert_eq!(tx.state(), InviteServerState::Confirmed);
    assert_eq!(tx.next_deadline(), Some(ack_at + Duration::from_secs(5)));
    assert_eq!(
        tx.on_ack(ack_at + ms(100)),
        vec![],
        "ACK retransmission absorbed"
    );
    assert_eq!(tx.on_timeout(ack_at + ms(4999)), vec![]);
    assert_eq!(tx.on_timeout(ack_at + ms(5000)), vec![TxAction::Terminated]);
    assert_eq!(tx.state(), InviteServerState::Terminated);
}

#[test]
fn busy_over_udp_without_ack_times_out_at_timer_h() {
    let base = Instant::now();
    let mut tx = InviteServerTx::new(false, Timers::default());
    tx.respond(base, 486, BUSY);
    let log = ist_run(&mut tx, base, Duration::from_secs(60));
    assert_eq!(transmit_offsets(&log), ok_schedule());
    assert_eq!(
        log.last(),
        Some(&(
            Duration::from_secs(32),
            vec![TxAction::Timeout, TxAction::Terminated]
        ))
    );
}

#[test]
fn busy_over_tcp_no_retransmission_terminated_on_ack() {
    let base = Instant::now();
    let mut tx = InviteServerTx::new(true, Timers::default());
    tx.respond(base, 486, BUSY);
    assert_eq!(
        tx.next_deadline(),
        Some(base + Duration::from_secs(32)),
        "only timer H"
    );
    assert_eq!(tx.on_timeout(base + ms(10000)), vec![]);
    assert_eq!(tx.on_ack(base + ms(10000)), vec![TxAction::Terminated]);
    assert_eq!(tx.state(), InviteServerState::Terminated);
    assert_eq!(tx.next_deadline(), None);
}

#[test]
fn invite_server_drops_responses_the_state_forbids() {
    let base = Instant::now();
    let mut tx = InviteServerTx::new(false, Timers::default());
    tx.respond(base, 486, BUSY);
    assert_eq!(tx.respond(base, 200, OK), vec![]);
    assert_eq!(tx.respond(base, 180, RINGING), vec![]);
    let mut tx = InviteServerTx::new(false, Timers::default());
    assert_eq!(tx.respond(base, 42, OK), vec![]);
    assert_eq!(tx.state(), InviteServerState::Proceeding);
}

#[test]
fn non_invite_server_resends_final_and_ends_at_timer_j() {
    let base = Instant::now();
    let mut tx = NonInviteServerTx::new(false, Timers::default());
    assert_eq!(tx.state(), NonInviteServerState::Trying);
    assert_eq!(tx.on_request_retransmission(base), vec![]);
    tx.respond(base, 100, RINGING);
    assert_eq!(tx.state(), NonInviteServerState::Proceeding);
    assert_eq!(
        tx.on_request_retransmission(base),
        vec![TxAction::Transmit(RINGING)]
    );
    assert_eq!(tx.respond(base, 200, OK), vec![TxAction::Transmit(OK)]);
    assert_eq!(tx.state(), NonInviteServerState::Completed);
    assert_eq!(
        tx.on_request_retransmission(base + ms(500)),
        vec![TxAction::Transmit(OK)]
    );
    assert_eq!(tx.respond(base, 500, BUSY), vec![], "second final dropped");
    assert_eq!(tx.next_deadline(), Some(base + Duration::from_secs(32)));
    assert_eq!(tx.on_timeout(base + ms(31999)), vec![]);
    assert_eq!(tx.on_timeout(base + ms(32000)), vec![TxAction::Terminated]);
    assert_eq!(tx.state(), NonInviteServerState::Terminated);

    let mut tx = NonInviteServerTx::new(true, Timers::default());
    assert_eq!(
        tx.respond(base, 200, OK),
        vec![TxAction::Transmit(OK), TxAction::Terminated],
        "timer J is zero over TCP"
    );
}

fn nict_run(
    tx: &mut NonInviteClientTx,
    base: Instant,
    until: Duration,
) -> Vec<(Duration, Vec<TxAction>)> {
    run(
        tx,
        base,
        until,
        |t| t.next_deadline(),
        |t, now| t.on_timeout(now),
    )
}

#[test]
fn non_invite_client_retransmits_then_times_out() {
    let base = Instant::now();
    let (mut tx, first) = NonInviteClientTx::new(base, false, Timers::default(), BYE);
    assert_eq!(first, vec![TxAction::Transmit(BYE)]);
    let log = nict_run(&mut tx, base, Duration::from_secs(60));
    assert_eq!(transmit_offsets(&log), ok_schedule());
    assert_eq!(
        log.last(),
        Some(&(
            Duration::from_secs(32),
            vec![TxAction::Timeout, TxAction::Terminated]
        ))
    );
    assert_eq!(tx.state(), NonInviteClientState::Terminated);
}

#[test]
fn non_invite_client_final_stops_retransmission() {
    let base = Instant::now();
    let (mut tx, _) = NonInviteClientTx::new(base, false, Timers::default(), BYE);
    let log = nict_run(&mut tx, base, ms(2000));
    assert_eq!(transmit_offsets(&log), vec![ms(500), ms(1500)]);
    assert_eq!(
        tx.on_response(base + ms(2000), 200),
        vec![TxAction::Response(200)]
    );
    assert_eq!(tx.state(), NonInviteClientState::Completed);
    assert_eq!(
        tx.on_response(base + ms(2100), 200),
        vec![],
        "retransmitted final absorbed"
    );
    // Only timer K is left: T4 after the final.
    let log = nict_run(&mut tx, base, Duration::from_secs(60));
    assert_eq!(log, vec![(ms(7000), vec![TxAction::Terminated])]);

    let (mut tx, _) = NonInviteClientTx::new(base, true, Timers::default(), BYE);
    assert_eq!(
        tx.next_deadline(),
        Some(base + Duration::from_secs(32)),
        "no timer E on TCP"
    );
    assert_eq!(
        tx.on_response(base, 200),
        vec![TxAction::Response(200), TxAction::Terminated]
    );
}

#[test]
fn non_invite_client_in_proceeding_retransmits_every_t2() {
    let base = Instant::now();
    let (mut tx, _) = NonInviteClientTx::new(base, false, Timers::default(), BYE);
    assert_eq!(
        tx.on_response(base + ms(100), 100),
        vec![TxAction::Response(100)]
    );
    assert_eq!(tx.state(), NonInviteClientState::Proceeding);
    let log = nict_run(&mut tx, base, ms(13000));
    // The pending E at 0.5 s fires, then every T2.
    assert_eq!(
        transmit_offsets(&log),
        vec![ms(500), ms(4500), ms(8500), ms(12500)]
    );
}

#[test]
fn invite_client_schedule_and_timer_b() {
    let base = Instant::now();
    let (mut tx, first) = InviteClientTx::new(base, false, Timers::default(), INVITE);
    assert_eq!(first, vec![TxAction::Transmit(INVITE)]);
    let log = run(
        &mut tx,
        base,
        Duration::from_secs(60),
        |t| t.next_deadline(),
        |t, now| t.on_timeout(now),
    );
    // Timer A doubles with no cap: 0.5, 1, 2, 4, 8, 16 s intervals.
    assert_eq!(
        transmit_offsets(&log),
        vec![ms(500), ms(1500), ms(3500), ms(7500), ms(15500), ms(31500)]
    );
    assert_eq!(
        log.last(),
        Some(&(
            Duration::from_secs(32),
            vec![TxAction::Timeout, TxAction::Terminated]
        ))
    );
    assert_eq!(tx.state(), InviteClientState::Terminated);
}

#[test]
fn invite_client_provisional_then_success() {
    let base = Instant::now();
    let (mut tx, _) = InviteClientTx::new(base, false, Timers::default(), INVITE);
    let no_ack = || -> Bytes { panic!("no ACK for 1xx/2xx") };
    assert_eq!(
        tx.on_response(base + ms(200), 180, no_ack),
        vec![TxAction::Response(180)]
    );
    assert_eq!(tx.state(), InviteClientState::Proceeding);
    assert_eq!(tx.next_deadline(), None, "no timer A or B in Proceeding");
    assert_eq!(
        tx.on_response(base + ms(5000), 200, no_ack),
        vec![TxAction::Response(200), TxAction::Terminated]
    );
    assert_eq!(tx.state(), InviteClientState::Terminated);
}

#[test]
fn invite_client_failure_acks_and_timer_d() {
    let base = Instant::now();
    let (mut tx, _) = InviteClientTx::new(base, false, Timers::default(), INVITE);
    assert_eq!(
        tx.on_response(base + ms(700), 486, || ACK),
        vec![TxAction::Response(486), TxAction::Transmit(ACK)]
    );
    assert_eq!(tx.state(), InviteClientState::Completed);
    // A retransmitted 486 gets the same ACK again and is not passed up.
    let unused = || -> Bytes { panic!("ACK is built once") };
    assert_eq!(
        tx.on_response(base + ms(1000), 486, unused),
        vec![TxAction::Transmit(ACK)]
    );
    assert_eq!(
        tx.next_deadline(),
        Some(base + ms(700) + Duration::from_secs(32))
    );
    assert_eq!(
        tx.on_timeout(base + ms(32700)),
        vec![TxAction::Terminated],
        "timer D ends quietly"
    );

    let (mut tx, _) = InviteClientTx::new(base, true, Timers::default(), INVITE);
    assert_eq!(
        tx.on_response(base, 486, || ACK),
        vec![
            TxAction::Response(486),
            TxAction::Transmit(ACK),
            TxAction::Terminated
        ]
    );
}
