//! The trunks' registrations in the signalling loop: one [`RegisterClient`] per trunk with
//! `register = true`, its REGISTERs run as non-INVITE client transactions of the endpoint that
//! owns the transport (`Endpoint::send_request`), so retransmission, Timer F and response
//! matching are the endpoint's. Living in the loop (rather than a task per trunk talking to it
//! over channels) orders the unregister at shutdown before the loop's exit: the drain waits for
//! requests in flight.
//!
//! Call-ID and From tag stay the same for a trunk's whole life (RFC 3261 §10.2.4: refreshes
//! reuse them), CSeq goes up by one per REGISTER.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::Serialize;
use tracing::{debug, info, warn};

use tokio::sync::mpsc;

use super::inbound::{InboundRules, Verdict};
use super::register::{Action, Input, RegisterClient, RegisterSpec, Report, Secret};
use super::targets::{RegistrarTargets, Resolved, Route};
use crate::config::{TrunkConfig, UnknownSources};
use crate::dns::{DnsError, Failure, SipResolver, Target};
use crate::metrics::Metrics;
use crate::sip::endpoint::random_token;
use crate::sip::message::Transport;
use crate::sip::{Endpoint, RequestOutcome, RequestRef};

/// One trunk as the admin API shows it.
#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
pub struct TrunkStatus {
    pub name: String,
    pub registrar: String,
    pub register: bool,
    /// `registering`, `registered`, `backoff`, `stopped`, or `off` when `register = false`.
    pub state: String,
    pub registered: bool,
    /// Seconds until the provider's binding expires.
    pub expires_in_s: Option<u64>,
    pub failures: u32,
    pub last_error: Option<String>,
    pub service_route: Vec<String>,
    /// Where REGISTERs go now (`IP:port`): the registrar itself, or the SRV target in use.
    pub target: Option<String>,
}

/// The trunks' statuses as the signalling thread last published them.
pub type TrunkStatuses = Arc<[TrunkStatus]>;

struct Registration {
    client: RegisterClient,
    call_id: String,
    from_tag: String,
    targets: RegistrarTargets,
    local: SocketAddr,
    /// The user part of our Contact (`contact_user`, else `username`).
    contact_user: String,
}

/// The Contact we register: `sip:user@local`.
fn contact_uri(user: &str, local: SocketAddr) -> String {
    format!("sip:{user}@{local}")
}

/// Whom a finished DNS lookup is for.
#[derive(Clone, Debug)]
pub enum LookupFor {
    /// `regs[i]`'s registrar.
    Registration(usize),
    /// A trunk that does not register, by name: only its addresses are learnt (the calls it
    /// delivers come from them).
    Inbound(String),
}

/// A finished lookup, handed back to the signalling loop.
pub type LookupDone = (LookupFor, Result<Vec<Target>, DnsError>);

pub struct TrunkShell {
    inbound: InboundRules,
    regs: Vec<Registration>,
    /// Trunks that do not register, for the status list.
    others: Vec<TrunkStatus>,
    /// REGISTERs out: which trunk, which CSeq (a late outcome of an older one is told apart).
    pending: HashMap<RequestRef, (usize, super::register::Send)>,
    metrics: Metrics,
    statuses: tokio::sync::watch::Sender<TrunkStatuses>,
    resolver: SipResolver,
    lookups_tx: mpsc::UnboundedSender<LookupDone>,
    lookups_rx: Option<mpsc::UnboundedReceiver<LookupDone>>,
    /// Non-registering trunks by name whose addresses are to be learnt at start.
    learn_at_start: Vec<(String, String)>,
}

impl TrunkShell {
    /// `local` is the SIP address we are bound to; with 0.0.0.0 the address towards each
    /// registrar is asked of the kernel, and `public_ip` (NAT) wins over both.
    /// `resolver` turns registrars written as host names into targets (RFC 3263); IP
    /// literals never reach it.
    pub fn new(
        trunks: &[TrunkConfig],
        unknown: UnknownSources,
        local: SocketAddr,
        public_ip: Option<IpAddr>,
        metrics: Metrics,
        statuses: tokio::sync::watch::Sender<TrunkStatuses>,
        resolver: SipResolver,
    ) -> Self {
        let mut regs = Vec::new();
        let mut others = Vec::new();
        let mut learn_at_start = Vec::new();
        for t in trunks {
            let literal = t.registrar_addr();
            if !t.register {
                if literal.is_none() && t.inbound_from.is_empty() {
                    learn_at_start.push((t.name.clone(), t.registrar.clone()));
                }
                others.push(TrunkStatus {
                    name: t.name.clone(),
                    registrar: t.registrar.clone(),
                    register: false,
                    state: "off".into(),
                    registered: false,
                    expires_in_s: None,
                    failures: 0,
                    last_error: None,
                    service_route: Vec::new(),
                    target: literal.map(|a| a.to_string()),
                });
                continue;
            }
            let (host, port) = crate::sip::uri_host_port(&t.registrar).unwrap_or_default();
            let request_uri = match port {
                Some(p) => format!("sip:{host}:{p}"),
                None => format!("sip:{host}"),
            };
            // Unknown until a name is looked up; `contact_towards` fixes it then.
            let ip = public_ip
                .or_else(|| (!local.ip().is_unspecified()).then_some(local.ip()))
                .or_else(|| literal.and_then(crate::sip::route_source_ip))
                .unwrap_or(local.ip());
            let local = SocketAddr::new(ip, local.port());
            let domain = if t.domain.is_empty() {
                &host
            } else {
                &t.domain
            };
            let spec = RegisterSpec {
                trunk: t.name.clone(),
                request_uri,
                aor: format!("sip:{}@{domain}", t.username),
                contact: contact_uri(t.contact_user(), local),
                username: t.username.clone(),
                secret: if t.ha1.is_empty() {
                    Secret::Password(t.password.clone())
                } else {
                    Secret::Ha1(t.ha1.clone())
                },
                realm: (!t.realm.is_empty()).then(|| t.realm.clone()),
                expires: t.expires,
                retry_initial: Duration::from_secs(t.retry_initial_s),
                retry_max: Duration::from_secs(t.retry_max_s),
            };
            metrics.trunk_registered(&t.name, false);
            regs.push(Registration {
                client: RegisterClient::new(spec, rand::random()),
                call_id: format!("{}@ivr", random_token(20)),
                from_tag: random_token(10),
                targets: RegistrarTargets::new(&t.registrar, literal),
                local,
                contact_user: t.contact_user().to_string(),
            });
        }
        let (lookups_tx, lookups_rx) = mpsc::unbounded_channel();
        TrunkShell {
            inbound: InboundRules::new(trunks, unknown),
            regs,
            others,
            pending: HashMap::new(),
            metrics,
            statuses,
            resolver,
            lookups_tx,
            lookups_rx: Some(lookups_rx),
            learn_at_start,
        }
    }

    /// Where finished DNS lookups arrive: the signalling loop waits on it and hands each to
    /// [`TrunkShell::lookup_done`]. Taken once.
    pub fn take_lookups(&mut self) -> Option<mpsc::UnboundedReceiver<LookupDone>> {
        self.lookups_rx.take()
    }

    pub fn start(&mut self, now: Instant, ep: &mut Endpoint) {
        for i in 0..self.regs.len() {
            let spec = self.regs[i].client.spec();
            info!(trunk = %spec.trunk, registrar = %spec.request_uri, aor = %spec.aor, contact = %spec.contact,
                event = "trunk_registering", "trunk registering");
            let actions = self.regs[i].client.start(now);
            self.apply(now, i, actions, ep);
        }
        for (name, uri) in std::mem::take(&mut self.learn_at_start) {
            self.spawn_lookup(LookupFor::Inbound(name), uri);
        }
        self.publish(now);
    }

    /// Runs an RFC 3263 lookup off the loop (on its runtime); the answer comes back through
    /// [`TrunkShell::take_lookups`].
    fn spawn_lookup(&self, whom: LookupFor, uri: String) {
        let resolver = self.resolver.clone();
        let tx = self.lookups_tx.clone();
        tokio::spawn(async move {
            let result = resolver.resolve(&uri, &[crate::dns::Transport::Udp]).await;
            let _ = tx.send((whom, result));
        });
    }

    /// A lookup finished: the trunk's provider addresses are learnt (when `inbound_from` is not
    /// written, calls from them are the trunk's), and a REGISTER waiting for it goes out or
    /// fails with the DNS error.
    pub fn lookup_done(&mut self, now: Instant, done: LookupDone, ep: &mut Endpoint) {
        let (whom, result) = done;
        let i = match whom {
            LookupFor::Inbound(name) => {
                match &result {
                    Ok(targets) => {
                        self.inbound
                            .learn(&name, targets.iter().map(|t| t.addr.ip()));
                    }
                    Err(e) => warn!(trunk = %name, error = %e, event = "trunk_unresolved",
                        "trunk host name did not resolve; its calls are not recognised by source"),
                }
                return;
            }
            LookupFor::Registration(i) if i < self.regs.len() => i,
            LookupFor::Registration(_) => return,
        };
        let trunk = self.regs[i].client.spec().trunk.clone();
        if let Ok(targets) = &result {
            let list: Vec<String> = targets.iter().map(ToString::to_string).collect();
            info!(%trunk, registrar = %self.regs[i].targets.uri(), targets = ?list,
                event = "trunk_resolved", "trunk registrar resolved");
            self.inbound
                .learn(&trunk, targets.iter().map(|t| t.addr.ip()));
            if let Some(first) = targets.first() {
                self.contact_towards(i, first.addr);
            }
        }
        match self.regs[i].targets.resolved(result) {
            Resolved::SendTo(to, send) => self.send_register(now, i, to, send, ep),
            Resolved::Failed { cseq, reason } => {
                let actions = self.regs[i]
                    .client
                    .handle(now, Input::Unreachable { cseq, reason });
                self.apply(now, i, actions, ep);
            }
            Resolved::Idle => {}
        }
        self.publish(now);
    }

    /// Bound to 0.0.0.0 with no public IP and a registrar found by name: our address is the
    /// one the kernel would send from towards it, known only now. Set once, before the first
    /// REGISTER, so bindings never move between addresses.
    fn contact_towards(&mut self, i: usize, to: SocketAddr) {
        let r = &mut self.regs[i];
        if !r.local.ip().is_unspecified() {
            return;
        }
        if let Some(ip) = crate::sip::route_source_ip(to) {
            r.local = SocketAddr::new(ip, r.local.port());
            r.client.set_contact(contact_uri(&r.contact_user, r.local));
        }
    }

    /// Marks a new call with its trunk and DID; false when it must be refused (403), which is
    /// logged here.
    pub fn admit(&self, incoming: &mut crate::sip::IncomingCall) -> bool {
        let ru_user = crate::sip::uri_user(&incoming.request_uri);
        // A staff phone that proved who it is (a desk call-back) is staff, wherever it sits.
        if incoming.staff_user.is_some() {
            return true;
        }
        let verdict = self.inbound.classify(
            incoming.source.ip(),
            ru_user,
            incoming.to.user(),
            incoming.staff_user.is_some(),
        );
        match verdict {
            Verdict::Trunk { trunk, dialled } => {
                info!(call_id = %incoming.call_id, %trunk, %dialled, source = %incoming.source,
                    event = "trunk_call", "call from trunk");
                incoming.trunk = Some(trunk);
                incoming.dialled = Some(dialled);
                true
            }
            Verdict::Answer => true,
            Verdict::Refuse => {
                warn!(call_id = %incoming.call_id, source = %incoming.source, to = %incoming.request_uri,
                    event = "unknown_source_refused",
                    "call from an address that is no trunk's refused ([sip] unknown_sources = \"refuse\")");
                false
            }
        }
    }

    /// The route set (RFC 3608 Service-Route from the last 200) for an outgoing INVITE to
    /// `destination`, when that is a registered trunk's registrar: added to the leg as Route
    /// headers so the carrier's edge proxies see the request on the path it gave us.
    pub fn route_for(&self, destination: SocketAddr) -> Vec<String> {
        self.regs
            .iter()
            .find(|r| r.targets.current() == Some(destination))
            .map(|r| r.client.service_route().to_vec())
            .unwrap_or_default()
    }

    pub fn next_wake(&self) -> Option<Instant> {
        self.regs.iter().filter_map(|r| r.client.next_wake()).min()
    }

    /// Feeds due timers and finished REGISTER transactions to the clients.
    pub fn poll(&mut self, now: Instant, ep: &mut Endpoint) {
        let mut changed = false;
        while let Some((id, outcome)) = ep.poll_request_outcome() {
            let Some((i, send)) = self.pending.remove(&id) else {
                continue;
            };
            let cseq = send.cseq;
            // RFC 3263 §4.3: a registrar target that is silent or says 503 hands the same
            // REGISTER (a new transaction) to the next one; the client hears only the last.
            let failure = match &outcome {
                RequestOutcome::Response(resp) => Failure::Status(resp.status),
                RequestOutcome::Timeout => Failure::Timeout,
            };
            if let Some(failed) = self.regs[i].targets.current()
                && let Some(next) = self.regs[i].targets.failed(failure)
            {
                let trunk = self.regs[i].client.spec().trunk.clone();
                warn!(%trunk, %failed, %next, failure = ?failure, event = "trunk_registrar_failover",
                    "trunk registrar target failed; sending the REGISTER to the next");
                self.send_register(now, i, next, send, ep);
                changed = true;
                continue;
            }
            let input = match outcome {
                RequestOutcome::Response(resp) => Input::Reply(super::wire::reply_of(&resp)),
                RequestOutcome::Timeout => Input::Timeout { cseq },
            };
            let actions = self.regs[i].client.handle(now, input);
            self.apply(now, i, actions, ep);
            changed = true;
        }
        for i in 0..self.regs.len() {
            if self.regs[i].client.next_wake().is_some_and(|w| w <= now) {
                let actions = self.regs[i].client.handle(now, Input::Timer);
                self.apply(now, i, actions, ep);
                changed = true;
            }
        }
        if changed {
            self.publish(now);
        }
    }

    /// Removes the live bindings (`Expires: 0`); the drain then waits for the answers.
    pub fn shutdown(&mut self, now: Instant, ep: &mut Endpoint) {
        for i in 0..self.regs.len() {
            let actions = self.regs[i].client.handle(now, Input::Shutdown);
            self.apply(now, i, actions, ep);
        }
        self.publish(now);
    }

    fn apply(&mut self, now: Instant, i: usize, actions: Vec<Action>, ep: &mut Endpoint) {
        for a in actions {
            let trunk = self.regs[i].client.spec().trunk.clone();
            match a {
                Action::Send(send) => match self.regs[i].targets.route(send) {
                    Route::SendTo(to, send) => self.send_register(now, i, to, send, ep),
                    Route::Lookup => {
                        let uri = self.regs[i].targets.uri().to_string();
                        self.spawn_lookup(LookupFor::Registration(i), uri);
                    }
                    Route::Wait => {}
                },
                Action::Report(report) => self.report(&trunk, report),
            }
        }
        let registered = self.regs[i].client.registered(now);
        let trunk = self.regs[i].client.spec().trunk.clone();
        self.metrics.trunk_registered(&trunk, registered);
    }

    /// One REGISTER to `to`, as a new client transaction (a fresh branch).
    fn send_register(
        &mut self,
        now: Instant,
        i: usize,
        to: SocketAddr,
        send: super::register::Send,
        ep: &mut Endpoint,
    ) {
        let r = &self.regs[i];
        let trunk = &r.client.spec().trunk;
        self.metrics.trunk_register_attempt(trunk);
        let branch = format!("z9hG4bK{}", random_token(16));
        let bytes = super::wire::render_register(
            r.client.spec(),
            r.local,
            &r.call_id,
            &r.from_tag,
            &branch,
            &send,
        );
        debug!(%trunk, %to, cseq = send.cseq, expires = send.expires, auth = send.authorization.is_some(), "REGISTER out");
        let id = ep.send_request(now, to, Transport::Udp, &branch, bytes);
        self.pending.insert(id, (i, send));
    }

    fn report(&self, trunk: &str, report: Report) {
        match report {
            Report::Registered {
                granted,
                refresh_in,
            } => info!(%trunk, granted_s = granted, refresh_in_s = refresh_in.as_secs(),
                event = "trunk_registered", "trunk registered"),
            Report::Failed {
                reason,
                retry_in,
                failures,
                auth,
            } => {
                self.metrics.trunk_register_failure(trunk);
                warn!(%trunk, %reason, failures, auth, retry_in_ms = retry_in.as_millis() as u64,
                    event = "trunk_register_failed",
                    "trunk registration failed ({reason}); next try in {:.1} s", retry_in.as_secs_f64());
            }
            Report::Lapsed => warn!(%trunk, event = "trunk_lapsed",
                "trunk registration lapsed: the provider no longer delivers calls to us"),
            Report::Unregistered => {
                info!(%trunk, event = "trunk_unregistered", "trunk unregistered")
            }
        }
    }

    fn publish(&self, now: Instant) {
        let list: Vec<TrunkStatus> = self
            .regs
            .iter()
            .map(|r| {
                let c = &r.client;
                TrunkStatus {
                    name: c.spec().trunk.clone(),
                    registrar: c.spec().request_uri.clone(),
                    register: true,
                    state: c.phase().name().into(),
                    registered: c.registered(now),
                    expires_in_s: c
                        .bound_until()
                        .filter(|b| *b > now)
                        .map(|b| (b - now).as_secs()),
                    failures: c.failures(),
                    last_error: c.last_error().map(str::to_string),
                    service_route: c.service_route().to_vec(),
                    target: r.targets.current().map(|a| a.to_string()),
                }
            })
            .chain(self.others.iter().cloned())
            .collect();
        self.statuses.send_replace(list.into());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;
    use crate::sip::{EndpointConfig, Output};

    fn shell() -> (
        TrunkShell,
        Endpoint,
        tokio::sync::watch::Receiver<TrunkStatuses>,
    ) {
        let c = Config::from_str(
            "[[trunks]]\nname = \"carrier\"\nregistrar = \"sip:192.0.2.10:5060\"\n\
             username = \"acct\"\npassword = \"pw\"\n",
            "test",
        )
        .unwrap();
        let (tx, rx) = tokio::sync::watch::channel(Arc::from(Vec::new()));
        let shell = TrunkShell::new(
            &c.trunks,
            UnknownSources::Answer,
            "127.0.0.1:5060".parse().unwrap(),
            None,
            Metrics::new(),
            tx,
            SipResolver::new(&crate::dns::DnsSettings::default()),
        );
        (shell, Endpoint::new(EndpointConfig::default()), rx)
    }

    /// The REGISTER the endpoint sent, as text.
    fn sent(ep: &mut Endpoint) -> String {
        match ep.poll_output() {
            Some(Output::Transmit { bytes, to, .. }) => {
                assert_eq!(to, "192.0.2.10:5060".parse().unwrap());
                String::from_utf8(bytes.to_vec()).unwrap()
            }
            other => panic!("expected a REGISTER, got {other:?}"),
        }
    }

    fn header<'a>(msg: &'a str, name: &str) -> &'a str {
        msg.lines()
            .find_map(|l| l.strip_prefix(&format!("{name}: ")))
            .unwrap_or_else(|| panic!("no {name} in {msg}"))
    }

    #[test]
    fn registered_service_route_becomes_the_route_set_towards_the_trunk() {
        let (mut shell, mut ep, statuses) = shell();
        let now = Instant::now();
        shell.start(now, &mut ep);
        let register = sent(&mut ep);
        assert!(
            register.starts_with("REGISTER sip:192.0.2.10:5060 SIP/2.0\r\n"),
            "{register}"
        );
        assert_eq!(header(&register, "Contact"), "<sip:acct@127.0.0.1:5060>");
        assert_eq!(header(&register, "CSeq"), "1 REGISTER");
        let ok = register
            .replacen("REGISTER sip:192.0.2.10:5060 SIP/2.0", "SIP/2.0 200 OK", 1)
            .replace(
                "Expires: 3600\r\n",
                "Expires: 600\r\nService-Route: <sip:edge1.carrier.test;lr>, <sip:core.carrier.test;lr>\r\n",
            );
        let to: SocketAddr = "192.0.2.10:5060".parse().unwrap();
        ep.handle_message(
            now,
            ok.as_bytes(),
            to,
            Transport::Udp,
            "127.0.0.1:5060".parse().unwrap(),
        );
        shell.poll(now, &mut ep);
        assert_eq!(
            shell.route_for(to),
            ["<sip:edge1.carrier.test;lr>", "<sip:core.carrier.test;lr>"]
        );
        assert!(
            shell
                .route_for("192.0.2.99:5060".parse().unwrap())
                .is_empty()
        );
        let status = statuses.borrow().clone();
        assert_eq!(status[0].state, "registered");
        assert_eq!(status[0].expires_in_s, Some(600));
        // The refresh keeps Call-ID and From tag, with the next CSeq.
        let refresh_at = shell.next_wake().unwrap();
        assert_eq!(refresh_at, now + Duration::from_secs(540));
        shell.poll(refresh_at, &mut ep);
        let refresh = sent(&mut ep);
        assert_eq!(header(&refresh, "Call-ID"), header(&register, "Call-ID"));
        assert_eq!(header(&refresh, "From"), header(&register, "From"));
        assert_eq!(header(&refresh, "CSeq"), "2 REGISTER");
    }
}
