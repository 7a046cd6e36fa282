#!/usr/bin/env python3
"""One probe call for the benches: INVITE (PCMU offer) over UDP, ACK the 200, record when each
RTP packet arrives for --listen seconds, BYE. Prints one JSON object on stdout.

Arrival times are the kernel's receive timestamps (SO_TIMESTAMPNS), not the time this script
got around to reading the socket, so a busy machine delays the probe's reading without
distorting the intervals it reports: they show the sender's pacing plus the loopback path.

Usage: sip_probe.py TARGET_IP:PORT [--local-ip 127.0.0.1] [--listen 10] [--from +15559990001]
Output keys: answered (bool), status (final INVITE status or null), setup_ms (first INVITE sent
to 200 received), invite_retrans, packets, intervals (count), p50_ms, p99_ms, max_ms (arrival
intervals), seq_gaps (RTP sequence numbers missing: packets lost on the way), ts_jumps and
ts_skipped_ms (RTP timestamp steps larger than 20 ms between consecutive sequence numbers: audio
the sender skipped rather than sent late), rtp_span_s, bye_status, error.
Standard library only (python3 >= 3.8, Linux).
"""
import argparse
import json
import random
import select
import socket
import struct
import sys
import time

SO_TIMESTAMPNS = getattr(socket, "SO_TIMESTAMPNS", 35)  # Linux asm-generic value
T1 = 0.5


def token(n=10):
    return "".join(random.choice("abcdefghijklmnopqrstuvwxyz0123456789") for _ in range(n))


def parse(data):
    """(first line, {lower-case header: [values]}, body) of a SIP message."""
    text = data.decode("latin-1")
    head, _, body = text.partition("\r\n\r\n")
    lines = head.split("\r\n")
    headers = {}
    compact = {"v": "via", "f": "from", "t": "to", "i": "call-id", "m": "contact", "l": "content-length"}
    for line in lines[1:]:
        if ":" not in line:
            continue
        k, v = line.split(":", 1)
        k = k.strip().lower()
        headers.setdefault(compact.get(k, k), []).append(v.strip())
    return lines[0], headers, body


def percentile(sorted_vals, p):
    if not sorted_vals:
        return None
    i = min(len(sorted_vals) - 1, max(0, int(round(p / 100.0 * (len(sorted_vals) - 1)))))
    return sorted_vals[i]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("target")
    ap.add_argument("--local-ip", default="127.0.0.1")
    ap.add_argument("--listen", type=float, default=10.0)
    ap.add_argument("--from", dest="caller", default="+15559990001")
    ap.add_argument("--timeout", type=float, default=32.0, help="give up on the INVITE after this")
    args = ap.parse_args()
    host, port = args.target.rsplit(":", 1)
    target = (host, int(port))
    ip = args.local_ip

    sip = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sip.bind((ip, 0))
    sport = sip.getsockname()[1]
    rtp = None
    for _ in range(200):  # an even RTP port with nothing on the odd one above it
        p = random.randrange(20000, 65000, 2)
        try:
            s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            s.bind((ip, p))
            rtp = s
            break
        except OSError:
            s.close()
    if rtp is None:
        print(json.dumps({"answered": False, "error": "no free RTP port"}))
        return 1
    rtp.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPNS, 1)
    rport = rtp.getsockname()[1]

    call_id = token(16) + "@probe"
    ftag = token(8)
    ruri = f"sip:+15550100@{host}:{port}"
    sdp = (f"v=0\r\no=probe 1 1 IN IP4 {ip}\r\ns=-\r\nc=IN IP4 {ip}\r\nt=0 0\r\n"
           f"m=audio {rport} RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\na=ptime:20\r\na=sendrecv\r\n")
    via = lambda br: f"Via: SIP/2.0/UDP {ip}:{sport};branch=z9hG4bK{br};rport"
    inv_branch = token(12)
    invite = (f"INVITE {ruri} SIP/2.0\r\n{via(inv_branch)}\r\nMax-Forwards: 70\r\n"
              f"From: <sip:{args.caller}@{ip}:{sport}>;tag={ftag}\r\nTo: <{ruri}>\r\n"
              f"Call-ID: {call_id}\r\nCSeq: 1 INVITE\r\nContact: <sip:probe@{ip}:{sport}>\r\n"
              f"Content-Type: application/sdp\r\nContent-Length: {len(sdp)}\r\n\r\n{sdp}").encode()

    out = {"answered": False, "status": None, "setup_ms": None, "invite_retrans": 0,
           "packets": 0, "intervals": 0, "p50_ms": None, "p99_ms": None, "max_ms": None,
           "seq_gaps": 0, "bye_status": None, "error": None}
    arrivals, seqs, stamps = [], [], []

    def read_rtp():
        while True:
            try:
                data, anc, _, _ = rtp.recvmsg(2048, socket.CMSG_SPACE(16), socket.MSG_DONTWAIT)
            except BlockingIOError:
                return
            ts = None
            for level, typ, cdata in anc:
                if level == socket.SOL_SOCKET and typ == SO_TIMESTAMPNS and len(cdata) >= 16:
                    sec, nsec = struct.unpack("qq", cdata[:16])
                    ts = sec + nsec / 1e9
            if ts is None:
                ts = time.time()
            if len(data) >= 12:
                arrivals.append(ts)
                seqs.append(struct.unpack("!H", data[2:4])[0])
                stamps.append(struct.unpack("!I", data[4:8])[0])

    # INVITE client transaction (timer A doubling, timer B = --timeout).
    t0 = time.monotonic()
    sip.sendto(invite, target)
    next_tx, interval, provisional = t0 + T1, T1, False
    to_hdr = contact = None
    while True:
        now = time.monotonic()
        if now - t0 > args.timeout:
            out["error"] = "INVITE timed out"
            break
        wait = max(0.0, min(next_tx, t0 + args.timeout) - now) if not provisional else 0.2
        r, _, _ = select.select([sip, rtp], [], [], wait)
        if rtp in r:
            read_rtp()
        if sip in r:
            data = sip.recv(65535)
            first, h, _ = parse(data)
            if not first.startswith("SIP/2.0") or h.get("call-id", [""])[0] != call_id:
                continue
            code = int(first.split()[1])
            if code < 200:
                provisional = True
                continue
            out["status"] = code
            to_hdr = h.get("to", [""])[0]
            if code >= 300:  # ACK in the same transaction (RFC 3261 §17.1.1.3)
                ack = (f"ACK {ruri} SIP/2.0\r\n{via(inv_branch)}\r\nMax-Forwards: 70\r\n"
                       f"From: <sip:{args.caller}@{ip}:{sport}>;tag={ftag}\r\nTo: {to_hdr}\r\n"
                       f"Call-ID: {call_id}\r\nCSeq: 1 ACK\r\nContent-Length: 0\r\n\r\n").encode()
                sip.sendto(ack, target)
                out["error"] = first
                break
            out["answered"] = True
            out["setup_ms"] = round((time.monotonic() - t0) * 1000, 1)
            c = h.get("contact", [""])[0]
            contact = c[c.find("<") + 1:c.find(">")] if "<" in c else c.split(";")[0]
            break
        if not provisional and time.monotonic() >= next_tx:
            sip.sendto(invite, target)
            out["invite_retrans"] += 1
            interval = min(interval * 2, 4.0)
            next_tx = time.monotonic() + interval

    if out["answered"]:
        dest = target  # the responses' Contact host:port; we keep the target (loopback benches)
        ack = (f"ACK {contact} SIP/2.0\r\n{via(token(12))}\r\nMax-Forwards: 70\r\n"
               f"From: <sip:{args.caller}@{ip}:{sport}>;tag={ftag}\r\nTo: {to_hdr}\r\n"
               f"Call-ID: {call_id}\r\nCSeq: 1 ACK\r\nContent-Length: 0\r\n\r\n").encode()
        sip.sendto(ack, dest)
        end = time.monotonic() + args.listen
        remote_bye = False
        while time.monotonic() < end:
            r, _, _ = select.select([sip, rtp], [], [], max(0.0, end - time.monotonic()))
            if rtp in r:
                read_rtp()
            if sip in r:
                data = sip.recv(65535)
                first, h, _ = parse(data)
                if first.startswith("SIP/2.0 200") and "INVITE" in h.get("cseq", [""])[0]:
                    sip.sendto(ack, dest)  # 200 retransmitted: our ACK was lost
                elif first.startswith("BYE "):
                    resp = ("SIP/2.0 200 OK\r\n" + "".join(
                        f"{k.title()}: {v}\r\n" for k in ("via", "from", "to", "call-id", "cseq")
                        for v in h.get(k, [])) + "Content-Length: 0\r\n\r\n").encode()
                    sip.sendto(resp, dest)
                    remote_bye = True
                    out["error"] = "server sent BYE during the listen window"
                    break
        read_rtp()
        if not remote_bye:
            bye_branch = token(12)
            bye = (f"BYE {contact} SIP/2.0\r\n{via(bye_branch)}\r\nMax-Forwards: 70\r\n"
                   f"From: <sip:{args.caller}@{ip}:{sport}>;tag={ftag}\r\nTo: {to_hdr}\r\n"
                   f"Call-ID: {call_id}\r\nCSeq: 2 BYE\r\nContent-Length: 0\r\n\r\n").encode()
            t_bye = time.monotonic()
            sip.sendto(bye, dest)
            nxt, iv = t_bye + T1, T1
            while time.monotonic() - t_bye < 32:
                r, _, _ = select.select([sip], [], [], max(0.0, nxt - time.monotonic()))
                if r:
                    first, h, _ = parse(sip.recv(65535))
                    if first.startswith("SIP/2.0") and "BYE" in h.get("cseq", [""])[0]:
                        code = int(first.split()[1])
                        if code >= 200:
                            out["bye_status"] = code
                            break
                if time.monotonic() >= nxt:
                    sip.sendto(bye, dest)
                    iv = min(iv * 2, 4.0)
                    nxt = time.monotonic() + iv

    out["packets"] = len(arrivals)
    gaps = sorted((b - a) * 1000 for a, b in zip(arrivals, arrivals[1:]))
    out["intervals"] = len(gaps)
    if gaps:
        out["p50_ms"] = round(percentile(gaps, 50), 2)
        out["p99_ms"] = round(percentile(gaps, 99), 2)
        out["max_ms"] = round(gaps[-1], 2)
    if seqs:
        out["seq_gaps"] = sum(((b - a) & 0xFFFF) - 1 for a, b in zip(seqs, seqs[1:])
                              if 1 < ((b - a) & 0xFFFF) < 30000)
        # Audio the sender skipped: RTP timestamp steps beyond one packet's worth (160 samples
        # of PCMU = 20 ms) between packets with consecutive sequence numbers.
        skipped = [((tb - ta) & 0xFFFFFFFF) - 160 for ta, tb, sa, sb
                   in zip(stamps, stamps[1:], seqs, seqs[1:])
                   if ((sb - sa) & 0xFFFF) == 1 and 160 < ((tb - ta) & 0xFFFFFFFF) < 8000 * 60]
        out["ts_jumps"] = len(skipped)
        out["ts_skipped_ms"] = round(sum(skipped) / 8.0, 1)
        if len(arrivals) > 1:
            out["rtp_span_s"] = round(arrivals[-1] - arrivals[0], 2)
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
