#!/usr/bin/env bash
# `make bench`: builds the bridge and the load generator (release), then runs every benchmark
# scenario direct and through the bridge for every client × upstream transport pair.
# Writes the markdown table to stdout and bench-results/latest.md (raw figures:
# bench-results/latest.json; bridge logs: bench-results/logs/).
#
# Everything runs on 127.0.0.1 and is bounded (each load run a few seconds, each idle cycle a
# capped number of sessions with deadlines); the whole set takes about 4–5 minutes.
#
#   bash bench/run.sh                                   # the standard set
#   bash bench/run.sh --only a,b --seconds 5            # some scenarios, longer runs
#   bash bench/run.sh --bridge-arg=--log-level=warn     # pass flags to the bridge
#   bash bench/run.sh --upstream-url http://127.0.0.1:3001/mcp --upstream-transport streamable \
#       --echo-params '{"name":"echo","arguments":{"message":"hi"}}'   # a real server
#   BENCH_TIMEOUT=1200 bash bench/run.sh                # outer safety limit (seconds)
#   E=.interop/node/node_modules/@modelcontextprotocol/server-everything/dist/index.js
#   bash bench/run.sh --only f,g,h --stdio-command "node $PWD/$E stdio" \
#       --stdio-echo-params '{"name":"echo","arguments":{"message":"hello"}}' \
#       --stdio-http-command "node --require $PWD/tests/interop/servers/loopback.cjs $PWD/$E streamableHttp"
#                                                       # stdio against server-everything: open
#                                                       # latency (f), throughput (g), added latency (h)
#
# `target/release/examples/loadgen suite --help` lists every option.
set -euo pipefail
cd "$(dirname "$0")/.."

CARGO=${CARGO:-cargo}
OUT_DIR=bench-results
LOG_DIR=$OUT_DIR/logs
mkdir -p "$LOG_DIR"

# 10,000 idle sessions need about 10,000-20,000 sockets in the bridge: lift the soft limit to
# the hard one (raising the hard limit needs privileges a container usually lacks; the suite
# reports how many sessions fit when it is too low).
hard=$(ulimit -Hn)
if [ "$hard" = unlimited ]; then hard=1048576; fi
ulimit -n "$hard" 2>/dev/null || echo "[bench] could not raise the open-files limit to $hard" >&2
echo "[bench] open-files limit: $(ulimit -n) (hard $(ulimit -Hn))" >&2

echo "[bench] building (release)…" >&2
$CARGO build --release --example loadgen --example stdio_server --example replica_bench --bin mcp-bridge >&2

commit=$(git rev-parse --short HEAD 2>/dev/null || echo unknown)
if ! git diff --quiet HEAD -- src Cargo.toml Cargo.lock 2>/dev/null; then
  commit="$commit+uncommitted"
fi

# If the driver dies without cleaning up, end the children it started, by their ids.
cleanup() {
  [ -f "$LOG_DIR/pids" ] || return 0
  while read -r pid name; do
    if [ -r "/proc/$pid/cmdline" ] && tr '\0' ' ' <"/proc/$pid/cmdline" | grep -qE 'mcp-bridge|loadgen'; then
      kill "$pid" 2>/dev/null || true
    fi
  done <"$LOG_DIR/pids"
}
trap cleanup EXIT

status=0
timeout --foreground --kill-after=10 "${BENCH_TIMEOUT:-900}" \
  target/release/examples/loadgen suite \
    --bridge target/release/mcp-bridge \
    --out "$OUT_DIR/latest.md" \
    --json-out "$OUT_DIR/latest.json" \
    --log-dir "$LOG_DIR" \
    --commit "$commit" \
    "$@" || status=$?
# Replicas (issue 16): three bridges on a real redis-server behind haproxy (`make bench`
# installs both first, as `make test` does). With --only, runs when `r` is listed.
only="" prev=""
for a in "$@"; do
  case $a in --only=*) only=${a#--only=} ;; esac
  if [ "$prev" = "--only" ]; then only=$a; fi
  prev=$a
done
if { [ -z "$only" ] || [[ ",$only," == *",r,"* ]]; } && [ "$status" -le 1 ]; then
  echo "[bench] replicas: relay latency, 1 vs 3 replicas, Redis memory per session…" >&2
  timeout --foreground --kill-after=10 300 \
    target/release/examples/replica_bench --out "$OUT_DIR/latest.md" >&2 || status=$?
fi

case $status in
  0) echo "[bench] done: every run clean (no errors, no lost or reordered notifications)" >&2 ;;
  1) echo "[bench] done, but some runs had errors or lost/reordered notifications (see the table)" >&2 ;;
  124|137) echo "[bench] stopped by the outer time limit (${BENCH_TIMEOUT:-900} s)" >&2 ;;
  *) echo "[bench] failed (exit $status)" >&2 ;;
esac
exit "$status"
