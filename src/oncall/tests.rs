use jiff::civil::{date, time};
use jiff::tz::TimeZone;

use super::*;

fn ny() -> TimeZone {
    TimeZone::get("America/New_York").expect("bundled zone")
}

fn ts(s: &str) -> Timestamp {
    s.parse().expect("RFC 3339 time")
}

fn names(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| s.to_string()).collect()
}

fn who(rota: &Rota, at: &str) -> Option<(String, Why)> {
    rota.on_call(ts(at)).map(|o| (o.user, o.why))
}

fn on(user: &str, why: Why) -> Option<(String, Why)> {
    Some((user.to_string(), why))
}

fn local_override(user: &str, from: &str, to: &str) -> LocalOverride {
    LocalOverride {
        user: user.into(),
        from: from.parse().expect("local time"),
        to: to.parse().expect("local time"),
    }
}

/// alice, bob, carol by the week from Monday 2026-10-26 09:00 New York time.
fn weekly(overrides: Vec<LocalOverride>) -> Rota {
    Rota::new(
        ny(),
        date(2026, 10, 26),
        time(9, 0, 0, 0),
        7,
        names(&["alice", "bob", "carol"]),
        overrides,
    )
    .expect("rota")
}

#[test]
fn the_weekly_handover_stays_at_nine_local_across_the_end_of_daylight_saving() {
    // US daylight saving ends on Sunday 2026-11-01: Monday 11-02 09:00 is 14:00Z, not 13:00Z.
    let rota = weekly(Vec::new());
    assert_eq!(
        who(&rota, "2026-10-26T13:00:00Z"),
        on("alice", Why::Rotation)
    );
    assert_eq!(
        who(&rota, "2026-11-02T13:30:00Z"),
        on("alice", Why::Rotation)
    );
    assert_eq!(who(&rota, "2026-11-02T14:00:00Z"), on("bob", Why::Rotation));
    let s = rota.shift(ts("2026-11-05T03:00:00Z"));
    assert_eq!(s.since, Some(ts("2026-11-02T14:00:00Z")));
    assert_eq!(s.until, Some(ts("2026-11-09T14:00:00Z")));
    // Alice's week was an hour longer: 09:00 EDT to 09:00 EST.
    let alice = rota.shift(ts("2026-10-30T12:00:00Z"));
    assert_eq!(alice.since, Some(ts("2026-10-26T13:00:00Z")));
    assert_eq!(alice.until, Some(ts("2026-11-02T14:00:00Z")));
    // The rotation wraps round: week 3 is alice again.
    assert_eq!(
        who(&rota, "2026-11-16T14:00:00Z"),
        on("alice", Why::Rotation)
    );
}

#[test]
fn the_weekly_handover_stays_at_nine_local_across_the_start_of_daylight_saving() {
    // US daylight saving starts on Sunday 2026-03-08: Monday 03-02 09:00 is 14:00Z, 03-09 13:00Z.
    let rota = Rota::new(
        ny(),
        date(2026, 3, 2),
        time(9, 0, 0, 0),
        7,
        names(&["alice", "bob"]),
        Vec::new(),
    )
    .unwrap();
    let s = rota.shift(ts("2026-03-05T12:00:00Z"));
    assert_eq!(
        s.on_call.as_ref().map(|o| o.user.as_str()),
        Some("alice"),
        "{s:?}"
    );
    assert_eq!(s.since, Some(ts("2026-03-02T14:00:00Z")));
    assert_eq!(s.until, Some(ts("2026-03-09T13:00:00Z")));
    assert_eq!(
        who(&rota, "2026-03-09T12:59:59Z"),
        on("alice", Why::Rotation)
    );
    assert_eq!(who(&rota, "2026-03-09T13:00:00Z"), on("bob", Why::Rotation));
}

#[test]
fn handovers_at_times_the_clock_skips_or_repeats_are_resolved_compatibly() {
    // Sunday handovers on the DST nights themselves, daily periods to land on them.
    let spring = Rota::new(
        ny(),
        date(2026, 3, 7),
        time(2, 30, 0, 0),
        1,
        names(&["alice", "bob"]),
        Vec::new(),
    )
    .unwrap();
    // 2026-03-08 02:30 does not exist in New York: it moves forward to 03:30 EDT (07:30Z).
    assert_eq!(
        who(&spring, "2026-03-08T07:29:59Z"),
        on("alice", Why::Rotation)
    );
    assert_eq!(
        who(&spring, "2026-03-08T07:30:00Z"),
        on("bob", Why::Rotation)
    );
    let fall = Rota::new(
        ny(),
        date(2026, 10, 31),
        time(1, 30, 0, 0),
        1,
        names(&["alice", "bob"]),
        Vec::new(),
    )
    .unwrap();
    // 2026-11-01 01:30 happens twice: the first one (EDT, 05:30Z) is the handover.
    assert_eq!(
        who(&fall, "2026-11-01T05:29:59Z"),
        on("alice", Why::Rotation)
    );
    assert_eq!(who(&fall, "2026-11-01T05:30:00Z"), on("bob", Why::Rotation));
    assert_eq!(
        fall.shift(ts("2026-11-01T05:30:00Z")).until,
        Some(ts("2026-11-02T06:30:00Z"))
    );
}

#[test]
fn nobody_is_on_call_before_the_start_or_with_an_empty_rota() {
    let rota = weekly(Vec::new());
    assert_eq!(who(&rota, "2026-10-26T12:59:59Z"), None);
    let s = rota.shift(ts("2026-10-01T00:00:00Z"));
    assert_eq!(
        s,
        Shift {
            on_call: None,
            since: None,
            until: Some(ts("2026-10-26T13:00:00Z"))
        }
    );
    let empty = Rota::default();
    assert!(empty.is_empty());
    assert_eq!(
        empty.shift(ts("2026-12-01T00:00:00Z")),
        Shift {
            on_call: None,
            since: None,
            until: None
        }
    );
    assert!(empty.next_changes(ts("2026-12-01T00:00:00Z"), 5).is_empty());
}

#[test]
fn an_override_starting_and_ending_mid_week_replaces_the_rotation_for_its_dates() {
    // Dave covers Christmas Eve 17:00 to the 27th 09:00 in carol's week (from Mon 12-21).
    let rota = weekly(vec![local_override(
        "dave",
        "2026-12-24T17:00",
        "2026-12-27T09:00",
    )]);
    assert_eq!(
        who(&rota, "2026-12-24T21:59:59Z"),
        on("carol", Why::Rotation)
    );
    assert_eq!(
        who(&rota, "2026-12-24T22:00:00Z"),
        on("dave", Why::Override)
    );
    assert_eq!(
        who(&rota, "2026-12-27T13:59:59Z"),
        on("dave", Why::Override)
    );
    assert_eq!(
        who(&rota, "2026-12-27T14:00:00Z"),
        on("carol", Why::Rotation)
    );
    let s = rota.shift(ts("2026-12-25T12:00:00Z"));
    assert_eq!(s.since, Some(ts("2026-12-24T22:00:00Z")));
    assert_eq!(s.until, Some(ts("2026-12-27T14:00:00Z")));
    // From Monday 12-21 09:00 the changes come in order: dave, carol again, then alice's week.
    let next: Vec<(Option<String>, Option<Timestamp>)> = rota
        .next_changes(ts("2026-12-22T00:00:00Z"), 3)
        .into_iter()
        .map(|s| (s.on_call.map(|o| o.user), s.since))
        .collect();
    assert_eq!(
        next,
        [
            (Some("dave".into()), Some(ts("2026-12-24T22:00:00Z"))),
            (Some("carol".into()), Some(ts("2026-12-27T14:00:00Z"))),
            (Some("alice".into()), Some(ts("2026-12-28T14:00:00Z"))),
        ]
    );
}

#[test]
fn the_shortest_override_wins_whichever_is_listed_first() {
    // Erin covers a whole week; inside it, frank swaps in for one evening.
    let inner = local_override("frank", "2026-12-02T18:00", "2026-12-02T23:00");
    let outer = local_override("erin", "2026-11-30T09:00", "2026-12-07T09:00");
    for overrides in [
        vec![inner.clone(), outer.clone()],
        vec![outer.clone(), inner.clone()],
    ] {
        let rota = weekly(overrides);
        assert_eq!(
            who(&rota, "2026-12-02T22:59:59Z"),
            on("erin", Why::Override)
        );
        assert_eq!(
            who(&rota, "2026-12-02T23:00:00Z"),
            on("frank", Why::Override)
        );
        assert_eq!(
            who(&rota, "2026-12-03T04:00:00Z"),
            on("erin", Why::Override)
        );
        let s = rota.shift(ts("2026-12-02T23:30:00Z"));
        assert_eq!(
            (s.since, s.until),
            (
                Some(ts("2026-12-02T23:00:00Z")),
                Some(ts("2026-12-03T04:00:00Z"))
            )
        );
    }
    // Of two equally long ones, the one listed last wins.
    let a = local_override("erin", "2026-12-02T18:00", "2026-12-02T23:00");
    let b = local_override("frank", "2026-12-02T18:00", "2026-12-02T23:00");
    let rota = weekly(vec![a, b]);
    assert_eq!(
        who(&rota, "2026-12-02T23:30:00Z"),
        on("frank", Why::Override)
    );
}

#[test]
fn an_override_only_rota_has_nobody_outside_its_overrides() {
    let rota = Rota::new(
        ny(),
        date(2026, 11, 30),
        time(9, 0, 0, 0),
        7,
        Vec::new(),
        vec![local_override(
            "dave",
            "2026-12-24T17:00",
            "2026-12-27T09:00",
        )],
    )
    .unwrap();
    assert!(!rota.is_empty());
    assert_eq!(who(&rota, "2026-12-20T00:00:00Z"), None);
    let s = rota.shift(ts("2026-12-25T00:00:00Z"));
    assert_eq!(
        (s.since, s.until),
        (
            Some(ts("2026-12-24T22:00:00Z")),
            Some(ts("2026-12-27T14:00:00Z"))
        )
    );
    assert_eq!(
        rota.shift(ts("2026-12-28T00:00:00Z")),
        Shift {
            on_call: None,
            since: Some(ts("2026-12-27T14:00:00Z")),
            until: None
        }
    );
}

#[test]
fn a_one_person_rotation_is_one_shift_and_bad_overrides_are_refused() {
    let rota = Rota::new(
        ny(),
        date(2026, 11, 30),
        time(9, 0, 0, 0),
        7,
        names(&["alice"]),
        Vec::new(),
    )
    .unwrap();
    let s = rota.shift(ts("2027-03-01T00:00:00Z"));
    assert_eq!(s.since, Some(ts("2026-11-30T14:00:00Z")));
    assert_eq!(s.until, None);
    // With an override years ago: since its end, still no change ahead.
    let covered = Rota::new(
        ny(),
        date(2026, 11, 30),
        time(9, 0, 0, 0),
        7,
        names(&["alice"]),
        vec![local_override(
            "bob",
            "2026-12-24T17:00",
            "2026-12-27T09:00",
        )],
    )
    .unwrap();
    let s = covered.shift(ts("2040-06-01T12:00:00Z"));
    assert_eq!((s.since, s.until), (Some(ts("2026-12-27T14:00:00Z")), None));
    let err = Rota::new(
        ny(),
        date(2026, 11, 30),
        time(9, 0, 0, 0),
        7,
        Vec::new(),
        vec![local_override(
            "dave",
            "2026-12-27T09:00",
            "2026-12-24T17:00",
        )],
    )
    .unwrap_err();
    assert!(matches!(err, RotaError::EmptyOverride { .. }), "{err}");
    assert_eq!(
        Rota::new(
            ny(),
            date(2026, 11, 30),
            time(9, 0, 0, 0),
            0,
            Vec::new(),
            Vec::new()
        )
        .unwrap_err(),
        RotaError::Period
    );
}

#[test]
fn the_report_names_who_is_on_call_and_the_next_changes_in_local_time() {
    let rota = weekly(Vec::new());
    let text = report(&rota, ts("2026-11-05T03:00:00Z"), 2, &|u| {
        if u == "bob" {
            " <+15550002>".into()
        } else {
            String::new()
        }
    });
    assert_eq!(
        text,
        "time: 2026-11-05T03:00:00Z (Wed 2026-11-04 22:00 EST America/New_York)\n\
         on call: bob <+15550002> (rotation) since Mon 2026-11-02 09:00 EST until Mon 2026-11-09 09:00 EST\n\
         next changes:\n  \
           Mon 2026-11-09 09:00 EST  carol (rotation)\n  \
           Mon 2026-11-16 09:00 EST  alice (rotation)\n"
    );
}
