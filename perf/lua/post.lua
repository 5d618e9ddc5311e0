-- wrk script for perf/bench.py: POST the body in the file $WRK_BODY to the URL's path, with the headers in
-- $WRK_HEADERS ("Name: value" lines; Content-Type is application/json unless they set it), and at the end
-- print one line "BENCH_JSON {...}" with the counts and latency percentiles (microseconds).
--   WRK_BODY=body.json wrk -t1 -c32 -d8s --latency -s perf/lua/post.lua http://127.0.0.1:8700/v1/models/m:predict

local path = os.getenv("WRK_BODY")
local file = assert(io.open(path, "rb"), "cannot open WRK_BODY " .. tostring(path))
wrk.method = "POST"
wrk.body = file:read("*a")
file:close()
wrk.headers["Content-Type"] = "application/json"
for line in (os.getenv("WRK_HEADERS") or ""):gmatch("[^\n]+") do
  local name, value = line:match("^([^:]+):%s*(.*)$")
  wrk.headers[assert(name, "WRK_HEADERS: not a header line: " .. line)] = value
end

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'BENCH_JSON {"requests": %d, "duration_us": %d, "bytes": %d, "non2xx": %d, "connect": %d, "read": %d, ' ..
    '"write": %d, "timeout": %d, "p50_us": %d, "p90_us": %d, "p99_us": %d, "max_us": %d, "mean_us": %.1f}\n',
    summary.requests, summary.duration, summary.bytes, e.status, e.connect, e.read, e.write, e.timeout,
    latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.max, latency.mean))
end
