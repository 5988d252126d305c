-- wrk script of scripts/bench.sh.
--
-- BENCH_TOKEN: one bearer token on every request (the request is built once: wrk's static path).
-- BENCH_TOKENS_FILE: a file of tokens, one a line; each request takes the next one, cycling, so
--   every request carries a different token (the cold path). BENCH_TOKEN_OFFSET is the line to
--   start at (1-based), so consecutive runs continue the cycle instead of repeating its start.
-- At the end one line `BENCH {json}` reports the counts and the latency percentiles (µs).

local path = os.getenv("BENCH_PATH") or "/orders"
local token = os.getenv("BENCH_TOKEN")
local file = os.getenv("BENCH_TOKENS_FILE")

wrk.method = "GET"
wrk.path = path
if token and token ~= "" then
  wrk.headers["Authorization"] = "Bearer " .. token
end

local tokens = nil
idx = 0 -- global: done() reads it from the thread with thread:get
if file and file ~= "" then
  tokens = {}
  for line in io.lines(file) do
    if #line > 0 then tokens[#tokens + 1] = line end
  end
  idx = (tonumber(os.getenv("BENCH_TOKEN_OFFSET") or "1") or 1) - 1
  request = function()
    idx = idx % #tokens + 1
    return wrk.format("GET", path, { ["Authorization"] = "Bearer " .. tokens[idx] })
  end
end

local threads = {}
setup = function(thread)
  threads[#threads + 1] = thread
end

done = function(summary, latency, requests)
  local last = 0
  for _, t in ipairs(threads) do last = t:get("idx") or 0 end
  local e = summary.errors
  io.write(string.format(
    'BENCH {"requests":%d,"duration_us":%d,"non2xx":%d,"connect":%d,"read":%d,"write":%d,' ..
    '"timeout":%d,"p50_us":%d,"p99_us":%d,"mean_us":%.1f,"next_token":%d}\n',
    summary.requests, summary.duration, e.status, e.connect, e.read, e.write, e.timeout,
    latency:percentile(50), latency:percentile(99), latency.mean, last + 1))
end
