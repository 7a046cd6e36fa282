#!/usr/bin/env bash
# Concurrent prompt streams: CALLS calls held up at once, each receiving the after-hours greeting
# as 20 ms PCMU RTP from `ivr`, plus one probe call placed once all of them are up whose RTP
# arrival times show how evenly the server still paces its streams (inter-packet interval p50 /
# p99 / max; 20 ms is perfect). Baseline in the same invocation on the same machine: the same
# callers and probe against a sipp UAS streaming the same prompt (benches/sipp/uas_rtp.xml, sipp's
# rtp_stream, as in benches/sipp_load.sh).
#
# Usage: benches/streams.sh [CALLS]
#   CALLS  concurrent calls (default 3100)
#   e.g. benches/streams.sh 3100      (about 4 minutes: 2 x ~80 s, ivr's graceful stop ~32 s)
#        benches/streams.sh 200       (a quick check of the script)
# Env: KEEP_WORK=1 keeps the work directory (ivr logs, sipp stats, the probe's JSON).
# Needs: sipp (apt-get install sip-tester), sox, python3 (standard library only).
#
# How: sipp (benches/sipp/uac_caller.xml: `sipp -sn uac` with one caller number per call, see
# there why) places CALLS calls at CALLS/5 calls/s (a 5 s ramp if the server keeps up), each held
# 60 s after its answer before the caller's BYE; the callers send no RTP, and the streams all go
# to the one -mp port of the sipp caller, which never reads it (the kernel drops them there,
# at little cost). ivr runs with the shipped
# defaults (1 s ringing, 300 ms answer delay, the after-hours flow), sip.max_calls lifted,
# --hold-after-prompt, RTP ports 10000-31999, and --now set to a Saturday night so the after-hours
# greeting plays whatever the time of day. Once every call has been answered (sipp's
# -trace_counts: 200s received; or failed), benches/sip_probe.py (INVITE with a PCMU offer, ACK,
# 10 s of RTP, BYE) places the probe call; the probe reads the kernel's receive timestamp of every
# RTP packet (SO_TIMESTAMPNS), so a busy probe process does not distort the intervals.
#
# Columns:
#   calls = calls sipp created; answered = 200s sipp had received when the probe was placed;
#   probe at s = seconds from the first INVITE to the probe's: the time the server took to
#     answer all the calls, plus 1 s; up at probe end = sipp's calls in progress when the
#     probe ended (should still be all of them);
#   failed = sipp's failed calls over the whole run (error answer, retransmissions exhausted,
#     no answer within 32 s);
#   probe: setup ms (INVITE to 200, 1 s of it ringing on both servers), packets received in its
#     10 s (about 485 from ivr, whose first packet comes with the greeting after the 300 ms
#     answer delay; about 500 from sipp), lost (RTP sequence gaps),
#     skipped ms (audio the server skipped: RTP timestamp jumps between consecutive sequence
#     numbers, what a sender does when it wakes up late and drops the packets it missed),
#     p50 / p99 / max of the arrival intervals in ms;
#   server CPU s = the whole sipp run (ramp, hold, hang-ups); CPU % at load = during the probe's
#     10 s with all calls up (100% = one core);
#   RSS idle = VmRSS of the fresh server before the calls; RSS at load = VmRSS at the end of the
#     probe with all calls up; RSS per call = (at load - idle) / up at probe end.
# On stderr: a summary of ivr's log (WARN / ERROR lines by kind; "media task woke late" is ivr
#   saying it missed packet slots, with how many).
# Checked: the sipp UAC holds 3,100 calls receiving RTP on loopback (the baseline row: no failed
#   calls, the probe's stream intact). Open files: the script raises `ulimit -n` to 65536 or, where
#   the hard limit is lower (e.g. 20000 in a container), to the hard limit; 3,100 calls take about
#   one socket per call in ivr and in the sipp UAS, well below 20000.
set -euo pipefail
cd "$(dirname "$0")/.."
calls="${1:-3100}"
rate=$(( (calls + 4) / 5 ))
ramp_s=$(( (calls + rate - 1) / rate ))
hold=60000   # each call's length after its answer (sipp -d)
scenario="$PWD/benches/sipp/uac_caller.xml"
after_hours="2026-11-28T03:00:00Z"   # a Saturday night in America/New_York

ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)"
cargo build --release --quiet
work="$(mktemp -d)"
pids=()
cleanup() {
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
    if [ -n "${KEEP_WORK:-}" ]; then echo "work directory kept: $work" >&2; else rm -rf "$work"; fi
}
trap cleanup EXIT
sox prompts/after_hours_greeting.wav -t ul "$work/prompt.ul"
sed "s#PROMPT_FILE#$work/prompt.ul#" benches/sipp/uas_rtp.xml > "$work/uas_rtp.xml"
# The load generator is one source on loopback: exempt it from the per-source limits, as a
# carrier trunk would be.
printf '[sip]\nmax_calls = 1000000\n[sip.limits]\nexempt = ["127.0.0.0/8"]\n' > "$work/ivr.toml"
results="$work/results.txt"
: > "$results"

source benches/lib.sh
rss_kb() { awk '$1=="VmRSS:" {print $2}' "/proc/$1/status"; }
# progress DIR -> "created answered failed up": sipp's calls created, 200s to the INVITE received
# (-trace_counts), failed calls and calls in progress (-trace_stat), from their latest samples
progress() {
    python3 - "$1" <<'PY' 2>/dev/null || echo "0 0 0 0"
import csv, glob, re, sys
d = sys.argv[1]
rows = list(csv.reader(open(f"{d}/stat.csv"), delimiter=";"))
col = lambda k: int(rows[-1][rows[0].index(k)]) if len(rows) > 1 else 0
answered = 0
for path in glob.glob(f"{d}/*_counts.csv"):
    c = list(csv.reader(open(path), delimiter=";"))
    k = next(i for i, h in enumerate(c[0]) if re.fullmatch(r"\d+_200_Recv", h))
    answered = int(c[-1][k]) if len(c) > 1 else 0
print(col("OutgoingCall(C)"), answered, col("FailedCall(C)"), col("CurrentCall"))
PY
}

# run_streams NAME PORT SERVER_PID -> one line in $results
run_streams() {
    local name=$1 port=$2 pid=$3
    local dir="$work/$name"; mkdir -p "$dir"
    local idle cpu0 cpu1 cpu_p0 cpu_p1 t_start t_p0 t_p1 load created answered failed up up_end
    idle=$(rss_kb "$pid")
    cpu0=$(cpu_seconds "$pid")
    t_start=$(date +%s.%N)
    (cd "$dir" && exec sipp -sf "$scenario" "127.0.0.1:$port" -i 127.0.0.1 -p "$(free_port)" \
        -mp "$(free_media_port)" -r "$rate" -m "$calls" -d "$hold" -l $((calls + 100)) \
        -max_socket 60000 -buff_size 4194304 -recv_timeout 32s \
        -timeout $((ramp_s + hold / 1000 + 180))s \
        -trace_stat -stf stat.csv -trace_counts -fd 1 >/dev/null 2>sipp.stderr) &
    local uac=$!
    pids+=("$uac")
    # Wait until every call has been answered (or has failed): at most the hold time minus the
    # probe's 15 s, so the first calls are still up when the probe ends.
    for _ in $(seq $(( (hold / 1000 - 15) * 2 ))); do
        read -r created answered failed up < <(progress "$dir")
        [ "$created" -ge "$calls" ] && [ $((answered + failed)) -ge "$calls" ] && break
        kill -0 "$uac" 2>/dev/null || break
        sleep 0.5
    done
    if [ "$created" -lt "$calls" ] || [ $((answered + failed)) -lt "$calls" ]; then
        echo "$name: only $answered of $calls calls answered ($created created, $failed failed) when the probe was placed; sipp's stderr:" >&2
        tail -3 "$dir/sipp.stderr" >&2
    fi
    sleep 1
    cpu_p0=$(cpu_seconds "$pid"); t_p0=$(date +%s.%N)
    python3 benches/sip_probe.py "127.0.0.1:$port" --listen 10 > "$dir/probe.json" || true
    cpu_p1=$(cpu_seconds "$pid"); t_p1=$(date +%s.%N)
    load=$(rss_kb "$pid")
    read -r _ _ _ up_end < <(progress "$dir")
    wait "$uac" || true
    sleep 1   # the last BYE transactions
    cpu1=$(cpu_seconds "$pid")
    echo "$name $dir $answered $up_end $idle $load $cpu0 $cpu1 $cpu_p0 $cpu_p1 $t_start $t_p0 $t_p1" >> "$results"
}

# ivr: after hours (--now), holding every call after the prompts until the caller's BYE.
port=$(free_port)
"$ivr_bin" serve --config "$work/ivr.toml" --sip "127.0.0.1:$port" --rtp-ports 10000-31999 \
    --data "$work/data" --hold-after-prompt --now "$after_hours" >"$work/ivr.out" 2>"$work/ivr.log" &
ivr_pid=$!
pids+=("$ivr_pid")
for _ in $(seq 100); do grep -q "listening" "$work/ivr.out" 2>/dev/null && break; sleep 0.1; done
sleep 0.5
run_streams ivr "$port" "$ivr_pid"
stop_ivr "$ivr_pid"

# Baseline: sipp UAS streaming the same prompt with rtp_stream.
port=$(free_port)
uas_pid=$(cd "$work" && sipp -sf "$work/uas_rtp.xml" -i 127.0.0.1 -p "$port" -mp "$(free_media_port)" \
    -max_socket 60000 -buff_size 4194304 -bg 2>&1 | sed -n 's/.*PID=\[\([0-9]*\)\].*/\1/p' || true)
pids+=("$uas_pid")
sleep 0.5
run_streams sipp-uas "$port" "$uas_pid"
kill "$uas_pid" 2>/dev/null || true

python3 benches/log_summary.py "ivr log" "$work/ivr.log" >&2
python3 - "$results" "$calls" "$rate" "$hold" <<'PY'
import csv, json, sys
results, calls, rate, hold = sys.argv[1], int(sys.argv[2]), sys.argv[3], int(sys.argv[4])
print(f"{calls} calls offered at {rate} calls/s, each held {hold / 1000:.0f} s after its answer; "
      "the probe listens 10 s.\n")
print("| server | calls | answered | probe at s | up at probe end | failed | probe setup ms | probe packets | lost | skipped ms | p50 ms "
      "| p99 ms | max ms | server CPU s | CPU % at load | RSS idle MiB | RSS at load MiB "
      "| RSS per call KiB |")
print("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|")
for line in open(results):
    name, d, answered, up_end, idle, load, cpu0, cpu1, cp0, cp1, ts, t0, t1 = line.split()
    rows = list(csv.reader(open(f"{d}/stat.csv"), delimiter=";"))
    head, last = rows[0], rows[-1]
    n = lambda k: int(last[head.index(k)])
    try:
        p = json.loads(open(f"{d}/probe.json").read())
    except Exception:
        p = {"answered": False, "error": "probe gave no result"}
    f = lambda v: "–" if v is None else v
    probe = (f"{f(p.get('setup_ms'))} | {p.get('packets', 0)} | {p.get('seq_gaps', 0)} | "
             f"{p.get('ts_skipped_ms', 0)} | "
             f"{f(p.get('p50_ms'))} | {f(p.get('p99_ms'))} | {f(p.get('max_ms'))}")
    if not p.get("answered"):
        probe = f"not answered ({p.get('error')}) | – | – | – | – | – | –"
    answered, up_end, idle, load = int(answered), int(up_end), int(idle), int(load)
    pct = 100 * (float(cp1) - float(cp0)) / (float(t1) - float(t0))
    # The probe's own call is up too while RSS is read; it is one call among thousands.
    per_call = (load - idle) / up_end if up_end else 0
    print(f"| {name} | {n('OutgoingCall(C)')} | {answered} | {float(t0) - float(ts):.0f} | {up_end} "
          f"| {n('FailedCall(C)')} | {probe} "
          f"| {float(cpu1) - float(cpu0):.1f} | {pct:.0f} | {idle / 1024:.1f} | {load / 1024:.1f} "
          f"| {per_call:.1f} |")
PY
