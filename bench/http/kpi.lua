-- The nO KPI table as a wrk script: 500 connections ("concurrent users"),
-- each sending one request every 500 ms, so about 1000 requests/s in all,
-- on an authenticated API route. Prints one line:
--   KPI <req/s> <p50 ms> <p95 ms> <p99 ms> <max ms> <errors>
local token = os.getenv("BZZZ_BENCH_TOKEN") or ""
wrk.headers["Authorization"] = "Bearer " .. token

function delay()
  return 500
end

function done(summary, latency, requests)
  local e = summary.errors
  local errors = e.connect + e.read + e.write + e.status + e.timeout
  io.write(string.format("KPI %.1f %.3f %.3f %.3f %.3f %d\n",
    summary.requests / (summary.duration / 1e6),
    latency:percentile(50) / 1000, latency:percentile(95) / 1000,
    latency:percentile(99) / 1000, latency.max / 1000, errors))
end
