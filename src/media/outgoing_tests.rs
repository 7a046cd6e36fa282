//! The send core slot by slot, with no socket and no clock: each `slot` call is one 20 ms tick.

use super::*;
use crate::media::rtp::{RtpIn, parse};
use tokio::sync::oneshot::error::TryRecvError;

const PT_EVENT: u8 = 101;

fn stream(codec: Codec) -> Outgoing {
    Outgoing::with_sender(codec, RtpSender::with_initial(codec, 0xABCD, 1000, 50_000))
}

/// Serves `n` slots; returns the packets written, each tagged with its slot.
fn run(out: &mut Outgoing, n: usize) -> Vec<(usize, RtpIn)> {
    let mut buf = Vec::new();
    let mut pkts = Vec::new();
    for i in 0..n {
        out.slot(&mut buf, |p| pkts.push((i, parse(p).expect("valid RTP"))));
    }
    pkts
}

fn ramp(frames: usize) -> Arc<[i16]> {
    (0..frames * FRAME_SAMPLES)
        .map(|i| ((i % 2000) as i16 - 1000) * 8)
        .collect()
}

fn play(out: &mut Outgoing, samples: Arc<[i16]>) -> oneshot::Receiver<PlayOutcome> {
    let (tx, rx) = oneshot::channel();
    out.play(samples, tx);
    rx
}

#[test]
fn prompt_then_silence_on_one_continuous_stream() {
    let mut out = stream(Codec::Pcmu);
    let prompt = ramp(3);
    let mut done = play(&mut out, prompt.clone());

    let first = run(&mut out, 2);
    assert_eq!(done.try_recv(), Err(TryRecvError::Empty), "one frame to go");
    let rest = run(&mut out, 3);
    assert_eq!(done.try_recv(), Ok(PlayOutcome::Finished));

    let pkts: Vec<RtpIn> = first.into_iter().chain(rest).map(|(_, p)| p).collect();
    assert_eq!(pkts.len(), 5, "one packet per slot");
    for (i, p) in pkts.iter().enumerate() {
        assert_eq!((p.ssrc, p.payload_type), (0xABCD, 0));
        assert_eq!(p.seq, 1000 + i as u16);
        assert_eq!(p.timestamp, 50_000 + 160 * i as u32);
        assert_eq!(p.marker, i == 0, "marker only at the stream's start");
        assert_eq!(p.payload.len(), 160);
    }
    let mut expected = Vec::new();
    Codec::Pcmu.encode(&prompt, &mut expected);
    let sent: Vec<u8> = pkts[..3].iter().flat_map(|p| p.payload.clone()).collect();
    assert_eq!(sent, expected);
    assert!(pkts[3..].iter().all(|p| p.payload == [0xFF; 160]));
    assert_eq!(out.packets_sent(), 5);
}

#[test]
fn idle_stream_sends_silence_and_a_short_prompt_is_padded() {
    let mut out = stream(Codec::Pcma);
    let idle = run(&mut out, 1);
    assert_eq!(idle[0].1.payload, [0xD5; 160]);
    assert!(idle[0].1.marker);
    let mut done = play(&mut out, vec![1000i16; 100].into());
    let p = run(&mut out, 1);
    assert_eq!(done.try_recv(), Ok(PlayOutcome::Finished));
    assert!(!p[0].1.marker, "a new prompt is not a new talk spurt");
    let mut tone = Vec::new();
    Codec::Pcma.encode(&[1000; 100], &mut tone);
    assert_eq!(p[0].1.payload[..100], tone);
    assert!(p[0].1.payload[100..].iter().all(|&b| b == 0xD5));
}

#[test]
fn empty_prompts_finish_at_once_without_a_slot() {
    let mut out = stream(Codec::Pcmu);
    let mut empty = play(&mut out, Vec::<i16>::new().into());
    let mut real = play(&mut out, ramp(1));
    let pkts = run(&mut out, 1);
    assert_eq!(empty.try_recv(), Ok(PlayOutcome::Finished));
    assert_eq!(real.try_recv(), Ok(PlayOutcome::Finished));
    assert_ne!(
        pkts[0].1.payload, [0xFF; 160],
        "the real prompt took the slot"
    );
}

#[test]
fn hold_consumes_prompts_silently_and_resume_marks_a_new_talk_spurt() {
    let mut out = stream(Codec::Pcmu);
    run(&mut out, 1);
    out.set_hold(true);
    let mut done = play(&mut out, ramp(3));
    assert!(run(&mut out, 3).is_empty(), "nothing sent while held");
    assert_eq!(
        done.try_recv(),
        Ok(PlayOutcome::Finished),
        "prompt plays out on schedule"
    );
    out.set_hold(false);
    let pkts = run(&mut out, 2);
    assert_eq!(pkts.len(), 2);
    assert!(pkts[0].1.marker && !pkts[1].1.marker);
    assert_eq!(pkts[0].1.seq, 1001, "sequence numbers have no gap");
    assert_eq!(
        pkts[0].1.timestamp,
        50_000 + 4 * 160,
        "timestamp kept wall time"
    );
}

#[test]
fn skipped_slots_move_the_timestamp_but_not_the_prompt() {
    let mut out = stream(Codec::Pcmu);
    let mut done = play(&mut out, ramp(2));
    run(&mut out, 1);
    out.skip(10);
    let pkts = run(&mut out, 1);
    assert_eq!(
        done.try_recv(),
        Ok(PlayOutcome::Finished),
        "second frame sent"
    );
    assert_eq!(pkts[0].1.timestamp, 50_000 + 11 * 160);
    assert_eq!(pkts[0].1.seq, 1001);
    assert_eq!(out.slots_skipped(), 10);
}

#[test]
fn end_playback_tells_current_and_queued_prompts() {
    let mut out = stream(Codec::Pcmu);
    let mut a = play(&mut out, ramp(10));
    let mut b = play(&mut out, ramp(10));
    run(&mut out, 1);
    out.end_playback(PlayOutcome::Interrupted);
    assert_eq!(a.try_recv(), Ok(PlayOutcome::Interrupted));
    assert_eq!(b.try_recv(), Ok(PlayOutcome::Interrupted));
    let pkts = run(&mut out, 1);
    assert_eq!(pkts[0].1.payload, [0xFF; 160], "silence follows at once");
}

#[test]
fn key_presses_take_the_slot_from_prompts_on_one_timestamp() {
    let mut out = stream(Codec::Pcmu);
    out.set_telephone_event(Some(PT_EVENT));
    let mut prompt = play(&mut out, ramp(3));
    run(&mut out, 1);
    out.send_dtmf('5', Duration::from_millis(60))
        .expect("a key");
    let pkts = run(&mut out, 7);
    let events: Vec<&RtpIn> = pkts
        .iter()
        .map(|(_, p)| p)
        .filter(|p| p.payload_type == PT_EVENT)
        .collect();
    // 60 ms: start, update, end (duration reached), two more ends.
    assert_eq!(events.len(), 5);
    assert!(events.iter().all(|p| p.timestamp == 50_000 + 160));
    assert!(events[0].marker && events[1..].iter().all(|p| !p.marker));
    assert_eq!(events[0].payload[0], 5);
    assert!(events[2..].iter().all(|p| p.payload[1] & 0x80 != 0));
    // The prompt waited: its last two frames follow the key press.
    assert_eq!(prompt.try_recv(), Ok(PlayOutcome::Finished));
    let audio: Vec<&(usize, RtpIn)> = pkts.iter().filter(|(_, p)| p.payload_type == 0).collect();
    assert_eq!(audio[0].0, 5, "audio resumes after the event's slots");
    assert_eq!(audio[0].1.timestamp, 50_000 + 6 * 160);
    assert_eq!(
        out.send_dtmf('x', Duration::from_millis(60)),
        Err(DigitError::NotAKey)
    );
}

#[test]
fn without_telephone_event_keys_are_tones_and_queued_presses_drop() {
    let mut out = stream(Codec::Pcma);
    out.send_dtmf('1', Duration::from_millis(40))
        .expect("a key");
    let pkts = run(&mut out, 6);
    assert!(pkts.iter().all(|(_, p)| p.payload_type == 8));
    assert_ne!(pkts[0].1.payload, [0xD5; 160], "tone, not silence");
    assert_eq!(pkts[5].1.payload, [0xD5; 160], "gap after the tone");

    out.set_telephone_event(Some(PT_EVENT));
    out.send_dtmf('1', Duration::from_millis(40))
        .expect("a key");
    out.set_telephone_event(None);
    assert!(run(&mut out, 1).iter().all(|(_, p)| p.payload_type == 8));
}

#[test]
fn relayed_audio_fills_the_slots_prompts_leave() {
    let mut out = stream(Codec::Pcma);
    let pcm: Vec<i16> = (0..160).map(|i| i * 100).collect();
    out.push_relay(RelayFrame::Audio(pcm.clone()));
    let pkts = run(&mut out, 2);
    let mut expected = Vec::new();
    Codec::Pcma.encode(&pcm, &mut expected);
    assert_eq!(pkts[0].1.payload, expected, "transcoded into our codec");
    assert_eq!(
        pkts[1].1.payload, [0xD5; 160],
        "silence once the buffer is empty"
    );

    // A prompt owns the stream: relayed audio meanwhile is dropped.
    let _whisper = play(&mut out, ramp(1));
    out.push_relay(RelayFrame::Audio(pcm.clone()));
    let pkts = run(&mut out, 2);
    assert_ne!(pkts[0].1.payload, expected);
    assert_eq!(pkts[1].1.payload, [0xD5; 160]);
}
