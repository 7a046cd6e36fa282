#!/usr/bin/env bash
# Two ivr nodes behind Kamailio against one (README "Two nodes behind Kamailio"): the same sipp
# load, in the same invocation on the same machine, against
#   ivr          one ivr node, called directly;
#   kam+1        Kamailio (config/kamailio/kamailio.cfg) in front of that one node;
#   kam+2        Kamailio in front of two nodes (round robin);
#   sipp-uas     sipp's own UAS (`sipp -sn uas`), the caller's ceiling on this machine;
#   ivr-pg       one node on PostgreSQL ([store] url), called directly;
#   kam+2-pg     Kamailio in front of two nodes sharing that one PostgreSQL: the set-up that
#                survives a node's death (repeat callers, SLA timers and the outbox are shared).
# The PostgreSQL set-ups run when PostgreSQL is installed (Debian's postgresql package): the
# script starts a throw-away cluster in its work directory (fsync on, as in production), each
# set-up gets a fresh database.
# Two loads per set-up:
#   cps   RATE calls/s for SECONDS s, each hung up by the caller right after its ACK (-d 0):
#         call set-up and tear-down, as benches/call_setup.sh;
#   held  HOLD_RATE calls/s for SECONDS s, each held HOLD_S s while ivr streams its greeting
#         (--hold-after-prompt keeps the stream going), so about HOLD_RATE x HOLD_S concurrent
#         streams at the peak.
#
# Usage: benches/two_nodes.sh [RATE] [HOLD_RATE] [SECONDS] [HOLD_S]
#   defaults 1000 100 8 8 (about 2 minutes after the release build)
# Env: KEEP_WORK=1 keeps the work directory (logs, sipp stats).
# Needs: sipp (apt-get install sip-tester), kamailio (apt-get install kamailio), python3;
# postgresql for the -pg set-ups.
#
# Set-up: each node is `ivr serve` (release build) with ring_ms = 0 and answer_delay_ms = 0, the
# shipped after-hours flow with --now on a Saturday night, sip.max_calls lifted, its own data
# directory and RTP port range, the proxy trusted and exempt from the per-source limits (as the
# README says to run them behind Kamailio). Kamailio runs the shipped config with 4 workers and
# pike's density raised above the load (all calls come from one sipp address). The caller is
# benches/sipp/uac_caller_routed.xml (sipp's uac with a caller number per call, ACK and BYE
# along the route set). Processes are killed after each set-up (SIGKILL: the numbers are read).
# Everything shares the machine's cores: two nodes on one machine show the proxy's cost and that
# the spread works, not the capacity of two machines.
#
# Columns: attempted / successful / failed calls (sipp), completed cps = successful / elapsed
# (sipp's start to its last stats dump), setup ms = mean INVITE-to-200 (sipp's ResponseTime1),
# peak concurrent = sipp's highest CurrentCall sample (1 s), calls per node = each node's `cdr`
# log lines, server CPU s = CPU of the ivr node(s) plus Kamailio plus PostgreSQL (its postmaster
# and backends) during the run.
set -euo pipefail
cd "$(dirname "$0")/.."
rate="${1:-1000}"
hold_rate="${2:-100}"
seconds="${3:-8}"
hold_s="${4:-8}"
scenario="$PWD/benches/sipp/uac_caller_routed.xml"
after_hours="2026-11-28T03:00:00Z"   # a Saturday night in America/New_York
kamailio_bin="$(command -v kamailio || echo /usr/sbin/kamailio)"

ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)"
cargo build --release --quiet
work="$(mktemp -d)"
pids=()
cleanup() {
    # SIGTERM first: Kamailio's main process then stops its workers (SIGKILL would orphan them).
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
    sleep 0.5
    for p in "${pids[@]}"; do kill -9 "$p" 2>/dev/null || true; done
    if [ -n "${pg_data:-}" ]; then as_pg "$pg_bin/pg_ctl" -D "$pg_data" -m immediate stop >/dev/null 2>&1 || true; fi
    if [ -n "${KEEP_WORK:-}" ]; then echo "work directory kept: $work" >&2; else rm -rf "$work"; fi
}
trap cleanup EXIT
source benches/lib.sh
results="$work/results.txt"
: > "$results"

# PostgreSQL: the newest Debian server binaries; the server refuses root, so as root it runs as
# the package's postgres user.
pg_bin="$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1 || true)"
as_pg() { if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi; }
pg_port=""
# start_postgres -> pg_port (the cluster lives in $work/pg until the script ends)
start_postgres() {
    pg_data="$work/pg/data"
    mkdir -p "$work/pg"; chmod 755 "$work"
    [ "$(id -u)" = 0 ] && chown postgres "$work/pg"
    as_pg "$pg_bin/initdb" -D "$pg_data" -A trust -U postgres -E UTF8 --locale=C --no-instructions >"$work/pg/initdb.log" 2>&1
    pg_port=$(free_port)
    as_pg "$pg_bin/pg_ctl" -D "$pg_data" -l "$work/pg/log" -w -o "-k $work/pg -p $pg_port -c listen_addresses=127.0.0.1 -c max_connections=100" start >/dev/null
    pg_pid=$(head -n 1 "$pg_data/postmaster.pid")
}
# pg_database NAME -> a fresh database's URL in store_url
pg_database() {
    as_pg "$pg_bin/psql" -q -h 127.0.0.1 -p "$pg_port" -U postgres -c "CREATE DATABASE \"$1\"" >/dev/null
    store_url="postgres://postgres@127.0.0.1:$pg_port/$1"
}
store_url=""

# node_config NAME -> $work/node-NAME.toml (on the database store_url names, when set)
node_config() {
    printf '[sip]\nmax_calls = 1000000\n[sip.limits]\nexempt = ["127.0.0.0/8"]\n[callers]\ntrusted_proxies = ["127.0.0.1"]\n[call]\nring_ms = 0\nanswer_delay_ms = 0\n[cluster]\nnode = "%s"\n' "$1" > "$work/node-$1.toml"
    if [ -n "$store_url" ]; then printf '[store]\nurl = "%s"\n' "$store_url" >> "$work/node-$1.toml"; fi
}
# start_node NAME RTP_RANGE -> node_pid, node_port
start_node() {
    node_port=$(free_port_udp_tcp)
    node_config "$1"
    "$ivr_bin" serve --config "$work/node-$1.toml" --sip "127.0.0.1:$node_port" --admin "" \
        --rtp-ports "$2" --hold-after-prompt --data "$work/data-$1" --now "$after_hours" \
        >"$work/$1.out" 2>"$work/$1.log" &
    node_pid=$!
    pids+=("$node_pid")
    for _ in $(seq 100); do grep -q "listening" "$work/$1.out" 2>/dev/null && break; sleep 0.1; done
}
# kill_now PID... -> SIGKILL and reap quietly (the numbers are read; no graceful stop)
kill_now() {
    kill -9 "$@" 2>/dev/null || true
    for p in "$@"; do wait "$p" 2>/dev/null || true; done
}
# free_port_udp_tcp -> a loopback port free for both UDP and TCP (Kamailio listens on both)
free_port_udp_tcp() {
    python3 -c 'import socket
while True:
    u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); u.bind(("127.0.0.1", 0)); p = u.getsockname()[1]
    t = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        t.bind(("127.0.0.1", p)); print(p); break
    except OSError:
        pass
    finally:
        t.close(); u.close()'
}
# start_kamailio NAME NODE_PORT... -> kam_pid, kam_port (a port taken meanwhile: another one)
start_kamailio() {
    local name=$1; shift
    : > "$work/$name.list"
    for p in "$@"; do echo "1 sip:127.0.0.1:$p 0 0" >> "$work/$name.list"; done
    mkdir -p "$work/$name-run"
    for _ in 1 2 3; do
        kam_port=$(free_port_udp_tcp)
        "$kamailio_bin" -DD -E -m 256 -M 16 -f config/kamailio/kamailio.cfg -Y "$work/$name-run" \
            -P "$work/$name-run/kamailio.pid" -A "LISTEN=127.0.0.1:$kam_port" \
            -A "DSLIST=\"$work/$name.list\"" -A CHILDREN=4 -A PIKE_DENSITY=1000000 \
            >"$work/$name.log" 2>&1 &
        kam_pid=$!
        sleep 1.5
        if kill -0 "$kam_pid" 2>/dev/null; then pids+=("$kam_pid"); return; fi
        wait "$kam_pid" 2>/dev/null || true
    done
    echo "kamailio did not start; its log: $work/$name.log" >&2
    exit 1
}
# kamailio_cpu PID -> CPU seconds of the main process and its workers (Kamailio's, or
# PostgreSQL's postmaster and its backends)
kamailio_cpu() {
    local total=0 c
    for p in $1 $(pgrep -P "$1" || true); do
        c=$(cpu_seconds "$p" 2>/dev/null || echo 0)
        total=$(python3 -c "print($total + $c)")
    done
    echo "$total"
}
# cpu_of PIDS... (ivr nodes and Kamailio main processes) -> CPU seconds
cpu_of() {
    local total=0 c
    for p in "$@"; do
        case "$(cat "/proc/$p/comm" 2>/dev/null)" in
            kamailio|postgres) c=$(kamailio_cpu "$p") ;;
            *) c=$(cpu_seconds "$p") ;;
        esac
        total=$(python3 -c "print($total + $c)")
    done
    echo "$total"
}
# run_load SETUP LOAD PORT "SERVER_PIDS" "NODE_LOGS" -> one line in $results
run_load() {
    local setup=$1 load=$2 port=$3 servers=$4 logs=$5
    local r=$rate d=0
    if [ "$load" = held ]; then r=$hold_rate; d=$((hold_s * 1000)); fi
    local calls=$((r * seconds))
    local dir="$work/$setup-$load"; mkdir -p "$dir"
    local cpu0 cpu1
    # shellcheck disable=SC2086
    cpu0=$(cpu_of $servers)
    ( cd "$dir" && sipp -sf "$scenario" "127.0.0.1:$port" -i 127.0.0.1 -p "$(free_port)" \
        -mp "$(free_media_port)" -r "$r" -m "$calls" -d "$d" -l "$calls" -max_socket 60000 \
        -buff_size 4194304 -recv_timeout 32s -timeout $((seconds + hold_s + 60))s \
        -trace_stat -stf stat.csv -fd 1 -trace_err -error_file err.log >/dev/null 2>sipp.stderr ) || true
    sleep 1
    # shellcheck disable=SC2086
    cpu1=$(cpu_of $servers)
    local per_node=""
    for log in $logs; do per_node="$per_node$(grep -c 'event="cdr"' "$log" || true)/"; done
    echo "$setup $load $r $dir $cpu0 $cpu1 ${per_node%/}" >> "$results"
}

for load in cps held; do
    # ivr alone, then the same node behind Kamailio.
    start_node "a-$load" 10000-20999
    a_pid=$node_pid; a_port=$node_port
    run_load ivr "$load" "$a_port" "$a_pid" "$work/a-$load.log"
    kill_now "$a_pid"
    start_node "a1-$load" 10000-20999
    a_pid=$node_pid; a_port=$node_port
    start_kamailio "kam1-$load" "$a_port"
    run_load kam+1 "$load" "$kam_port" "$a_pid $kam_pid" "$work/a1-$load.log"
    kill "$kam_pid"; kill_now "$a_pid"; wait "$kam_pid" 2>/dev/null || true
    # Two nodes behind Kamailio.
    start_node "a2-$load" 10000-20999
    a_pid=$node_pid; a_port=$node_port
    start_node "b2-$load" 21000-31999
    b_pid=$node_pid; b_port=$node_port
    start_kamailio "kam2-$load" "$a_port" "$b_port"
    run_load kam+2 "$load" "$kam_port" "$a_pid $b_pid $kam_pid" "$work/a2-$load.log $work/b2-$load.log"
    kill "$kam_pid"; kill_now "$a_pid" "$b_pid"; wait "$kam_pid" 2>/dev/null || true
    # sipp's UAS.
    port=$(free_port)
    uas_pid=$(cd "$work" && sipp -sn uas -i 127.0.0.1 -p "$port" -mp "$(free_media_port)" \
        -max_socket 60000 -buff_size 4194304 -bg 2>&1 | sed -n 's/.*PID=\[\([0-9]*\)\].*/\1/p' || true)
    pids+=("$uas_pid")
    sleep 0.5
    run_load sipp-uas "$load" "$port" "$uas_pid" ""
    kill "$uas_pid" 2>/dev/null || true
    # The same on one shared PostgreSQL.
    if [ -n "$pg_bin" ]; then
        [ -n "$pg_port" ] || start_postgres
        pg_database "one_$load"
        start_node "p-$load" 10000-20999
        a_pid=$node_pid; a_port=$node_port
        run_load ivr-pg "$load" "$a_port" "$a_pid $pg_pid" "$work/p-$load.log"
        kill_now "$a_pid"
        pg_database "two_$load"
        start_node "pa-$load" 10000-20999
        a_pid=$node_pid; a_port=$node_port
        start_node "pb-$load" 21000-31999
        b_pid=$node_pid; b_port=$node_port
        start_kamailio "kam2pg-$load" "$a_port" "$b_port"
        run_load kam+2-pg "$load" "$kam_port" "$a_pid $b_pid $kam_pid $pg_pid" "$work/pa-$load.log $work/pb-$load.log"
        kill "$kam_pid"; kill_now "$a_pid" "$b_pid"; wait "$kam_pid" 2>/dev/null || true
        store_url=""
    else
        echo "PostgreSQL not installed: the -pg set-ups are skipped" >&2
    fi
done

python3 - "$results" <<'PY'
import csv, sys

def epoch(t):
    return float(t.split("\t")[-1])

print("| set-up | load | offered cps | attempted | successful | failed | completed cps | setup ms "
      "| peak concurrent | calls per node | server CPU s |")
print("|---|---|---|---|---|---|---|---|---|---|---|")
for line in open(sys.argv[1]):
    parts = line.split()
    setup, load, rate, d, cpu0, cpu1 = parts[:6]
    per_node = parts[6] if len(parts) > 6 else "–"
    stats = list(csv.reader(open(f"{d}/stat.csv"), delimiter=";"))
    head, last = stats[0], stats[-1]
    col = lambda r, k: r[head.index(k)]
    n = lambda k: int(col(last, k))
    wall = epoch(col(last, "CurrentTime")) - epoch(col(last, "StartTime"))
    ok, failed = n("SuccessfulCall(C)"), n("FailedCall(C)")
    peak = max(int(col(r, "CurrentCall")) for r in stats[1:])
    h, m, s, us = (int(x) for x in col(last, "ResponseTime1(C)").split(":"))
    setup_ms = (h * 3600 + m * 60 + s) * 1000 + us / 1000
    cps = ok / wall if wall > 0 else 0.0
    cpu = float(cpu1) - float(cpu0)
    print(f"| {setup} | {load} | {rate} | {n('OutgoingCall(C)')} | {ok} | {failed} | {cps:.0f} "
          f"| {setup_ms:.1f} | {peak} | {per_node or '–'} | {cpu:.1f} |")
PY
