-- wrk script of scripts/bench.sh.
--
-- BENCH_TOKEN: one bearer token on every request (the request is built once: wrk's static path).
-- BENCH_TOKENS_FILE: a file of tokens, one a line; each request takes the next one, cycling, so
--   every request carries a different token (the cold path). BENCH_TOKEN_OFFSET is the line to
--   start at (1-based), so consecutive runs continue the cycle instead of repeating its start.
-- BENCH_XFF: an x-forwarded-for value sent on every request (the client address a proxy saw).
-- BENCH_BODY_FILE: a JSON body to POST on every request (see below).
-- BENCH_COUNT_429=1: count 429 replies (costs wrk a Lua call per response; off unless asked).
-- BENCH_CHURN=N: every request from another client address, through x-forwarded-for: the
--   addresses 10.0.0.0 onwards, N of them, cycling (the rate limit's key churn; no token sent).
-- At the end one line `BENCH {json}` reports the counts and the latency percentiles (µs).

local path = os.getenv("BENCH_PATH") or "/orders"
local token = os.getenv("BENCH_TOKEN")
local file = os.getenv("BENCH_TOKENS_FILE")
local xff = os.getenv("BENCH_XFF")
if xff == "" then xff = nil end

wrk.method = "GET"
wrk.path = path
-- BENCH_BODY_FILE: POST this file's content as a JSON body on every request (the static path).
local body_file = os.getenv("BENCH_BODY_FILE")
if body_file and body_file ~= "" then
  local f = assert(io.open(body_file, "rb"))
  wrk.method = "POST"
  wrk.body = f:read("*a")
  f:close()
  wrk.headers["Content-Type"] = "application/json"
end
if token and token ~= "" then
  wrk.headers["Authorization"] = "Bearer " .. token
end
if xff then
  wrk.headers["X-Forwarded-For"] = xff
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
    return wrk.format("GET", path, { ["Authorization"] = "Bearer " .. tokens[idx], ["X-Forwarded-For"] = xff })
  end
end

local churn = tonumber(os.getenv("BENCH_CHURN") or "0") or 0
if churn > 0 then
  request = function()
    local i = idx % churn
    idx = idx + 1
    local ip = string.format("10.%d.%d.%d", math.floor(i / 65536) % 256, math.floor(i / 256) % 256, i % 256)
    return wrk.format("GET", path, { ["X-Forwarded-For"] = ip })
  end
end

s429 = 0 -- global, read by done()
if os.getenv("BENCH_COUNT_429") == "1" then
  response = function(status, headers, body)
    if status == 429 then s429 = s429 + 1 end
  end
end

local threads = {}
setup = function(thread)
  threads[#threads + 1] = thread
end

done = function(summary, latency, requests)
  local last, n429 = 0, 0
  for _, t in ipairs(threads) do
    last = t:get("idx") or 0
    n429 = n429 + (t:get("s429") or 0)
  end
  local e = summary.errors
  io.write(string.format(
    'BENCH {"requests":%d,"duration_us":%d,"non2xx":%d,"connect":%d,"read":%d,"write":%d,' ..
    '"timeout":%d,"p50_us":%d,"p99_us":%d,"mean_us":%.1f,"next_token":%d,"status_429":%d}\n',
    summary.requests, summary.duration, e.status, e.connect, e.read, e.write, e.timeout,
    latency:percentile(50), latency:percentile(99), latency.mean, last + 1, n429))
end
