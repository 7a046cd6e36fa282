//! A real softphone on the desk: baresip registers to `ivr` as alice (digest auth) and answers
//! on its own; its "microphone" (a WAV) starts with an in-band DTMF 1, which accepts the whisper,
//! then plays a 1 kHz tone. The caller (plain loopback sockets, PCMU) sends 440 Hz. Audio must
//! cross the bridge both ways, transcoded for the PCMA phone: the caller hears 1 kHz, the phone's
//! recording holds 440 Hz. The caller hanging up hangs up the phone.

use crate::common;

use std::net::UdpSocket;
use std::path::Path;
use std::time::{Duration, Instant};

use common::baresip::{Baresip, BaresipOptions, read_wav_lenient, tone, tone_fraction_windowed};
use common::{CallIds, Ivr, UdpUa, in_dialog, invite, require_tool, sdp_audio_addr, sdp_offer};
use ivr::media::g711::Codec;
use ivr::media::rtp::{RtpSender, parse};

const WAIT: Duration = Duration::from_secs(15);
const PHONE_HZ: f64 = 1000.0;
const CALLER_HZ: f64 = 440.0;

/// The phone's microphone: DTMF 1 (accepts the whisper), a pause, then 1 kHz for 8 s.
fn phone_source(path: &Path) {
    let mut samples = ivr::media::tones::dtmf_tone('1', 150);
    samples.extend(std::iter::repeat_n(0i16, 2800));
    samples.extend(tone(PHONE_HZ, 8.0, 8000));
    let spec = hound::WavSpec {
        channels: 1,
        sample_rate: 8000,
        bits_per_sample: 16,
        sample_format: hound::SampleFormat::Int,
    };
    let mut w = hound::WavWriter::create(path, spec).expect("wav");
    for s in samples {
        w.write_sample(s).expect("sample");
    }
    w.finalize().expect("finalize");
}

#[test]
fn baresip_on_the_desk_is_bridged_with_audio_both_ways() {
    bridged_with_audio_both_ways("udp");
}

/// A phone registered over TCP is reachable only through its connection: the INVITE, the BYE and
/// the rest of the dialog go over it.
#[test]
fn baresip_registered_over_tcp_is_called_over_its_connection() {
    bridged_with_audio_both_ways("tcp");
}

/// The whole check, with baresip registered over `transport` ("udp" or "tcp").
fn bridged_with_audio_both_ways(transport: &'static str) {
    let baresip = require_tool("baresip");
    if !baresip {
        return;
    }
    let dir = common::unique_temp_dir("desk-baresip");
    // baresip 1.0.0 answers MD5 challenges only (see tests/staff/baresip_harness.rs).
    let ivr = Ivr::start_desk(
        "desk.toml",
        &["alice".to_string()],
        "[staff]\nalgorithms = [\"MD5\"]\n[[staff.users]]\nname = \"alice\"\npassword = \"s3cret\"\n\
         [desk]\naccept_timeout_s = 8\n",
    );
    let source = dir.join("phone.wav");
    phone_source(&source);
    let mut opts = BaresipOptions::new(ivr.sip_addr(), "alice", "s3cret", &source);
    opts.codecs = vec!["PCMA"];
    opts.transport = transport;
    let mut phone = Baresip::start(opts);
    assert!(
        phone.wait_registered(WAIT),
        "baresip did not register:\n{}",
        phone.log()
    );

    let caller = UdpUa::new(ivr.sip_addr());
    let rtp = UdpSocket::bind("127.0.0.1:0").expect("caller rtp");
    let ids = CallIds::new();
    caller.send(invite(
        &caller,
        &ids,
        &sdp_offer(rtp.local_addr().unwrap().port(), "0 101"),
    ));
    let ok = caller.expect_response(&ids.call_id, |s| s == 200, WAIT);
    caller.send(in_dialog(&caller, &ids, &ok, "ACK", 1));
    let ivr_rtp = sdp_audio_addr(&ok.body_str());

    // The caller talks (440 Hz, paced) and listens for the whole call.
    let talk = tone(CALLER_HZ, 12.0, 8000);
    let sender = {
        let sock = rtp.try_clone().unwrap();
        std::thread::spawn(move || {
            let mut s = RtpSender::new(Codec::Pcmu);
            let start = Instant::now();
            for (i, frame) in talk.chunks(160).enumerate() {
                let mut payload = Vec::new();
                Codec::Pcmu.encode(frame, &mut payload);
                let _ = sock.send_to(&s.next_packet(&payload, 160, i == 0), ivr_rtp);
                let due = start + Duration::from_millis(20 * (i as u64 + 1));
                std::thread::sleep(due.saturating_duration_since(Instant::now()));
            }
        })
    };
    let log = ivr.wait_for_log(&["event=\"bridged\"", "member=alice"], WAIT);
    assert!(log.contains("event=\"whisper\""), "{log}");
    // Listen to 3 s of the bridged call.
    let mut heard: Vec<i16> = Vec::new();
    let mut buf = [0u8; 2048];
    let end = Instant::now() + Duration::from_secs(3);
    while let Some(left) = end.checked_duration_since(Instant::now()) {
        rtp.set_read_timeout(Some(left.max(Duration::from_millis(1))))
            .unwrap();
        if let Ok((n, _)) = rtp.recv_from(&mut buf)
            && let Ok(p) = parse(&buf[..n])
            && p.payload_type == 0
        {
            Codec::Pcmu.decode(&p.payload, &mut heard);
        }
    }
    assert!(heard.len() > 16_000, "caller got {} samples", heard.len());
    // Skip the first half second (the relay settling, the tail of the ringback).
    let bridged = &heard[4000..];
    let fraction = tone_fraction_windowed(bridged, PHONE_HZ);
    assert!(
        fraction > 0.8,
        "caller hears {:.2} of the phone's 1 kHz",
        fraction
    );

    // The caller hangs up; ivr hangs up the phone.
    caller.send(in_dialog(&caller, &ids, &ok, "BYE", 2));
    caller.expect_response(&ids.call_id, |s| s == 200, WAIT);
    assert!(
        phone.wait_for_log("BYE sip:", WAIT),
        "baresip never got a BYE:\n{}",
        phone.log()
    );
    sender.join().unwrap();
    ivr.wait_for_log(&["outcome=\"bridged\""], WAIT);
    // ivr's own requests to the phone (INVITE, BYE) went over the transport it registered on.
    let ours = format!(
        "Via: SIP/2.0/{} {}",
        transport.to_uppercase(),
        ivr.sip_addr()
    );
    assert!(
        phone.log().contains(&ours),
        "no `{ours}` in:\n{}",
        phone.log()
    );
    // What the phone heard: the whisper, then the caller's 440 Hz.
    let wavs = phone.heard_wavs();
    let heard_by_phone = wavs.last().map(|p| read_wav_lenient(p)).unwrap_or_default();
    assert!(
        heard_by_phone.len() > 24_000,
        "phone heard {} samples",
        heard_by_phone.len()
    );
    let tail = &heard_by_phone[heard_by_phone.len() - 16_000..heard_by_phone.len() - 4_000];
    let fraction = tone_fraction_windowed(tail, CALLER_HZ);
    assert!(
        fraction > 0.8,
        "phone hears {:.2} of the caller's 440 Hz",
        fraction
    );
    phone.stop(Duration::from_secs(2));
}
