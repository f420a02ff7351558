-- COUNT: one count (count.lua) of one feed.
-- KEYS: order set, marks hash, group states (aggregated) or the order set again.
-- ARGV: kind ("seen" or "read"), aggregated flag ("1" or "0"). Returns the count.
return count(KEYS[1], KEYS[2], KEYS[3], ARGV[1], ARGV[2] == '1')
