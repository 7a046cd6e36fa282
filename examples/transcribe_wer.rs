//! Word error rate of the PocketSphinx engine on a list of recorded messages, through the same
//! code a voicemail goes through (`ivr::transcribe::PocketSphinx`: 8 kHz upsampled in Rust,
//! `pocketsphinx_batch`). Driven by `benches/transcribe_wer.sh`, which makes the audio.
//!
//!     cargo run --example transcribe_wer -- LIST [LM]
//!
//! LIST has one `WAV<TAB>REFERENCE` line per message; LM replaces `transcription.lm` (the
//! Debian generic model by default). Prints a Markdown table row per message and the overall
//! WER (errors over reference words, summed over all messages).

use std::path::Path;

use ivr::config::TranscriptionConfig;
use ivr::transcribe::{PocketSphinx, Transcriber, wer};

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let Some(list) = args.first() else {
        anyhow::bail!("usage: transcribe_wer LIST [LM]");
    };
    let mut config = TranscriptionConfig::default();
    if let Some(lm) = args.get(1) {
        config.lm = lm.into();
    }
    let engine = PocketSphinx::from_config(&config);
    engine.check().map_err(anyhow::Error::msg)?;
    let (mut errors, mut words) = (0, 0);
    println!("| reference | hypothesis | WER |\n| --- | --- | --- |");
    for line in std::fs::read_to_string(list)?.lines() {
        let Some((wav, reference)) = line.split_once('\t') else {
            continue;
        };
        let hypothesis = engine.transcribe(Path::new(wav))?;
        let e = wer::word_errors(reference, &hypothesis);
        let n = wer::normalise(reference).len();
        errors += e;
        words += n;
        println!(
            "| {reference} | {hypothesis} | {e}/{n} = {:.0}% |",
            100.0 * e as f64 / n.max(1) as f64
        );
    }
    println!(
        "\noverall WER: {errors}/{words} = {:.1}%",
        100.0 * errors as f64 / words.max(1) as f64
    );
    Ok(())
}
