"""Client frames, parsed within bounds.

A client frame is a small flat JSON object (``{"op": "subscribe", "feed": ...}``), at most
16 KiB (the gateway's ``max_msg_size``). Python's JSON decoder recurses once per nesting
level, so 16 KiB of ``[`` would raise RecursionError deep in the stack: the nesting is
checked before decoding and a frame deeper than ``MAX_DEPTH`` is refused like any other
malformed frame (an ``invalid_json`` error frame; the socket stays open).
"""

from __future__ import annotations

import json
import re
from typing import Any

from hub.errors import InvalidJSON, InvalidRequest

MAX_DEPTH = 16
_STRING = re.compile(r'"(?:[^"\\]|\\.)*"', re.DOTALL)
_BRACKETS = re.compile(r"[\[\]{}]")


def nesting(text: str) -> int:
    """The deepest nesting of arrays and objects in ``text``, brackets inside strings aside."""
    depth = deepest = 0
    for ch in _BRACKETS.findall(_STRING.sub("", text)):
        if ch in "[{":
            depth += 1
            deepest = max(deepest, depth)
        else:
            depth -= 1
    return deepest


def parse_client_frame(raw: str) -> dict[str, Any]:
    """The frame as a dict, or InvalidJSON / InvalidRequest (answered as an error frame)."""
    # Counting brackets is cheap; the exact scan runs only when the count could be too deep.
    if raw.count("[") + raw.count("{") > MAX_DEPTH and nesting(raw) > MAX_DEPTH:
        raise InvalidJSON(f"frames nest at most {MAX_DEPTH} levels deep")
    try:
        m = json.loads(raw)
    except (ValueError, RecursionError):
        raise InvalidJSON("frames are JSON objects") from None
    if not isinstance(m, dict):
        raise InvalidRequest("a frame is a JSON object with an op", field="op")
    return m
