"""The Lua scripts behind :mod:`hub.storage.feedcache` (layout and guarantees there).

Each runs atomically inside Redis: fan-out writes 100 feeds per call, and a hot read is
one call.
"""

from __future__ import annotations

from pathlib import Path

from hub.storage.changes import NOTIFY_LUA

_LUA = Path(__file__).with_name("lua")


def lua(name: str) -> str:
    """The text of ``lua/<name>.lua`` (shipped as package data)."""
    return (_LUA / f"{name}.lua").read_text(encoding="utf-8")


# Change log + publish (hub/storage/changes.py): the scripts take optional trailing ARGV
# now, app, base (Keys.base), channel; without them (rebuilds) nothing is published.
FLAT_ADD = NOTIFY_LUA + """
local n = 0
local keep = -(tonumber(ARGV[2]) + 1)
local now, app, base, chan = tonumber(ARGV[3]), ARGV[4], ARGV[5], ARGV[6]
for i, k in ipairs(KEYS) do
  if redis.call('EXISTS', k) == 1 then
    local added = redis.call('ZADD', k, 0, ARGV[1])
    n = n + added
    redis.call('ZREMRANGEBYRANK', k, 1, keep)
    if added == 1 and now then notify(base, chan, app, now, string.sub(k, #base + 4), 'entry', ARGV[1]) end
  end
end
return n
"""

FLAT_REMOVE = NOTIFY_LUA + """
local n = 0
local now, app, base, chan = tonumber(ARGV[2]), ARGV[3], ARGV[4], ARGV[5]
for i, k in ipairs(KEYS) do
  local removed = redis.call('ZREM', k, ARGV[1])
  n = n + removed
  if removed == 1 and now then notify(base, chan, app, now, string.sub(k, #base + 4), 'deleted', ARGV[1]) end
end
return n
"""

# The aggregated-feed scripts live in lua/ (each file names its KEYS and ARGV), with the
# functions they share in lua/groups.lua; the layout is described in feedcache.py.
AGG_ADD = NOTIFY_LUA + lua("groups") + lua("agg_add")
AGG_REMOVE = NOTIFY_LUA + lua("groups") + lua("agg_remove")
READ = lua("count") + lua("groups") + lua("read")
GROUP_SUMMARIES = lua("groups") + lua("group_summaries")

# KEYS: rendered page. ARGV: the token the read script reserved it with, the page, ttl.
STORE_PAGE = """
if redis.call('GET', KEYS[1]) ~= '?' .. ARGV[1] then return 0 end
redis.call('SET', KEYS[1], ARGV[2], 'EX', ARGV[3])
return 1
"""
