-- wrk script for bench/ingest: posts distinct, realistic Hotmart webhooks
-- (the fixtures, each with a fresh envelope id) and reports durable events/s
-- and latency percentiles.
local fixtures_dir = os.getenv("LB_FIXTURES")
local hottok = os.getenv("LB_BENCH_HOTTOK")
local names = { "PURCHASE_APPROVED", "PURCHASE_BILLET_PRINTED", "PURCHASE_OUT_OF_SHOPPING_CART",
                "PURCHASE_REFUNDED", "CLUB_MODULE_COMPLETED", "SUBSCRIPTION_CANCELLATION" }
local templates = {}
local counter = 0
local thread_no = 0
local threads = {}

local function read(path)
  local f = assert(io.open(path, "rb"))
  local s = f:read("*a")
  f:close()
  return s
end

function setup(thread)
  thread:set("thread_no", #threads + 1)
  table.insert(threads, thread)
end

function init(args)
  for i, n in ipairs(names) do
    local body = read(fixtures_dir .. "/" .. n .. ".json")
    -- split around the envelope id so each request gets its own
    local pre, post = body:match('^(.-"id"%s*:%s*")[^"]*(".*)$')
    templates[i] = { pre = pre, post = post }
  end
  math.randomseed(os.time() + thread_no)
  run_tag = string.format("%08x", math.random(0, 0x7fffffff))
end

function request()
  counter = counter + 1
  local t = templates[counter % #templates + 1]
  local id = string.format("bench-%s-%d-%d", run_tag, thread_no, counter)
  return wrk.format("POST", "/webhooks/hotmart", {
    ["Content-Type"] = "application/json",
    ["X-HOTMART-HOTTOK"] = hottok,
  }, t.pre .. id .. t.post)
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
