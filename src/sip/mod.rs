//! SIP signalling: message parsing, SDP offer/answer, transactions, dialogs and transport.
//!
//! The rest of `ivr` uses the surface re-exported here: the endpoint core and what goes in and
//! out of it, the transport shell, the URI helpers and `sdp` for offer/answer. The submodules
//! stay public for tests and benchmarks that drive one layer on its own.
pub mod admission;
pub mod auth;
pub mod dialog;
pub mod endpoint;
pub mod message;
pub mod registrar;
pub mod sdp;
pub mod transaction;
pub mod transport;

pub(crate) use crate::log_throttle::LogThrottle;
pub use auth::Algorithm;
pub use dialog::{name_addr_uri, uri_host_port, uri_socket_addr};
pub use endpoint::{
    CallEvent, CallRef, Credentials, EndReason, Endpoint, EndpointConfig, IncomingCall,
    OutboundCall, Output, Refused, RequestOutcome, RequestRef, StaffAuth,
};
pub use message::{Transport, uri_user};
pub use registrar::{Binding, Registration};
pub use transaction::Timers;
pub use transport::{SipTransport, route_source_ip};
