//! Media plane: G.711 codecs, RTP packetisation, paced playout, receive statistics, prompts.
//!
//! Sans-IO cores (`g711`, `rtp`, `pacer`, `outgoing`, `stats`, `player`, `prompt` conversion,
//! `relay`, `latch` (which received RTP is believed), `inactivity` (when a silent far end counts as
//! gone)) are driven by two thin shells: `session`, which owns the call's RTP socket (allocated by
//! `socket`) and receives on it in a small tokio task, and `ticker`, the pacing threads that send
//! every call's packets when they are due. `relay` carries audio and DTMF between the two sessions
//! of a bridged call; `tones` synthesises ringback and DTMF tones.

pub mod dtmf;
pub mod g711;
pub mod inactivity;
pub mod latch;
mod outgoing;
pub mod pacer;
pub mod player;
pub mod prompt;
pub mod recorder;
pub mod relay;
pub mod rtp;
pub mod session;
pub mod socket;
pub mod stats;
mod ticker;
pub mod tones;

pub use g711::Codec;
pub use latch::LatchMode;
pub use prompt::{Prompt, PromptError, PromptStore};
pub use relay::{RelayFrame, RelayOut, frame_from_packet};
pub use rtp::{RtpIn, RtpSender};
pub use session::{
    MediaHandle, MediaSession, PacketCounters, PlayOutcome, Playback, RelayClosed, RelaySender,
    Remote, RtpRules,
};
pub use stats::{RtpStats, RtpStatsSnapshot};
pub use tones::{RingbackTone, dtmf_tone, ringback};
