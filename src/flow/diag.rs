//! Diagnostics for `ivr check`: one message per problem, each naming the file, the line and
//! column, what is wrong and (when we can tell) how to fix it, ripgrep style:
//!
//! ```text
//! callflows/x.toml:12:8: error: node `menu` goes to `termz`, which does not exist
//!   hint: did you mean `terms`?
//! ```
//!
//! Positions are kept as byte spans while checking and turned into line:col only here, so the
//! parser and the checks never count lines themselves.

use std::fmt;
use std::ops::Range;
use std::path::{Path, PathBuf};

/// A byte range in the flow file.
pub type Span = Range<usize>;

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Severity {
    Error,
    Warning,
}

/// One problem found in a flow file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Diagnostic {
    pub file: PathBuf,
    /// 1-based line.
    pub line: usize,
    /// 1-based column, in characters (not bytes), as editors count.
    pub col: usize,
    pub severity: Severity,
    pub message: String,
    pub hint: Option<String>,
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let level = match self.severity {
            Severity::Error => "error",
            Severity::Warning => "warning",
        };
        write!(
            f,
            "{}:{}:{}: {level}: {}",
            self.file.display(),
            self.line,
            self.col,
            self.message
        )?;
        if let Some(hint) = &self.hint {
            write!(f, "\n  hint: {hint}")?;
        }
        Ok(())
    }
}

/// Everything `check` found, in file order. It is an error value when it holds at least one
/// error; warnings alone travel with the [`Flow`](super::Flow) instead.
#[derive(Clone, Debug, Default, PartialEq, Eq, thiserror::Error)]
pub struct Diagnostics(pub Vec<Diagnostic>);

impl Diagnostics {
    pub fn error_count(&self) -> usize {
        self.0
            .iter()
            .filter(|d| d.severity == Severity::Error)
            .count()
    }

    pub fn iter(&self) -> std::slice::Iter<'_, Diagnostic> {
        self.0.iter()
    }
}

impl fmt::Display for Diagnostics {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, d) in self.0.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{d}")?;
        }
        Ok(())
    }
}

/// Collects diagnostics against one source text, converting spans to positions.
pub(crate) struct Sink<'a> {
    file: &'a Path,
    text: &'a str,
    found: Vec<(usize, Diagnostic)>,
}

impl<'a> Sink<'a> {
    pub(crate) fn new(file: &'a Path, text: &'a str) -> Sink<'a> {
        Sink {
            file,
            text,
            found: Vec::new(),
        }
    }

    pub(crate) fn error(&mut self, at: &Span, message: impl Into<String>, hint: Option<String>) {
        self.push(Severity::Error, at, message.into(), hint);
    }

    pub(crate) fn warning(&mut self, at: &Span, message: impl Into<String>, hint: Option<String>) {
        self.push(Severity::Warning, at, message.into(), hint);
    }

    fn push(&mut self, severity: Severity, at: &Span, message: String, hint: Option<String>) {
        let (line, col) = line_col(self.text, at.start);
        self.found.push((
            at.start,
            Diagnostic {
                file: self.file.to_path_buf(),
                line,
                col,
                severity,
                message,
                hint,
            },
        ));
    }

    pub(crate) fn has_errors(&self) -> bool {
        self.found
            .iter()
            .any(|(_, d)| d.severity == Severity::Error)
    }

    /// The diagnostics in file order (stable for equal positions, so the order the checks ran in
    /// breaks ties).
    pub(crate) fn finish(mut self) -> Diagnostics {
        self.found.sort_by_key(|(at, _)| *at);
        Diagnostics(self.found.into_iter().map(|(_, d)| d).collect())
    }
}

/// 1-based line and character column of byte offset `at` (clamped to the text).
pub fn line_col(text: &str, at: usize) -> (usize, usize) {
    let mut at = at.min(text.len());
    while !text.is_char_boundary(at) {
        at -= 1;
    }
    let before = &text[..at];
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    let col = before[line_start..].chars().count() + 1;
    (line, col)
}

/// The candidate closest to `word` by edit distance, when it is close enough to be a likely
/// typo (at most a third of the word's length, and at least 1).
pub fn did_you_mean<'c>(
    word: &str,
    candidates: impl IntoIterator<Item = &'c str>,
) -> Option<&'c str> {
    let limit = (word.chars().count() / 3).max(1);
    candidates
        .into_iter()
        .map(|c| (edit_distance(word, c), c))
        .filter(|(d, _)| *d <= limit)
        .min_by_key(|(d, _)| *d)
        .map(|(_, c)| c)
}

/// Edit distance over characters where swapping two neighbours counts as one edit (optimal
/// string alignment), since `mneu` for `menu` is the typo people make.
pub fn edit_distance(a: &str, b: &str) -> usize {
    let a: Vec<char> = a.chars().collect();
    let b: Vec<char> = b.chars().collect();
    // d[i][j]: distance between a[..i] and b[..j].
    let mut d = vec![vec![0usize; b.len() + 1]; a.len() + 1];
    for (i, row) in d.iter_mut().enumerate() {
        row[0] = i;
    }
    for (j, cell) in d[0].iter_mut().enumerate() {
        *cell = j;
    }
    for i in 1..=a.len() {
        for j in 1..=b.len() {
            let cost = usize::from(a[i - 1] != b[j - 1]);
            let mut best = (d[i - 1][j] + 1)
                .min(d[i][j - 1] + 1)
                .min(d[i - 1][j - 1] + cost);
            if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                best = best.min(d[i - 2][j - 2] + 1);
            }
            d[i][j] = best;
        }
    }
    d[a.len()][b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn positions_count_lines_and_characters() {
        let text = "a = 1\nbé = \"x\"\n";
        assert_eq!(line_col(text, 0), (1, 1));
        assert_eq!(line_col(text, 6), (2, 1));
        // "é" is two bytes but one column.
        assert_eq!(line_col(text, 9), (2, 3));
    }

    #[test]
    fn suggestions_only_for_near_misses() {
        assert_eq!(did_you_mean("termz", ["terms", "menu"]), Some("terms"));
        assert_eq!(did_you_mean("xyz", ["terms", "menu"]), None);
        assert_eq!(edit_distance("kitten", "sitting"), 3);
        assert_eq!(edit_distance("mneu", "menu"), 1);
    }

    #[test]
    fn display_has_position_and_hint() {
        let d = Diagnostic {
            file: PathBuf::from("callflows/x.toml"),
            line: 12,
            col: 8,
            severity: Severity::Error,
            message: "node `menu` goes to `termz`, which does not exist".into(),
            hint: Some("did you mean `terms`?".into()),
        };
        assert_eq!(
            d.to_string(),
            "callflows/x.toml:12:8: error: node `menu` goes to `termz`, which does not exist\n  hint: did you mean `terms`?"
        );
    }
}
