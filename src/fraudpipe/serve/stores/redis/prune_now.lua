-- Prune now (before an export), as OnlineState.save does (prune.lua is prepended). ARGV: prefix, kept seconds.
local now = tonumber(redis.call('HGET', ARGV[1]..':clock', 'now'))
if now == nil then return 0 end
return prune(ARGV[1], now, tonumber(ARGV[2]))
