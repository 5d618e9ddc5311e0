-- wrk script for perf/bench.py: POST the JSON body in the file $WRK_BODY to the URL's path, and at the
-- end print one line "BENCH_JSON {...}" with the counts and latency percentiles (microseconds).
--   WRK_BODY=body.json wrk -t1 -c32 -d8s --latency -s perf/lua/post.lua http://127.0.0.1:8700/v1/models/m:predict

local path = os.getenv("WRK_BODY")
local file = assert(io.open(path, "rb"), "cannot open WRK_BODY " .. tostring(path))
wrk.method = "POST"
wrk.body = file:read("*a")
wrk.headers["Content-Type"] = "application/json"
file:close()

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'BENCH_JSON {"requests": %d, "duration_us": %d, "bytes": %d, "non2xx": %d, "connect": %d, "read": %d, ' ..
    '"write": %d, "timeout": %d, "p50_us": %d, "p90_us": %d, "p99_us": %d, "max_us": %d, "mean_us": %.1f}\n',
    summary.requests, summary.duration, summary.bytes, e.status, e.connect, e.read, e.write, e.timeout,
    latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.max, latency.mean))
end
