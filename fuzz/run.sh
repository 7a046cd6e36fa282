#!/bin/sh
# Fuzzes every target (or the named ones) for MINUTES each (default 1) in an optimised build
# with overflow checks and debug assertions (the `fuzz` profile), from fuzz/corpus/<target>/.
# Prints executions, execs/s and findings per target; crashing inputs land in
# fuzz/artifacts/<target>/ and make the exit status 1.
#
#   fuzz/run.sh [MINUTES] [TARGET...]        e.g. fuzz/run.sh 10 sip_session sdp
#   FUZZ_SEED=1234 fuzz/run.sh 3             repeat a run (the seed is printed at the start)
#   fuzz/run.sh --input FILE TARGET          replay one input with the panic and backtrace shown
set -eu
cd "$(dirname "$0")/.."
cargo build --quiet --profile fuzz --example fuzz
bin=target/fuzz/examples/fuzz
case "${1:-}" in
  --input) exec env RUST_BACKTRACE=1 "$bin" "$@" ;;
esac
minutes=${1:-1}
[ $# -gt 0 ] && shift
exec "$bin" --minutes "$minutes" ${FUZZ_SEED:+--seed "$FUZZ_SEED"} "$@"
