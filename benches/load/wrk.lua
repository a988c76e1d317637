-- wrk script for the load harness (benches/load). Configured by environment variables:
--   TG_PATH         request path
--   TG_TOKEN        one bearer token sent on every request (optional)
--   TG_TOKENS_FILE  a file of tokens, one per line: each request takes the next one (optional)
--   TG_FIRST, TG_COUNT  the slice of that file this run uses; the threads split it between them
--   TG_THREADS      wrk's thread count (to split the slice)
--   TG_ONCE=1       each thread stops after its share of the slice (fills a cache)
-- At the end it prints one JSON line with the figures the harness reads.

local path = os.getenv("TG_PATH") or "/"
local static = os.getenv("TG_TOKEN")
local file = os.getenv("TG_TOKENS_FILE")
local once = os.getenv("TG_ONCE") == "1"

local threads = {}
function setup(thread)
  thread:set("index", #threads)
  table.insert(threads, thread)
end

local tokens, next_token = {}, 1

function init(args)
  if static then
    wrk.headers["Authorization"] = "Bearer " .. static
  end
  if file then
    local first = tonumber(os.getenv("TG_FIRST") or "0")
    local count = tonumber(os.getenv("TG_COUNT"))
    local n = tonumber(os.getenv("TG_THREADS") or "1")
    local k = 0
    for line in io.lines(file) do
      if k >= first + count then break end
      if k >= first and (k - first) % n == index then
        tokens[#tokens + 1] = "Bearer " .. line
      end
      k = k + 1
    end
  end
end

if file then
  local headers = {}
  function request()
    if next_token > #tokens then
      if once then wrk.thread:stop() end
      next_token = 1
    end
    headers["Authorization"] = tokens[next_token]
    next_token = next_token + 1
    return wrk.format("GET", path, headers)
  end
end

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    '{"requests":%d,"duration_us":%d,"connect":%d,"read":%d,"write":%d,"status":%d,"timeout":%d,"p50_us":%d,"p99_us":%d}\n',
    summary.requests, summary.duration, e.connect, e.read, e.write, e.status, e.timeout,
    latency:percentile(50), latency:percentile(99)))
end
