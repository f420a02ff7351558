"""Query parameters, parsed strictly.

``str.isdigit`` and ``int()`` accept far more than an HTTP client means by a number:
superscripts (``²``), circled digits (``①``, which ``int()`` then refuses), and Arabic-Indic
or fullwidth digits (``٥``, ``５``, which ``int()`` reads as 5). Here a number is 1 to
``MAX_DIGITS`` ASCII digits, so a 5,000-digit value is refused before any conversion.
"""

from __future__ import annotations

import re

from aiohttp import web

from hub.errors import InvalidRequest

MAX_DIGITS = 9
_ASCII_INT = re.compile(r"[0-9]{1,%d}" % MAX_DIGITS, re.ASCII)
MAX_CURSOR = 1024
# Control characters and UTF-16 surrogates (a query may carry %ED%A0%80) are in no cursor.
_NOT_TEXT = re.compile(r"[\x00-\x1f\x7f-\x9f\ud800-\udfff]")


def query_int(request: web.Request, name: str, default: int, lo: int, hi: int) -> int:
    """``?name=`` as an integer from ``lo`` to ``hi`` (``default`` when absent), else 400."""
    raw = request.query.get(name)
    if raw is None:
        return default
    if not _ASCII_INT.fullmatch(raw) or not lo <= int(raw) <= hi:
        raise InvalidRequest(f"{name} must be an integer from {lo} to {hi}", field=name)
    return int(raw)


def query_cursor(request: web.Request, name: str) -> str | None:
    """An opaque cursor the server sent (``?id_lt=``, ``?cursor=``), or None when absent or
    empty: bounded, without control characters or surrogates; its form is checked by the
    read that uses it."""
    raw = request.query.get(name)
    if not raw:
        return None
    if len(raw) > MAX_CURSOR or _NOT_TEXT.search(raw):
        raise InvalidRequest(f"{name} must be a cursor this server sent", field=name)
    return raw
