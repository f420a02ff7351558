"""Every Lua script the hub runs in Redis, and the one place that loads them.

Each script is a file in ``lua/`` (shipped as package data) that begins with a comment
naming its KEYS and ARGV; the shared pieces (``notify.lua`` and ``feed_notify.lua``:
hub/storage/changes.py;
``count.lua``; ``groups.lua``, with the layout described in hub/storage/feedcache.py) are
put before a script here, and only here. Each runs atomically inside Redis: fan-out writes
100 feeds per call, and a hot read is one call.
"""

from __future__ import annotations

from pathlib import Path

_LUA = Path(__file__).with_name("lua")


def lua(name: str) -> str:
    """The text of ``lua/<name>.lua``."""
    return (_LUA / f"{name}.lua").read_text(encoding="utf-8")


_NOTIFY = lua("notify") + lua("feed_notify")
_GROUPS = lua("groups")
_COUNT = lua("count")

# hub/storage/feedcache.py, hub/storage/groupreads.py
FLAT_ADD = _NOTIFY + lua("flat_add")
FLAT_REMOVE = _NOTIFY + lua("flat_remove")
AGG_ADD = _NOTIFY + _GROUPS + lua("agg_add")
AGG_REMOVE = _NOTIFY + _GROUPS + lua("agg_remove")
READ = _COUNT + _GROUPS + lua("read")
GROUP_SUMMARIES = _GROUPS + lua("group_summaries")
STORE_PAGE = lua("store_page")
# hub/storage/marks.py, hub/storage/archive.py
COUNT = _COUNT + lua("count_main")
MARKS_GONE = lua("marks_gone")
ARCHIVE_CLEAR_FLAG = lua("archive_clear_flag")
# hub/storage/rankindex.py
RANK_ADD = lua("rank_add")
RANK_PAGE = lua("rank_page")
# hub/storage/changes.py
ONLINE = lua("online")
# hub/storage/follows.py
FOLLOW_CHANGE = lua("follow_change")
FOLLOW_LOAD = lua("follow_load")
# hub/storage/foreignids.py
CLAIMS_FAIL = lua("claims_fail")
# hub/queue.py
ENQUEUE = lua("enqueue")
# web/gate.py
GATE = lua("gate")
RECORD = lua("record")
