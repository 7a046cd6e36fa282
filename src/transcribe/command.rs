//! A configured program as the engine: `transcription.command` is its argv, `{wav}` in any
//! argument is replaced by the voicemail's path, and what it prints on stdout is the
//! transcript. This is how a better local engine plugs in, e.g. whisper.cpp:
//! `["whisper-cli", "-m", "/opt/whisper/ggml-base.en.bin", "-f", "{wav}", "-nt", "-np"]`.

use std::path::Path;
use std::time::Duration;

use super::{TranscribeError, Transcriber, child};

pub struct CommandEngine {
    argv: Vec<String>,
    timeout: Duration,
}

impl CommandEngine {
    pub fn new(argv: Vec<String>, timeout: Duration) -> Self {
        CommandEngine { argv, timeout }
    }

    /// The argv for `wav`.
    fn argv_for(&self, wav: &Path) -> Vec<String> {
        let wav = wav.to_string_lossy();
        self.argv.iter().map(|a| a.replace("{wav}", &wav)).collect()
    }
}

impl Transcriber for CommandEngine {
    fn name(&self) -> String {
        let program = self.argv.first().map_or("", String::as_str);
        let base = Path::new(program)
            .file_name()
            .map_or_else(|| program.to_string(), |n| n.to_string_lossy().into_owned());
        format!("command:{base}")
    }

    fn transcribe(&self, wav: &Path) -> Result<String, TranscribeError> {
        let out = child::run(&self.argv_for(wav), self.timeout)?;
        Ok(tidy(&out.stdout))
    }
}

/// Engine output as one line: lines joined, runs of white space made one space.
pub(super) fn tidy(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn engine(argv: &[&str]) -> CommandEngine {
        CommandEngine::new(
            argv.iter().map(|s| s.to_string()).collect(),
            Duration::from_secs(10),
        )
    }

    #[test]
    fn the_placeholder_becomes_the_path_and_stdout_the_transcript() {
        let e = engine(&["sh", "-c", "echo \"  heard:\n $0 \"", "{wav}"]);
        assert_eq!(e.name(), "command:sh");
        let text = e.transcribe(Path::new("/var/vm/1.wav")).unwrap();
        assert_eq!(text, "heard: /var/vm/1.wav");
    }

    #[test]
    fn the_name_is_the_program_file_name() {
        assert_eq!(
            engine(&["/opt/whisper/bin/whisper-cli", "-f", "{wav}"]).name(),
            "command:whisper-cli"
        );
    }
}
