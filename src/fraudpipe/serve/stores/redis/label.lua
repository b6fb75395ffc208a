-- Set a transaction's label. ARGV: prefix, tid, tx_fraud (0/1), received_at (wall clock).
-- Returns 1, or 0 when the transaction is not held.
local p, tid, fraud = ARGV[1], ARGV[2], tonumber(ARGV[3])
local raw = redis.call('HGET', p..':tx', tid)
if not raw then return 0 end
local r = cjson.decode(raw)
r[3] = fraud
redis.call('HSET', p..':tx', tid, cjson.encode(r))
local member = string.format('%012d|%d|', r[2], r[1])..tid  -- as add.lua wrote it in P:t
-- the terminal's frauds change: features read before are stale
redis.call('HSET', p..':ver', 't:'..r[5], redis.call('HINCRBY', p..':clock', 'changes', 1))
if fraud == 1 then
  redis.call('ZADD', p..':f:'..r[5], r[1], member)
else
  redis.call('ZREM', p..':f:'..r[5], member)
end
local lseq = redis.call('HINCRBY', p..':clock', 'lseq', 1)
-- the service's clock when the label came (the newest transaction time seen), for a retrain "as of" a time
local now = tonumber(redis.call('HGET', p..':clock', 'now'))
redis.call('HSET', p..':labels', tid, cjson.encode({fraud, ARGV[4], lseq, now}))
return 1
