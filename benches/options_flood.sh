#!/usr/bin/env bash
# OPTIONS flood: out-of-dialog OPTIONS (the keep-alive / health-check ping of proxies and SBCs,
# and what scanners send) at RATE per second for SECONDS, against `ivr` and against a sipp UAS
# that answers them with 200 (benches/sipp/options_uas.xml), in the same invocation on the same
# machine. During ivr's flood one ordinary call is placed (benches/sip_probe.py: INVITE, ACK,
# 1 s of RTP, BYE) to see whether calls still get through and how long their set-up takes; the
# same call is placed once before the flood for comparison.
#
# Usage: benches/options_flood.sh [RATE] [SECONDS]
#   RATE     OPTIONS per second offered (default 8000)
#   SECONDS  how long (default 20)
#   e.g. benches/options_flood.sh 8000 20   (about 2 x 60 s)
#        benches/options_flood.sh 1000 3    (a quick check of the script)
# Env: KEEP_WORK=1 keeps the work directory (ivr log, sipp stats, probe JSON).
# Needs: sipp (apt-get install sip-tester), python3 (standard library only).
#
# The flood uses no RTP; the calls use ports 10000-31999.
#
# How: sipp -sf benches/sipp/options_uac.xml sends each OPTIONS as its own sipp "call" (own
# Call-ID and branch) and expects 200; it retransmits unanswered ones (T1 = 500 ms, doubling) and
# fails them when its retransmissions run out, or when nothing arrives within -recv_timeout 32 s.
# ivr: a fresh process with sip.max_calls lifted and [call] ring_ms = 0 (so the call's set-up time
# is the server's work, not a ringing pause); its shipped after-hours flow answers the call, with
# --now on a Saturday night so it takes the same path whatever the time of day.
#
# Columns:
#   achieved/s = OPTIONS sipp had sent by its last 1 s -trace_stat sample before it had sent them
#     all, divided by that sample's time (well below RATE: the sipp sender could not keep up, and
#     the row measures sipp, not the server; both servers share the 2 cores with it). Checked:
#     against the sipp UAS baseline the sender offers 8000/s on 2 cores and every OPTIONS is
#     answered, once sipp's socket buffers are 4 MiB (with its default 64 KiB it was not);
#   sent = OPTIONS transactions started (not counting retransmissions); answered = 200 received;
#   failed = no 200 (another answer, retransmissions exhausted, or nothing within 32 s);
#   answered/s = answered / elapsed, elapsed = the sipp run from its start to its final stats;
#   retrans = OPTIONS retransmitted by sipp (answers late or lost);
#   server UDP drops = datagrams the kernel dropped at the server's SIP socket because its receive
#     buffer was full (/proc/net/udp; ivr keeps the default SO_RCVBUF, sipp gets -buff_size
#     4 MiB, capped by net.core.rmem_max, for the caller as well: its default 64 KiB dropped
#     answers);
#   caller CPU s = the sipp sender's own CPU: close to the elapsed time means the sender was busy
#     all the time on its one thread, and the row says more about sipp than about the server;
#   server CPU s = during the flood; RSS before (VmRSS, idle after the first call), peak (VmHWM
#     of the fresh process), VmRSS 2 s and 35 s after the flood (an answered OPTIONS transaction
#     is kept for timer J, 64 x T1 = 32 s, to absorb retransmissions; by 35 s all have ended);
#   call idle / call in flood = the probe call before and during the flood: answered (200 and
#     its BYE answered) and set-up ms (first INVITE to 200, retransmissions included).
set -euo pipefail
cd "$(dirname "$0")/.."
rate="${1:-8000}"
seconds="${2:-20}"
total=$((rate * seconds))
uac_scenario="$PWD/benches/sipp/options_uac.xml"
uas_scenario="$PWD/benches/sipp/options_uas.xml"

ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)"
cargo build --release --quiet
work="$(mktemp -d)"
pids=()
cleanup() {
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
    if [ -n "${KEEP_WORK:-}" ]; then echo "work directory kept: $work" >&2; else rm -rf "$work"; fi
}
trap cleanup EXIT
# The load generator is one source on loopback: exempt it from the per-source limits, as a
# carrier trunk would be.
printf '[sip]\nmax_calls = 1000000\n[sip.limits]\nexempt = ["127.0.0.0/8"]\n[call]\nring_ms = 0\n' > "$work/ivr.toml"
results="$work/results.txt"
: > "$results"

source benches/lib.sh
# flood NAME PORT SERVER_PID PROBE(yes|no) -> one line in $results
flood() {
    local name=$1 port=$2 pid=$3 probe=$4
    local dir="$work/$name"; mkdir -p "$dir"
    local before cpu0 cpu1 hwm after later
    if [ "$probe" = yes ]; then
        python3 benches/sip_probe.py "127.0.0.1:$port" --listen 1 --from +15559990001 > "$dir/probe-idle.json" || true
    fi
    sleep 1
    before=$(status_kb "$pid" VmRSS)
    cpu0=$(cpu_seconds "$pid")
    # bash's `time` gives the caller's own CPU.
    ( cd "$dir" && TIMEFORMAT='%R %U %S' && { time sipp -sf "$uac_scenario" "127.0.0.1:$port" -s ivr \
        -i 127.0.0.1 -p "$(free_port)" -r "$rate" -m "$total" -l "$total" -max_socket 60000 \
        -buff_size 4194304 -recv_timeout 32s -timeout $((seconds + 120))s \
        -trace_stat -stf stat.csv -fd 1 >/dev/null 2>sipp.stderr ; } 2> time.txt ) &
    local uac=$!
    pids+=("$uac")
    if [ "$probe" = yes ]; then
        sleep $(( (seconds + 1) / 2 ))
        python3 benches/sip_probe.py "127.0.0.1:$port" --listen 1 --from +15559990002 > "$dir/probe-flood.json" || true
    fi
    wait "$uac" || true
    cpu1=$(cpu_seconds "$pid")
    hwm=$(status_kb "$pid" VmHWM)
    sleep 2
    after=$(status_kb "$pid" VmRSS)
    sleep 33   # answered OPTIONS transactions are kept 64 x T1 = 32 s (timer J) to absorb retransmissions
    later=$(status_kb "$pid" VmRSS)
    echo "$name $dir $cpu0 $cpu1 $before $hwm $after $later $(udp_drops "$port")" >> "$results"
}

port=$(free_port)
"$ivr_bin" serve --config "$work/ivr.toml" --sip "127.0.0.1:$port" --rtp-ports 10000-31999 \
    --data "$work/data" --now 2026-11-28T03:00:00Z >"$work/ivr.out" 2>"$work/ivr.log" &
ivr_pid=$!
pids+=("$ivr_pid")
for _ in $(seq 100); do grep -q "listening" "$work/ivr.out" 2>/dev/null && break; sleep 0.1; done
flood ivr "$port" "$ivr_pid" yes
stop_ivr "$ivr_pid"

port=$(free_port)
uas_pid=$(cd "$work" && sipp -sf "$uas_scenario" -i 127.0.0.1 -p "$port" \
    -max_socket 60000 -buff_size 4194304 -bg 2>&1 | sed -n 's/.*PID=\[\([0-9]*\)\].*/\1/p' || true)
pids+=("$uas_pid")
sleep 0.5
flood sipp-uas "$port" "$uas_pid" no
kill "$uas_pid" 2>/dev/null || true

python3 benches/log_summary.py "ivr log (2 WARN expected: the empty desk group, the outbox without a webhook URL)" "$work/ivr.log" >&2
python3 - "$results" "$rate" <<'PY'
import csv, json, sys
results, rate = sys.argv[1], sys.argv[2]

def epoch(t):  # sipp's time columns: "date<TAB>time<TAB>epoch"
    return float(t.split("\t")[-1])

def call(path):
    try:
        p = json.loads(open(path).read())
    except FileNotFoundError:
        return "–"
    except Exception:
        return "probe gave no result"
    if not p.get("answered"):
        return f"no ({p.get('error')})"
    ok = "yes" if p.get("bye_status") == 200 else f"answered, BYE {p.get('bye_status')}"
    return f"{ok}, {p['setup_ms']} ms" + (f" ({p['invite_retrans']} retrans)" if p.get("invite_retrans") else "")

print("| server | offered/s | achieved/s | sent | answered | failed | answered/s | retrans "
      "| server UDP drops | server CPU s | caller CPU s | RSS before / peak / +2 s / +35 s MiB "
      "| call idle | call in flood |")
print("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|")
for line in open(results):
    name, d, cpu0, cpu1, before, hwm, after, later, drops = line.split()
    _, ucpu, scpu = (float(x) for x in open(f"{d}/time.txt").read().split()[-3:])
    rows = list(csv.reader(open(f"{d}/stat.csv"), delimiter=";"))
    head, last = rows[0], rows[-1]
    col = lambda r, k: r[head.index(k)]
    n = lambda k: int(col(last, k))
    start = epoch(col(last, "StartTime"))
    wall = epoch(col(last, "CurrentTime")) - start
    sent, ok, failed = n("OutgoingCall(C)"), n("SuccessfulCall(C)"), n("FailedCall(C)")
    sending = [r for r in rows[1:] if 0 < int(col(r, "OutgoingCall(C)")) < sent]
    achieved = (f"{int(col(sending[-1], 'OutgoingCall(C)')) / (epoch(col(sending[-1], 'CurrentTime')) - start):.0f}"
                if sending else "–")
    pct = 100.0 * failed / sent if sent else 0.0
    unfinished = sent - ok - failed
    failed_s = f"{failed} ({pct:.2f}%)" + (f"; unfinished: {unfinished}" if unfinished else "")
    mib = lambda kb: f"{int(kb) / 1024:.1f}"
    print(f"| {name} | {rate} | {achieved} | {sent} | {ok} | {failed_s} | {ok / wall:.0f} "
          f"| {n('Retransmissions(C)')} | {drops} | {float(cpu1) - float(cpu0):.1f} | {ucpu + scpu:.1f} "
          f"| {mib(before)} / {mib(hwm)} / {mib(after)} / {mib(later)} | {call(f'{d}/probe-idle.json')} "
          f"| {call(f'{d}/probe-flood.json')} |")
PY
