-- Holds (DESIGN §15): create+capture pairs as an internal service. Each thread alternates:
-- a new hold, then the capture of a hold whose creation has answered (its id is read from
-- the 201 body), so every capture follows its own hold.
--   wrk -s bench/lua/holds.lua -H "X-API-Key: KEY" URL -- hot <user id> <amount> <capture>
--   wrk -s bench/lua/holds.lua -H "X-API-Key: KEY" URL -- spread <file of user ids> <amount> <capture>
-- hot: every hold on the same account; spread: each on a random account of the file.
-- After the run: `auth-service ledger verify`, and captured credits = pairs × <capture>.
dofile(debug.getinfo(1, "S").source:match("^@(.*/)") .. "report.lua")
count_statuses()

local mode, amount, capture, ids, fixed_id
local headers
local pending = {}
local counter = 0
local tag

function setup(thread)
   thread:set("tag", tostring(math.random(1, 1e9)))
end

function init(args)
   mode = args[1] or "hot"
   amount = args[3] or "0.05"
   capture = args[4] or "0.03"
   tag = tag or tostring(os.time())
   headers = with_headers({ ["Content-Type"] = "application/json" })
   math.randomseed(os.time() * 1000 + (thread_id or 0))
   if mode == "hot" then
      fixed_id = args[2]
   else
      ids = read_lines(args[2])
   end
end

function request()
   local next_capture = table.remove(pending)
   if next_capture then
      return wrk.format("POST", "/credits/holds/" .. next_capture.id .. "/capture", headers,
         string.format('{"user_id":%s,"amount":%s}', next_capture.user, capture))
   end
   counter = counter + 1
   local user = fixed_id or ids[math.random(1, #ids)]
   return wrk.format("POST", "/credits/holds", headers, string.format(
      '{"user_id":%s,"amount":%s,"reference_id":"bench-%s-%d"}', user, amount, tag, counter))
end

local base_response = response
function response(status, resp_headers, body)
   if base_response then base_response(status, resp_headers, body) end
   if status == 201 then
      local id = body:match('"id":(%d+)')
      local user = body:match('"user_id":(%d+)')
      if id and user then table.insert(pending, { id = id, user = user }) end
   end
end
