-- Add one scored transaction (prune.lua is prepended: the pruning runs at the same moment as in process).
-- KEYS: none (one Redis; keys are built from the prefix). ARGV: prefix, tid, customer, terminal, t, amount (repr),
-- answer (JSON), kept seconds, customer "x y" or '', terminal "x y" or '', the customer's and the terminal's
-- versions the features were computed at ('' and '': not checked).
-- Returns {1, seq} when added; {0, answer or false} when the transaction_id is already held; {2} when a
-- version moved (another worker changed that history: compute again).
local p, tid, customer, terminal = ARGV[1], ARGV[2], ARGV[3], ARGV[4]
local t, kept = tonumber(ARGV[5]), tonumber(ARGV[8])
if redis.call('HEXISTS', p..':tx', tid) == 1 then
  return {0, redis.call('HGET', p..':scored', tid)}
end
if ARGV[11] ~= '' then
  local seen = redis.call('HMGET', p..':ver', 'c:'..customer, 't:'..terminal)
  if (seen[1] or '0') ~= ARGV[11] or (seen[2] or '0') ~= ARGV[12] then return {2} end
end
local change = redis.call('HINCRBY', p..':clock', 'changes', 1)  -- never reused: a version cannot come back
redis.call('HSET', p..':ver', 'c:'..customer, change, 't:'..terminal, change)
local seq = redis.call('HINCRBY', p..':clock', 'seq', 1)
local pad = string.format('%012d', seq)
local ckey, tkey = p..':c:'..customer, p..':t:'..terminal
if redis.call('EXISTS', ckey) == 0 then redis.call('HINCRBY', p..':count', 'customers', 1) end
if redis.call('EXISTS', tkey) == 0 then redis.call('HINCRBY', p..':count', 'terminals', 1) end
-- the time rides in the member too: the windows are read without WITHSCORES (Redis formats each score)
local stamp = pad..'|'..ARGV[5]..'|'
redis.call('ZADD', ckey, t, stamp..ARGV[6]..'|'..terminal)
redis.call('ZADD', tkey, t, stamp..tid)
redis.call('HSET', p..':tx', tid, cjson.encode({t, seq, -1, customer, terminal, ARGV[6]}))
redis.call('ZADD', p..':all', t, tid)
redis.call('HSET', p..':scored', tid, ARGV[7])
if ARGV[9] ~= '' then redis.call('HSET', p..':xy:c', customer, ARGV[9]) end
if ARGV[10] ~= '' then redis.call('HSET', p..':xy:t', terminal, ARGV[10]) end
local clock = redis.call('HMGET', p..':clock', 'now', 'pruned_at')
local now, pruned = tonumber(clock[1]), tonumber(clock[2])
if now == nil or t > now then
  now = t
  redis.call('HSET', p..':clock', 'now', now)
end
if pruned == nil then
  redis.call('HSET', p..':clock', 'pruned_at', now)
elseif now - pruned >= 86400 then
  prune(p, now, kept)
end
return {1, seq}
