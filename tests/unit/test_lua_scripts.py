"""The Lua scripts live in hub/storage/lua/, load through hub/storage/scripts.py, and
repeat the few Python constants they need."""

from __future__ import annotations

import ast
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
    for pkg in ("hub", "web", "realtime", "workers", "cli"):
        for f in (ROOT / pkg).rglob("*.py"):
            for node in ast.walk(ast.parse(f.read_text(encoding="utf-8"))):
                if isinstance(node, ast.Constant) and isinstance(node.value, str):
                    assert "redis.call" not in node.value, f
