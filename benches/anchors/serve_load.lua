-- wrk script for the load figures of docs/serving.md: POSTs the JSON bodies of the file $BODIES
-- (one per line, from serve_bodies.py) to /retrieve in turn, and prints one JSON line with the
-- throughput, p50/p99 latency and error counts.
--   BODIES=single.jsonl wrk -t2 -c64 -d20s --latency -s serve_load.lua http://127.0.0.1:8080
local bodies = {}
for line in io.lines(os.getenv("BODIES")) do bodies[#bodies + 1] = line end
local i = math.random(#bodies)
local headers = { ["Content-Type"] = "application/json" }

request = function()
  i = i % #bodies + 1
  return wrk.format("POST", "/retrieve", headers, bodies[i])
end

done = function(summary, latency, requests)
  local s = summary.duration / 1e6
  local e = summary.errors
  io.write(string.format(
    '{"calls": %d, "seconds": %.2f, "calls_per_s": %.1f, "p50_ms": %.3f, "p99_ms": %.3f, ' ..
    '"non_2xx": %d, "socket_errors": %d}\n',
    summary.requests, s, summary.requests / s, latency:percentile(50) / 1000,
    latency:percentile(99) / 1000, e.status, e.connect + e.read + e.write + e.timeout))
end
