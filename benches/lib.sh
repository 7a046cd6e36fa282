# Shell helpers the load benchmarks share (sourced by call_setup.sh, options_flood.sh and
# streams.sh from the project root): free loopback ports, a process's CPU seconds and memory,
# kernel drops at a UDP socket, and stopping ivr.

tck=$(getconf CLK_TCK)
# The release binary `cargo build --release` made: under CARGO_TARGET_DIR when that is set;
# IVR_BIN names another one (e.g. a copy of the binary before a change, for an A/B run).
ivr_bin="${IVR_BIN:-${CARGO_TARGET_DIR:-target}/release/ivr}"

free_port() { python3 -c 'import socket;s=socket.socket(socket.AF_INET,socket.SOCK_DGRAM);s.bind(("127.0.0.1",0));print(s.getsockname()[1])'; }
# free_media_port -> an even port P with P..P+3 free: sipp binds -mp (audio RTP), +1 (RTCP),
# +2 and +3 (video) and gives up if any of them is taken; below 50000, as a UAS numbers its
# per-call [auto_media_port] up to 10,000 above -mp
free_media_port() {
    python3 -c 'import random,socket
for _ in range(500):
    p = random.randrange(40000, 50000, 2); ss = []
    try:
        for q in range(p, p + 4):
            s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); ss.append(s); s.bind(("127.0.0.1", q))
        print(p); break
    except OSError:
        pass
    finally:
        for s in ss: s.close()'
}
cpu_seconds() { awk -v t="$tck" '{printf "%.2f", ($14+$15)/t}' "/proc/$1/stat"; }
status_kb() { awk -v k="$2:" '$1==k {print $2}' "/proc/$1/status"; }
# udp_drops PORT -> datagrams the kernel dropped for the UDP socket(s) bound to 127.0.0.1:PORT
# (the "drops" column of /proc/net/udp: the socket's receive buffer was full)
udp_drops() {
    awk -v p="$(printf '0100007F:%04X' "$1")" '$2 == p {d += $NF} END {print d + 0}' /proc/net/udp
}
# ivr's graceful shutdown waits out its SIP transactions (64 x T1 = 32 s after the last one);
# the measurements are taken by then. Give it 45 s, then SIGKILL.
stop_ivr() {
    kill "$1" 2>/dev/null || true
    for _ in $(seq 450); do kill -0 "$1" 2>/dev/null || break; sleep 0.1; done
    kill -0 "$1" 2>/dev/null && { echo "ivr $1 still running 45 s after SIGTERM; killing it" >&2; kill -9 "$1"; }
    wait "$1" 2>/dev/null || true
}
