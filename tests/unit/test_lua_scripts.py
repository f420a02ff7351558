"""The Lua scripts live in hub/storage/lua/, load through hub/storage/scripts.py, and
repeat the few Python constants they need."""

from __future__ import annotations

import io
import tokenize
from pathlib import Path

from hub.storage import scripts
from hub.storage.changes import STREAM_MAXLEN
from hub.storage.marks import ARCHIVED_FLAG

ROOT = Path(__file__).resolve().parents[2]


def test_every_script_names_its_keys_and_argv() -> None:
    for f in sorted((ROOT / "hub/storage/lua").glob("*.lua")):
        head = f.read_text(encoding="utf-8").split("\n", 12)[:12]
        assert head[0].startswith("--"), f.name
        comment = " ".join(line for line in head if line.startswith("--"))
        assert ("KEYS" in comment and "ARGV" in comment) or "Shared function" in comment or "shared piece" in comment, f.name


def test_constants_repeated_in_lua_match_python() -> None:
    assert f"'MAXLEN', '~', {STREAM_MAXLEN}," in scripts.lua("notify")
    assert f"'MAXLEN', '~', {STREAM_MAXLEN}," in scripts.lua("online")
    assert f"redis.call('HDEL', KEYS[1], '{ARCHIVED_FLAG}')" in scripts.lua("archive_clear_flag")


def test_no_lua_in_python_strings() -> None:
    # tokenize, not ast: on Python 3.11 ast.parse shares a recursion counter with other
    # threads' ast.parse (traceback formatting calls it) and can fail with SystemError.
    strings = 0
    for pkg in ("hub", "web", "realtime", "workers", "cli"):
        for f in (ROOT / pkg).rglob("*.py"):
            for token in tokenize.generate_tokens(io.StringIO(f.read_text(encoding="utf-8")).readline):
                if token.type == tokenize.STRING:
                    strings += 1
                    assert "redis.call" not in token.string, f
    assert strings > 100  # the walk saw the code
