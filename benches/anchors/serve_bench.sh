#!/bin/sh
# The load figures of docs/serving.md: `dmtl serve` and its Python twin (serve_twin.py) on the
# same run folder, driven by wrk (serve_load.lua) at 1, 8 and 64 connections with single
# requests and bodies of 32, the two servers measured in turn, cell by cell.
#   sh serve_bench.sh DMTL_BIN RUN EXPORT OUT_DIR [SECONDS]
# Needs wrk, and torch, faiss, fastapi and uvicorn for the twin's python3 (PYTHON, default
# /usr/bin/python3); RUN from `dmtl train --config serve_run.toml`, EXPORT from `dmtl export`.
set -eu
BIN=$1; RUN=$2; EXPORT=$3; OUT=$4; SECS=${5:-10}
PY=${PYTHON:-/usr/bin/python3}
HERE=$(cd "$(dirname "$0")" && pwd)
mkdir -p "$OUT"
python3 "$HERE/serve_bodies.py" "$RUN" --k 100 --batch 1 > "$OUT/single.jsonl"
python3 "$HERE/serve_bodies.py" "$RUN" --k 100 --batch 32 --bodies 300 > "$OUT/batch32.jsonl"
"$BIN" --threads 2 serve --run "$RUN" --addr 127.0.0.1:8080 2> "$OUT/dmtl.log" &
RUST=$!
( cd "$HERE" && DMTL_RUN=$RUN DMTL_EXPORT=$EXPORT OMP_NUM_THREADS=1 "$PY" -m uvicorn serve_twin:app \
    --host 127.0.0.1 --port 8090 --workers 2 --no-access-log --log-level warning ) 2> "$OUT/twin.log" &
TWIN=$!
trap 'kill $RUST $TWIN 2>/dev/null' EXIT
for port in 8080 8090; do
  until curl -sf "http://127.0.0.1:$port/health" > /dev/null; do sleep 1; done
done
for shape in single batch32; do
  for c in 1 8 64; do
    t=$(( c < 2 ? 1 : 2 ))
    for side in dmtl:8080 twin:8090; do
      name=${side%%:*}; port=${side##*:}
      BODIES="$OUT/$shape.jsonl" wrk -t$t -c$c -d2s -s "$HERE/serve_load.lua" "http://127.0.0.1:$port" > /dev/null
      load=$(cut -d' ' -f1 /proc/loadavg)
      r=$(BODIES="$OUT/$shape.jsonl" wrk -t$t -c$c -d${SECS}s --timeout 10s -s "$HERE/serve_load.lua" "http://127.0.0.1:$port" | tail -1)
      echo "{\"server\": \"$name\", \"shape\": \"$shape\", \"connections\": $c, \"load_before\": $load, \"result\": $r}" | tee -a "$OUT/results.jsonl"
    done
  done
done
