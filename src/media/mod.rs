//! Media plane: G.711 codecs, RTP packetisation, paced playout, receive statistics, prompts.
//!
//! Sans-IO cores (`g711`, `rtp`, `pacer`, `stats`, `player`, `prompt` conversion, `relay`) are
//! driven by the thin tokio shell in `session`, which owns the call's RTP socket (allocated by
//! `socket`). `relay` carries audio and DTMF between the two sessions of a bridged call; `tones`
//! synthesises ringback and DTMF tones.

pub mod dtmf;
pub mod g711;
pub mod pacer;
pub mod player;
pub mod prompt;
pub mod recorder;
pub mod relay;
pub mod rtp;
pub mod session;
pub mod socket;
pub mod stats;
pub mod tones;

pub use g711::Codec;
pub use prompt::{Prompt, PromptError, PromptStore};
pub use relay::{RelayFrame, RelayOut, frame_from_packet};
pub use rtp::{RtpIn, RtpSender};
pub use session::{MediaHandle, MediaSession, PlayOutcome, Playback, RelaySender};
pub use stats::{RtpStats, RtpStatsSnapshot};
pub use tones::{RingbackTone, dtmf_tone, ringback};
