//! Offline transcription of kept voicemails (issue 14 item 3).
//!
//! An engine turns a voicemail WAV into text behind one small synchronous trait,
//! [`Transcriber`]: it blocks for seconds of CPU, so the async [`worker`] runs it on a blocking
//! thread, one message at a time, at low CPU priority, never on a call's path. Engines:
//! - [`PocketSphinx`] (the default): CMU PocketSphinx with the Debian `pocketsphinx-en-us`
//!   model, run as `pocketsphinx_batch`. No network, no cloud, no download.
//! - [`CommandEngine`]: any program given as an argv with a `{wav}` placeholder, whose stdout is
//!   the transcript (whisper.cpp's `whisper-cli -m MODEL -f {wav} -nt -np`, say).
//!
//! [`wer`] measures an engine's word error rate (tests and `benches/transcribe_wer.sh`).

mod audio;
mod child;
mod command;
mod pocketsphinx;
pub mod wer;
pub mod worker;

use std::path::Path;
use std::time::Duration;

use thiserror::Error;

pub use audio::upsample_2x;
pub use command::CommandEngine;
pub use pocketsphinx::PocketSphinx;
pub use worker::{TranscriptWorker, wake};

use crate::config::TranscriptionConfig;

/// Turns one voicemail WAV into text. Blocks (seconds of CPU); run it off the async runtime.
pub trait Transcriber: Send + Sync {
    /// The engine's name, stored with every transcript (`pocketsphinx`, `command:whisper-cli`).
    fn name(&self) -> String;

    /// The words heard in `wav` (possibly empty: nothing recognisable was said).
    fn transcribe(&self, wav: &Path) -> Result<String, TranscribeError>;
}

/// Why a voicemail has no transcript.
#[derive(Debug, Error)]
pub enum TranscribeError {
    #[error("no engine command configured (transcription.command is empty)")]
    NoCommand,
    #[error("cannot run {program}: {error}")]
    Spawn { program: String, error: String },
    #[error("{program} did not finish within {after:?} and was killed")]
    Timeout { program: String, after: Duration },
    #[error("{program} failed ({status}): {stderr}")]
    Failed {
        program: String,
        status: String,
        stderr: String,
    },
    #[error("stopped: ivr is shutting down")]
    Cancelled,
    #[error("cannot read the voicemail {path}: {error}")]
    Audio { path: String, error: String },
    #[error("cannot prepare audio for the engine in {path}: {error}")]
    Scratch { path: String, error: String },
}

impl TranscribeError {
    /// Whether trying the same file again cannot help (the file is unreadable or not a WAV the
    /// engine takes): stored as the message's outcome at once instead of retried.
    pub fn is_permanent(&self) -> bool {
        matches!(self, TranscribeError::Audio { .. })
    }
}

/// The engine `config` asks for, if it can run here. `Err` says why transcription is off, in
/// one line for the log and `ivr check` ("off in config", "pocketsphinx_batch is not
/// installed", ...).
pub fn engine(config: &TranscriptionConfig) -> Result<Box<dyn Transcriber>, String> {
    let timeout = Duration::from_secs(config.timeout_s);
    match config.engine.as_str() {
        "off" => Err("transcription is off (transcription.engine = \"off\")".into()),
        "command" => {
            let program = config.command.first().cloned().unwrap_or_default();
            if !child::installed(&program) {
                return Err(format!(
                    "transcription is off: transcription.command's program {program:?} is not \
                     installed or not on PATH"
                ));
            }
            Ok(Box::new(CommandEngine::new(
                config.command.clone(),
                timeout,
            )))
        }
        _ => {
            let ps = PocketSphinx::from_config(config);
            ps.check()
                .map_err(|why| format!("transcription is off: {why}"))?;
            Ok(Box::new(ps))
        }
    }
}
