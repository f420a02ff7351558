-- STORE_PAGE: keep a rendered first page (page cache, hub/storage/feedcache.py) unless the
-- feed changed since the read that reserved the key (a change deletes the reservation).
-- KEYS: rendered page. ARGV: the token the read script reserved it with, the page, ttl
-- (seconds). Returns 1 when stored, else 0.
if redis.call('GET', KEYS[1]) ~= '?' .. ARGV[1] then return 0 end
redis.call('SET', KEYS[1], ARGV[2], 'EX', ARGV[3])
return 1
