-- POST /auth/login (OAuth2 password form) as seeded users picked at random.
--   wrk -s bench/lua/login.lua URL -- <username prefix> <user count> <password>
-- Usernames are <prefix><5-digit number>, 1..count, as bench/run.sh seeds them.
dofile(debug.getinfo(1, "S").source:match("^@(.*/)") .. "report.lua")

local prefix, count, password
local headers

function init(args)
   prefix = args[1] or "bench_"
   count = tonumber(args[2] or "1")
   password = args[3] or "bench-password-123"
   headers = with_headers({ ["Content-Type"] = "application/x-www-form-urlencoded" })
   math.randomseed(os.time() * 1000 + (thread_id or 0))
end

function request()
   local username = string.format("%s%05d", prefix, math.random(1, count))
   local body = "username=" .. username .. "&password=" .. password
   return wrk.format("POST", "/auth/login", headers, body)
end
