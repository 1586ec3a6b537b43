-- Shared by every bench/lua script (loaded with dofile): numbers each wrk thread, and at
-- the end prints ONE machine-readable line that bench/run.sh parses:
--
--   WRK_RESULT requests=N duration_s=S rps=R p50_ms=.. p90_ms=.. p99_ms=.. max_ms=..
--              mean_ms=.. err_connect=.. err_read=.. err_write=.. err_status=..
--              err_timeout=.. statuses=200:N,400:M
--
-- err_status is wrk's count of responses with status >= 400. `statuses` is filled only by
-- scripts that call count_statuses() (it costs a Lua call per response, so the read
-- scenarios do not use it).

local threads = {}
local counting = false

function setup(thread)
   thread:set("thread_id", #threads + 1)
   table.insert(threads, thread)
end

-- Call at the top level of a scenario script to count responses per status code.
function count_statuses()
   counting = true
   status_counts = {}
   response = function(status, headers, body)
      status_counts[status] = (status_counts[status] or 0) + 1
   end
end

local function ms(us) return string.format("%.3f", us / 1000.0) end

function done(summary, latency, requests)
   local seconds = summary.duration / 1e6
   local e = summary.errors
   local statuses = {}
   if counting then
      local total = {}
      for _, t in ipairs(threads) do
         local counts = t:get("status_counts") or {}
         for code, n in pairs(counts) do total[code] = (total[code] or 0) + n end
      end
      local codes = {}
      for code in pairs(total) do table.insert(codes, code) end
      table.sort(codes)
      for _, code in ipairs(codes) do table.insert(statuses, code .. ":" .. total[code]) end
   end
   io.write(string.format(
      "WRK_RESULT requests=%d duration_s=%.3f rps=%.2f p50_ms=%s p90_ms=%s p99_ms=%s " ..
      "max_ms=%s mean_ms=%s err_connect=%d err_read=%d err_write=%d err_status=%d " ..
      "err_timeout=%d statuses=%s\n",
      summary.requests, seconds, summary.requests / seconds,
      ms(latency:percentile(50)), ms(latency:percentile(90)), ms(latency:percentile(99)),
      ms(latency.max), ms(latency.mean),
      e.connect, e.read, e.write, e.status, e.timeout,
      (#statuses > 0) and table.concat(statuses, ",") or "-"))
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
