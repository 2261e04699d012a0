-- wrk script for scripts/bench-ingest.sh: each wrk thread sends the pre-signed deliveries of its
-- own file (whole HTTP requests, distinct ids, each followed by a NUL byte), and the run ends with
-- one JSON line (`RESULT {...}`) the driver reads.
--
-- wrk shares the machine with the server it measures, so its own work per request is kept small:
-- the requests are formatted by the driver, not here, and there is no `response()` function (with
-- one, wrk copies every answer's headers and body into Lua tables). Answers are counted by wrk
-- itself: those with a status of 400 or more are `summary.errors.status`; the driver reads the
-- split by status class from the server's metrics.
--
-- Environment: LOAD_PREFIX (files are LOAD_PREFIX<thread>.txt), LOAD_DELAY_MS (pause between a
-- connection's requests: a steady rate instead of as fast as possible; 0 by default), and with
-- it LOAD_THREAD_RATE (requests per second this thread should send: once a second the pause is
-- scaled by what was sent against it, so the rate holds whatever the answers' latency is).

local threads = {}

function setup(thread)
  thread:set("tid", #threads)
  table.insert(threads, thread)
end

function init(args)
  local f = assert(io.open(os.getenv("LOAD_PREFIX") .. tid .. ".txt", "rb"))
  all = f:read("*a")
  f:close()
  at = 1
  pause = tonumber(os.getenv("LOAD_DELAY_MS") or "0")
  target = tonumber(os.getenv("LOAD_THREAD_RATE") or "0")
  second, sent = os.time(), 0
end

-- The next request of the file, from the start again after the last (the driver flags a run
-- that sent more than the file holds: the repeats are answered as duplicates).
function request()
  local nul = all:find("\0", at, true)
  if not nul then
    at = 1
    nul = all:find("\0", at, true)
  end
  local r = all:sub(at, nul - 1)
  at = nul + 1
  return r
end

if (tonumber(os.getenv("LOAD_DELAY_MS") or "0") or 0) > 0 then
  function delay()
    local now = os.time()
    if target > 0 and now ~= second then
      if now == second + 1 and sent > 0 then
        pause = math.max(0.5, math.min(pause * math.sqrt(sent / target), 10000))
      end
      second, sent = now, 0
    end
    sent = sent + 1
    return math.floor(pause + 0.5)
  end
end

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'RESULT {"requests":%d,"durationUs":%d,"p50Us":%d,"p90Us":%d,"p99Us":%d,"maxUs":%d,' ..
    '"statusErrors":%d,"connectErrors":%d,"readErrors":%d,"writeErrors":%d,"timeouts":%d}\n',
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(90),
    latency:percentile(99), latency.max, e.status, e.connect, e.read, e.write, e.timeout))
end
