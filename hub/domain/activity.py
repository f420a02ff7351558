"""Validation of incoming activities (docs/api.md, Activities).

Two shapes are accepted. The hub's own::

    {"actor", "verb", "object", "target"?, "time"?, "foreign_id"?, "to"?, "extra"?}

where any other key is refused, so that a typo (``"actr"``) is an error rather than a
silently dropped field. And an Activity Streams 2.0 activity, recognised by ``type`` or
``@context``, whose mapping onto the same fields is in :mod:`hub.domain.as2`.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from hub.domain.as2 import parse_as2
from hub.domain.fields import (
    GROUP_PATTERN,
    MAX_EXTRA_BYTES,
    MAX_ID_LENGTH,
    MAX_TO,
    ActivityInput,
    Error,
    at,
    feed_ids,
    json_size,
    optional_id,
    parse_time,
    required_id,
    split_feed_id,
    validate_feed_id,
    validate_group,
    validate_id,
    validate_user_id,
)
from hub.errors import InvalidActivity, InvalidJSON

# The validators moved to hub/domain/fields.py (shared with as2.py without an import
# circle); they are still offered here, where callers have always found them.
__all__ = [
    "GROUP_PATTERN", "MAX_BATCH", "MAX_EXTRA_BYTES", "MAX_ID_LENGTH", "MAX_TO", "NATIVE_KEYS", "ActivityInput",
    "Error", "decode_json", "parse_activities_body", "parse_activity", "parse_time", "split_feed_id",
    "validate_feed_id", "validate_group", "validate_id", "validate_user_id",
]

MAX_BATCH = 100
NATIVE_KEYS = ("actor", "verb", "object", "target", "time", "foreign_id", "to", "extra")


def decode_json(raw: bytes | str) -> object:
    """Decode a request body, raising :class:`~hub.errors.InvalidJSON`.

    UTF-8 only (RFC 8259), and ``NaN``/``Infinity`` are refused: they are not JSON and
    could not be written back out as JSON.
    """
    try:
        text = raw.decode("utf-8") if isinstance(raw, (bytes, bytearray)) else raw
        return json.loads(text, parse_constant=_no_constants)
    except UnicodeDecodeError as e:
        raise InvalidJSON(f"the body is not UTF-8 (byte {e.start})", field="body") from None
    except json.JSONDecodeError as e:
        msg = f"the body is not valid JSON: {e.msg} at line {e.lineno} column {e.colno}"
        raise InvalidJSON(msg, field="body") from None
    except (ValueError, RecursionError) as e:
        raise InvalidJSON(f"the body is not valid JSON: {e}", field="body") from None


def _no_constants(name: str) -> object:
    raise ValueError(f"{name} is not a JSON value")


def parse_activities_body(body: object, *, now: datetime) -> list[ActivityInput]:
    """The body of ``POST .../activities``: one activity or ``{"activities": [1..100]}``."""
    if not isinstance(body, dict):
        raise InvalidActivity('the body must be a JSON object: an activity, or {"activities": [...]}', field="body")
    if "activities" not in body:
        return [_parse(body, now, "")]
    for key in body:
        if key != "activities":
            raise InvalidActivity(f"unknown property {key!r} next to \"activities\"", field=key)
    items = body["activities"]
    if not isinstance(items, list) or not 1 <= len(items) <= MAX_BATCH:
        raise InvalidActivity(f"activities must be a list of 1 to {MAX_BATCH} activities", field="activities")
    return [_parse(item, now, f"activities[{i}]") for i, item in enumerate(items)]


def parse_activity(data: object, *, now: datetime) -> ActivityInput:
    """Validate one activity (either shape); ``now`` is the default ``time``."""
    return _parse(data, now, "")


def _parse(data: object, now: datetime, path: str) -> ActivityInput:
    if now.tzinfo is None:
        raise ValueError("now must be an aware datetime")
    if not isinstance(data, dict):
        raise InvalidActivity("an activity must be a JSON object", field=path or "body")
    if "type" in data or "@context" in data:
        return parse_as2(data, now.astimezone(UTC), path)
    return _parse_native(data, now.astimezone(UTC), path)


def _parse_native(d: dict[str, Any], now: datetime, path: str) -> ActivityInput:
    for key in d:
        if key not in NATIVE_KEYS:
            why = "the hub assigns id; put your own id in foreign_id" if key == "id" else (
                f"an activity has only {', '.join(NATIVE_KEYS)}; put anything else in extra"
            )
            raise InvalidActivity(f"unknown property {key!r}: {why}", field=at(path, str(key)))
    actor = required_id(d, "actor", path)
    verb = required_id(d, "verb", path)
    object_ = required_id(d, "object", path)
    target = optional_id(d, "target", path)
    foreign_id = optional_id(d, "foreign_id", path)
    time = now if d.get("time") is None else parse_time(d["time"], at(path, "time"))
    to = d.get("to")
    if to is not None and not isinstance(to, list):
        raise InvalidActivity("to must be a list of feed ids such as \"notification:bob\"", field=at(path, "to"))
    to_feeds = feed_ids(list(enumerate(to or [])), path)
    extra = d.get("extra")
    if extra is None:
        extra = {}
    elif not isinstance(extra, dict):
        raise InvalidActivity("extra must be a JSON object", field=at(path, "extra"))
    size = json_size(extra, at(path, "extra"))
    if size > MAX_EXTRA_BYTES:
        raise InvalidActivity(
            f"extra is {size} bytes as compact JSON; at most {MAX_EXTRA_BYTES} (16 KiB) are allowed",
            field=at(path, "extra"),
        )
    return ActivityInput(
        actor=actor, verb=verb, object=object_, target=target, foreign_id=foreign_id,
        time=time, to=to_feeds, extra=extra,
    )


