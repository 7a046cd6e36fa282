//! The async shell: hickory-resolver does the lookups the [`Procedure`] asks for.
//!
//! Name servers come from `[dns] servers` (empty: /etc/resolv.conf). Caching is hickory's own:
//! each answer (positive or negative) is kept for its record TTL and then asked again, so a
//! trunk's SRV change is seen within its TTL and a call-back in between costs no query.
//! Other modules (and tests) resolve through the [`Lookup`] trait, so anything that answers
//! NAPTR, SRV and A/AAAA can stand in for DNS.

use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use hickory_resolver::config::{NameServerConfig, ResolverConfig};
use hickory_resolver::net::NetError;
use hickory_resolver::net::runtime::TokioRuntimeProvider;
use hickory_resolver::proto::rr::RData;
use hickory_resolver::{Resolver, TokioResolver};
use tracing::{debug, warn};

use super::procedure::{Answer, Procedure, Query};
use super::srv::{NaptrRecord, SrvRecord};
use super::uri::{SipUri, Transport};
use super::{DnsError, Target};

/// `[dns]` as the resolver takes it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DnsSettings {
    /// Name servers to ask; empty: the system's (/etc/resolv.conf).
    pub servers: Vec<SocketAddr>,
    /// How long one query waits for an answer.
    pub timeout: Duration,
    /// How many times a query is sent before it counts as timed out.
    pub attempts: usize,
}

impl Default for DnsSettings {
    fn default() -> Self {
        DnsSettings {
            servers: Vec::new(),
            timeout: Duration::from_secs(2),
            attempts: 2,
        }
    }
}

/// A boxed lookup future (the trait is used as `dyn`).
pub type LookupFuture<'a, T> = Pin<Box<dyn Future<Output = Result<T, DnsError>> + Send + 'a>>;

/// The three lookups RFC 3263 needs. `name` carries no trailing dot; it is always absolute.
pub trait Lookup: Send + Sync {
    fn naptr<'a>(&'a self, name: &'a str) -> LookupFuture<'a, Vec<NaptrRecord>>;
    fn srv<'a>(&'a self, name: &'a str) -> LookupFuture<'a, Vec<SrvRecord>>;
    /// A and AAAA.
    fn addrs<'a>(&'a self, name: &'a str) -> LookupFuture<'a, Vec<IpAddr>>;
}

/// [`Lookup`] over hickory-resolver, with its TTL-honouring cache.
pub struct HickoryLookup {
    resolver: TokioResolver,
}

impl HickoryLookup {
    pub fn new(settings: &DnsSettings) -> Result<HickoryLookup, DnsError> {
        let failed = |e: NetError| DnsError::Failed {
            name: "(resolver)".into(),
            reason: format!("cannot set up DNS: {e}"),
        };
        let mut builder = if settings.servers.is_empty() {
            TokioResolver::builder_tokio().map_err(failed)?
        } else {
            let servers = settings
                .servers
                .iter()
                .map(|s| {
                    let mut ns = NameServerConfig::udp_and_tcp(s.ip());
                    for c in &mut ns.connections {
                        c.port = s.port();
                    }
                    ns
                })
                .collect();
            Resolver::builder_with_config(
                ResolverConfig::from_name_servers(servers),
                TokioRuntimeProvider::default(),
            )
        };
        let opts = builder.options_mut();
        opts.timeout = settings.timeout;
        opts.attempts = settings.attempts.max(1);
        let resolver = builder.build().map_err(failed)?;
        Ok(HickoryLookup { resolver })
    }
}

/// hickory's error as ours, naming the query.
fn dns_error(name: &str, kind: &'static str, e: &NetError) -> DnsError {
    let name = name.to_string();
    if e.is_nx_domain() {
        DnsError::NxDomain { name }
    } else if e.is_no_records_found() {
        DnsError::NoRecords { name, kind }
    } else if matches!(e, NetError::Timeout) || e.to_string().contains("timed out") {
        DnsError::Timeout { name }
    } else {
        DnsError::Failed {
            name,
            reason: e.to_string(),
        }
    }
}

/// `pbx.test` → `pbx.test.`: SIP hosts are absolute, never tried against the search list.
fn absolute(name: &str) -> String {
    format!("{}.", name.trim_end_matches('.'))
}

fn name_text(n: &hickory_resolver::proto::rr::Name) -> String {
    n.to_ascii().trim_end_matches('.').to_ascii_lowercase()
}

impl Lookup for HickoryLookup {
    fn naptr<'a>(&'a self, name: &'a str) -> LookupFuture<'a, Vec<NaptrRecord>> {
        Box::pin(async move {
            let lookup = self
                .resolver
                .lookup(
                    absolute(name),
                    hickory_resolver::proto::rr::RecordType::NAPTR,
                )
                .await
                .map_err(|e| dns_error(name, "NAPTR", &e))?;
            Ok(lookup
                .answers()
                .iter()
                .filter_map(|r| match &r.data {
                    RData::NAPTR(n) => Some(NaptrRecord {
                        order: n.order,
                        preference: n.preference,
                        flags: String::from_utf8_lossy(&n.flags).into_owned(),
                        services: String::from_utf8_lossy(&n.services).into_owned(),
                        replacement: name_text(&n.replacement),
                    }),
                    _ => None,
                })
                .collect())
        })
    }

    fn srv<'a>(&'a self, name: &'a str) -> LookupFuture<'a, Vec<SrvRecord>> {
        Box::pin(async move {
            let lookup = self
                .resolver
                .srv_lookup(absolute(name))
                .await
                .map_err(|e| dns_error(name, "SRV", &e))?;
            Ok(lookup
                .answers()
                .iter()
                .filter_map(|r| match &r.data {
                    RData::SRV(s) => Some(SrvRecord {
                        priority: s.priority,
                        weight: s.weight,
                        port: s.port,
                        target: match name_text(&s.target) {
                            t if t.is_empty() => ".".into(),
                            t => t,
                        },
                    }),
                    _ => None,
                })
                .collect())
        })
    }

    fn addrs<'a>(&'a self, name: &'a str) -> LookupFuture<'a, Vec<IpAddr>> {
        Box::pin(async move {
            let lookup = self
                .resolver
                .lookup_ip(absolute(name))
                .await
                .map_err(|e| dns_error(name, "A/AAAA", &e))?;
            Ok(lookup.iter().collect())
        })
    }
}

/// Runs RFC 3263 for `uri` over `lookup`; `pick` is the SRV weight draw (RFC 2782).
pub async fn resolve_with(
    lookup: &dyn Lookup,
    uri: SipUri,
    supported: &[Transport],
    pick: &mut (impl FnMut(u32) -> u32 + Send),
) -> Result<Vec<Target>, DnsError> {
    let mut p = Procedure::new(uri, supported);
    while let Some(q) = p.next_query() {
        let answer = match &q {
            Query::Naptr(n) => lookup.naptr(n).await.map(Answer::Naptr),
            Query::Srv(n) => lookup.srv(n).await.map(Answer::Srv),
            Query::Addr(n) => lookup.addrs(n).await.map(Answer::Addr),
        };
        match &answer {
            Ok(a) => debug!(query = ?q, answer = ?a, "DNS answer"),
            Err(e) => debug!(query = ?q, error = %e, "DNS lookup gave nothing"),
        }
        p.on_answer(&q, answer);
    }
    p.finish(pick)
}

type Shared = Result<Arc<dyn Lookup>, DnsError>;

/// What the SIP senders hold: resolves a URI to its ordered targets. Cheap to clone (clones
/// share one lookup and so one cache).
#[derive(Clone)]
pub struct SipResolver {
    settings: DnsSettings,
    /// Set up at the first host name, so a config of IP literals never reads /etc/resolv.conf;
    /// `Err`: it could not be (no resolv.conf...), which each host-name lookup then returns.
    lookup: Arc<std::sync::OnceLock<Shared>>,
}

impl std::fmt::Debug for SipResolver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SipResolver")
            .field("settings", &self.settings)
            .finish()
    }
}

impl SipResolver {
    /// Over hickory with `settings`, set up when first needed.
    pub fn new(settings: &DnsSettings) -> SipResolver {
        SipResolver {
            settings: settings.clone(),
            lookup: Arc::new(std::sync::OnceLock::new()),
        }
    }

    /// Over any [`Lookup`] (tests, a fixed table).
    pub fn with_lookup(lookup: Arc<dyn Lookup>) -> SipResolver {
        SipResolver {
            settings: DnsSettings::default(),
            lookup: Arc::new(std::sync::OnceLock::from(Ok(lookup))),
        }
    }

    fn lookup(&self) -> Shared {
        self.lookup
            .get_or_init(|| {
                HickoryLookup::new(&self.settings)
                    .map(|l| Arc::new(l) as Arc<dyn Lookup>)
                    .inspect_err(|e| {
                        warn!(error = %e, "DNS resolver unavailable; SIP host names will not resolve")
                    })
            })
            .clone()
    }

    /// The targets for `uri` in the order to try them, keeping only `supported` transports.
    /// Errors are logged here with the URI; the caller adds its own context.
    pub async fn resolve(
        &self,
        uri: &str,
        supported: &[Transport],
    ) -> Result<Vec<Target>, DnsError> {
        let parsed = SipUri::parse(uri)?;
        let result = if parsed.ip().is_some() {
            // An IP literal: no DNS.
            Procedure::new(parsed, supported).finish(&mut |_| 0)
        } else {
            match self.lookup() {
                Ok(lookup) => {
                    resolve_with(lookup.as_ref(), parsed, supported, &mut |total| {
                        rand::random_range(0..=total)
                    })
                    .await
                }
                Err(e) => Err(e),
            }
        };
        match &result {
            Ok(targets) => {
                let list: Vec<String> = targets.iter().map(ToString::to_string).collect();
                debug!(%uri, targets = ?list, "SIP URI resolved");
            }
            Err(e) => warn!(%uri, error = %e, "SIP URI did not resolve"),
        }
        result
    }
}

/// A configured SIP address with the resolver to find it: what a sender keeps per trunk or
/// fixed phone. Resolving happens per request, so TTLs (and hickory's cache) decide freshness.
#[derive(Clone, Debug)]
pub struct SipDestination {
    pub uri: String,
    resolver: SipResolver,
}

impl SipDestination {
    /// Checks the URI's syntax now (config time); DNS is asked only when it is used.
    pub fn new(uri: &str, resolver: SipResolver) -> Result<SipDestination, super::uri::UriError> {
        SipUri::parse(uri)?;
        Ok(SipDestination {
            uri: uri.to_string(),
            resolver,
        })
    }

    /// The targets to try, in order, as a failover cursor.
    pub async fn cursor(&self, supported: &[Transport]) -> Result<super::TargetCursor, DnsError> {
        let targets = self.resolver.resolve(&self.uri, supported).await?;
        Ok(super::TargetCursor::new(targets))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    /// A fixed table standing in for DNS: what another module's tests would do.
    #[derive(Default)]
    struct Table {
        srv: HashMap<&'static str, Vec<SrvRecord>>,
        addrs: HashMap<&'static str, Vec<IpAddr>>,
    }

    impl Lookup for Table {
        fn naptr<'a>(&'a self, name: &'a str) -> LookupFuture<'a, Vec<NaptrRecord>> {
            Box::pin(async move {
                Err(DnsError::NoRecords {
                    name: name.into(),
                    kind: "NAPTR",
                })
            })
        }
        fn srv<'a>(&'a self, name: &'a str) -> LookupFuture<'a, Vec<SrvRecord>> {
            Box::pin(async move { Ok(self.srv.get(name).cloned().unwrap_or_default()) })
        }
        fn addrs<'a>(&'a self, name: &'a str) -> LookupFuture<'a, Vec<IpAddr>> {
            Box::pin(async move {
                self.addrs
                    .get(name)
                    .cloned()
                    .ok_or(DnsError::NxDomain { name: name.into() })
            })
        }
    }

    fn table() -> Table {
        let srv = |weight, target: &str| SrvRecord {
            priority: 10,
            weight,
            port: 5060,
            target: target.into(),
        };
        let mut t = Table::default();
        t.srv.insert(
            "_sip._udp.pbx.test",
            vec![srv(1, "light.test"), srv(99, "heavy.test")],
        );
        t.addrs
            .insert("light.test", vec!["192.0.2.1".parse().unwrap()]);
        t.addrs
            .insert("heavy.test", vec!["192.0.2.2".parse().unwrap()]);
        t
    }

    fn rt() -> tokio::runtime::Runtime {
        tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap()
    }

    #[test]
    fn any_lookup_can_stand_in_for_dns_and_the_draw_decides_equal_priorities() {
        let t = table();
        let first = |draw: u32| {
            let uri = SipUri::parse("sip:pbx.test").unwrap();
            rt().block_on(resolve_with(&t, uri, &[Transport::Udp], &mut |_| draw))
                .unwrap()[0]
                .to_string()
        };
        assert_eq!(first(1), "192.0.2.1:5060/udp");
        assert_eq!(first(2), "192.0.2.2:5060/udp");
        // Through SipResolver with its real random draw: both targets, in some order.
        let r = SipResolver::with_lookup(Arc::new(table()));
        let got = rt()
            .block_on(r.resolve("sip:desk@pbx.test", &[Transport::Udp]))
            .unwrap();
        assert_eq!(got.len(), 2, "{got:?}");
    }

    #[test]
    fn ip_literals_never_ask_the_resolver() {
        // Name servers that do not exist: an IP literal still resolves, without DNS.
        let r = SipResolver::new(&DnsSettings {
            servers: vec!["127.0.0.1:9".parse().unwrap()],
            ..DnsSettings::default()
        });
        let got = rt()
            .block_on(r.resolve("sip:192.0.2.5:5070", &[Transport::Udp]))
            .unwrap();
        assert_eq!(got[0].to_string(), "192.0.2.5:5070/udp");
        assert!(
            r.lookup.get().is_none(),
            "the resolver was set up for an IP literal"
        );
    }
}
