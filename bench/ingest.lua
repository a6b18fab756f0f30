-- wrk script for bench/ingest: posts distinct, realistic Hotmart webhooks
-- (the fixtures, each with a fresh envelope id) and reports durable events/s
-- and latency percentiles.
-- LB_BENCH_LEADS=N (N > 0): each request's lead e-mail (the one "email" of
-- each fixture) becomes one of N addresses per wrk thread,
-- t<thread>-<k>@bench.example, instead of the fixture's own (3 buyers in all).
local fixtures_dir = os.getenv("LB_FIXTURES")
local hottok = os.getenv("LB_BENCH_HOTTOK")
local leads = tonumber(os.getenv("LB_BENCH_LEADS") or "0") or 0
-- Envelope ids are UUIDs, as Hotmart's are: each lands at a random place in
-- the store's unique index. LB_BENCH_IDS=sequential: ids that grow in one run
-- per thread instead (cheaper to index; figures before 2026-11-28 used them).
local sequential_ids = os.getenv("LB_BENCH_IDS") == "sequential"
local names = { "PURCHASE_APPROVED", "PURCHASE_BILLET_PRINTED", "PURCHASE_OUT_OF_SHOPPING_CART",
                "PURCHASE_REFUNDED", "CLUB_MODULE_COMPLETED", "SUBSCRIPTION_CANCELLATION" }
local templates = {}
local counter = 0
local threads = {}

local function read(path)
  local f = assert(io.open(path, "rb"))
  local s = f:read("*a")
  f:close()
  return s
end

-- setup runs in the main state; each thread gets a prefix no other thread
-- or earlier run shares (globals set here are the thread's, read in request)
function setup(thread)
  table.insert(threads, thread)
  thread:set("id_prefix", string.format("bench-%d-%d-", os.time(), #threads))
  thread:set("lead_prefix", string.format("t%d-", #threads))
  thread:set("thread_no", #threads)
end

-- The request head up to the Content-Length value, built once: request()
-- then makes each request with one concatenation, because wrk.format's
-- per-call table and string.format work is client CPU taken from the daemon
-- on the same 2 cores.
local head

function init(args)
  head = "POST /webhooks/hotmart HTTP/1.1\r\nHost: " .. wrk.headers["Host"] ..
         "\r\nContent-Type: application/json\r\nX-HOTMART-HOTTOK: " .. hottok .. "\r\nContent-Length: "
  for i, n in ipairs(names) do
    local body = read(fixtures_dir .. "/" .. n .. ".json")
    -- split around the envelope id so each request gets its own
    local pre, post = body:match('^(.-"id"%s*:%s*")[^"]*(".*)$')
    -- and around the lead's e-mail (each fixture has exactly one "email")
    local mid, rest = post:match('^(.-"email"%s*:%s*")[^"]*(".*)$')
    templates[i] = { pre = pre, post = post, mid = mid, rest = rest }
  end
end

function request()
  counter = counter + 1
  local t = templates[counter % #templates + 1]
  local id
  if sequential_ids then
    id = id_prefix .. counter
  else -- unique in the run: thread and counter; scattered: a permutation of the counter leads
    id = string.format("%08x-%04x-4000-8000-%012x", (counter * 2654435761) % 4294967296, thread_no, counter)
  end
  if leads > 0 and t.mid then
    local body = t.pre .. id .. t.mid .. lead_prefix .. (counter % leads) .. "@bench.example" .. t.rest
    return head .. #body .. "\r\n\r\n" .. body
  end
  return head .. (#t.pre + #id + #t.post) .. "\r\n\r\n" .. t.pre .. id .. t.post
end

function done(summary, latency, requests)
  local secs = summary.duration / 1e6
  local errors = summary.errors.status + summary.errors.connect + summary.errors.read +
                 summary.errors.write + summary.errors.timeout
  local ok = summary.requests - summary.errors.status
  io.write(string.format("requests: %d  non-2xx or socket errors: %d\n", summary.requests, errors))
  io.write(string.format("durable events/s: %.0f\n", ok / secs))
  io.write(string.format("latency p50: %.2f ms  p99: %.2f ms  max: %.2f ms\n",
    latency:percentile(50) / 1000, latency:percentile(99) / 1000, latency.max / 1000))
end
