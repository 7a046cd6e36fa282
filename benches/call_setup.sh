#!/usr/bin/env bash
# Call set-up rate benchmark: how many calls per second `ivr` completes when the caller hangs up
# right after the ACK (INVITE, 100, 200, ACK, BYE, 200: the SIP transactions, the call record and
# its webhook events in the store, and the media set-up and tear-down of a call that plays
# nothing), against sipp's own UAS (`sipp -sn uas`, 180 and 200 at once, no media) in the same
# invocation on the same machine. The ratio of completed calls per second is the figure that counts.
#
# Usage: benches/call_setup.sh [RATES] [SECONDS]
#   RATES    space-separated offered call rates in calls/s (default "2000 3000 4000")
#   SECONDS  how long each rate is offered (default 10)
#   e.g. benches/call_setup.sh "2000 3000 4000" 10   (the knee)
#        benches/call_setup.sh "4000 6000" 10        (overload: goodput above the knee)
# Env: ADMIN_WATCH=1 adds a third server per rate, "ivr+admin": the same ivr with its admin server
#      on, a Prometheus-style scrape of /metrics every 0.5 s and a browser-like SSE client on
#      /api/calls/events for the whole run (the cost of being watched, against the row without);
#      IVR_MAX_CALLS (default 1000000: sip.max_calls lifted so the load, not the limit, is measured;
#      set it low, e.g. 20, to check that 503 answers are counted as failed calls);
#      KEEP_WORK=1 keeps the work directory (ivr logs, sipp stats and error logs);
#      TMPDIR=/dev/shm puts the work directory, and so ivr's data directory (its SQLite store,
#      synchronous=FULL: fsync'd commits), on tmpfs: the rate without the disk's fsync latency.
# Needs: sipp (apt-get install sip-tester), python3. About 2 x SECONDS + 40 s per rate (ivr's
# graceful stop takes ~32 s), longer when ivr falls behind and calls queue up (at most
# SECONDS + 120 s per sipp run).
#
# Set-up: ivr with [call] ring_ms = 0 and answer_delay_ms = 0 (answers at once), the shipped
# after-hours flow with --now on a Saturday night (the greeting path whatever the time of day),
# RTP ports 10000-31999 (11,000 calls at once), a fresh data directory and a fresh process per
# rate (so peak RSS is per rate).
# The caller is sipp's built-in uac with -d 0 (benches/sipp/uac_caller.xml: `sipp -sn uac` with one
# caller number per call, see there why): it sends BYE as soon as it has sent the ACK. sipp's own
# limits are lifted: -l (concurrent calls) = all the calls of the run, -max_socket 60000,
# -buff_size 4 MiB (sipp's default socket buffers are 64 KiB: responses were dropped);
# -recv_timeout 32 s (a call that gets a 100 but never a final answer fails after 32 s, like
# timer B, instead of hanging);
# -timeout SECONDS + 120 s as a last resort (calls still open then show as "unfinished").
# Retransmissions stay on (sipp's T1 = 500 ms): they are part of what is measured.
#
# Columns:
#   attempted = calls sipp created; successful + failed (+ unfinished, if any) = attempted.
#   failed: every way a call can fail (error answer such as 503, INVITE or BYE retransmissions
#     exhausted, no answer within -recv_timeout). sipp's default UAC treats a 503 as an unexpected
#     message: it ACKs it and counts the call as failed; "503s" counts those calls in sipp's
#     -trace_err log (one line per call aborted on a 503), and in brackets the 503s that arrived
#     for calls sipp had already given up on (no answer in 32 s), which nobody ACKs any more.
#   completed cps = successful / elapsed, elapsed = wall time of the sipp run from its start to
#     the end of its last call (sipp's StartTime to its final -trace_stat dump). A few calls that
#     fail slowly (32 s) stretch elapsed, so also:
#   goodput cps = successful / the time by which the last successful call had ended (first
#     -trace_stat sample showing the final count; 1 s resolution).
#   achieved cps = calls sipp had created by its last 1 s -trace_stat sample before it had
#     created them all, divided by that sample's time: if this is well below "offered", the sipp
#     caller could not offer the rate and the row measures sipp, not the server.
#   retrans = retransmissions sent by the sipp caller (INVITE, BYE).
#   server CPU s = utime + stime of the server process during the sipp run (/proc/PID/stat);
#   peak RSS = VmHWM of the server process (fresh per rate), end RSS = VmRSS after the run;
#   server UDP drops = datagrams the kernel dropped at the server's SIP socket because its
#     receive buffer was full (/proc/net/udp; ivr keeps the default SO_RCVBUF, sipp gets
#     -buff_size 4 MiB, capped by net.core.rmem_max);
#   setup ms = sipp's mean INVITE-to-200 time over the successful calls (ResponseTime1);
#   caller CPU s = the sipp caller's own CPU (close to "elapsed s": the caller was busy all the
#     time on its one thread; check "achieved cps").
# What was checked about the caller: "achieved cps" against "offered", and the baseline row: the
# same sipp caller against sipp's UAS shows what the caller can drive on this machine. Both
# servers share the machine's 2 cores with the caller, so the caller's CPU is part of the picture.
# Prints a Markdown table, then one of the ratios ivr / sipp-uas per rate (completed and goodput
# cps), and on stderr a summary of each ivr log (WARN / ERROR lines by kind).
set -euo pipefail
cd "$(dirname "$0")/.."
rates="${1:-2000 3000 4000}"
seconds="${2:-10}"
max_calls="${IVR_MAX_CALLS:-1000000}"
scenario="$PWD/benches/sipp/uac_caller.xml"
after_hours="2026-11-28T03:00:00Z"   # a Saturday night in America/New_York: the same flow path any time

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
printf '[sip]\nmax_calls = %s\n[sip.limits]\nexempt = ["127.0.0.0/8"]\n[call]\nring_ms = 0\nanswer_delay_ms = 0\n' "$max_calls" > "$work/ivr.toml"
results="$work/results.txt"
: > "$results"

source benches/lib.sh
# run_load NAME PORT SERVER_PID RATE -> one line in $results
run_load() {
    local name=$1 port=$2 pid=$3 rate=$4
    local calls=$((rate * seconds))
    local dir="$work/$name-$rate"; mkdir -p "$dir"
    local cpu0 cpu1
    cpu0=$(cpu_seconds "$pid")
    # bash's `time` gives the wall time of the run and the caller's own CPU.
    ( cd "$dir" && TIMEFORMAT='%R %U %S' && { time sipp -sf "$scenario" "127.0.0.1:$port" -i 127.0.0.1 \
        -p "$(free_port)" -mp "$(free_media_port)" -r "$rate" -m "$calls" -d 0 -l "$calls" \
        -max_socket 60000 -buff_size 4194304 -recv_timeout 32s -timeout $((seconds + 120))s \
        -trace_stat -stf stat.csv -fd 1 -trace_err -error_file err.log \
        >/dev/null 2>sipp.stderr ; } 2> time.txt ) || true
    sleep 0.5   # let the server finish the last BYE transactions before reading its CPU
    cpu1=$(cpu_seconds "$pid")
    echo "$name $rate $dir $cpu0 $cpu1 $(status_kb "$pid" VmHWM) $(status_kb "$pid" VmRSS) $(udp_drops "$port")" >> "$results"
}

# start_ivr RATE TAG [ADMIN_ADDR] -> ivr_pid, port (globals); the admin server off unless given
start_ivr() {
    port=$(free_port)
    IVR_ADMIN_TOKEN=bench-admin-token-0123456789 "$ivr_bin" serve --config "$work/ivr.toml" \
        --sip "127.0.0.1:$port" --admin "${3:-}" \
        --rtp-ports 10000-31999 --data "$work/data-$2-$1" --now "$after_hours" >"$work/$2-$1.out" 2>"$work/ivr-$2-$1.log" &
    ivr_pid=$!
    pids+=("$ivr_pid")
    for _ in $(seq 100); do grep -q "listening" "$work/$2-$1.out" 2>/dev/null && break; sleep 0.1; done
}

for rate in $rates; do
    start_ivr "$rate" ivr
    run_load ivr "$port" "$ivr_pid" "$rate"
    stop_ivr "$ivr_pid"

    if [ -n "${ADMIN_WATCH:-}" ]; then
        admin="127.0.0.1:$(free_port)"
        start_ivr "$rate" admin "$admin"
        ( while kill -0 "$ivr_pid" 2>/dev/null; do
              curl -s -o /dev/null "http://$admin/metrics" || true; sleep 0.5
          done ) &
        pids+=($!)
        curl -s -N -H "Authorization: Bearer bench-admin-token-0123456789" \
            "http://$admin/api/calls/events" > "$work/sse-$rate.txt" 2>/dev/null &
        pids+=($!)
        run_load ivr+admin "$port" "$ivr_pid" "$rate"
        echo "ivr+admin at $rate cps: $(grep -c '^event: calls' "$work/sse-$rate.txt") SSE events received" >&2
        stop_ivr "$ivr_pid"
    fi

    port=$(free_port)
    uas_pid=$(cd "$work" && sipp -sn uas -i 127.0.0.1 -p "$port" -mp "$(free_media_port)" \
        -max_socket 60000 -buff_size 4194304 -bg 2>&1 | sed -n 's/.*PID=\[\([0-9]*\)\].*/\1/p' || true)
    pids+=("$uas_pid")
    sleep 0.5
    run_load sipp-uas "$port" "$uas_pid" "$rate"
    kill "$uas_pid" 2>/dev/null || true
done

for log in "$work"/ivr-*.log; do python3 benches/log_summary.py "$(basename "$log" .log)" "$log" >&2; done
python3 - "$results" <<'PY'
import csv, re, sys

def epoch(t):  # sipp's time columns: "date<TAB>time<TAB>epoch"
    return float(t.split("\t")[-1])

rows, cps = [], {}
for line in open(sys.argv[1]):
    name, rate, d, cpu0, cpu1, hwm, rss, drops = line.split()
    stats = list(csv.reader(open(f"{d}/stat.csv"), delimiter=";"))
    head, last = stats[0], stats[-1]
    col = lambda r, k: r[head.index(k)]
    n = lambda k: int(col(last, k))
    start = epoch(col(last, "StartTime"))
    wall = epoch(col(last, "CurrentTime")) - start  # sipp's own start to its final stats dump
    attempted, ok, failed = n("OutgoingCall(C)"), n("SuccessfulCall(C)"), n("FailedCall(C)")
    unfinished = attempted - ok - failed
    # Offer rate sipp achieved: calls created by the last 1 s sample taken while still creating.
    sending = [r for r in stats[1:] if 0 < int(col(r, "OutgoingCall(C)")) < attempted]
    if sending:
        r = sending[-1]
        achieved = f"{int(col(r, 'OutgoingCall(C)')) / (epoch(col(r, 'CurrentTime')) - start):.0f}"
    else:
        achieved = "–"
    try:
        err = open(f"{d}/err.log", errors="replace").read()
    except FileNotFoundError:
        err = ""
    # Calls that failed on a 503, and 503s that reached sipp for calls it had already given up
    # (retransmitted until timer H: nothing ACKs them any more).
    n503 = len(re.findall(r"Aborting call on unexpected message[^\n]*received 'SIP/2\.0 503", err))
    dead503 = len(re.findall(r"Dead call [^\n]*received 'SIP/2\.0 503", err))
    n503 = f"{n503} (+{dead503} to abandoned calls)" if dead503 else f"{n503}"
    _, ucpu, scpu = (float(x) for x in open(f"{d}/time.txt").read().split()[-3:])
    why = []
    for label, key in (("unexpected answer", "FailedUnexpectedMessage(C)"),
                       ("retrans exhausted", "FailedMaxUDPRetrans(C)"),
                       ("no answer in 32 s", "FailedTimeoutOnRecv(C)")):
        if n(key):
            why.append(f"{label}: {n(key)}")
    other = failed - sum(n(k) for k in ("FailedUnexpectedMessage(C)", "FailedMaxUDPRetrans(C)",
                                        "FailedTimeoutOnRecv(C)"))
    if other:
        why.append(f"other: {other}")
    pct = 100.0 * failed / attempted if attempted else 0.0
    failed_s = f"{failed} ({pct:.2f}%{'; ' + ', '.join(why) if why else ''})"
    if unfinished:
        failed_s += f"; unfinished: {unfinished}"
    completed = ok / wall if wall > 0 else 0.0
    last_ok = next(epoch(col(r, "CurrentTime")) - start for r in stats[1:]
                   if int(col(r, "SuccessfulCall(C)")) >= ok)
    goodput = ok / last_ok if last_ok > 0 else 0.0
    h, m, sec, us = (int(x) for x in col(last, "ResponseTime1(C)").split(":"))
    setup_ms = (h * 3600 + m * 60 + sec) * 1000 + us / 1000
    cps[(name, rate)] = (completed, goodput)
    rows.append(f"| {name} | {rate} | {achieved} | {attempted} | {ok} | {failed_s} | {completed:.0f} | {goodput:.0f} | {setup_ms:.0f} "
                f"| {n503} | {n('Retransmissions(C)')} | {float(cpu1) - float(cpu0):.1f} "
                f"| {int(hwm) / 1024:.1f} | {int(rss) / 1024:.1f} | {drops} | {wall:.1f} | {ucpu + scpu:.1f} |")

print("| server | offered cps | achieved cps | attempted | successful | failed | completed cps | goodput cps | setup ms "
      "| 503s | retrans | server CPU s | peak RSS MiB | end RSS MiB | server UDP drops | elapsed s | caller CPU s |")
print("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|")
print("\n".join(rows))
print()
print("| offered cps | ivr completed cps | sipp-uas completed cps | ratio | ivr goodput cps | sipp-uas goodput cps | ratio |")
print("|---|---|---|---|---|---|---|")
ratio = lambda a, b: f"{a / b:.2f}×" if b else "–"
for (name, rate), (c, g) in cps.items():
    if name == "ivr" and ("sipp-uas", rate) in cps:
        bc, bg = cps[("sipp-uas", rate)]
        print(f"| {rate} | {c:.0f} | {bc:.0f} | {ratio(c, bc)} | {g:.0f} | {bg:.0f} | {ratio(g, bg)} |")
watched = [(rate, cps[("ivr", rate)], w) for (name, rate), w in cps.items()
           if name == "ivr+admin" and ("ivr", rate) in cps]
if watched:
    print()
    print("| offered cps | ivr+admin completed cps | ivr completed cps | ratio | ivr+admin goodput cps | ivr goodput cps | ratio |")
    print("|---|---|---|---|---|---|---|")
    for rate, (c, g), (wc, wg) in watched:
        print(f"| {rate} | {wc:.0f} | {c:.0f} | {ratio(wc, c)} | {wg:.0f} | {g:.0f} | {ratio(wg, g)} |")
PY
