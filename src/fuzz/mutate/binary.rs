//! Edits that know RTP: header fields, RTCP headers, telephone-event payloads, and sequences of
//! `(gap, datagram)` records.

use rand::Rng;

use super::Mutator;
use super::dictionary::PAYLOAD_TYPES;
use crate::fuzz::media::records;

impl Mutator<'_> {
    /// Edits one RTP header field or the telephone-event payload.
    pub(super) fn rtp_edit(&mut self, d: &mut Vec<u8>) {
        if d.len() < 12 {
            d.resize(12, 0);
            d[0] = 0x80;
        }
        let cc = usize::from(d[0] & 0x0F);
        let payload_at = (12 + 4 * cc).min(d.len());
        match self.rng.random_range(0..12) {
            // Version: RTP is 2; 0 and 1 are older protocols, 3 nothing.
            0 => d[0] = (d[0] & 0x3F) | (self.rng.random_range(0..4u8) << 6),
            // Padding bit, with a padding count in the last byte that may exceed the packet.
            1 => {
                d[0] ^= 0x20;
                if let Some(last) = d.last_mut() {
                    *last = self.pick(&[0u8, 1, 4, 12, 200, 255]);
                }
            }
            // Extension bit, with an extension header whose length may exceed the packet.
            2 => {
                d[0] |= 0x10;
                let words = self.pick(&[0u16, 1, 2, 0x100, 0xFFFF]).to_be_bytes();
                let ext = [0xBE, 0xDE, words[0], words[1]];
                d.splice(payload_at..payload_at, ext);
            }
            // CSRC count beyond the packet.
            3 => d[0] = (d[0] & 0xF0) | self.rng.random_range(0..16u8),
            4 => d[1] = (d[1] & 0x80) | self.pick(PAYLOAD_TYPES),
            5 => d[1] ^= 0x80,
            6 => {
                let seq = u16::from_be_bytes([d[2], d[3]]);
                let seq = match self.rng.random_range(0..4) {
                    0 => seq.wrapping_add(1),
                    1 => seq.wrapping_sub(1),
                    2 => seq.wrapping_add(3000),
                    _ => self.rng.random(),
                };
                d[2..4].copy_from_slice(&seq.to_be_bytes());
            }
            7 => {
                let ts = u32::from_be_bytes([d[4], d[5], d[6], d[7]]);
                let ts = match self.rng.random_range(0..5) {
                    0 => ts.wrapping_add(160),
                    1 => ts.wrapping_sub(8001),
                    2 => ts.wrapping_add(0xFFFF),
                    3 => u32::MAX - self.rng.random_range(0..400),
                    _ => self.rng.random(),
                };
                d[4..8].copy_from_slice(&ts.to_be_bytes());
            }
            8 => {
                let random = self.rng.random();
                let ssrc: u32 = self.pick(&[0, 1, 0x1234_5678, u32::MAX, random]);
                d[8..12].copy_from_slice(&ssrc.to_be_bytes());
            }
            // RTCP: a sender/receiver report header where the RTP one was.
            9 => {
                d[0] = 0x80 | (d[0] & 0x1F);
                d[1] = self.pick(&[200u8, 201, 202, 203, 204]);
                let words = ((d.len() / 4).saturating_sub(1) as u16).to_be_bytes();
                d[2..4].copy_from_slice(&words);
            }
            // Telephone-event payload fields (RFC 4733 §2.3).
            _ => {
                if d.len() < payload_at + 4 {
                    d.resize(payload_at + 4, 0);
                }
                let p = &mut d[payload_at..];
                match self.rng.random_range(0..4) {
                    0 => p[0] = self.pick(&[0u8, 5, 9, 10, 11, 15, 16, 255]),
                    1 => p[1] ^= 0x80,
                    2 => p[1] = (p[1] & 0xC0) | self.pick(&[0u8, 10, 55, 56, 63]),
                    _ => {
                        let random = self.rng.random();
                        let dur: u16 = self.pick(&[0, 160, 800, 0xFFF0, 0xFFFF, random]);
                        p[2..4].copy_from_slice(&dur.to_be_bytes());
                    }
                }
            }
        }
    }

    /// Edits a sequence of `(gap, datagram)` records: one packet, or the sequence itself.
    pub(super) fn sequence_edit(&mut self, d: &mut Vec<u8>) {
        let mut recs: Vec<(u8, Vec<u8>)> = records(d).map(|(g, p)| (g, p.to_vec())).collect();
        match self.rng.random_range(0..8) {
            0 if !recs.is_empty() => {
                let i = self.rng.random_range(0..recs.len());
                let copy = recs[i].clone();
                recs.insert(self.pos(recs.len()), copy);
            }
            1 if !recs.is_empty() => {
                let i = self.rng.random_range(0..recs.len());
                recs.remove(i);
            }
            2 if recs.len() > 1 => {
                let a = self.rng.random_range(0..recs.len());
                let b = self.rng.random_range(0..recs.len());
                recs.swap(a, b);
            }
            3 if !recs.is_empty() => {
                let i = self.rng.random_range(0..recs.len());
                recs[i].0 = self.pick(&[0u8, 1, 20, 50, 255]);
            }
            4 => {
                // A held key: many updates of one event, maybe past the 16-bit duration.
                let Some(template) = recs.iter().find(|r| r.1.len() >= 16).map(|r| r.1.clone())
                else {
                    return;
                };
                let count = self.pick(&[3usize, 50, 500, 2000]);
                let step = self.pick(&[160u16, 1000, 0x4000]);
                let at = self.pos(recs.len());
                let mut run = Vec::with_capacity(count);
                for k in 0..count {
                    let mut p = template.clone();
                    let dur = (k as u32 * u32::from(step)) as u16;
                    let cc = usize::from(p[0] & 0x0F);
                    let off = 12 + 4 * cc;
                    if p.len() >= off + 4 {
                        p[off + 1] &= 0x7F;
                        p[off + 2..off + 4].copy_from_slice(&dur.to_be_bytes());
                    }
                    let seq = u16::from_be_bytes([p[2], p[3]]).wrapping_add(k as u16);
                    p[2..4].copy_from_slice(&seq.to_be_bytes());
                    if dur < step && k > 0 {
                        // The duration wrapped: the next segment starts 0xFFFF later (§2.5.1.3).
                        let ts = u32::from_be_bytes([p[4], p[5], p[6], p[7]]).wrapping_add(0xFFFF);
                        p[4..8].copy_from_slice(&ts.to_be_bytes());
                    }
                    run.push((20, p));
                }
                recs.splice(at..at, run);
            }
            5 if !self.others.is_empty() => {
                let other = &self.others[self.rng.random_range(0..self.others.len())];
                let theirs: Vec<(u8, Vec<u8>)> =
                    records(other).map(|(g, p)| (g, p.to_vec())).collect();
                if !theirs.is_empty() {
                    let (a, b) = {
                        let s = self.rng.random_range(0..theirs.len());
                        (s, (s + self.rng.random_range(1..=8)).min(theirs.len()))
                    };
                    let at = self.pos(recs.len());
                    recs.splice(at..at, theirs[a..b].iter().cloned());
                }
            }
            _ if !recs.is_empty() => {
                let i = self.rng.random_range(0..recs.len());
                let mut p = std::mem::take(&mut recs[i].1);
                if self.rng.random_bool(0.8) {
                    self.rtp_edit(&mut p);
                } else {
                    self.byte_edit(&mut p);
                }
                recs[i].1 = p;
            }
            _ => {}
        }
        *d = join_records(&recs);
    }
}

/// Serialises `(gap, datagram)` records as [`records`] reads them.
pub fn join_records(recs: &[(u8, Vec<u8>)]) -> Vec<u8> {
    let mut out = Vec::new();
    for (gap, p) in recs {
        let len = u16::try_from(p.len()).unwrap_or(u16::MAX);
        out.extend_from_slice(&len.to_be_bytes());
        out.push(*gap);
        out.extend_from_slice(&p[..usize::from(len)]);
    }
    out
}
