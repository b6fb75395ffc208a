-- What scoring one transaction reads besides the history's windows, in one call (RedisStore.prepare sends
-- it in one pipeline with the windows' range queries, which cost Redis less as commands of their own than
-- copied through Lua). It writes nothing.
-- ARGV: prefix, tid, customer, terminal, '1' to read the two locations ('' not).
-- Returns {answer or false, held (0/1), {now, complete_since, periods}, {customer's version, terminal's},
-- meta held (0/1), customer held (0/1), terminal held (0/1), {customers, terminals}
-- [, customer "x y" or false, terminal "x y" or false]}.
local p, tid, customer, terminal = ARGV[1], ARGV[2], ARGV[3], ARGV[4]
local out = {
  redis.call('HGET', p..':scored', tid),
  redis.call('HEXISTS', p..':tx', tid),
  redis.call('HMGET', p..':clock', 'now', 'complete_since', 'periods'),
  redis.call('HMGET', p..':ver', 'c:'..customer, 't:'..terminal),
  redis.call('EXISTS', p..':meta'),
  redis.call('EXISTS', p..':c:'..customer),
  redis.call('EXISTS', p..':t:'..terminal),
  redis.call('HMGET', p..':count', 'customers', 'terminals'),
}
if ARGV[5] == '1' then
  out[9] = redis.call('HGET', p..':xy:c', customer)
  out[10] = redis.call('HGET', p..':xy:t', terminal)
end
return out
