//! Media plane: G.711 codecs, RTP packetisation, paced playout, receive statistics, prompts.
//!
//! Sans-IO cores (`g711`, `rtp`, `pacer`, `stats`, `player`, `prompt` conversion) are driven by the
//! thin tokio shell in `session`, which owns the call's RTP socket (allocated by `socket`).

pub mod dtmf;
pub mod g711;
pub mod pacer;
pub mod player;
pub mod prompt;
pub mod recorder;
pub mod rtp;
pub mod session;
pub mod socket;
pub mod stats;

pub use g711::Codec;
pub use prompt::{Prompt, PromptError, PromptStore};
pub use rtp::{RtpIn, RtpSender};
pub use session::{MediaHandle, MediaSession, PlayOutcome, Playback};
pub use stats::{RtpStats, RtpStatsSnapshot};
