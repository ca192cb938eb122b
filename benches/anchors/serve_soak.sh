#!/bin/sh
# The soak run of docs/serving.md: `dmtl serve` under wrk for SECONDS at CONNECTIONS, its
# resident memory sampled every 10 s (one line per sample: seconds, RSS in KiB), then wrk's line.
#   sh serve_soak.sh DMTL_BIN RUN BODIES.jsonl [SECONDS] [CONNECTIONS]
set -eu
BIN=$1; RUN=$2; BODIES=$3; SECS=${4:-180}; C=${5:-64}
HERE=$(cd "$(dirname "$0")" && pwd)
"$BIN" --threads 2 serve --run "$RUN" --addr 127.0.0.1:8080 2> /dev/null &
PID=$!
trap 'kill $PID 2>/dev/null' EXIT
until curl -sf http://127.0.0.1:8080/health > /dev/null; do sleep 1; done
BODIES=$BODIES wrk -t2 -c$C -d${SECS}s --timeout 10s -s "$HERE/serve_load.lua" http://127.0.0.1:8080 > /tmp/serve-soak-wrk.out &
W=$!
t=0
while kill -0 $W 2>/dev/null; do
  echo "$t $(grep VmRSS /proc/$PID/status | tr -s ' ' | cut -d' ' -f2)"
  sleep 10; t=$((t + 10))
done
tail -1 /tmp/serve-soak-wrk.out
curl -s http://127.0.0.1:8080/metrics | grep -E '^dmtl_serve_requests_total|^dmtl_serve_batch_rows_(sum|count)'
