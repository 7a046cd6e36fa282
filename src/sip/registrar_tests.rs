use std::net::SocketAddr;
use std::time::{Duration, Instant};

use super::*;

fn src() -> SocketAddr {
    "192.0.2.10:5060".parse().unwrap()
}

fn c(uri: &str, expires: Option<u32>, q: Option<f32>) -> ContactSpec {
    ContactSpec {
        uri: uri.to_string(),
        expires,
        q,
    }
}

fn req(
    contacts: Vec<ContactSpec>,
    expires: Option<u32>,
    call_id: &str,
    cseq: u32,
) -> RegisterInput {
    RegisterInput {
        contacts,
        expires_header: expires,
        call_id: call_id.to_string(),
        cseq,
        star: false,
        source: src(),
        transport: Transport::Udp,
        path: Vec::new(),
    }
}

fn star(call_id: &str, cseq: u32, expires: Option<u32>) -> RegisterInput {
    RegisterInput {
        star: true,
        ..req(vec![], expires, call_id, cseq)
    }
}

const LAPTOP: &str = "sip:alice@192.0.2.10:5060";
const DESK: &str = "sip:alice@192.0.2.20:5060;transport=tcp";

fn secs(n: u64) -> Duration {
    Duration::from_secs(n)
}

#[test]
fn register_query_and_expiry() {
    let t0 = Instant::now();
    let mut r = Registrar::default();
    let b = r
        .register(
            t0,
            "alice",
            req(vec![c(LAPTOP, None, None)], Some(600), "a", 1),
        )
        .unwrap();
    assert_eq!(b.len(), 1);
    assert_eq!(b[0].contact, LAPTOP);
    assert_eq!(b[0].expires_at, t0 + secs(600));
    assert_eq!(b[0].source, src());
    assert_eq!(r.next_expiry(), Some(t0 + secs(600)));

    // Query (no Contact) returns the bindings unchanged.
    let q = r
        .register(t0 + secs(100), "alice", req(vec![], None, "z", 1))
        .unwrap();
    assert_eq!(q, b);
    assert_eq!(
        contact_header_values(&q, t0 + secs(100)),
        vec![format!("<{LAPTOP}>;expires=500")]
    );

    assert_eq!(r.contacts(t0 + secs(599), "alice").len(), 1);
    assert!(r.contacts(t0 + secs(600), "alice").is_empty());
    r.expire(t0 + secs(600));
    assert_eq!(r.next_expiry(), None);
    assert_eq!(r.users().count(), 0);
}

#[test]
fn default_expires_when_none_given() {
    let t0 = Instant::now();
    let mut r = Registrar::new(60, 7200, 3600);
    let b = r
        .register(t0, "alice", req(vec![c(LAPTOP, None, None)], None, "a", 1))
        .unwrap();
    assert_eq!(b[0].expires_at, t0 + secs(3600));
}

#[test]
fn contact_param_overrides_header() {
    let t0 = Instant::now();
    let mut r = Registrar::default();
    let b = r
        .register(
            t0,
            "alice",
            req(
                vec![c(LAPTOP, Some(120), None), c(DESK, None, None)],
                Some(900),
                "a",
                1,
            ),
        )
        .unwrap();
    assert_eq!(b[0].expires_at, t0 + secs(120));
    assert_eq!(b[1].expires_at, t0 + secs(900));
    assert_eq!(r.next_expiry(), Some(t0 + secs(120)));
}

#[test]
fn too_brief_rejected_atomically_and_zero_is_not_brief() {
    let t0 = Instant::now();
    let mut r = Registrar::default();
    r.register(
        t0,
        "alice",
        req(vec![c(LAPTOP, None, None)], Some(600), "a", 1),
    )
    .unwrap();
    // One good contact, one too brief: nothing changes.
    let e = r.register(
        t0,
        "alice",
        req(
            vec![c(DESK, None, None), c(LAPTOP, Some(30), None)],
            Some(600),
            "a",
            2,
        ),
    );
    assert_eq!(e, Err(RegisterError::IntervalTooBrief { min: 60 }));
    assert_eq!(r.contacts(t0, "alice").len(), 1);
    // Expires 0 is a removal, not too brief.
    let b = r
        .register(
            t0,
            "alice",
            req(vec![c(LAPTOP, None, None)], Some(0), "a", 3),
        )
        .unwrap();
    assert!(b.is_empty());
    assert_eq!(r.users().count(), 0);
}

#[test]
fn clamped_to_max() {
    let t0 = Instant::now();
    let mut r = Registrar::new(60, 7200, 3600);
    let b = r
        .register(
            t0,
            "alice",
            req(vec![c(LAPTOP, Some(u32::MAX), None)], None, "a", 1),
        )
        .unwrap();
    assert_eq!(b[0].expires_at, t0 + secs(7200));
    assert_eq!(
        contact_header_values(&b, t0),
        vec![format!("<{LAPTOP}>;expires=7200")]
    );
}

#[test]
fn refresh_updates_and_zero_removes_one() {
    let t0 = Instant::now();
    let mut r = Registrar::default();
    r.register(
        t0,
        "alice",
        req(
            vec![c(LAPTOP, None, None), c(DESK, None, None)],
            Some(600),
            "a",
            1,
        ),
    )
    .unwrap();
    // Refresh the laptop later, from another Call-ID (a rebooted phone).
    let b = r
        .register(
            t0 + secs(300),
            "alice",
            req(vec![c(LAPTOP, None, Some(0.5))], Some(600), "b", 1),
        )
        .unwrap();
    assert_eq!(b.len(), 2);
    let laptop = b.iter().find(|x| x.contact == LAPTOP).unwrap();
    assert_eq!(laptop.expires_at, t0 + secs(900));
    assert_eq!(laptop.call_id, "b");
    assert_eq!(laptop.q, Some(0.5));
    // Remove the desk phone only; URI compared case-insensitively.
    let b = r
        .register(
            t0 + secs(301),
            "alice",
            req(
                vec![c(&DESK.to_uppercase(), Some(0), None)],
                Some(600),
                "a",
                2,
            ),
        )
        .unwrap();
    assert_eq!(b.len(), 1);
    assert_eq!(b[0].contact, LAPTOP);
}

#[test]
fn removing_unknown_contact_is_fine() {
    let t0 = Instant::now();
    let mut r = Registrar::default();
    let b = r
        .register(
            t0,
            "alice",
            req(vec![c(LAPTOP, Some(0), None)], None, "a", 1),
        )
        .unwrap();
    assert!(b.is_empty());
}

#[test]
fn out_of_order_same_call_id() {
    let t0 = Instant::now();
    let mut r = Registrar::default();
    r.register(
        t0,
        "alice",
        req(vec![c(LAPTOP, None, None)], Some(600), "a", 5),
    )
    .unwrap();
    for cseq in [5, 4] {
        assert_eq!(
            r.register(
                t0 + secs(10),
                "alice",
                req(vec![c(LAPTOP, None, None)], Some(600), "a", cseq)
            ),
            Err(RegisterError::OutOfOrder { cseq, existing: 5 })
        );
    }
    // Unchanged.
    assert_eq!(r.contacts(t0, "alice")[0].expires_at, t0 + secs(600));
    // A replayed removal is refused too.
    assert!(
        r.register(
            t0,
            "alice",
            req(vec![c(LAPTOP, None, None)], Some(0), "a", 5)
        )
        .is_err()
    );
    // A higher CSeq is accepted.
    let b = r
        .register(
            t0 + secs(10),
            "alice",
            req(vec![c(LAPTOP, None, None)], Some(600), "a", 6),
        )
        .unwrap();
    assert_eq!(b[0].cseq, 6);
    assert_eq!(b[0].expires_at, t0 + secs(610));
}

#[test]
fn out_of_order_aborts_whole_request() {
    let t0 = Instant::now();
    let mut r = Registrar::default();
    r.register(
        t0,
        "alice",
        req(vec![c(LAPTOP, None, None)], Some(600), "a", 5),
    )
    .unwrap();
    // New contact first, stale one second: the new one must not be added.
    assert!(
        r.register(
            t0,
            "alice",
            req(
                vec![c(DESK, None, None), c(LAPTOP, None, None)],
                Some(600),
                "a",
                3
            )
        )
        .is_err()
    );
    assert_eq!(r.contacts(t0, "alice").len(), 1);
}

#[test]
fn star_removes_all() {
    let t0 = Instant::now();
    let mut r = Registrar::default();
    r.register(
        t0,
        "alice",
        req(vec![c(LAPTOP, None, None)], Some(600), "a", 1),
    )
    .unwrap();
    r.register(
        t0,
        "alice",
        req(vec![c(DESK, None, None)], Some(600), "b", 1),
    )
    .unwrap();
    r.register(
        t0,
        "bob",
        req(vec![c("sip:bob@h", None, None)], Some(600), "x", 1),
    )
    .unwrap();
    // Star needs Expires: 0.
    assert_eq!(
        r.register(t0, "alice", star("c", 1, None)),
        Err(RegisterError::BadStar)
    );
    assert_eq!(
        r.register(t0, "alice", star("c", 1, Some(60))),
        Err(RegisterError::BadStar)
    );
    // Star with another contact.
    let mut bad = star("c", 1, Some(0));
    bad.contacts.push(c(LAPTOP, None, None));
    assert_eq!(r.register(t0, "alice", bad), Err(RegisterError::BadStar));
    // Same Call-ID as a binding but not a higher CSeq: aborted, nothing removed.
    assert!(matches!(
        r.register(t0, "alice", star("a", 1, Some(0))),
        Err(RegisterError::OutOfOrder { .. })
    ));
    assert_eq!(r.contacts(t0, "alice").len(), 2);
    assert_eq!(r.register(t0, "alice", star("a", 2, Some(0))), Ok(vec![]));
    assert!(r.contacts(t0, "alice").is_empty());
    assert_eq!(r.contacts(t0, "bob").len(), 1);
}

#[test]
fn contacts_sorted_by_q_and_expired_excluded() {
    let t0 = Instant::now();
    let mut r = Registrar::default();
    r.register(
        t0,
        "alice",
        req(
            vec![
                c("sip:a@1", None, Some(0.1)),
                c("sip:a@2", None, None),
                c("sip:a@3", Some(100), Some(0.9)),
                c("sip:a@4", None, Some(0.5)),
            ],
            Some(600),
            "a",
            1,
        ),
    )
    .unwrap();
    let order = |now| {
        r.contacts(now, "alice")
            .iter()
            .map(|b| b.contact.clone())
            .collect::<Vec<_>>()
    };
    assert_eq!(order(t0), ["sip:a@2", "sip:a@3", "sip:a@4", "sip:a@1"]);
    assert_eq!(order(t0 + secs(100)), ["sip:a@2", "sip:a@4", "sip:a@1"]);
    assert!(r.contacts(t0, "nobody").is_empty());
}

#[test]
fn expire_purges_and_next_expiry_moves() {
    let t0 = Instant::now();
    let mut r = Registrar::default();
    r.register(
        t0,
        "alice",
        req(vec![c(LAPTOP, None, None)], Some(100), "a", 1),
    )
    .unwrap();
    r.register(
        t0,
        "bob",
        req(vec![c("sip:bob@h", None, None)], Some(200), "b", 1),
    )
    .unwrap();
    assert_eq!(r.next_expiry(), Some(t0 + secs(100)));
    r.expire(t0 + secs(99));
    assert_eq!(r.users().count(), 2);
    r.expire(t0 + secs(100));
    assert_eq!(r.users().collect::<Vec<_>>(), ["bob"]);
    assert_eq!(r.next_expiry(), Some(t0 + secs(200)));
    // An expired binding does not block a fresh register with an old CSeq.
    let b = r
        .register(
            t0 + secs(150),
            "alice",
            req(vec![c(LAPTOP, None, None)], Some(100), "a", 1),
        )
        .unwrap();
    assert_eq!(b.len(), 1);
}

#[test]
fn too_many_contacts() {
    let t0 = Instant::now();
    let mut r = Registrar {
        max_contacts: 2,
        ..Registrar::default()
    };
    r.register(
        t0,
        "alice",
        req(
            vec![c("sip:a@1", None, None), c("sip:a@2", None, None)],
            Some(600),
            "a",
            1,
        ),
    )
    .unwrap();
    assert_eq!(
        r.register(
            t0,
            "alice",
            req(vec![c("sip:a@3", None, None)], Some(600), "b", 1)
        ),
        Err(RegisterError::TooManyContacts { max: 2 })
    );
    // Replacing one in the same request fits.
    let b = r
        .register(
            t0,
            "alice",
            req(
                vec![c("sip:a@1", Some(0), None), c("sip:a@3", None, None)],
                Some(600),
                "b",
                2,
            ),
        )
        .unwrap();
    assert_eq!(b.len(), 2);
}

#[test]
fn bad_q_rejected() {
    let mut r = Registrar::default();
    assert!(matches!(
        r.register(
            Instant::now(),
            "alice",
            req(vec![c(LAPTOP, None, Some(1.5))], None, "a", 1)
        ),
        Err(RegisterError::BadContact(_))
    ));
}

#[test]
fn renders_contact_values() {
    let t0 = Instant::now();
    let mut r = Registrar::default();
    let b = r
        .register(
            t0,
            "alice",
            req(
                vec![c(LAPTOP, None, Some(0.5)), c(DESK, None, Some(1.0))],
                Some(600),
                "a",
                1,
            ),
        )
        .unwrap();
    // Rounded up: 599.5 s left shows as 600.
    assert_eq!(
        contact_header_values(&b, t0 + Duration::from_millis(500)),
        vec![
            format!("<{LAPTOP}>;expires=600;q=0.5"),
            format!("<{DESK}>;expires=600;q=1"),
        ]
    );
    assert_eq!(format_q(0.125), "0.125");
    assert_eq!(format_q(0.0), "0");
}

#[test]
fn parses_contact_headers() {
    let (v, star) = parse_contacts(&[
        "\"Alice, laptop\" <sip:alice@192.0.2.10:5060;transport=udp>;expires=300;q=0.7, <sip:alice@h2>",
        "sip:alice@h3;expires=0",
        "<sips:alice@h4;lr>;+sip.instance=\"<urn:uuid:1>\"",
    ])
    .unwrap();
    assert!(!star);
    assert_eq!(
        v,
        vec![
            c(
                "sip:alice@192.0.2.10:5060;transport=udp",
                Some(300),
                Some(0.7)
            ),
            c("sip:alice@h2", None, None),
            c("sip:alice@h3", Some(0), None),
            c("sips:alice@h4;lr", None, None),
        ]
    );
    assert_eq!(parse_contacts(&["*"]).unwrap(), (vec![], true));
    assert_eq!(parse_contacts(&[]).unwrap(), (vec![], false));
    assert_eq!(
        parse_contacts(&["<sip:a@h>;expires=99999999999"])
            .unwrap()
            .0[0]
            .expires,
        Some(u32::MAX)
    );
    assert_eq!(
        parse_contacts(&["*, <sip:a@h>"]),
        Err(RegisterError::BadStar)
    );
    for bad in [
        "<sip:a@h",
        "<http://x>",
        "tel:+1555",
        "<sip:a@h>;expires=soon",
        "<sip:a@h>;q=2",
        "<sip:a@h>;q=x",
    ] {
        assert!(
            matches!(parse_contacts(&[bad]), Err(RegisterError::BadContact(_))),
            "{bad}"
        );
    }
}

#[test]
fn registrations_list_live_bindings_by_user_without_expired_ones() {
    let mut r = Registrar::default();
    let t0 = Instant::now();
    r.register(
        t0,
        "bob",
        req(vec![c("sip:bob@192.0.2.30", None, None)], Some(600), "b", 1),
    )
    .unwrap();
    r.register(
        t0,
        "alice",
        req(
            vec![c(LAPTOP, Some(120), Some(0.5)), c(DESK, Some(600), None)],
            None,
            "a",
            1,
        ),
    )
    .unwrap();
    let listed = |at| -> Vec<(String, String)> {
        r.registrations(at)
            .into_iter()
            .map(|g| (g.user, g.binding.contact))
            .collect()
    };
    // Users in name order; a user's contacts in ringing order (q 1.0 before q 0.5).
    assert_eq!(
        listed(t0),
        [
            ("alice".to_string(), DESK.to_string()),
            ("alice".into(), LAPTOP.into()),
            ("bob".into(), "sip:bob@192.0.2.30".into()),
        ]
    );
    assert_eq!(
        r.registrations(t0)[1].binding.remaining_secs(t0 + secs(20)),
        100
    );
    // The laptop's binding ran out (not yet purged): it is not listed.
    assert_eq!(
        listed(t0 + secs(121)),
        [
            ("alice".to_string(), DESK.to_string()),
            ("bob".into(), "sip:bob@192.0.2.30".into()),
        ]
    );
    assert!(listed(t0 + secs(601)).is_empty());
}
