//! From the config to the runtime objects `serve` starts with: the SIP core's settings, the
//! fd budget, the desk, the flows.

use ipnet::IpNet;

use super::*;

/// Raises the open-files limit and fits `max_calls` and the TCP caps under it (see
/// `sip::transport::fd_budget`); returns the TCP limits and the call limit to run with.
pub(super) fn fit_fd_budget(config: &Config, desk: &call::DeskSettings) -> (TcpLimits, usize) {
    let want = fd_budget::Demand {
        max_calls: config.sip.max_calls,
        fds_per_call: fds_per_call(desk),
        tcp_max_connections: config.sip.tcp_max_connections,
        tcp_max_per_source: config.sip.tcp_max_per_source,
    };
    let plan = fd_budget::fit(want);
    let limits = TcpLimits {
        idle_timeout: Duration::from_secs(config.sip.tcp_idle_timeout_s),
        message_timeout: Duration::from_secs(config.sip.tcp_message_timeout_s),
        max_connections: plan.tcp_max_connections,
        max_per_source: plan.tcp_max_per_source,
    };
    (limits, plan.max_calls)
}

/// Open files one call may hold with `desk`: its RTP socket, a recording, a route lookup while
/// it dials, and one RTP socket per staff leg: every member of the largest group rings at once,
/// and a staff call-back holds two.
pub(super) fn fds_per_call(desk: &call::DeskSettings) -> usize {
    let largest_group = desk
        .groups
        .names()
        .map(|n| desk.groups.get(n).map_or(0, <[_]>::len))
        .max()
        .unwrap_or(0);
    3 + largest_group.max(2)
}

pub(super) fn desk_settings(
    config: &Config,
    flows: &FlowTable,
) -> Result<call::DeskSettings, ServeError> {
    let groups = config.desk_groups().map_err(ServeError::Desk)?;
    for flow in std::iter::once(&flows.default).chain(flows.numbers.values()) {
        groups
            .check_flow(flow, &flow.file.display().to_string())
            .map_err(ServeError::Desk)?;
    }
    for name in groups.names() {
        let members: Vec<&str> = groups
            .get(name)
            .unwrap_or_default()
            .iter()
            .map(|m| m.label())
            .collect();
        if members.is_empty() {
            warn!(
                group = name,
                "desk group has no members: calls that ring it go to the flow's no-answer branch (voicemail); add members under [[desk.groups]]"
            );
        } else {
            info!(group = name, members = ?members, "desk group");
        }
    }
    let tone: crate::media::tones::RingbackTone = config
        .desk
        .ringback
        .parse()
        .unwrap_or(crate::media::tones::RingbackTone::Us);
    // One resolver for every SIP host name a call looks up: its clones share one cache.
    let resolver = crate::dns::SipResolver::new(&config.dns.settings().unwrap_or_default());
    Ok(call::DeskSettings {
        groups,
        passwords: config
            .staff
            .users
            .iter()
            .map(|u| (u.name.clone(), u.password.clone()))
            .collect(),
        accept_timeout: Duration::from_secs(config.desk.accept_timeout_s),
        ring_each: Duration::from_secs(config.desk.ring_each_s),
        ringback: crate::media::tones::ringback(tone).into(),
        early_media: config.desk.early_media,
        callback_via: callback_via(config),
        callback_trunk: callback_trunk(config, &resolver),
        callback_window: Duration::from_secs(config.desk.callback_window_h * 3600),
        callback_caller_id: config.desk.callback_caller_id.clone(),
        redirect_hosts: config.desk.redirect_hosts.clone(),
        external: external_trunk(config, &resolver),
        mobiles: config
            .staff
            .users
            .iter()
            .filter_map(|u| Some((u.name.clone(), u.mobile.clone()?)))
            .collect(),
        node: config.cluster.node.clone(),
        resolver,
    })
}

/// `host[:port]` of a SIP URI, as a Request-URI names it.
fn host_port_of(uri: &str) -> Option<String> {
    crate::sip::uri_host_port(uri).map(|(h, p)| match p {
        Some(p) => format!("{h}:{p}"),
        None => h,
    })
}

/// The Request-URI host of calls placed through trunk `t`: its domain, else its registrar's
/// host and port (the registrar is the carrier's proxy).
fn trunk_host(t: &crate::config::TrunkConfig) -> Option<String> {
    if t.domain.is_empty() {
        host_port_of(&t.registrar)
    } else {
        Some(t.domain.clone())
    }
}

/// The account that answers the carrier's 401/407 on INVITEs through trunk `t` (`what` says
/// which calls, for the warning); `None` for a trunk with an HA1 only.
fn trunk_credentials(
    t: &crate::config::TrunkConfig,
    what: &str,
) -> Option<crate::sip::Credentials> {
    if !t.ha1.is_empty() {
        warn!(trunk = %t.name, "{what} through this trunk cannot answer its challenges: the INVITE leg needs the password, not the HA1");
    }
    (!t.password.is_empty()).then(|| crate::sip::Credentials {
        username: t.username.clone(),
        password: t.password.clone(),
    })
}

/// The `[[trunks]]` entry `desk.external_trunk` names (checked at load to exist), as `tel:`
/// members dial it.
fn external_trunk(
    config: &Config,
    resolver: &crate::dns::SipResolver,
) -> Option<call::ExternalTrunk> {
    let t = config
        .trunks
        .iter()
        .find(|t| t.name == config.desk.external_trunk)?;
    let host = trunk_host(t)?;
    let destination = crate::dns::SipDestination::new(&t.registrar, resolver.clone()).ok()?;
    Some(call::ExternalTrunk {
        trunk: t.name.clone(),
        host,
        destination,
        credentials: trunk_credentials(t, "external desk numbers"),
        caller_id: if t.caller_id.is_empty() {
            config.desk.callback_caller_id.clone()
        } else {
            t.caller_id.clone()
        },
        allow: config.desk.number_allow.clone(),
    })
}

/// The `[[trunks]]` entry `desk.callback_trunk` names, if it names one.
fn named_trunk(config: &Config) -> Option<&crate::config::TrunkConfig> {
    config
        .trunks
        .iter()
        .find(|t| t.name == config.desk.callback_trunk)
}

/// Where call-backs go: a `[[trunks]]` entry `desk.callback_trunk` names (its domain, else the
/// registrar's host and port, in the Request-URI; the registrar is the carrier's proxy), or the
/// SIP URI it holds; either way resolved per call (RFC 3263) by `resolver` (`[dns]`), with
/// failover between its targets.
fn callback_trunk(
    config: &Config,
    resolver: &crate::dns::SipResolver,
) -> Option<(String, crate::dns::SipDestination)> {
    let (uri, host) = match named_trunk(config) {
        Some(t) => (t.registrar.as_str(), trunk_host(t)?),
        None => {
            let uri = config.desk.callback_trunk.as_str();
            (uri, host_port_of(uri)?)
        }
    };
    let dest = crate::dns::SipDestination::new(uri, resolver.clone()).ok()?;
    Some((host, dest))
}

fn callback_via(config: &Config) -> Option<call::CallbackVia> {
    let t = named_trunk(config)?;
    Some(call::CallbackVia {
        trunk: t.name.clone(),
        credentials: trunk_credentials(t, "call-backs"),
        caller_id: t.caller_id.clone(),
    })
}

/// Wall-clock Unix seconds (the endpoint's nonce clock is anchored on it at start).
pub(super) fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// Checks every configured flow against the prompt directory, like `ivr check`.
pub(super) fn load_flows(config: &Config) -> Result<FlowTable, ServeError> {
    let load = |path: &std::path::Path, key: &str| {
        crate::flow::check(path, &config.prompts.dir)
            .map(Arc::new)
            .map_err(|diags| ServeError::Flow {
                diags,
                origin: config.path_origin(key),
            })
    };
    let default = load(&config.flows.default, "flows.default")?;
    info!(flow = %config.flows.default.display(), name = %default.name, "default call flow loaded");
    let mut numbers = HashMap::new();
    for (number, path) in &config.flows.numbers {
        let flow = load(path, &crate::config::flow_number_key(number))?;
        info!(%number, flow = %path.display(), "call flow loaded");
        numbers.insert(number.clone(), flow);
    }
    Ok(FlowTable { default, numbers })
}

/// The SIP core's settings, from the config.
pub(super) fn endpoint_config(
    config: &Config,
    listen: SocketAddr,
    public_ip: Option<IpAddr>,
    max_calls: usize,
) -> EndpointConfig {
    let l = &config.sip.limits;
    let rate = |per_s: f64, burst: u32| Rate {
        per_s,
        burst: f64::from(burst),
    };
    // Trusted proxies carry many callers each: never limit them per source.
    let mut exempt = config.limits_exempt();
    exempt.extend(
        config
            .callers
            .trusted_proxies
            .iter()
            .map(|ip| IpNet::from(*ip)),
    );
    let mut domains: Vec<String> = config
        .sip
        .domains
        .iter()
        .map(|d| d.to_ascii_lowercase())
        .collect();
    domains.extend(public_ip.map(|ip| ip.to_string()));
    if !listen.ip().is_unspecified() {
        domains.push(listen.ip().to_string());
    }
    EndpointConfig {
        timers: Timers {
            t1: Duration::from_millis(config.sip.t1_ms),
            ..Timers::default()
        },
        max_calls,
        max_pending_setups: config.sip.max_pending_setups,
        staff: StaffAuth {
            realm: config.staff.realm.clone(),
            users: config
                .staff
                .users
                .iter()
                .map(|u| (u.name.clone(), u.password.clone()))
                .collect(),
            min_expires: config.staff.min_expires,
            max_expires: config.staff.max_expires,
            algorithms: config.staff.digest_algorithms(),
            lockout: LockoutPolicy {
                failures: config.staff.auth_failures_before_block,
                window: Duration::from_secs(config.staff.auth_failure_window_s),
                block: Duration::from_secs(config.staff.auth_block_s),
                block_max: Duration::from_secs(config.staff.auth_block_max_s),
            },
        },
        wall_clock: Some((Instant::now().into_std(), unix_now())),
        admission: AdmissionConfig {
            calls: rate(l.calls_per_s, l.calls_burst),
            registers: rate(l.registers_per_s, l.registers_burst),
            requests: rate(l.requests_per_s, l.requests_burst),
            max_half_open: l.max_half_open,
            silent_after: l.silent_after,
            exempt,
            max_sources: l.max_sources,
        },
        domains,
        follow_routes_to: config.follow_routes_to(),
    }
}
