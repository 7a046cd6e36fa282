//! Structure-aware mutation: byte-level edits any fuzzer makes, plus edits that know the shape of
//! the input (SIP header lines and Content-Length, SDP lines, digest parameters, RTP header
//! fields, RFC 4733 payloads and packet sequences), so that most mutants stay close enough to the
//! real thing to get past the first checks and into the code behind them.
//!
//! Deterministic: the same seed, input and corpus give the same mutant.

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use super::Shape;

mod binary;
mod dictionary;
mod text;

pub use binary::join_records;
use dictionary::{DIGEST_TOKENS, INTERESTING_BYTES, NUMBERS, SDP_LINES, SIP_TOKENS};

/// Makes mutants of corpus entries.
pub struct Mutator<'a> {
    rng: StdRng,
    shape: Shape,
    max_len: usize,
    /// Other inputs to splice from.
    others: &'a [Vec<u8>],
}

impl<'a> Mutator<'a> {
    pub fn new(seed: u64, shape: Shape, max_len: usize, others: &'a [Vec<u8>]) -> Self {
        Mutator {
            rng: StdRng::seed_from_u64(seed),
            shape,
            max_len,
            others,
        }
    }

    /// A random number, for the caller's own choices from the same stream.
    pub fn below(&mut self, n: usize) -> usize {
        if n == 0 {
            0
        } else {
            self.rng.random_range(0..n)
        }
    }

    /// A mutant of `input`: 1, 2, 4 or 8 stacked edits.
    pub fn mutate(&mut self, input: &[u8]) -> Vec<u8> {
        let mut data = input.to_vec();
        let edits = 1usize << self.rng.random_range(0..4);
        for _ in 0..edits {
            self.edit(&mut data);
            if data.len() > self.max_len {
                data.truncate(self.max_len);
            }
        }
        data
    }

    fn edit(&mut self, d: &mut Vec<u8>) {
        // Half the edits know the shape; the rest are the generic byte-level ones.
        if self.rng.random_bool(0.5) {
            match self.shape {
                Shape::SipMessage => self.sip_edit(d),
                Shape::SipSession => self.session_edit(d),
                Shape::Sdp => self.lines_edit(d, SDP_LINES, "\r\n"),
                Shape::Digest => self.digest_edit(d),
                Shape::Rtp => self.rtp_edit(d),
                Shape::RtpSequence => self.sequence_edit(d),
            }
        } else {
            self.byte_edit(d);
        }
    }

    fn tokens(&self) -> &'static [&'static str] {
        match self.shape {
            Shape::SipMessage | Shape::SipSession => SIP_TOKENS,
            Shape::Sdp => SDP_LINES,
            Shape::Digest => DIGEST_TOKENS,
            Shape::Rtp | Shape::RtpSequence => NUMBERS,
        }
    }

    fn pick<T: Copy>(&mut self, items: &[T]) -> T {
        items[self.rng.random_range(0..items.len())]
    }

    /// A position in `0..=len`.
    fn pos(&mut self, len: usize) -> usize {
        self.rng.random_range(0..=len)
    }

    /// A range inside `0..len`, short more often than long.
    fn range(&mut self, len: usize) -> (usize, usize) {
        let start = self.pos(len);
        let max = len - start;
        let n = match self.rng.random_range(0..4) {
            0 => max,
            1 => self.rng.random_range(0..=max.min(64)),
            _ => self.rng.random_range(0..=max.min(8)),
        };
        (start, start + n)
    }

    fn byte_edit(&mut self, d: &mut Vec<u8>) {
        match self.rng.random_range(0..12) {
            0 if !d.is_empty() => {
                let i = self.rng.random_range(0..d.len());
                d[i] ^= 1 << self.rng.random_range(0..8);
            }
            1 if !d.is_empty() => {
                let i = self.rng.random_range(0..d.len());
                d[i] = self.pick(INTERESTING_BYTES);
            }
            2 => {
                let i = self.pos(d.len());
                let n = self.rng.random_range(1..=8);
                let bytes: Vec<u8> = (0..n).map(|_| self.rng.random()).collect();
                d.splice(i..i, bytes);
            }
            3 => {
                let (a, b) = self.range(d.len());
                d.drain(a..b);
            }
            4 => {
                let (a, b) = self.range(d.len());
                let copy = d[a..b].to_vec();
                let at = self.pos(d.len());
                d.splice(at..at, copy);
            }
            5 => self.splice_other(d),
            6 => {
                let t = self.pick(self.tokens());
                let at = self.pos(d.len());
                d.splice(at..at, t.bytes());
            }
            7 => self.replace_number(d),
            8 => {
                let at = self.pos(d.len());
                d.truncate(at);
            }
            9 => self.long_run(d),
            10 => {
                // Multi-byte UTF-8 cut in half, or an invalid byte, where text is expected.
                let bad: &[&[u8]] = &[
                    b"\xC3",
                    b"\xFF",
                    b"\xED\xA0\x80",
                    b"\xF4\x90\x80\x80",
                    b"\xE2\x82",
                ];
                let b = self.pick(bad);
                let at = self.pos(d.len());
                d.splice(at..at, b.iter().copied());
            }
            _ => self.structural_char(d),
        }
    }

    /// Puts a character the grammars care about right after one they split on.
    fn structural_char(&mut self, d: &mut Vec<u8>) {
        let anchors: Vec<usize> = d
            .iter()
            .enumerate()
            .filter(|(_, b)| b":;=,<>\" @/".contains(b))
            .map(|(i, _)| i + 1)
            .collect();
        if anchors.is_empty() {
            return;
        }
        let at = self.pick(&anchors);
        let c = self.pick(b"\"<>,;:=\\ \r\n@[]");
        d.insert(at, c);
    }

    /// The head of this input and the tail of another.
    fn splice_other(&mut self, d: &mut Vec<u8>) {
        if self.others.is_empty() {
            return;
        }
        let other = &self.others[self.rng.random_range(0..self.others.len())];
        let cut = self.pos(d.len());
        let from = self.pos(other.len());
        d.truncate(cut);
        d.extend_from_slice(&other[from..]);
    }

    /// Replaces a decimal number (or inserts one) with an edge value.
    fn replace_number(&mut self, d: &mut Vec<u8>) {
        let numbers = digit_runs(d);
        let with = self.pick(NUMBERS).as_bytes().to_vec();
        if numbers.is_empty() {
            let at = self.pos(d.len());
            d.splice(at..at, with);
        } else {
            let (a, b) = self.pick(&numbers);
            d.splice(a..b, with);
        }
    }

    /// A very long run of one character: buffer limits, quadratic scans.
    fn long_run(&mut self, d: &mut Vec<u8>) {
        let c = self.pick(b"a9 ,;\"<\\%\r\xff");
        let n = self.pick(&[64usize, 256, 1024, 4096, 16_384, 65_536]);
        let n = n.min(self.max_len.saturating_sub(d.len()));
        let at = self.pos(d.len());
        d.splice(at..at, std::iter::repeat_n(c, n));
    }
}

/// Byte ranges of ASCII digit runs.
fn digit_runs(d: &[u8]) -> Vec<(usize, usize)> {
    let mut out = Vec::new();
    let mut i = 0;
    while i < d.len() {
        if d[i].is_ascii_digit() {
            let start = i;
            while i < d.len() && d[i].is_ascii_digit() {
                i += 1;
            }
            out.push((start, i));
        } else {
            i += 1;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::text::{join_chunks, session_chunks, split_lines};
    use super::*;
    use crate::fuzz::media::records;

    #[test]
    fn splitting_and_joining_gives_the_input_back() {
        let session = b"INVITE sip:a SIP/2.0\r\n\r\n%%\n!wait 5\n%%\nBYE x\r\n\r\n";
        let chunks = session_chunks(session);
        assert_eq!(chunks.len(), 3);
        let last = b"BYE x\r\n\r\n".len();
        assert_eq!(join_chunks(&chunks[..2]), &session[..session.len() - last]);
        let recs = vec![(20u8, vec![0x80, 101, 0, 1]), (0, vec![1, 2, 3])];
        let bytes = join_records(&recs);
        let back: Vec<(u8, Vec<u8>)> = records(&bytes).map(|(g, p)| (g, p.to_vec())).collect();
        assert_eq!(back, recs);
        assert_eq!(split_lines(b"a\r\nb\nc").concat(), b"a\r\nb\nc");
    }

    #[test]
    fn the_same_seed_gives_the_same_mutants() {
        let input = b"INVITE sip:ivr@127.0.0.1 SIP/2.0\r\nContent-Length: 0\r\n\r\n".to_vec();
        let others = vec![input.clone()];
        let run = |seed| {
            let mut m = Mutator::new(seed, Shape::SipMessage, 70_000, &others);
            (0..50).map(|_| m.mutate(&input)).collect::<Vec<_>>()
        };
        assert_eq!(run(7), run(7));
        assert_ne!(run(7), run(8));
    }
}
