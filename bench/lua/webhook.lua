-- POST /webhooks/stripe: each signed event of a file sent ONCE (bench/lib/stripe_events.py
-- writes it: one "<Stripe-Signature header>\t<raw JSON body>" line per event).
--   wrk -t T -s bench/lua/webhook.lua URL -- <events file> <T>
-- Thread i of T sends lines i, i+T, i+2T, ... in order, so no event is sent twice. Counts
-- responses per status and per `outcome` of the answer (applied, duplicate, ignored,
-- unmatched; `none` for an answer without one).
--
-- wrk never replays an event: when a thread has sent all of its events before wrk's
-- duration is over, it sends GET /health instead (counted in `extra`, outcome `none`) and
-- stops once every event it sent is answered. wrk still divides by the whole duration, so
-- the rate of such a run is a lower bound: bench/run.sh makes the file large enough for
-- the run, and reports a run whose events ran out.
--
-- wrk calls request() once on its first thread to check the script before it sends
-- anything; that call gets a GET /health, so no event is lost to it.
dofile(debug.getinfo(1, "S").source:match("^@(.*/)") .. "report.lua")

local requests = {}
local next_index = 1
local exhausted = false
local pending = 0 -- events sent and not answered yet
local health
local first_call = false

count_statuses(function(body)
   return body and body:match('"outcome"%s*:%s*"(%a+)"')
end, function(label)
   if label ~= "none" then pending = pending - 1 end
   if exhausted and pending <= 0 then wrk.thread:stop() end
end)

function init(args)
   local path, threads = args[1], tonumber(args[2] or "1")
   local me = (thread_id or 1) - 1
   local n = 0
   local f = assert(io.open(path, "r"), "cannot open " .. path)
   for line in f:lines() do
      if line ~= "" then
         if n % threads == me then
            local signature, body = line:match("^([^\t]+)\t(.+)$")
            assert(signature, "bad line " .. (n + 1) .. " in " .. path)
            table.insert(requests, wrk.format("POST", "/webhooks/stripe", with_headers({
               ["Content-Type"] = "application/json",
               ["Stripe-Signature"] = signature,
            }), body))
         end
         n = n + 1
      end
   end
   f:close()
   health = wrk.format("GET", "/health", with_headers({}))
   first_call = (me == 0)
end

function request()
   if first_call then
      first_call = false
      return health
   end
   local r = requests[next_index]
   if r then
      requests[next_index] = nil -- sent: let it be collected
      next_index = next_index + 1
      pending = pending + 1
      return r
   end
   exhausted = true
   requests_after_end = requests_after_end + 1
   return health
end
