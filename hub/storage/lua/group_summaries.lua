-- GROUP_SUMMARIES: the summaries (groups.lua, summary) of some groups of one feed.
-- KEYS: states, members, actors. ARGV: activities per group, actors per group, group ids...
-- Returns one summary per group id, in order ({} for a group the feed does not hold).
local per, maxactors = tonumber(ARGV[1]), tonumber(ARGV[2])
local gids = {}
for i = 3, #ARGV do gids[#gids + 1] = ARGV[i] end
if #gids == 0 then return {} end
local raws = redis.call('HMGET', KEYS[1], unpack(gids))
local out = {}
for i, gid in ipairs(gids) do out[i] = summary(KEYS[2], KEYS[3], gid, raws[i], per, maxactors) end
return out
