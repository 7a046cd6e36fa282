#!/usr/bin/env bash
# SIP load benchmark: the same sipp caller load against `ivr` and against a sipp UAS baseline
# that answers the same way and streams the same prompt as 20 ms PCMU RTP (benches/sipp/uas_rtp.xml).
# Both run in the same invocation on the same machine, so the ratio is the figure that counts.
#
# Usage: benches/sipp_load.sh [RATES] [SECONDS] [HOLD_MS]
#   RATES    space-separated call rates in calls/s (default "25 50 100")
#   SECONDS  how long each rate is offered (default 30)
#   HOLD_MS  call length before the caller's BYE (default 5000; concurrent calls = rate x hold)
# Needs: sipp (apt-get install sip-tester), sox. Prints a Markdown table.
set -euo pipefail
cd "$(dirname "$0")/.."
rates="${1:-25 50 100}"
seconds="${2:-30}"
hold="${3:-5000}"

cargo build --release --quiet
work="$(mktemp -d)"
trap 'pkill -P $$ 2>/dev/null || true; rm -rf "$work"' EXIT
sox prompts/after_hours_greeting.wav -t ul "$work/prompt.ul"
sed "s#PROMPT_FILE#$work/prompt.ul#" benches/sipp/uas_rtp.xml > "$work/uas_rtp.xml"
# Lift the production call limit (sip.max_calls = 500) so the load, not the limit, is measured.
# The load generator is one source on loopback: exempt it from the per-source limits, as a
# carrier trunk would be.
printf '[sip]\nmax_calls = 100000\n[sip.limits]\nexempt = ["127.0.0.0/8"]\n' > "$work/ivr.toml"

free_port() { python3 -c 'import socket;s=socket.socket(socket.AF_INET,socket.SOCK_DGRAM);s.bind(("127.0.0.1",0));print(s.getsockname()[1])'; }
cpu_seconds() { awk '{printf "%.2f", ($14+$15)/100}' "/proc/$1/stat"; }

# run_load NAME PORT SERVER_PID RATE -> one table row
run_load() {
    local name=$1 port=$2 pid=$3 rate=$4
    local calls=$((rate * seconds))
    local dir="$work/$name-$rate"; mkdir -p "$dir"
    local cpu0; cpu0=$(cpu_seconds "$pid")
    (cd "$dir" && sipp -sn uac "127.0.0.1:$port" -i 127.0.0.1 -p "$(free_port)" -mp "$(free_port)" \
        -r "$rate" -m "$calls" -d "$hold" -l $((rate * (hold / 1000 + 5))) \
        -timeout $((seconds + hold / 1000 + 60))s -trace_stat -stf stat.csv -fd 1 \
        -max_socket 60000 >/dev/null 2>&1) || true
    local cpu1; cpu1=$(cpu_seconds "$pid")
    python3 - "$dir/stat.csv" "$name" "$rate" "$cpu0" "$cpu1" <<'PY'
import csv, sys
path, name, rate, cpu0, cpu1 = sys.argv[1:]
rows = list(csv.reader(open(path), delimiter=';'))
head, last = rows[0], rows[-1]
col = lambda r, k: r[head.index(k)]
ok, failed = int(col(last, "SuccessfulCall(C)")), int(col(last, "FailedCall(C)"))
peak = max(int(col(r, "CurrentCall")) for r in rows[1:])
retrans = int(col(last, "Retransmissions(C)"))
total = ok + failed
pct = 100.0 * failed / total if total else 100.0
cpu = float(cpu1) - float(cpu0)
print(f"| {name} | {rate} | {total} | {ok} | {failed} ({pct:.2f}%) | {peak} | {retrans} | {cpu:.1f} |")
PY
}

echo "| server | offered cps | calls | ok | failed | peak concurrent | retransmissions | server CPU s |"
echo "|---|---|---|---|---|---|---|---|"
for rate in $rates; do
    # ivr, holding the line after the greeting so the caller decides the call length.
    port=$(free_port)
    "${CARGO_TARGET_DIR:-target}/release/ivr" serve --config "$work/ivr.toml" --sip "127.0.0.1:$port" --rtp-ports 40000-59999 --data "$work/data" \
        --hold-after-prompt >"$work/ivr.out" 2>"$work/ivr-$rate.log" &
    ivr_pid=$!
    for _ in $(seq 50); do grep -q "listening" "$work/ivr.out" 2>/dev/null && break; sleep 0.1; done
    run_load ivr "$port" "$ivr_pid" "$rate"
    kill "$ivr_pid"; wait "$ivr_pid" 2>/dev/null || true

    # sipp UAS baseline with the same prompt streamed as RTP.
    port=$(free_port)
    uas_pid=$(cd "$work" && sipp -sf "$work/uas_rtp.xml" -i 127.0.0.1 -p "$port" -mp "$(free_port)" \
        -max_socket 60000 -bg 2>&1 | sed -n 's/.*PID=\[\([0-9]*\)\].*/\1/p' || true)
    sleep 0.5
    run_load sipp-uas "$port" "$uas_pid" "$rate"
    kill "$uas_pid" 2>/dev/null || true
done
