//! The endpoint's settings: RFC 3261 timers, call limits and overload thresholds, and the staff
//! registrar's realm, users and expiry bounds.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use ipnet::IpNet;

use crate::sip::admission::AdmissionConfig;
use crate::sip::auth::{Algorithm, LockoutPolicy};
use crate::sip::transaction::Timers;

#[derive(Clone, Debug)]
pub struct EndpointConfig {
    pub timers: Timers,
    /// New INVITEs beyond this many live calls get 503.
    pub max_calls: usize,
    /// New INVITEs get 503 (statelessly, before any call is created) while this many calls
    /// have not been answered by their call task yet: the tasks are behind, and taking more
    /// work would only make every call late.
    pub max_pending_setups: usize,
    /// Who may REGISTER, and for how long.
    pub staff: StaffAuth,
    /// A monotonic instant and the Unix second it corresponds to: digest nonces carry Unix time,
    /// and the endpoint derives it from the `now` it is handed (so nonce staleness follows the
    /// same clock as every other timer, virtual in tests). `None`: the first instant the
    /// endpoint sees counts as Unix second 0, which is fine for nonces that only this process
    /// verifies.
    pub wall_clock: Option<(Instant, u64)>,
    /// Per-source limits on out-of-dialog requests (see `sip::admission`).
    pub admission: AdmissionConfig,
    /// Host names and addresses (lower case) a Request-URI may name besides the address the
    /// request arrived on; a request for any other host gets 404 (RFC 3261 §8.2.2.1).
    pub domains: Vec<String>,
    /// Networks a dialog's Record-Route or Contact may send our in-dialog requests to when it
    /// names a host other than the one the dialog came from (a proxy in front).
    pub follow_routes_to: Vec<IpNet>,
}

impl Default for EndpointConfig {
    fn default() -> Self {
        EndpointConfig {
            timers: Timers::default(),
            max_calls: 1000,
            max_pending_setups: 400,
            staff: StaffAuth::default(),
            wall_clock: None,
            admission: AdmissionConfig::default(),
            domains: Vec::new(),
            follow_routes_to: Vec::new(),
        }
    }
}

/// How long a digest nonce stays fresh; an older one gets a `stale=true` re-challenge.
pub const NONCE_TTL: Duration = Duration::from_secs(300);

/// The registrar's settings: the digest realm, the staff credentials, the expiry bounds and the
/// lockout after failed answers.
#[derive(Clone)]
pub struct StaffAuth {
    pub realm: String,
    /// User name → password. Empty: REGISTER is refused with 403.
    pub users: HashMap<String, String>,
    pub min_expires: u32,
    pub max_expires: u32,
    /// The challenge algorithms, one `WWW-Authenticate` each, in this order (RFC 8760 §2.4:
    /// most preferred first).
    pub algorithms: Vec<Algorithm>,
    /// When failed digest answers block a source or a user (see `sip::auth::Lockout`).
    pub lockout: LockoutPolicy,
}

impl Default for StaffAuth {
    fn default() -> Self {
        StaffAuth {
            realm: "ivr".to_string(),
            users: HashMap::new(),
            min_expires: crate::sip::registrar::MIN_EXPIRES,
            max_expires: 3600,
            algorithms: vec![Algorithm::Sha256, Algorithm::Md5],
            lockout: LockoutPolicy::default(),
        }
    }
}

impl std::fmt::Debug for StaffAuth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut users: Vec<&String> = self.users.keys().collect();
        users.sort();
        f.debug_struct("StaffAuth")
            .field("realm", &self.realm)
            .field("users", &users)
            .field("min_expires", &self.min_expires)
            .field("max_expires", &self.max_expires)
            .field("algorithms", &self.algorithms)
            .field("lockout", &self.lockout)
            .finish()
    }
}
