-- The operator's move of the clock to a new period (OnlineState.start_period). ARGV: prefix, start.
-- Returns {1, newest before} when moved; {0, newest or false} when start is not after the newest
-- transaction seen (or none was seen): nothing changed.
local p, start = ARGV[1], tonumber(ARGV[2])
local now = tonumber(redis.call('HGET', p..':clock', 'now'))
if now == nil or start <= now then return {0, now or false} end
local raw = redis.call('HGET', p..':clock', 'periods')
local periods = raw and cjson.decode(raw) or {}
periods[#periods + 1] = {start, start - now}
redis.call('HSET', p..':clock', 'periods', cjson.encode(periods), 'now', start, 'pruned_at', start)
return {1, now}
