//! Loopback tests of the media session shell: real sockets, real time.

use super::*;
use crate::media::g711::Codec;
use crate::media::rtp::{RtpIn, RtpSender, parse};
use crate::media::socket::bind;
use std::net::{IpAddr, Ipv4Addr};
use tokio::time::timeout;

const LOOPBACK: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);

async fn peer() -> UdpSocket {
    UdpSocket::bind((LOOPBACK, 0)).await.expect("bind peer")
}

async fn recv(sock: &UdpSocket, within: Duration) -> Option<RtpIn> {
    let mut buf = [0u8; 2048];
    match timeout(within, sock.recv_from(&mut buf)).await {
        Ok(Ok((len, _))) => Some(parse(&buf[..len]).expect("session sends valid RTP")),
        Ok(Err(e)) => panic!("recv failed: {e}"),
        Err(_) => None,
    }
}

fn tone(secs: f64) -> Arc<[i16]> {
    let n = (8000.0 * secs) as usize;
    (0..n)
        .map(|i| (12000.0 * (2.0 * std::f64::consts::PI * 440.0 * i as f64 / 8000.0).sin()) as i16)
        .collect()
}

async fn start(remote: SocketAddr, codec: Codec) -> MediaHandle {
    let (sock, port) = bind(LOOPBACK, (42000, 42998)).await.expect("RTP port");
    let handle = MediaSession::start(sock, remote, codec, "test-call".into());
    assert_eq!(handle.local_addr().map(|a| a.port()), Some(port));
    handle
}

#[tokio::test]
async fn plays_prompt_paced_then_latches_and_counts_received_rtp() {
    let sdp_peer = peer().await;
    let mut handle = start(sdp_peer.local_addr().expect("addr"), Codec::Pcmu).await;
    let mut events = handle.take_events().expect("events once");
    assert!(handle.take_events().is_none());

    let prompt = tone(1.0);
    let playback = handle.play(prompt.clone());

    let mut pkts = Vec::new();
    let mut first_at = None;
    while pkts.len() < 50 {
        let p = recv(&sdp_peer, Duration::from_secs(2))
            .await
            .expect("prompt packet");
        first_at.get_or_insert_with(Instant::now);
        pkts.push(p);
    }
    let spread = first_at.map(|t| t.elapsed()).unwrap_or_default();
    assert_eq!(
        timeout(Duration::from_secs(1), playback).await,
        Ok(PlayOutcome::Finished)
    );
    // 50 packets are 49 ptimes apart: paced, not blasted.
    assert!(spread >= Duration::from_millis(900), "spread {spread:?}");

    let ssrc = pkts[0].ssrc;
    for (i, p) in pkts.iter().enumerate() {
        assert_eq!(p.payload_type, 0);
        assert_eq!(p.ssrc, ssrc);
        assert_eq!(p.seq, pkts[0].seq.wrapping_add(i as u16));
        assert_eq!(p.timestamp, pkts[0].timestamp.wrapping_add(160 * i as u32));
        assert_eq!(p.marker, i == 0, "marker on packet {i}");
        assert_eq!(p.payload.len(), 160);
    }
    let mut decoded = Vec::new();
    for p in &pkts {
        Codec::Pcmu.decode(&p.payload, &mut decoded);
    }
    let mut coded = Vec::new();
    Codec::Pcmu.encode(&prompt, &mut coded);
    let mut expected = Vec::new();
    Codec::Pcmu.decode(&coded, &mut expected);
    assert_eq!(decoded, expected);

    // Silence follows the prompt, continuing the same stream.
    let next = recv(&sdp_peer, Duration::from_secs(1))
        .await
        .expect("silence");
    assert_eq!(next.seq, pkts[49].seq.wrapping_add(1));
    assert!(!next.marker);
    assert!(next.payload.iter().all(|&b| b == 0xFF));

    // The caller's RTP comes from another address (NAT): we must latch onto it.
    let nat_peer = peer().await;
    let local = handle.local_addr().expect("local addr");
    let mut tx = RtpSender::with_initial(Codec::Pcmu, 77, 1000, 0);
    for i in 0..3 {
        let pkt = tx.next_packet(&[0xFF; 160], 160, i == 0);
        nat_peer.send_to(&pkt, local).await.expect("send");
    }
    let latched = recv(&nat_peer, Duration::from_secs(1))
        .await
        .expect("packets follow the latched address");
    assert_eq!(latched.ssrc, ssrc, "same stream");
    for i in 0..3u16 {
        let ev = timeout(Duration::from_secs(1), events.recv())
            .await
            .expect("event in time")
            .expect("event");
        assert_eq!((ev.ssrc, ev.seq), (77, 1000 + i));
    }

    // A stranger cannot steal the stream once latched.
    let stranger = peer().await;
    let pkt = RtpSender::with_initial(Codec::Pcmu, 666, 5, 0).next_packet(&[0; 160], 160, true);
    stranger.send_to(&pkt, local).await.expect("send");
    assert!(recv(&stranger, Duration::from_millis(200)).await.is_none());

    let snap = handle.stop().await;
    assert_eq!((snap.packets, snap.expected, snap.lost), (3, 3, 0));
}

#[tokio::test]
async fn hold_suppresses_sending_without_stalling_prompts() {
    let sdp_peer = peer().await;
    let handle = start(sdp_peer.local_addr().expect("addr"), Codec::Pcma).await;
    handle.set_hold(true);
    let playback = handle.play(tone(0.2));
    assert_eq!(
        timeout(Duration::from_secs(1), playback).await,
        Ok(PlayOutcome::Finished),
        "prompt plays out on schedule while held"
    );
    assert!(recv(&sdp_peer, Duration::from_millis(100)).await.is_none());

    handle.set_hold(false);
    let first = recv(&sdp_peer, Duration::from_secs(1))
        .await
        .expect("resumes");
    assert!(first.marker, "resume starts a talk spurt");
    assert_eq!(first.payload_type, 8);
    let second = recv(&sdp_peer, Duration::from_secs(1))
        .await
        .expect("continues");
    assert!(!second.marker);
    assert_eq!(second.timestamp, first.timestamp.wrapping_add(160));
    handle.stop().await;
}

#[tokio::test]
async fn stop_playback_interrupts_current_and_queued_prompts() {
    let sdp_peer = peer().await;
    let handle = start(sdp_peer.local_addr().expect("addr"), Codec::Pcmu).await;
    let first = handle.play(tone(5.0));
    let second = handle.play(tone(1.0));
    recv(&sdp_peer, Duration::from_secs(1))
        .await
        .expect("playing");
    handle.stop_playback();
    assert_eq!(first.await, PlayOutcome::Interrupted);
    assert_eq!(second.await, PlayOutcome::Interrupted);

    let third = handle.play(tone(5.0));
    handle.stop().await;
    assert_eq!(third.await, PlayOutcome::SessionEnded);
}

#[tokio::test]
async fn set_remote_redirects_the_stream() {
    let a = peer().await;
    let b = peer().await;
    let handle = start(a.local_addr().expect("addr"), Codec::Pcmu).await;
    let _playing = handle.play(tone(2.0));
    recv(&a, Duration::from_secs(1)).await.expect("to a");
    handle.set_remote(b.local_addr().expect("addr"));
    recv(&b, Duration::from_secs(1)).await.expect("to b");
    handle.stop().await;
}
