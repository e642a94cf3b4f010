-- wrk script: POST /api/v1/tasks with a no-op builtin task on every request
-- (keep-alive connections). Driven by bench/tasks/bzzz_load.py.
--
--   wrk ... -s submit.lua URL -- <quota per thread>
--     quota  stop the thread after this many responses (0: run for -d)
-- Environment:
--   BZZZ_BENCH_TOKEN     bearer token
--   BZZZ_BENCH_DELAY_MS  pause per connection between requests (paced load;
--                        unset or 0: none, and no delay() so wrk adds no timer)
-- done() prints one line:
--   SUBMIT <responses> <201> <429> <other status> <socket errors> <secs> <p50 ms> <p99 ms>
local token = os.getenv("BZZZ_BENCH_TOKEN") or ""
wrk.method = "POST"
wrk.body = '{"executor":"builtin","input":{"op":"echo","value":1}}'
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer " .. token

local threads = {}

function setup(thread)
  table.insert(threads, thread)
  thread:set("index", #threads)
end

function init(args)
  math.randomseed(os.time() + (wrk.thread:get("index") or 0))
  quota = tonumber(args[1] or "0") or 0
  created, throttled, other, seen = 0, 0, 0, 0
end

local pause = tonumber(os.getenv("BZZZ_BENCH_DELAY_MS") or "0") or 0
if pause > 0 then
  -- Uniform in [pause/2, 3*pause/2]: the same mean, but the connections do
  -- not stay in step (a burst of every connection at once each period).
  function delay()
    return math.random(math.floor(pause / 2), math.floor(pause * 3 / 2))
  end
end

function response(status, headers, body)
  seen = seen + 1
  if status == 201 then
    created = created + 1
  elseif status == 429 then
    throttled = throttled + 1
  else
    other = other + 1
  end
  if quota > 0 and seen >= quota then wrk.thread:stop() end
end

function done(summary, latency, requests)
  local c, t, o = 0, 0, 0
  for _, thread in ipairs(threads) do
    c = c + (thread:get("created") or 0)
    t = t + (thread:get("throttled") or 0)
    o = o + (thread:get("other") or 0)
  end
  local e = summary.errors
  io.write(string.format("SUBMIT %d %d %d %d %d %.3f %.3f %.3f\n",
    summary.requests, c, t, o, e.connect + e.read + e.write + e.timeout,
    summary.duration / 1e6, latency:percentile(50) / 1000, latency:percentile(99) / 1000))
end
