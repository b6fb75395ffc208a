-- Release the seeding lock KEYS[1] if this worker (token ARGV[1]) still holds it.
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end return 0
