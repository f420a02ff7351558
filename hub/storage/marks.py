"""Seen and read marks: durable in Cassandra, cached in a Redis hash per feed.

A mark records the newest activity id an entry had when it was marked: an entry is seen
while its newest id is at most its mark or the feed-wide watermark (``*``, set by "mark
all"). An activity joining a group raises the group's newest id above the mark, which is
how a reopened group becomes unseen again without anyone writing a mark.

For a flat feed an entry is one activity (its id never changes); for aggregated and
notification feeds it is a group (``<newest id>|<group id>`` in the order set).

Hash fields: ``!`` (loaded), ``seen:*``, ``read:*``, ``seen:<entry>``, ``read:<entry>``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from redis.asyncio import Redis

from hub.storage.cassandra import Cassandra
from hub.storage.redis import Keys

KINDS = ("seen", "read")

# Counts entries newer than the watermark, minus those individually marked at or above
# their current newest id. KEYS: order set, marks hash, group states (aggregated) or "".
# ARGV: kind, aggregated flag.
COUNT_LUA = """
local function count(z, mk, gs, kind, agg)
  local w = redis.call('HGET', mk, kind .. ':*') or ''
  local total
  if w == '' then
    total = redis.call('ZCARD', z) - 1
    if total < 0 then total = 0 end
  else
    total = redis.call('ZLEXCOUNT', z, '(' .. w .. '~', '+')
  end
  local prefix = kind .. ':'
  local all = redis.call('HGETALL', mk)
  for i = 1, #all, 2 do
    local f, mark = all[i], all[i + 1]
    if string.sub(f, 1, #prefix) == prefix and f ~= kind .. ':*' then
      local entry = string.sub(f, #prefix + 1)
      local newest = nil
      if agg then
        local raw = redis.call('HGET', gs, entry)
        if raw then newest = cjson.decode(raw).n end
      elseif redis.call('ZSCORE', z, entry) then
        newest = entry
      end
      if newest and newest > w and mark >= newest then total = total - 1 end
    end
  end
  return total
end
"""
_COUNT = COUNT_LUA + "return count(KEYS[1], KEYS[2], KEYS[3], ARGV[1], ARGV[2] == '1')\n"


class MarkStore:
    def __init__(self, db: Cassandra, redis: Redis, prefix: str) -> None:
        self.db = db
        self.redis = redis
        self.prefix = prefix
        self._count = redis.register_script(_COUNT)

    def keys(self, app: str) -> Keys:
        return Keys(self.prefix, app)

    async def load(self, app: str, feed: str) -> dict[str, str]:
        """All marks of a feed (``kind:entry`` -> mark), loading the cache on a miss."""
        key = self.keys(app).marks(feed)
        marks: dict[str, str] = await self.redis.hgetall(key)
        if "!" in marks:
            marks.pop("!")
            return marks
        rows = await self.db.execute(
            "SELECT kind, gid, mark FROM {ks}.feed_marks WHERE app = %s AND feed = %s", (app, feed)
        )
        loaded = {f"{r.kind}:{r.gid}": r.mark for r in rows}
        await self.redis.hset(key, mapping={"!": "1", **loaded})
        return loaded

    async def mark(self, app: str, feed: str, kind: str, marks: Mapping[str, str]) -> None:
        """Record ``entry -> newest id`` marks of one kind (``*`` for the watermark)."""
        if not marks:
            return
        await self.load(app, feed)  # make sure the cache is complete before adding to it
        stmts = [
            ("INSERT INTO {ks}.feed_marks (app, feed, kind, gid, mark) VALUES (%s, %s, %s, %s, %s)",
             (app, feed, kind, entry, mark))
            for entry, mark in marks.items()
        ]
        await self.db.batch(stmts, logged=False)
        await self.redis.hset(self.keys(app).marks(feed), mapping={f"{kind}:{e}": m for e, m in marks.items()})

    async def prune(self, app: str, feed: str, kind: str, entries: Sequence[str]) -> None:
        """Drop individual marks made redundant by a new watermark."""
        if not entries:
            return
        await self.db.batch([
            ("DELETE FROM {ks}.feed_marks WHERE app = %s AND feed = %s AND kind = %s AND gid = %s", (app, feed, kind, e))
            for e in entries
        ], logged=False)
        await self.redis.hdel(self.keys(app).marks(feed), *(f"{kind}:{e}" for e in entries))

    async def counts(self, app: str, feed: str, order_key: str, states_key: str | None) -> dict[str, int]:
        await self.load(app, feed)
        k = self.keys(app).marks(feed)
        agg = "1" if states_key else "0"
        pipe = self.redis.pipeline(transaction=False)
        for kind in KINDS:
            await self._count(keys=[order_key, k, states_key or order_key], args=[kind, agg], client=pipe)
        seen, read = await pipe.execute()
        return {"unseen": max(0, int(seen)), "unread": max(0, int(read))}


def is_marked(marks: Mapping[str, str], kind: str, entry: str, newest: str) -> bool:
    w = marks.get(f"{kind}:*", "")
    return newest <= w or marks.get(f"{kind}:{entry}", "") >= newest
