-- Shared by every bench/lua script (loaded with dofile): numbers each wrk thread, and at
-- the end prints ONE machine-readable line that bench/run.sh parses:
--
--   WRK_RESULT requests=N duration_s=S rps=R p50_ms=.. p90_ms=.. p99_ms=.. max_ms=..
--              mean_ms=.. err_connect=.. err_read=.. err_write=.. err_status=..
--              err_timeout=.. statuses=200:N,400:M [outcomes=applied:N,... extra=N]
--
-- err_status is wrk's count of responses with status >= 400. `statuses` is filled only by
-- scripts that call count_statuses() (it costs a Lua call per response, so the read
-- scenarios do not use it). Scripts that pass count_statuses() a function of the body also
-- get `outcomes` (what it returned, per response) and `extra`: the global
-- `requests_after_end` summed over threads (the webhook script counts there the requests
-- it had to send after its events ran out).

local threads = {}
local counting = false
local labelling = false
requests_after_end = 0

function setup(thread)
   thread:set("thread_id", #threads + 1)
   table.insert(threads, thread)
end

-- Call at the top level of a scenario script to count responses per status code, and,
-- with `label` (a function of the response body returning a string or nil), per label.
-- `after` (optional) is called after each response with its label (the webhook script
-- stops there).
function count_statuses(label, after)
   counting = true
   status_counts = {}
   outcome_counts = {}
   labelling = label ~= nil
   response = function(status, headers, body)
      status_counts[status] = (status_counts[status] or 0) + 1
      local l
      if label then
         l = label(body) or "none"
         outcome_counts[l] = (outcome_counts[l] or 0) + 1
      end
      if after then after(l) end
   end
end

-- "k:v,k:v" of the per-thread tables named `name`, summed, keys sorted.
local function summed(name)
   local total = {}
   for _, t in ipairs(threads) do
      local counts = t:get(name) or {}
      for k, n in pairs(counts) do total[k] = (total[k] or 0) + n end
   end
   local keys, parts = {}, {}
   for k in pairs(total) do table.insert(keys, k) end
   table.sort(keys, function(a, b) return tostring(a) < tostring(b) end)
   for _, k in ipairs(keys) do table.insert(parts, k .. ":" .. total[k]) end
   return (#parts > 0) and table.concat(parts, ",") or "-"
end

local function ms(us) return string.format("%.3f", us / 1000.0) end

function done(summary, latency, requests)
   local seconds = summary.duration / 1e6
   local e = summary.errors
   local statuses = counting and summed("status_counts") or "-"
   local labels = ""
   if labelling then
      local sent_after_end = 0
      for _, t in ipairs(threads) do sent_after_end = sent_after_end + (t:get("requests_after_end") or 0) end
      labels = string.format(" outcomes=%s extra=%d", summed("outcome_counts"), sent_after_end)
   end
   io.write(string.format(
      "WRK_RESULT requests=%d duration_s=%.3f rps=%.2f p50_ms=%s p90_ms=%s p99_ms=%s " ..
      "max_ms=%s mean_ms=%s err_connect=%d err_read=%d err_write=%d err_status=%d " ..
      "err_timeout=%d statuses=%s%s\n",
      summary.requests, seconds, summary.requests / seconds,
      ms(latency:percentile(50)), ms(latency:percentile(90)), ms(latency:percentile(99)),
      ms(latency.max), ms(latency.mean),
      e.connect, e.read, e.write, e.status, e.timeout,
      statuses, labels))
end

-- Headers for wrk.format: the command line's -H headers plus `extra` (wrk.format uses
-- the table it is given instead of wrk.headers, so -H would otherwise be dropped).
function with_headers(extra)
   local h = {}
   for k, v in pairs(wrk.headers) do h[k] = v end
   for k, v in pairs(extra or {}) do h[k] = v end
   return h
end

-- Reads a file into a list of its non-empty lines.
function read_lines(path)
   local lines = {}
   local f = assert(io.open(path, "r"), "cannot open " .. path)
   for line in f:lines() do
      if line ~= "" then table.insert(lines, line) end
   end
   f:close()
   assert(#lines > 0, path .. " is empty")
   return lines
end
