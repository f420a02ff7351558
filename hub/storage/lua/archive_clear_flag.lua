-- ARCHIVE_CLEAR_FLAG: clear a feed's "archive marks may be present" flag when no archive
-- mark is left (hub/storage/archive.py).
-- KEYS: the marks hash. ARGV: none.
-- Returns 1 if it cleared the flag, else 0. '@' is hub/storage/marks.py's ARCHIVED_FLAG
-- (tests/unit/test_lua_scripts.py checks).
for _, f in ipairs(redis.call('HKEYS', KEYS[1])) do
  if string.sub(f, 1, 9) == 'archived:' then return 0 end
end
redis.call('HDEL', KEYS[1], '@')
return 1
