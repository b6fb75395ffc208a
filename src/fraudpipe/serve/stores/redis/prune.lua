-- The pruning of OnlineState.prune: forget what is older than kept seconds of stream time, once a day of
-- data. Not a script of its own: prepended to add.lua and prune_now.lua.

-- online.periods.horizon: the event time at or before which a transaction is older than kept seconds
-- of stream time before now (clock field 'periods': JSON [[start, jump], ...], the operator's moves).
local function horizon_of(p, now, kept)
  local raw = redis.call('HGET', p..':clock', 'periods')
  if not raw then return now - kept end
  local periods = cjson.decode(raw)
  local total = 0
  for i = 1, #periods do total = total + periods[i][2] end
  local target, cut, shift = now - total - kept, now - total - kept, 0
  for i = 1, #periods do
    shift = shift + periods[i][2]
    if periods[i][1] - shift <= target then cut = target + shift end
  end
  return cut
end

local function prune(p, now, kept)
  local horizon = horizon_of(p, now, kept)
  local old = redis.call('ZRANGEBYSCORE', p..':all', '-inf', horizon)
  local done = {}  -- each customer's and terminal's sorted sets are trimmed once
  for lo = 1, #old, 500 do  -- in chunks: one HMGET and three HDELs per 500 transactions
    local chunk = {unpack(old, lo, math.min(lo + 499, #old))}
    local raws = redis.call('HMGET', p..':tx', unpack(chunk))
    for i = 1, #chunk do
      if raws[i] then
        local r = cjson.decode(raws[i])
        local ckey, tkey = p..':c:'..r[4], p..':t:'..r[5]
        if not done[ckey] then
          done[ckey] = true
          if redis.call('ZREMRANGEBYSCORE', ckey, '-inf', horizon) > 0 and redis.call('EXISTS', ckey) == 0 then
            redis.call('HINCRBY', p..':count', 'customers', -1)
            redis.call('HDEL', p..':ver', 'c:'..r[4])  -- a version read before differs from any set later: a retry
          end
        end
        if not done[tkey] then
          done[tkey] = true
          if redis.call('ZREMRANGEBYSCORE', tkey, '-inf', horizon) > 0 and redis.call('EXISTS', tkey) == 0 then
            redis.call('HINCRBY', p..':count', 'terminals', -1)
            redis.call('HDEL', p..':ver', 't:'..r[5])
          end
          redis.call('ZREMRANGEBYSCORE', p..':f:'..r[5], '-inf', horizon)
        end
      end
    end
    redis.call('HDEL', p..':tx', unpack(chunk))
    redis.call('HDEL', p..':scored', unpack(chunk))
    redis.call('HDEL', p..':labels', unpack(chunk))
  end
  redis.call('ZREMRANGEBYSCORE', p..':all', '-inf', horizon)
  local since = tonumber(redis.call('HGET', p..':clock', 'complete_since'))
  if since == nil or horizon > since then redis.call('HSET', p..':clock', 'complete_since', horizon) end
  redis.call('HSET', p..':clock', 'pruned_at', now)
  return #old
end
