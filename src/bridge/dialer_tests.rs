//! Ring schedules on a virtual clock.

use super::*;

fn s(n: u64) -> Duration {
    Duration::from_secs(n)
}

fn plan(strategy: Strategy, contacts: Vec<usize>) -> DialPlan {
    DialPlan {
        strategy,
        timeout: s(30),
        ring_each: s(10),
        accept_timeout: s(8),
        contacts,
    }
}

fn starts(actions: &[DialAction]) -> Vec<(LegId, usize, usize)> {
    actions
        .iter()
        .filter_map(|a| match a {
            DialAction::Start {
                leg,
                member,
                contact,
            } => Some((*leg, *member, *contact)),
            _ => None,
        })
        .collect()
}

#[test]
fn simultaneous_rings_every_contact_and_first_to_press_1_wins() {
    let t0 = Instant::now();
    let (mut d, out) = Dialer::start(plan(Strategy::Simultaneous, vec![2, 1, 1]), t0);
    assert_eq!(
        starts(&out),
        vec![(0, 0, 0), (1, 0, 1), (2, 1, 0), (3, 2, 0)]
    );
    for leg in 0..4 {
        assert!(d.on_leg(t0, leg, LegEvent::Ringing).is_empty());
    }
    // Leg 2 answers and hears the whisper; leg 3 answers too.
    assert_eq!(
        d.on_leg(t0 + s(2), 2, LegEvent::Answered),
        vec![DialAction::Whisper(2)]
    );
    assert_eq!(
        d.on_leg(t0 + s(3), 3, LegEvent::Answered),
        vec![DialAction::Whisper(3)]
    );
    // A key other than 1 does nothing; leg 3 presses 1 first.
    assert!(d.on_leg(t0 + s(4), 2, LegEvent::Digit('2')).is_empty());
    let out = d.on_leg(t0 + s(5), 3, LegEvent::Digit('1'));
    assert_eq!(
        out,
        vec![
            DialAction::Drop(0),
            DialAction::Drop(1),
            DialAction::Drop(2),
            DialAction::Bridge(3)
        ]
    );
    assert!(d.is_done());
    // Late events change nothing.
    assert!(d.on_leg(t0 + s(6), 2, LegEvent::Digit('1')).is_empty());
    assert!(
        d.on_leg(t0 + s(6), 0, LegEvent::Ended(EndReason::Declined(487)))
            .is_empty()
    );
}

#[test]
fn whisper_not_accepted_drops_that_phone_and_the_dial_goes_on() {
    let t0 = Instant::now();
    let (mut d, _) = Dialer::start(plan(Strategy::Simultaneous, vec![1, 1]), t0);
    d.on_leg(t0, 1, LegEvent::Ringing);
    d.on_leg(t0 + s(1), 0, LegEvent::Answered);
    d.on_leg(t0 + s(5), 0, LegEvent::WhisperDone);
    // 8 s to press 1 after the whisper ends.
    assert_eq!(d.poll_timeout(), Some(t0 + s(13)));
    assert!(d.handle_timeout(t0 + s(12)).is_empty());
    assert_eq!(d.handle_timeout(t0 + s(13)), vec![DialAction::Drop(0)]);
    assert!(!d.is_done(), "leg 1 still rings");
    // Then leg 1 answers and accepts during its whisper.
    d.on_leg(t0 + s(14), 1, LegEvent::Answered);
    assert_eq!(
        d.on_leg(t0 + s(15), 1, LegEvent::Digit('1')),
        vec![DialAction::Bridge(1)]
    );
}

#[test]
fn overall_timeout_cancels_everything_as_no_answer() {
    let t0 = Instant::now();
    let (mut d, _) = Dialer::start(plan(Strategy::Simultaneous, vec![1, 1]), t0);
    d.on_leg(t0, 0, LegEvent::Ringing);
    d.on_leg(t0, 1, LegEvent::Ringing);
    assert_eq!(d.poll_timeout(), Some(t0 + s(30)));
    assert_eq!(
        d.handle_timeout(t0 + s(30)),
        vec![
            DialAction::Drop(0),
            DialAction::Drop(1),
            DialAction::Finish(DialOutcome::NoAnswer)
        ]
    );
    assert_eq!(d.poll_timeout(), None);
}

#[test]
fn all_busy_is_busy_and_nobody_reachable_is_failed() {
    let t0 = Instant::now();
    let (mut d, _) = Dialer::start(plan(Strategy::Simultaneous, vec![1, 1]), t0);
    assert!(
        d.on_leg(t0, 0, LegEvent::Ended(EndReason::Declined(486)))
            .is_empty()
    );
    assert_eq!(
        d.on_leg(t0, 1, LegEvent::Ended(EndReason::Declined(486))),
        vec![DialAction::Finish(DialOutcome::Busy)]
    );

    let (mut d, _) = Dialer::start(plan(Strategy::Simultaneous, vec![1]), t0);
    assert_eq!(
        d.on_leg(t0 + s(32), 0, LegEvent::Ended(EndReason::NoResponse)),
        vec![DialAction::Finish(DialOutcome::Failed)]
    );

    // Nobody registered at all: over before it starts.
    let (d, out) = Dialer::start(plan(Strategy::Simultaneous, vec![0, 0]), t0);
    assert_eq!(out, vec![DialAction::Finish(DialOutcome::Failed)]);
    assert!(d.is_done());

    // One busy, one that rang until it was declined otherwise: not "busy".
    let (mut d, _) = Dialer::start(plan(Strategy::Simultaneous, vec![1, 1]), t0);
    d.on_leg(t0, 0, LegEvent::Ended(EndReason::Declined(486)));
    d.on_leg(t0, 1, LegEvent::Ringing);
    assert_eq!(
        d.on_leg(t0 + s(3), 1, LegEvent::Ended(EndReason::Declined(603))),
        vec![DialAction::Finish(DialOutcome::NoAnswer)]
    );
}

#[test]
fn sequential_rings_members_in_turn_skipping_the_unregistered() {
    let t0 = Instant::now();
    let (mut d, out) = Dialer::start(plan(Strategy::Sequential, vec![1, 0, 2]), t0);
    assert_eq!(starts(&out), vec![(0, 0, 0)]);
    d.on_leg(t0, 0, LegEvent::Ringing);
    assert_eq!(d.poll_timeout(), Some(t0 + s(10)));
    // After 10 s member 0 is cancelled and member 2 (both phones) rings; member 1 has none.
    let out = d.handle_timeout(t0 + s(10));
    assert_eq!(out[0], DialAction::Drop(0));
    assert_eq!(starts(&out), vec![(1, 2, 0), (2, 2, 1)]);
    // Both of member 2's phones are busy: nobody is left, the dial ends before its timeout.
    d.on_leg(t0 + s(11), 1, LegEvent::Ended(EndReason::Declined(486)));
    let out = d.on_leg(t0 + s(11), 2, LegEvent::Ended(EndReason::Declined(486)));
    assert_eq!(out, vec![DialAction::Finish(DialOutcome::NoAnswer)]);
}

#[test]
fn sequential_busy_member_makes_way_at_once_and_whisper_survives_the_slot() {
    let t0 = Instant::now();
    let (mut d, _) = Dialer::start(plan(Strategy::Sequential, vec![1, 1, 1]), t0);
    let out = d.on_leg(t0 + s(1), 0, LegEvent::Ended(EndReason::Declined(486)));
    assert_eq!(starts(&out), vec![(1, 1, 0)]);
    // Member 1 answers just before its slot ends and is still listening when it does.
    d.on_leg(t0 + s(10), 1, LegEvent::Answered);
    let out = d.handle_timeout(t0 + s(11));
    assert_eq!(
        starts(&out),
        vec![(2, 2, 0)],
        "the next member rings meanwhile"
    );
    assert!(!out.contains(&DialAction::Drop(1)));
    let out = d.on_leg(t0 + s(12), 1, LegEvent::Digit('1'));
    assert_eq!(out, vec![DialAction::Drop(2), DialAction::Bridge(1)]);
}

#[test]
fn caller_hanging_up_drops_every_live_leg() {
    let t0 = Instant::now();
    let (mut d, _) = Dialer::start(plan(Strategy::Simultaneous, vec![1, 1, 1]), t0);
    d.on_leg(t0, 1, LegEvent::Ended(EndReason::Declined(486)));
    d.on_leg(t0, 2, LegEvent::Answered);
    assert_eq!(d.abort(), vec![DialAction::Drop(0), DialAction::Drop(2)]);
    assert!(d.is_done());
    assert_eq!(d.poll_timeout(), None);
}
