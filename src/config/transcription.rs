//! `[transcription]`: offline transcription of kept voicemails (issue 14 item 3; engines in
//! `crate::transcribe`).

use std::path::PathBuf;

use serde::Deserialize;

use super::ConfigError;

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TranscriptionConfig {
    /// "pocketsphinx" (the default), "command" or "off".
    #[serde(default = "default_engine")]
    pub engine: String,
    /// The PocketSphinx program (its batch decoder).
    #[serde(default = "default_pocketsphinx")]
    pub pocketsphinx: String,
    /// The acoustic model directory, language model and dictionary PocketSphinx uses.
    #[serde(default = "default_hmm")]
    pub hmm: PathBuf,
    #[serde(default = "default_lm")]
    pub lm: PathBuf,
    #[serde(default = "default_dict")]
    pub dict: PathBuf,
    /// `engine = "command"`: the argv, `{wav}` replaced by the voicemail's path; stdout is the
    /// transcript.
    #[serde(default)]
    pub command: Vec<String>,
    /// An engine still running after this long is killed and the attempt counts as failed.
    #[serde(default = "default_timeout_s")]
    pub timeout_s: u64,
    /// Attempts per voicemail before its failure is final (stored, and sent as an error).
    #[serde(default = "default_max_attempts")]
    pub max_attempts: u32,
    /// How long a voicemail e-mail waits for the transcript before going without it.
    #[serde(default = "default_wait_s")]
    pub wait_s: u64,
}

impl Default for TranscriptionConfig {
    fn default() -> Self {
        TranscriptionConfig {
            engine: default_engine(),
            pocketsphinx: default_pocketsphinx(),
            hmm: default_hmm(),
            lm: default_lm(),
            dict: default_dict(),
            command: Vec::new(),
            timeout_s: default_timeout_s(),
            max_attempts: default_max_attempts(),
            wait_s: default_wait_s(),
        }
    }
}

const DEBIAN_MODEL: &str = "/usr/share/pocketsphinx/model/en-us";

fn default_engine() -> String {
    "pocketsphinx".into()
}
fn default_pocketsphinx() -> String {
    "pocketsphinx_batch".into()
}
fn default_hmm() -> PathBuf {
    PathBuf::from(DEBIAN_MODEL).join("en-us")
}
fn default_lm() -> PathBuf {
    PathBuf::from(DEBIAN_MODEL).join("en-us.lm.bin")
}
fn default_dict() -> PathBuf {
    PathBuf::from(DEBIAN_MODEL).join("cmudict-en-us.dict")
}
fn default_timeout_s() -> u64 {
    120
}
fn default_max_attempts() -> u32 {
    3
}
fn default_wait_s() -> u64 {
    120
}

impl TranscriptionConfig {
    /// Whether an engine is asked for at all.
    pub fn enabled(&self) -> bool {
        self.engine != "off"
    }

    pub(super) fn validate(&self, origin: &str) -> Result<(), ConfigError> {
        let bad = |key, value: String, reason: &str| ConfigError::Value {
            origin: origin.to_string(),
            key,
            value,
            reason: reason.to_string(),
        };
        if !["pocketsphinx", "command", "off"].contains(&self.engine.as_str()) {
            return Err(bad(
                "transcription.engine",
                self.engine.clone(),
                "expected \"pocketsphinx\", \"command\" or \"off\"",
            ));
        }
        if self.engine == "command" {
            if self.command.first().is_none_or(|p| p.is_empty()) {
                return Err(bad(
                    "transcription.command",
                    format!("{:?}", self.command),
                    "engine = \"command\" needs the program and its arguments, with {wav} where \
                     the voicemail's path goes, e.g. [\"whisper-cli\", \"-m\", \"MODEL\", \"-f\", \
                     \"{wav}\", \"-nt\", \"-np\"]",
                ));
            }
            if !self.command.iter().any(|a| a.contains("{wav}")) {
                return Err(bad(
                    "transcription.command",
                    format!("{:?}", self.command),
                    "no argument holds {wav} (where the voicemail's path goes)",
                ));
            }
        }
        if !(1..=3600).contains(&self.timeout_s) {
            return Err(bad(
                "transcription.timeout_s",
                self.timeout_s.to_string(),
                "must be between 1 and 3600 seconds",
            ));
        }
        if !(1..=10).contains(&self.max_attempts) {
            return Err(bad(
                "transcription.max_attempts",
                self.max_attempts.to_string(),
                "must be between 1 and 10",
            ));
        }
        if self.wait_s > 3600 {
            return Err(bad(
                "transcription.wait_s",
                self.wait_s.to_string(),
                "must be at most 3600 seconds (0: e-mails never wait)",
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::super::Config;

    fn load(toml: &str) -> Result<Config, String> {
        Config::from_str(toml, "test.toml").map_err(|e| e.to_string())
    }

    #[test]
    fn defaults_are_pocketsphinx_with_the_debian_model() {
        let c = load("").unwrap();
        let t = &c.transcription;
        assert_eq!(t.engine, "pocketsphinx");
        assert_eq!(t.pocketsphinx, "pocketsphinx_batch");
        assert_eq!(
            t.lm.to_str(),
            Some("/usr/share/pocketsphinx/model/en-us/en-us.lm.bin")
        );
        assert_eq!((t.timeout_s, t.max_attempts, t.wait_s), (120, 3, 120));
    }

    #[test]
    fn errors_name_the_key() {
        let e = load("[transcription]\nengine = \"whisper\"\n").unwrap_err();
        assert!(e.contains("transcription.engine"), "{e}");
        let e = load("[transcription]\nengine = \"command\"\n").unwrap_err();
        assert!(e.contains("transcription.command"), "{e}");
        let e = load("[transcription]\nengine = \"command\"\ncommand = [\"whisper-cli\"]\n")
            .unwrap_err();
        assert!(
            e.contains("transcription.command") && e.contains("{wav}"),
            "{e}"
        );
        let e = load("[transcription]\ntimeout_s = 0\n").unwrap_err();
        assert!(e.contains("transcription.timeout_s"), "{e}");
        let e = load("[transcription]\nmax_attempts = 0\n").unwrap_err();
        assert!(e.contains("transcription.max_attempts"), "{e}");
        let e = load("[transcription]\nwait_s = 99999\n").unwrap_err();
        assert!(e.contains("transcription.wait_s"), "{e}");
        let e = load("[transcription]\nengin = \"off\"\n").unwrap_err();
        assert!(e.contains("engin"), "{e}");
    }
}
