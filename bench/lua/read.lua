-- Authenticated GET of one path, cycling over the bearer tokens of several users.
--   wrk -s bench/lua/read.lua URL -- <path> <file with one access token per line>
-- Requests are built once in init(), so the per-request cost in wrk is a table lookup.
dofile(debug.getinfo(1, "S").source:match("^@(.*/)") .. "report.lua")

local requests = {}
local next_index = 1

function init(args)
   local path = args[1] or "/auth/me"
   for _, token in ipairs(read_lines(args[2])) do
      table.insert(requests, wrk.format("GET", path, with_headers({ ["Authorization"] = "Bearer " .. token })))
   end
   -- threads start at different tokens
   next_index = ((thread_id or 1) - 1) % #requests + 1
end

function request()
   local r = requests[next_index]
   next_index = next_index % #requests + 1
   return r
end
