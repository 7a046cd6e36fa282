//! Admission on a virtual clock: buckets, the half-open cap, silence, exemption, bounded memory.

use std::net::{IpAddr, Ipv4Addr};
use std::time::{Duration, Instant};

use super::*;

fn config() -> AdmissionConfig {
    AdmissionConfig {
        calls: Rate {
            per_s: 2.0,
            burst: 4.0,
        },
        registers: Rate {
            per_s: 1.0,
            burst: 2.0,
        },
        requests: Rate {
            per_s: 10.0,
            burst: 10.0,
        },
        max_half_open: 3,
        silent_after: 5,
        exempt: vec!["10.9.0.0/16".parse().unwrap()],
        max_sources: 100,
    }
}

fn ip(n: u32) -> IpAddr {
    IpAddr::V4(Ipv4Addr::from(0x0b00_0000 + n))
}

fn refused(v: Verdict) -> bool {
    !matches!(v, Verdict::Admit)
}

#[test]
fn a_burst_is_admitted_then_refused_with_retry_after_then_refilled() {
    let t0 = Instant::now();
    let mut a = Admission::new(config());
    for _ in 0..2 {
        assert_eq!(a.check(t0, ip(1), Work::Register), Verdict::Admit);
    }
    assert_eq!(
        a.check(t0, ip(1), Work::Register),
        Verdict::Refuse {
            retry_after: 1,
            why: Limit::Rate
        }
    );
    // Another source and another kind of work are untouched.
    assert_eq!(a.check(t0, ip(2), Work::Register), Verdict::Admit);
    assert_eq!(a.check(t0, ip(1), Work::Request), Verdict::Admit);
    // One token a second.
    let t1 = t0 + Duration::from_millis(1000);
    assert_eq!(a.check(t1, ip(1), Work::Register), Verdict::Admit);
    assert!(refused(a.check(t1, ip(1), Work::Register)));
}

#[test]
fn half_open_calls_are_capped_until_confirmed_or_ended() {
    let t0 = Instant::now();
    let mut a = Admission::new(config());
    for _ in 0..3 {
        assert_eq!(a.check(t0, ip(1), Work::Call), Verdict::Admit);
        a.opened(ip(1));
    }
    // The fourth token is there, but three INVITEs are still unconfirmed.
    assert_eq!(
        a.check(t0, ip(1), Work::Call),
        Verdict::Refuse {
            retry_after: HALF_OPEN_RETRY_S,
            why: Limit::HalfOpen
        }
    );
    a.closed(ip(1));
    assert_eq!(a.check(t0, ip(1), Work::Call), Verdict::Admit);
    a.opened(ip(1));
    // Now the bucket (4) is empty too.
    a.closed(ip(1));
    assert_eq!(
        a.check(t0, ip(1), Work::Call),
        Verdict::Refuse {
            retry_after: 1,
            why: Limit::Rate
        }
    );
}

#[test]
fn a_source_that_ignores_refusals_is_dropped_until_admitted_again() {
    let t0 = Instant::now();
    let mut a = Admission::new(config());
    let verdicts: Vec<Verdict> = (0..15).map(|_| a.check(t0, ip(1), Work::Request)).collect();
    assert!(verdicts[..10].iter().all(|v| *v == Verdict::Admit));
    assert!(
        verdicts[10..]
            .iter()
            .all(|v| matches!(v, Verdict::Refuse { .. }))
    );
    for _ in 0..2 {
        assert_eq!(
            a.check(t0, ip(1), Work::Request),
            Verdict::Drop { why: Limit::Rate }
        );
    }
    // Once it slows down it is answered again, and the count starts over.
    let later = t0 + Duration::from_millis(200);
    assert_eq!(a.check(later, ip(1), Work::Request), Verdict::Admit);
    assert!(matches!(
        a.check(later, ip(1), Work::Request),
        Verdict::Admit | Verdict::Refuse { .. }
    ));
}

#[test]
fn exempt_sources_are_never_limited_nor_tracked() {
    let t0 = Instant::now();
    let mut a = Admission::new(config());
    let trunk: IpAddr = "10.9.1.2".parse().unwrap();
    for _ in 0..1000 {
        assert_eq!(a.check(t0, trunk, Work::Call), Verdict::Admit);
    }
    a.closed(trunk);
    assert_eq!(a.tracked(), 0);
}

#[test]
fn ipv6_sources_are_counted_per_64() {
    let t0 = Instant::now();
    let mut a = Admission::new(config());
    for i in 0..2u16 {
        let v6 = IpAddr::V6(std::net::Ipv6Addr::new(0x2001, 0xdb8, 0, 1, 0, 0, 0, i + 1));
        assert_eq!(a.check(t0, v6, Work::Register), Verdict::Admit);
    }
    let other_host_same_64 = IpAddr::V6(std::net::Ipv6Addr::new(0x2001, 0xdb8, 0, 1, 9, 9, 9, 9));
    assert!(refused(a.check(t0, other_host_same_64, Work::Register)));
    let next_64 = IpAddr::V6(std::net::Ipv6Addr::new(0x2001, 0xdb8, 0, 2, 0, 0, 0, 1));
    assert_eq!(a.check(t0, next_64, Work::Register), Verdict::Admit);
    assert_eq!(a.tracked(), 2);
}

#[test]
fn the_table_stays_bounded_under_a_sweep_of_sources() {
    let t0 = Instant::now();
    let mut a = Admission::new(config());
    // 200,000 sources, each sending one call it never confirms: the table fills with 100
    // active entries; everyone after shares the overflow entry, whose cap holds.
    let mut admitted = 0;
    for n in 0..200_000 {
        let now = t0 + Duration::from_micros(n as u64);
        if a.check(now, ip(n), Work::Call) == Verdict::Admit {
            a.opened(ip(n));
            admitted += 1;
        }
        assert!(a.tracked() <= 100);
    }
    assert_eq!(
        admitted,
        100 + 3,
        "each tracked source once, then the overflow's cap"
    );
    // Idle entries are swept when room is needed: once those calls end and buckets refill,
    // new sources get entries of their own again.
    for n in 0..200_000 {
        a.closed(ip(n));
    }
    let later = t0 + Duration::from_secs(60);
    assert_eq!(a.check(later, ip(400_000), Work::Call), Verdict::Admit);
    assert_eq!(a.tracked(), 1, "the idle entries were swept");
}
