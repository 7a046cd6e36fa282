//! The file-descriptor budget, checked at start.
//!
//! Every call needs descriptors (its RTP socket, a recording, staff legs' RTP sockets), and so
//! does every TCP connection. Once the process runs out, `accept` fails with "Too many open files"
//! and calls fail for want of an RTP port, whoever holds the descriptors. So the soft
//! `RLIMIT_NOFILE` is raised to the hard limit (what servers commonly do: the soft default of 1024
//! dates from `select()`, which nothing here uses), and [`plan`] splits what there is: a fixed
//! reserve for the process itself (store, log, runtime, listeners), `max_calls` calls first (they
//! are what the line is for), and what is left for TCP connections. The caps never promise more
//! descriptors than exist.

use std::io;

use tracing::{info, warn};

/// Descriptors kept for everything but calls and TCP connections: stdio, the runtimes' epoll and
/// event descriptors, the SIP listeners, the SQLite database with its WAL and shared-memory
/// files, webhook connections, prompt and recovery files opened now and then.
pub const FIXED_RESERVE: usize = 64;

/// TCP connections kept when calls take nearly everything: enough for a proxy or a few phones.
pub const MIN_TCP: usize = 32;

/// The process's open-files limit after [`raise_nofile_limit`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NofileLimit {
    pub soft: u64,
    pub hard: u64,
    /// The soft limit before it was raised, when it was.
    pub raised_from: Option<u64>,
}

/// Raises the soft `RLIMIT_NOFILE` to the hard limit, when it is lower. A limit that cannot be
/// raised (an "unlimited" hard limit the kernel refuses as a soft one) is left as it was.
pub fn raise_nofile_limit() -> io::Result<NofileLimit> {
    let mut r = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit only writes the struct passed, which lives on this stack frame.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut r) } != 0 {
        return Err(io::Error::last_os_error());
    }
    let (soft, hard): (u64, u64) = (r.rlim_cur, r.rlim_max);
    if soft >= hard {
        return Ok(NofileLimit {
            soft,
            hard,
            raised_from: None,
        });
    }
    // Linux refuses more than fs.nr_open (1 Mi by default) even under an unlimited hard limit.
    for target in [hard, hard.min(1 << 20)] {
        let want = libc::rlimit {
            rlim_cur: target,
            rlim_max: r.rlim_max,
        };
        // SAFETY: setrlimit only reads the struct passed, which lives on this stack frame.
        if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &want) } == 0 {
            return Ok(NofileLimit {
                soft: target,
                hard,
                raised_from: Some(soft),
            });
        }
    }
    Ok(NofileLimit {
        soft,
        hard,
        raised_from: None,
    })
}

/// What the configuration asks for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Demand {
    pub max_calls: usize,
    /// Descriptors one call may hold at once.
    pub fds_per_call: usize,
    pub tcp_max_connections: usize,
    pub tcp_max_per_source: usize,
}

/// What fits under the limit; equal to the [`Demand`] when everything fits.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Plan {
    pub max_calls: usize,
    pub tcp_max_connections: usize,
    pub tcp_max_per_source: usize,
}

impl Plan {
    pub fn lowered_calls(&self, want: &Demand) -> bool {
        self.max_calls < want.max_calls
    }

    pub fn lowered_tcp(&self, want: &Demand) -> bool {
        self.tcp_max_connections < want.tcp_max_connections
    }
}

/// Splits `limit` open files: the fixed reserve, then calls, then TCP connections (at least
/// [`MIN_TCP`], or what was asked if less). When calls alone do not fit, fewer calls are taken.
pub fn plan(limit: u64, want: Demand) -> Plan {
    let limit = usize::try_from(limit).unwrap_or(usize::MAX);
    let room = limit.saturating_sub(FIXED_RESERVE);
    let per_call = want.fds_per_call.max(1);
    let calls_need = want.max_calls.saturating_mul(per_call);
    let tcp_floor = want.tcp_max_connections.min(MIN_TCP);
    let (max_calls, tcp) = if calls_need.saturating_add(want.tcp_max_connections) <= room {
        (want.max_calls, want.tcp_max_connections)
    } else if calls_need.saturating_add(tcp_floor) <= room {
        (want.max_calls, room - calls_need)
    } else {
        let calls = (room.saturating_sub(tcp_floor) / per_call).max(1);
        (calls, tcp_floor.max(1))
    };
    Plan {
        max_calls,
        tcp_max_connections: tcp,
        tcp_max_per_source: want.tcp_max_per_source.min(tcp),
    }
}

/// Raises the limit and plans under it, with one INFO line saying what was found and a WARN for
/// each setting lowered. When the limit cannot be read, the configuration is taken as it is.
pub fn fit(want: Demand) -> Plan {
    let limit = match raise_nofile_limit() {
        Ok(limit) => limit,
        Err(e) => {
            warn!(error = %e, "cannot read the open-files limit; sip.tcp_max_connections and sip.max_calls taken as configured");
            return Plan {
                max_calls: want.max_calls,
                tcp_max_connections: want.tcp_max_connections,
                tcp_max_per_source: want.tcp_max_per_source,
            };
        }
    };
    let plan = plan(limit.soft, want);
    info!(
        limit = limit.soft,
        hard_limit = limit.hard,
        raised_from = ?limit.raised_from,
        fds_per_call = want.fds_per_call,
        reserve = FIXED_RESERVE,
        max_calls = plan.max_calls,
        tcp_max_connections = plan.tcp_max_connections,
        "open-files limit (the soft limit is raised to the hard one when lower)"
    );
    const HINT: &str =
        "raise the hard open-files limit (e.g. LimitNOFILE= in systemd, nofile in limits.conf)";
    if plan.lowered_tcp(&want) {
        warn!(
            configured = want.tcp_max_connections,
            using = plan.tcp_max_connections,
            tcp_max_per_source = plan.tcp_max_per_source,
            limit = limit.soft,
            hint = HINT,
            "sip.tcp_max_connections does not fit the open-files limit next to sip.max_calls calls; lowered"
        );
    }
    if plan.lowered_calls(&want) {
        warn!(
            configured = want.max_calls,
            using = plan.max_calls,
            limit = limit.soft,
            hint = HINT,
            "sip.max_calls does not fit the open-files limit; lowered"
        );
    }
    plan
}

#[cfg(test)]
mod tests {
    use super::*;

    fn want() -> Demand {
        Demand {
            max_calls: 500,
            fds_per_call: 4,
            tcp_max_connections: 1024,
            tcp_max_per_source: 64,
        }
    }

    #[test]
    fn a_roomy_limit_takes_the_configuration_as_it_is() {
        let p = plan(1 << 20, want());
        assert_eq!(p.max_calls, 500);
        assert_eq!(p.tcp_max_connections, 1024);
        assert_eq!(p.tcp_max_per_source, 64);
        assert!(!p.lowered_calls(&want()) && !p.lowered_tcp(&want()));
        // Exactly enough is enough.
        let p = plan((64 + 2000 + 1024) as u64, want());
        assert_eq!(p, plan(1 << 20, want()));
    }

    #[test]
    fn tcp_gets_what_calls_leave() {
        // 4096 - 64 reserve - 500 calls x 4 = 2032... asked 1024: fits. At 2500: 436 left.
        let p = plan(2500, want());
        assert_eq!(p.max_calls, 500);
        assert_eq!(p.tcp_max_connections, 436);
        assert!(p.lowered_tcp(&want()));
        let p = plan(
            2500,
            Demand {
                tcp_max_per_source: 1000,
                ..want()
            },
        );
        assert_eq!(
            p.tcp_max_per_source, 436,
            "per source never above the total"
        );
    }

    #[test]
    fn when_calls_do_not_fit_fewer_calls_are_taken() {
        // The classic 1024: 64 reserve, 32 TCP, (1024 - 96) / 4 = 232 calls.
        let p = plan(1024, want());
        assert_eq!(p.tcp_max_connections, MIN_TCP);
        assert_eq!(p.max_calls, 232);
        assert!(p.lowered_calls(&want()));
        assert!(64 + p.max_calls * 4 + p.tcp_max_connections <= 1024);
        // Absurdly low: one call, one connection, no overflow.
        let p = plan(10, want());
        assert_eq!((p.max_calls, p.tcp_max_connections), (1, MIN_TCP));
    }

    #[test]
    fn a_small_tcp_wish_is_not_raised_to_the_floor() {
        let p = plan(
            1024,
            Demand {
                tcp_max_connections: 8,
                tcp_max_per_source: 4,
                ..want()
            },
        );
        assert_eq!((p.tcp_max_connections, p.tcp_max_per_source), (8, 4));
        assert_eq!(p.max_calls, (1024 - 64 - 8) / 4);
    }

    #[test]
    fn the_limit_can_be_read_and_raising_it_never_lowers_it() {
        let l = raise_nofile_limit().expect("getrlimit");
        assert!(l.soft <= l.hard);
        if let Some(before) = l.raised_from {
            assert!(before < l.soft);
        }
    }
}
