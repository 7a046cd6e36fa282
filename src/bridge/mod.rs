//! The B2BUA leg to staff: desk groups (who may be rung), who is ringable now (`roster`), the
//! ring schedule (`dialer`), and the shell that rings, whispers and bridges on a live call
//! (`crate::call::dial`).
//!
//! Only members of configured groups are ever dialled: flows name groups, never addresses, and
//! nothing a caller sends (digits, headers) reaches a Request-URI. That is what keeps the line
//! from becoming an open relay for toll fraud.

pub mod desk;
pub mod dialer;
pub mod roster;

pub use desk::{DeskError, DeskGroups, Member, is_allow_pattern, is_e164, number_allowed};
pub use dialer::{DialAction, DialPlan, Dialer, LegEvent, LegId};
