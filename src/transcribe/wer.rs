//! Word error rate: how far a transcript is from what was said, in words.
//!
//! WER = (substitutions + deletions + insertions) / words in the reference, from the word-level
//! edit distance after both texts are normalised (lower case, punctuation dropped, apostrophes
//! kept so "don't" stays one word). It can exceed 1 when the engine invents many words.

/// The words of `text` as WER compares them.
pub fn normalise(text: &str) -> Vec<String> {
    text.chars()
        .map(|c| {
            if c.is_alphanumeric() || c == '\'' {
                c.to_ascii_lowercase()
            } else {
                ' '
            }
        })
        .collect::<String>()
        .split_whitespace()
        .map(|w| w.trim_matches('\'').to_string())
        .filter(|w| !w.is_empty())
        .collect()
}

/// Word-level edit distance between `reference` and `hypothesis` (both normalised).
pub fn word_errors(reference: &str, hypothesis: &str) -> usize {
    let r = normalise(reference);
    let h = normalise(hypothesis);
    // One row of the Levenshtein table at a time: row[j] = distance of r[..i] to h[..j].
    let mut row: Vec<usize> = (0..=h.len()).collect();
    for (i, rw) in r.iter().enumerate() {
        let mut diag = row[0];
        row[0] = i + 1;
        for (j, hw) in h.iter().enumerate() {
            let sub = diag + usize::from(rw != hw);
            diag = row[j + 1];
            row[j + 1] = sub.min(row[j] + 1).min(row[j + 1] + 1);
        }
    }
    row[h.len()]
}

/// The word error rate of `hypothesis` against `reference`; `None` when the reference has no
/// words (the rate is undefined).
pub fn wer(reference: &str, hypothesis: &str) -> Option<f64> {
    let n = normalise(reference).len();
    (n > 0).then(|| word_errors(reference, hypothesis) as f64 / n as f64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalising_drops_case_and_punctuation() {
        assert_eq!(
            normalise("My server's DOWN, please -- call me back!"),
            ["my", "server's", "down", "please", "call", "me", "back"]
        );
        assert!(normalise(" ... ").is_empty());
    }

    #[test]
    fn identical_texts_have_no_errors() {
        assert_eq!(wer("My server is down.", "my server is down"), Some(0.0));
    }

    #[test]
    fn substitutions_deletions_and_insertions_count_one_each() {
        // one substitution (down -> done)
        assert_eq!(word_errors("my server is down", "my server is done"), 1);
        // one deletion (is)
        assert_eq!(word_errors("my server is down", "my server down"), 1);
        // two insertions (oh no)
        assert_eq!(
            word_errors("my server is down", "oh no my server is down"),
            2
        );
        assert_eq!(wer("my server is down", "my server down"), Some(0.25));
    }

    #[test]
    fn an_empty_hypothesis_misses_every_word_and_rate_can_exceed_one() {
        assert_eq!(wer("call me back", ""), Some(1.0));
        assert_eq!(wer("hi", "what are you on"), Some(4.0));
        assert_eq!(wer("", "anything"), None);
    }
}
