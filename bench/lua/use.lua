-- POST /credits/use as an internal service (header X-API-Key, body user_id), counting
-- responses per status code so bench/run.sh can reconcile them with the ledger.
--   wrk -s bench/lua/use.lua -H "X-API-Key: KEY" URL -- hot <user id> <amount>
--   wrk -s bench/lua/use.lua -H "X-API-Key: KEY" URL -- spread <file of user ids> <amount>
-- hot: every request spends from the same account. spread: each request picks one of the
-- accounts in the file at random.
dofile(debug.getinfo(1, "S").source:match("^@(.*/)") .. "report.lua")
count_statuses()

local mode, amount, ids, fixed
local headers

local function body_for(id)
   return string.format('{"user_id":%s,"amount":%s}', id, amount)
end

function init(args)
   mode = args[1] or "hot"
   amount = args[3] or "0.01"
   headers = with_headers({ ["Content-Type"] = "application/json" })
   math.randomseed(os.time() * 1000 + (thread_id or 0))
   if mode == "hot" then
      fixed = wrk.format("POST", "/credits/use", headers, body_for(args[2]))
   else
      ids = read_lines(args[2])
   end
end

function request()
   if fixed then return fixed end
   return wrk.format("POST", "/credits/use", headers, body_for(ids[math.random(1, #ids)]))
end
