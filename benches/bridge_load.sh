#!/usr/bin/env bash
# Bridged-call load benchmark (issue 6): N concurrent caller -> ivr -> staff calls, RTP both ways
# on both legs, against a sipp UAS baseline that answers the same caller and streams RTP back
# with nothing in between. Both run in the same invocation on the same machine, so the ratio
# "ivr CPU per bridged call / baseline UAS CPU per call" is the figure that counts.
#
#   caller (sipp, benches/sipp/bridge_uac_rtp.xml: PCMU + 101 offer, streams RTP, BYE after HOLD_MS)
#     -> ivr (tests/flows/desk.toml: 1 s ringing, answer, ring group "desk")
#       -> staff (ONE sipp UAS, benches/sipp/staff_bridge.xml: answers, presses 1 by RFC 4733,
#          streams RTP until ivr's BYE)
#   caller -> sipp UAS baseline (benches/sipp/uas_bridge_baseline.xml: 1 s ringing, answer,
#     stream RTP; as uas_rtp.xml of benches/sipp_load.sh, but it stops streaming at the BYE)
#
# Usage: benches/bridge_load.sh [RATES] [SECONDS] [HOLD_MS]
#   RATES    space-separated call rates in calls/s (default "20 40")
#   SECONDS  how long each rate is offered (default 20)
#   HOLD_MS  caller's call length after the 200 before its BYE (default 5000;
#            concurrent calls ~ rate x (hold + 1 s ringing))
# Needs: sipp (apt-get install sip-tester, for /usr/share/sip-tester/dtmf_2833_1.pcap), sox.
# Prints a Markdown table of calls and CPU, then one of CPU per call and the ratio.
# KEEP_WORK=1 keeps the work directory (ivr logs, sipp stats) for a look afterwards.
set -euo pipefail
cd "$(dirname "$0")/.."
rates="${1:-20 40}"
seconds="${2:-20}"
hold="${3:-5000}"

cargo build --release --quiet
work="$(mktemp -d)"
pids=()
cleanup() {
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
    if [ -n "${KEEP_WORK:-}" ]; then echo "logs kept in $work" >&2; else rm -rf "$work"; fi
}
trap cleanup EXIT
sox prompts/after_hours_greeting.wav -t ul "$work/prompt.ul"
for f in bridge_uac_rtp staff_bridge uas_bridge_baseline; do
    sed "s#PROMPT_FILE#$work/prompt.ul#" "benches/sipp/$f.xml" > "$work/$f.xml"
done
results="$work/results.txt"
: > "$results"

free_port() { python3 -c 'import socket;s=socket.socket(socket.AF_INET,socket.SOCK_DGRAM);s.bind(("127.0.0.1",0));print(s.getsockname()[1])'; }
# Every sipp here names its -mp port in its SDP ([media_port]): sipp 3.6 sends rtp_stream audio
# from that one port for all calls, and so the RFC 4733 pcap, so ivr's symmetric-RTP latch and the
# SDP agree ([auto_media_port] would advertise a port per call that nothing sends from).
cpu_seconds() { awk '{printf "%.2f", ($14+$15)/100}' "/proc/$1/stat"; }

# start_sipp_uas SCENARIO PORT MEDIA_PORT DIR -> PID of a background sipp UAS
start_sipp_uas() {
    local scenario=$1 port=$2 mp=$3 dir=$4
    (cd "$dir" && sipp -sf "$scenario" -i 127.0.0.1 -p "$port" -mp "$mp" \
        -max_socket 60000 -bg 2>&1 | sed -n 's/.*PID=\[\([0-9]*\)\].*/\1/p' || true)
}

# run_calls NAME PORT MEDIA_PORT SERVER_PID STAFF_PID|- RATE BRIDGE_LOG|- -> one line of results
run_calls() {
    local name=$1 port=$2 mp=$3 pid=$4 staff=$5 rate=$6 log=$7
    local calls=$((rate * seconds))
    local dir="$work/$name-$rate"; mkdir -p "$dir"
    local cpu0 staff0=0 staff1=0 cpu1
    cpu0=$(cpu_seconds "$pid")
    [ "$staff" = - ] || staff0=$(cpu_seconds "$staff")
    (cd "$dir" && sipp -sf "$work/bridge_uac_rtp.xml" "127.0.0.1:$port" -i 127.0.0.1 -p "$(free_port)" \
        -mp "$mp" -r "$rate" -m "$calls" -d "$hold" -l $((rate * (hold / 1000 + 6))) \
        -timeout $((seconds + hold / 1000 + 60))s -trace_stat -stf stat.csv -fd 1 \
        -max_socket 60000 >/dev/null 2>&1) || true
    # Let the staff legs' BYE transactions finish before reading CPU.
    sleep 1
    cpu1=$(cpu_seconds "$pid")
    [ "$staff" = - ] || staff1=$(cpu_seconds "$staff")
    echo "$name $rate $dir/stat.csv $cpu0 $cpu1 $staff0 $staff1 $log" >> "$results"
}

for rate in $rates; do
    # ivr with the desk flow, bridging every call to the one staff sipp.
    staff_port=$(free_port)
    staff_pid=$(start_sipp_uas "$work/staff_bridge.xml" "$staff_port" "$(free_port)" "$work")
    pids+=("$staff_pid")
    cat > "$work/ivr-$rate.toml" <<EOF
[sip]
max_calls = 100000
# The load generator is one source on loopback: exempt, as a carrier trunk would be.
[sip.limits]
exempt = ["127.0.0.0/8"]
[desk]
accept_timeout_s = 10
[[desk.groups]]
name = "desk"
members = ["sip:staff@127.0.0.1:$staff_port"]
EOF
    port=$(free_port)
    "${CARGO_TARGET_DIR:-target}/release/ivr" serve --config "$work/ivr-$rate.toml" --sip "127.0.0.1:$port" \
        --rtp-ports 20000-39999 --data "$work/data-$rate" --flow tests/flows/desk.toml \
        >"$work/ivr-$rate.log" 2>&1 &
    ivr_pid=$!
    pids+=("$ivr_pid")
    for _ in $(seq 50); do grep -q "listening" "$work/ivr-$rate.log" 2>/dev/null && break; sleep 0.1; done
    sleep 0.5
    run_calls ivr "$port" "$(free_port)" "$ivr_pid" "$staff_pid" "$rate" "$work/ivr-$rate.log"
    # ivr drains gracefully on SIGTERM; don't let a slow drain stall the run.
    kill "$ivr_pid"
    for _ in $(seq 100); do kill -0 "$ivr_pid" 2>/dev/null || break; sleep 0.1; done
    kill -9 "$ivr_pid" 2>/dev/null || true; wait "$ivr_pid" 2>/dev/null || true
    kill "$staff_pid" 2>/dev/null || true

    # sipp UAS baseline: answers the same caller and streams the same prompt, no B2BUA.
    port=$(free_port)
    uas_pid=$(start_sipp_uas "$work/uas_bridge_baseline.xml" "$port" "$(free_port)" "$work")
    pids+=("$uas_pid")
    sleep 0.5
    run_calls sipp-uas "$port" "$(free_port)" "$uas_pid" - "$rate" -
    kill "$uas_pid" 2>/dev/null || true
done

python3 - "$results" <<'PY'
import csv, re, sys
from datetime import datetime

def stats(path):
    rows = list(csv.reader(open(path), delimiter=';'))
    head, last = rows[0], rows[-1]
    col = lambda r, k: r[head.index(k)]
    ok, failed = int(col(last, "SuccessfulCall(C)")), int(col(last, "FailedCall(C)"))
    peak = max(int(col(r, "CurrentCall")) for r in rows[1:])
    return ok, failed, peak, int(col(last, "Retransmissions(C)"))

def bridges(log):
    """Calls bridged, and the most bridged at once (from the bridged / bridge_done events)."""
    stamp = re.compile(r'^(\S+Z) ')
    events = []
    for line in open(log, errors="replace"):
        kind = +1 if 'event="bridged"' in line else -1 if 'event="bridge_done"' in line else 0
        if kind and (m := stamp.match(line)):
            events.append((datetime.fromisoformat(m.group(1).replace("Z", "+00:00")), kind))
    events.sort()
    now = peak = 0
    for _, k in events:
        now += k
        peak = max(peak, now)
    return sum(1 for _, k in events if k > 0), peak

rows, per_call, notes = [], {}, []
for line in open(sys.argv[1]):
    name, rate, path, cpu0, cpu1, s0, s1, log = line.split()
    ok, failed, peak, retrans = stats(path)
    total = ok + failed
    pct = 100.0 * failed / total if total else 100.0
    cpu, staff = float(cpu1) - float(cpu0), float(s1) - float(s0)
    if log != "-":
        n, bpeak = bridges(log)
        bridged, staff_cell = f"{n} (peak {bpeak})", f"{staff:.1f}"
        if n != ok:
            notes.append(f"note: ivr at {rate} cps bridged {n} calls but the caller counted {ok} ok")
    else:
        bridged, staff_cell = "–", "–"
    per_call[(name, rate)] = 1000.0 * cpu / ok if ok else float("nan")
    rows.append(f"| {name} | {rate} | {total} | {ok} | {failed} ({pct:.2f}%) | {peak} | {retrans} "
                f"| {bridged} | {cpu:.1f} | {staff_cell} |")

print("| server | offered cps | calls | ok | failed | peak concurrent | retransmissions "
      "| bridged (peak at once) | server CPU s | staff sipp CPU s |")
print("|---|---|---|---|---|---|---|---|---|---|")
print("\n".join(rows))
print()
print("| offered cps | ivr CPU ms per bridged call | sipp-uas CPU ms per call | ratio ivr / sipp-uas |")
print("|---|---|---|---|")
for (name, rate), ms in per_call.items():
    if name == "ivr" and ("sipp-uas", rate) in per_call:
        base = per_call[("sipp-uas", rate)]
        print(f"| {rate} | {ms:.2f} | {base:.2f} | {ms / base:.2f}× |")
for note in notes:
    print(f"\n{note}")
PY
