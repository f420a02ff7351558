"""The Lua scripts behind :mod:`hub.storage.feedcache` (layout and guarantees there) and
:mod:`hub.storage.marks` and :mod:`hub.storage.rankindex`.

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


# Each script is a file in lua/ that names its KEYS and ARGV; the shared pieces (notify:
# hub/storage/changes.py; count.lua; groups.lua, with the layout described in
# feedcache.py) are put before it here, and only here.
FLAT_ADD = NOTIFY_LUA + lua("flat_add")
FLAT_REMOVE = NOTIFY_LUA + lua("flat_remove")
AGG_ADD = NOTIFY_LUA + lua("groups") + lua("agg_add")
AGG_REMOVE = NOTIFY_LUA + lua("groups") + lua("agg_remove")
READ = lua("count") + lua("groups") + lua("read")
GROUP_SUMMARIES = lua("groups") + lua("group_summaries")
STORE_PAGE = lua("store_page")
COUNT = lua("count") + lua("count_main")  # hub/storage/marks.py
MARKS_GONE = lua("marks_gone")
RANK_ADD = lua("rank_add")  # hub/storage/rankindex.py
RANK_PAGE = lua("rank_page")
