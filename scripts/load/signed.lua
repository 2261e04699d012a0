-- wrk script for scripts/bench-ingest.sh: each wrk thread sends the pre-signed deliveries of its
-- own file (one `body<TAB>signature` per line, distinct ids), counts the answers by status, and
-- the run ends with one JSON line (`RESULT {...}`) the driver reads.
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
  reqs = {}
  for line in io.lines(os.getenv("LOAD_PREFIX") .. tid .. ".txt") do
    local tab = line:find("\t", 1, true)
    reqs[#reqs + 1] = { line:sub(1, tab - 1), line:sub(tab + 1) }
  end
  n = 0
  pause = tonumber(os.getenv("LOAD_DELAY_MS") or "0")
  target = tonumber(os.getenv("LOAD_THREAD_RATE") or "0")
  second, sent = os.time(), 0
  accepted, duplicate, refused, other = 0, 0, 0, 0
end

function request()
  n = n + 1
  local r = reqs[((n - 1) % #reqs) + 1]
  return wrk.format("POST", nil, {
    ["content-type"] = "application/json",
    ["x-signature-256"] = r[2],
  }, r[1])
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

function response(status, headers, body)
  if status == 202 then
    accepted = accepted + 1
  elseif status == 200 then
    duplicate = duplicate + 1
  elseif status == 503 then
    refused = refused + 1
  else
    other = other + 1
  end
end

function done(summary, latency, requests)
  local a, d, r, o, lines = 0, 0, 0, 0, 0
  for _, t in ipairs(threads) do
    a = a + t:get("accepted")
    d = d + t:get("duplicate")
    r = r + t:get("refused")
    o = o + t:get("other")
  end
  local e = summary.errors
  io.write(string.format(
    'RESULT {"requests":%d,"durationUs":%d,"p50Us":%d,"p90Us":%d,"p99Us":%d,"maxUs":%d,' ..
    '"accepted":%d,"duplicate":%d,"refused":%d,"other":%d,' ..
    '"connectErrors":%d,"readErrors":%d,"writeErrors":%d,"timeouts":%d}\n',
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(90),
    latency:percentile(99), latency.max, a, d, r, o,
    e.connect, e.read, e.write, e.timeout))
end
