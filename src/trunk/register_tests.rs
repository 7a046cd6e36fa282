//! The registration client on a virtual clock: every path of the state machine, digest answers
//! checked by the project's own digest server.

use std::time::{Duration, Instant};

use super::*;
use crate::sip::auth::{Algorithm, DigestServer};

const NOW_UNIX: u64 = 1_700_000_000;
const CONTACT: &str = "sip:acct@192.0.2.1:5060";

fn spec(secret: Secret) -> RegisterSpec {
    RegisterSpec {
        trunk: "carrier".into(),
        request_uri: "sip:192.0.2.10:5060".into(),
        aor: "sip:acct@192.0.2.10".into(),
        contact: CONTACT.into(),
        username: "acct".into(),
        secret,
        realm: None,
        expires: 3600,
        retry_initial: Duration::from_secs(30),
        retry_max: Duration::from_secs(1800),
    }
}

fn client() -> RegisterClient {
    RegisterClient::new(spec(Secret::Password("s3cret".into())), 42)
}

fn server() -> DigestServer {
    DigestServer::new("carrier.example", [7; 32], Duration::from_secs(300))
}

fn sends(actions: &[Action]) -> Vec<Send> {
    actions
        .iter()
        .filter_map(|a| match a {
            Action::Send(s) => Some(s.clone()),
            _ => None,
        })
        .collect()
}

fn one_send(actions: &[Action]) -> Send {
    let s = sends(actions);
    assert_eq!(s.len(), 1, "expected one REGISTER in {actions:?}");
    s[0].clone()
}

fn reports(actions: &[Action]) -> Vec<Report> {
    actions
        .iter()
        .filter_map(|a| match a {
            Action::Report(r) => Some(r.clone()),
            _ => None,
        })
        .collect()
}

fn reply(status: u16, cseq: u32) -> Reply {
    Reply {
        status,
        cseq,
        ..Reply::default()
    }
}

fn challenge(cseq: u32, value: String) -> Reply {
    Reply {
        www_authenticate: vec![value],
        ..reply(401, cseq)
    }
}

fn ok(cseq: u32, contact_expires: Option<u32>, expires: Option<u32>) -> Reply {
    Reply {
        contacts: contact_expires
            .map(|e| {
                vec![
                    format!("<sip:other@198.51.100.9>;expires=999"),
                    format!("<{CONTACT}>;expires={e}"),
                ]
            })
            .unwrap_or_default(),
        expires,
        ..reply(200, cseq)
    }
}

/// Registers with an MD5 or SHA-256 challenge and checks the answer with the digest server.
fn register_through_challenge(c: &mut RegisterClient, t0: Instant, alg: Algorithm) -> Send {
    let srv = server();
    let first = one_send(&c.start(t0));
    assert_eq!((first.cseq, first.expires), (1, 3600));
    assert!(first.authorization.is_none());
    let second = one_send(&c.handle(t0, Input::Reply(challenge(1, srv.challenge(NOW_UNIX, alg)))));
    assert_eq!(second.cseq, 2, "CSeq goes up for the answer");
    let (header, value) = second.authorization.clone().expect("answer");
    assert_eq!(header, "Authorization");
    let checked = srv
        .check(
            "REGISTER",
            "sip:192.0.2.10:5060",
            Some(&value),
            |_| Some("s3cret".into()),
            NOW_UNIX,
        )
        .expect("the registrar accepts our answer");
    assert_eq!((checked.username.as_str(), checked.nc), ("acct", 1));
    second
}

#[test]
fn md5_and_sha256_challenges_are_answered_and_the_grant_is_kept() {
    for alg in [Algorithm::Md5, Algorithm::Sha256] {
        let t0 = Instant::now();
        let mut c = client();
        register_through_challenge(&mut c, t0, alg);
        let a = c.handle(t0, Input::Reply(ok(2, Some(120), Some(3600))));
        assert_eq!(
            reports(&a),
            vec![Report::Registered {
                granted: 120,
                refresh_in: Duration::from_secs(60)
            }],
            "our Contact's expires wins over the Expires header"
        );
        assert!(c.registered(t0 + Duration::from_secs(119)));
        assert!(!c.registered(t0 + Duration::from_secs(120)));
    }
}

#[test]
fn refresh_comes_before_expiry_with_the_nonce_count_going_up() {
    let t0 = Instant::now();
    let mut c = client();
    let srv = server();
    let answer = register_through_challenge(&mut c, t0, Algorithm::Md5);
    c.handle(t0, Input::Reply(ok(2, None, Some(3600))));
    // 3600 s granted: refresh a minute before expiry.
    assert_eq!(c.next_wake(), Some(t0 + Duration::from_secs(3540)));
    assert!(sends(&c.handle(t0 + Duration::from_secs(3539), Input::Timer)).is_empty());
    let refresh = one_send(&c.handle(t0 + Duration::from_secs(3540), Input::Timer));
    assert_eq!(refresh.cseq, 3);
    let (_, value) = refresh
        .authorization
        .expect("refresh answers the last challenge");
    assert_ne!(Some(value.clone()), answer.authorization.map(|a| a.1));
    let checked = srv
        .check(
            "REGISTER",
            "sip:192.0.2.10:5060",
            Some(&value),
            |_| Some("s3cret".into()),
            NOW_UNIX,
        )
        .unwrap();
    assert_eq!(checked.nc, 2, "same nonce, next count");
    assert!(
        c.registered(t0 + Duration::from_secs(3540)),
        "still bound while refreshing"
    );
    // A short grant refreshes at half-time.
    c.handle(
        t0 + Duration::from_secs(3540),
        Input::Reply(ok(3, Some(4), None)),
    );
    assert_eq!(c.next_wake(), Some(t0 + Duration::from_secs(3542)));
    assert_eq!(refresh_delay(4), Duration::from_secs(2));
    assert_eq!(refresh_delay(120), Duration::from_secs(60));
    assert_eq!(refresh_delay(1), Duration::from_secs(1));
}

#[test]
fn a_second_challenge_means_wrong_credentials_unless_stale() {
    let t0 = Instant::now();
    let mut c = client();
    let srv = server();
    register_through_challenge(&mut c, t0, Algorithm::Md5);
    // stale=true: answered again at once.
    let stale = one_send(&c.handle(
        t0,
        Input::Reply(challenge(2, srv.stale_challenge(NOW_UNIX, Algorithm::Md5))),
    ));
    assert_eq!(stale.cseq, 3);
    let a = c.handle(
        t0,
        Input::Reply(challenge(3, srv.challenge(NOW_UNIX, Algorithm::Md5))),
    );
    assert!(
        sends(&a).is_empty(),
        "no third try with the same credentials"
    );
    match reports(&a).as_slice() {
        [
            Report::Failed {
                auth: true,
                failures: 1,
                retry_in,
                ..
            },
        ] => {
            assert!(*retry_in <= Duration::from_secs(30) && *retry_in >= Duration::from_secs(24));
        }
        other => panic!("expected an auth failure, got {other:?}"),
    }
    assert_eq!(c.phase(), Phase::Backoff);
    // The next attempt starts without the refused answer.
    let wake = c.next_wake().unwrap();
    let retry = one_send(&c.handle(wake, Input::Timer));
    assert!(retry.authorization.is_none());
}

#[test]
fn proxy_challenges_get_proxy_authorization_and_ha1_works() {
    let t0 = Instant::now();
    let ha1 = Algorithm::Md5.hash_hex(b"acct:carrier.example:s3cret");
    let mut s = spec(Secret::Ha1(ha1));
    s.realm = Some("carrier.example".into());
    let mut c = RegisterClient::new(s, 1);
    let srv = server();
    c.start(t0);
    let r = Reply {
        // Offered both: the HA1 can only answer MD5, so MD5 is picked over SHA-256.
        proxy_authenticate: vec![
            srv.challenge(NOW_UNIX, Algorithm::Sha256),
            srv.challenge(NOW_UNIX, Algorithm::Md5),
        ],
        ..reply(407, 1)
    };
    let (header, value) = one_send(&c.handle(t0, Input::Reply(r)))
        .authorization
        .unwrap();
    assert_eq!(header, "Proxy-Authorization");
    srv.verify(
        "REGISTER",
        "sip:192.0.2.10:5060",
        Some(&value),
        |_| Some("s3cret".into()),
        NOW_UNIX,
    )
    .expect("HA1 answer accepted");
    // A challenge for another realm is not answered with these credentials.
    let mut c = RegisterClient::new(
        RegisterSpec {
            realm: Some("elsewhere".into()),
            ..spec(Secret::Password("x".into()))
        },
        1,
    );
    c.start(t0);
    let a = c.handle(
        t0,
        Input::Reply(challenge(1, srv.challenge(NOW_UNIX, Algorithm::Md5))),
    );
    assert!(matches!(
        reports(&a).as_slice(),
        [Report::Failed { auth: true, .. }]
    ));
}

#[test]
fn interval_too_brief_retries_at_once_with_min_expires() {
    let t0 = Instant::now();
    let mut c = client();
    c.start(t0);
    let r = Reply {
        min_expires: Some(7200),
        ..reply(423, 1)
    };
    let again = one_send(&c.handle(t0, Input::Reply(r.clone())));
    assert_eq!((again.cseq, again.expires), (2, 7200));
    // A second 423 in the same attempt is a failure, not a loop.
    let a = c.handle(
        t0,
        Input::Reply(Reply {
            cseq: 2,
            min_expires: Some(9000),
            ..r
        }),
    );
    assert!(sends(&a).is_empty());
    assert!(matches!(
        reports(&a).as_slice(),
        [Report::Failed { auth: false, .. }]
    ));
    // The raised interval is kept for later attempts.
    let retry = one_send(&c.handle(c.next_wake().unwrap(), Input::Timer));
    assert_eq!(retry.expires, 7200);
}

#[test]
fn failures_back_off_doubling_with_jitter_up_to_the_cap_and_reset_on_success() {
    let mut t = Instant::now();
    let mut c = client();
    c.start(t);
    let mut bases = Vec::new();
    for n in 1..=9u32 {
        let cseq = c.in_flight().unwrap();
        let input = if n % 2 == 0 {
            Input::Timeout { cseq }
        } else {
            Input::Reply(reply(500, cseq))
        };
        let a = c.handle(t, input);
        let Some(Report::Failed {
            retry_in, failures, ..
        }) = reports(&a).pop()
        else {
            panic!("failure expected: {a:?}");
        };
        assert_eq!(failures, n);
        let base = Duration::from_secs((30u64 << (n - 1)).min(1800));
        assert!(
            retry_in <= base && retry_in >= base.mul_f64(0.8),
            "{n}: {retry_in:?} vs {base:?}"
        );
        bases.push(retry_in);
        assert!(!c.registered(t));
        t = c.next_wake().unwrap();
        assert!(sends(&c.handle(t - Duration::from_millis(1), Input::Timer)).is_empty());
        one_send(&c.handle(t, Input::Timer));
    }
    let cseq = c.in_flight().unwrap();
    c.handle(t, Input::Reply(ok(cseq, None, Some(600))));
    assert_eq!(c.failures(), 0);
    // Stale replies and timeouts (an older CSeq) change nothing.
    assert!(c.handle(t, Input::Timeout { cseq: 1 }).is_empty());
    assert!(c.handle(t, Input::Reply(reply(503, 2))).is_empty());
    assert_eq!(c.phase(), Phase::Registered);
}

#[test]
fn retry_after_on_503_is_waited_and_transport_errors_back_off() {
    let t0 = Instant::now();
    let mut c = client();
    c.start(t0);
    let a = c.handle(
        t0,
        Input::Reply(Reply {
            retry_after: Some(120),
            ..reply(503, 1)
        }),
    );
    assert!(matches!(
        reports(&a).as_slice(),
        [Report::Failed { retry_in, .. }] if *retry_in == Duration::from_secs(120)
    ));
    assert_eq!(c.next_wake(), Some(t0 + Duration::from_secs(120)));
    let t1 = t0 + Duration::from_secs(120);
    let s = one_send(&c.handle(t1, Input::Timer));
    let a = c.handle(t1, Input::TransportError { cseq: s.cseq });
    assert!(matches!(
        reports(&a).as_slice(),
        [Report::Failed { failures: 2, .. }]
    ));
}

#[test]
fn a_failed_refresh_keeps_the_binding_until_it_lapses() {
    let t0 = Instant::now();
    let mut c = RegisterClient::new(
        RegisterSpec {
            retry_initial: Duration::from_secs(200),
            ..spec(Secret::Password("s3cret".into()))
        },
        9,
    );
    c.start(t0);
    c.handle(t0, Input::Reply(ok(1, None, Some(100))));
    let t1 = c.next_wake().unwrap();
    assert_eq!(t1, t0 + Duration::from_secs(50));
    let s = one_send(&c.handle(t1, Input::Timer));
    c.handle(t1, Input::Timeout { cseq: s.cseq });
    assert!(c.registered(t1), "the provider still holds the binding");
    // Backoff runs past the binding's end: the lapse is reported when it comes.
    assert_eq!(c.next_wake(), Some(t0 + Duration::from_secs(100)));
    let a = c.handle(t0 + Duration::from_secs(100), Input::Timer);
    assert_eq!(reports(&a), vec![Report::Lapsed]);
    assert!(!c.registered(t0 + Duration::from_secs(100)));
}

#[test]
fn a_zero_grant_is_a_failure() {
    let t0 = Instant::now();
    let mut c = client();
    c.start(t0);
    let a = c.handle(t0, Input::Reply(ok(1, Some(0), Some(3600))));
    assert!(matches!(reports(&a).as_slice(), [Report::Failed { .. }]));
}

#[test]
fn shutdown_unregisters_a_live_binding_once() {
    let t0 = Instant::now();
    let mut c = client();
    register_through_challenge(&mut c, t0, Algorithm::Sha256);
    c.handle(t0, Input::Reply(ok(2, None, Some(3600))));
    let bye = one_send(&c.handle(t0, Input::Shutdown));
    assert_eq!((bye.cseq, bye.expires), (3, 0));
    assert!(bye.authorization.is_some(), "sent with the last answer");
    assert!(c.handle(t0, Input::Shutdown).is_empty());
    let a = c.handle(t0, Input::Reply(reply(200, 3)));
    assert_eq!(reports(&a), vec![Report::Unregistered]);
    assert_eq!(c.phase(), Phase::Stopped);
    assert_eq!(c.next_wake(), None);
    // Never registered: nothing to remove.
    let mut c = client();
    assert!(c.handle(t0, Input::Shutdown).is_empty());
    assert_eq!(c.phase(), Phase::Stopped);
}

#[test]
fn service_route_and_path_are_kept_from_the_200() {
    let t0 = Instant::now();
    let mut c = client();
    c.start(t0);
    c.handle(
        t0,
        Input::Reply(Reply {
            service_route: vec!["<sip:edge.carrier.example;lr>".into()],
            path: vec!["<sip:p1.carrier.example;lr>".into()],
            ..ok(1, None, Some(300))
        }),
    );
    assert_eq!(c.service_route(), ["<sip:edge.carrier.example;lr>"]);
    assert_eq!(c.path(), ["<sip:p1.carrier.example;lr>"]);
}

#[test]
fn contact_matching_ignores_brackets_params_and_case() {
    assert!(same_contact(
        "\"x\" <SIP:acct@192.0.2.1:5060;transport=udp>;expires=5",
        CONTACT
    ));
    assert!(!same_contact("<sip:acct@192.0.2.1:5070>", CONTACT));
    assert_eq!(
        contact_expires("<sip:a@b;expires=9>;q=1;Expires=30"),
        Some(30)
    );
    assert_eq!(contact_expires("sip:a@b;expires=12"), Some(12));
    assert_eq!(contact_expires("<sip:a@b>"), None);
}

#[test]
fn shutdown_while_registering_unregisters_and_ignores_the_older_request() {
    let t0 = Instant::now();
    let mut c = client();
    c.start(t0);
    // The first REGISTER may still bind us: remove whatever it did.
    let bye = one_send(&c.handle(t0, Input::Shutdown));
    assert_eq!((bye.cseq, bye.expires), (2, 0));
    assert!(c.handle(t0, Input::Timeout { cseq: 1 }).is_empty());
    assert!(
        c.handle(t0, Input::Reply(ok(1, None, Some(3600))))
            .is_empty()
    );
    assert_eq!(c.phase(), Phase::Unregistering);
    let a = c.handle(t0, Input::Reply(reply(200, 2)));
    assert_eq!(reports(&a), vec![Report::Unregistered]);
}
