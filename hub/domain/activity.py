"""Validation of incoming activities (docs/api.md, Activities).

Two shapes are accepted. The hub's own::

    {"actor", "verb", "object", "target"?, "time"?, "foreign_id"?, "to"?, "extra"?}

where any other key is refused, so that a typo (``"actr"``) is an error rather than a
silently dropped field. And an Activity Streams 2.0 activity, recognised by ``type`` or
``@context``, whose mapping onto the same fields is in :mod:`hub.domain.as2`.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

from hub.domain.models import Activity
from hub.errors import HubError, InvalidActivity, InvalidJSON, InvalidRequest

MAX_ID_LENGTH = 256
MAX_TO = 100
MAX_BATCH = 100
MAX_EXTRA_BYTES = 16 * 1024
GROUP_PATTERN = re.compile(r"[a-z][a-z0-9_]{0,63}")
NATIVE_KEYS = ("actor", "verb", "object", "target", "time", "foreign_id", "to", "extra")
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")
_SURROGATE = re.compile(r"[\ud800-\udfff]")
_RFC3339 = re.compile(
    r"([0-9]{4})-([0-9]{2})-([0-9]{2})[Tt]([0-9]{2}):([0-9]{2}):([0-9]{2})(?:\.([0-9]{1,32}))?"
    r"(?:[Zz]|([+-])([0-9]{2}):([0-9]{2}))"
)

Error = type[HubError]


@dataclass(frozen=True, slots=True)
class ActivityInput:
    """A validated activity before the hub gives it an id."""

    actor: str
    verb: str
    object: str
    time: datetime
    target: str | None = None
    foreign_id: str | None = None
    to: tuple[str, ...] = ()
    extra: Mapping[str, Any] = field(default_factory=dict)

    def with_id(self, id_: str) -> Activity:
        return Activity(
            id=id_, actor=self.actor, verb=self.verb, object=self.object, time=self.time,
            target=self.target, foreign_id=self.foreign_id, to=self.to, extra=self.extra,
        )


def _at(path: str, name: str) -> str:
    return f"{path}.{name}" if path else name


def validate_id(value: object, field: str, *, error: Error = InvalidRequest) -> str:
    """An id (user, actor, object, verb...): 1 to 256 characters, no control characters."""
    if not isinstance(value, str):
        raise error(f"{field} must be a string", field=field)
    if not 1 <= len(value) <= MAX_ID_LENGTH:
        raise error(f"{field} must be 1 to {MAX_ID_LENGTH} characters long, not {len(value)}", field=field)
    if _CONTROL.search(value):
        raise error(f"{field} must not contain control characters", field=field)
    if _SURROGATE.search(value):
        raise error(f"{field} contains an unpaired UTF-16 surrogate, which is not text", field=field)
    return value


def validate_user_id(value: object, field: str, *, error: Error = InvalidRequest) -> str:
    """A user id as the app names its users (docs/api.md, Concepts)."""
    return validate_id(value, field, error=error)


def validate_group(value: object, field: str, *, error: Error = InvalidRequest) -> str:
    """A feed group's name: the form only; whether the group exists is checked elsewhere."""
    if not isinstance(value, str) or not GROUP_PATTERN.fullmatch(value):
        raise error(
            f"{field}: feed groups are a lowercase letter then up to 63 lowercase letters, digits or _",
            field=field,
        )
    return value


def split_feed_id(feed: object, field: str = "feed", *, error: Error = InvalidRequest) -> tuple[str, str]:
    """``"notification:bob"`` -> ``("notification", "bob")``. User ids may contain ``:``."""
    if not isinstance(feed, str) or ":" not in feed:
        raise error(f"{field} must be a feed id such as \"notification:bob\" (group:user)", field=field)
    group, user = feed.split(":", 1)
    return validate_group(group, field, error=error), validate_user_id(user, field, error=error)


def validate_feed_id(feed: object, field: str = "feed", *, error: Error = InvalidRequest) -> str:
    group, user = split_feed_id(feed, field, error=error)
    return f"{group}:{user}"


def parse_time(value: object, field: str, *, error: Error = InvalidActivity) -> datetime:
    """An RFC 3339 date-time with ``Z`` or an offset, as an aware UTC datetime."""
    hint = f"{field} must be an RFC 3339 date-time with a time zone, such as 2026-11-21T10:00:00Z"
    m = _RFC3339.fullmatch(value) if isinstance(value, str) else None
    if m is None:
        raise error(hint, field=field)
    year, month, day, hour, minute, second = (int(g) for g in m.groups()[:6])
    micro = int((m.group(7) or "0")[:6].ljust(6, "0"))
    if second == 60:  # a leap second; datetime has none, so keep it inside the minute
        second, micro = 59, 999_999
    sign, oh, om = m.group(8), int(m.group(9) or 0), int(m.group(10) or 0)
    try:
        if oh > 23 or om > 59:
            raise ValueError
        offset = timedelta(hours=oh, minutes=om) * (-1 if sign == "-" else 1)
        local = datetime(year, month, day, hour, minute, second, micro, tzinfo=timezone(offset))
        return local.astimezone(UTC)
    except (ValueError, OverflowError):
        raise error(f"{hint} ({value!r} is not a valid date and time)", field=field) from None


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


def _json_size(value: object, field: str) -> int:
    try:
        text = json.dumps(value, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
        return len(text.encode())
    except (ValueError, TypeError, RecursionError, UnicodeEncodeError):
        raise InvalidActivity(f"{field} is not representable as JSON", field=field) from None


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
        # Imported here, not at the top: as2 builds on this module's validators and
        # ActivityInput, so a top-level import would be circular.
        from hub.domain.as2 import parse_as2

        return parse_as2(data, now.astimezone(UTC), path)
    return _parse_native(data, now.astimezone(UTC), path)


def _optional_id(d: Mapping[str, Any], key: str, path: str) -> str | None:
    value = d.get(key)
    return None if value is None else validate_id(value, _at(path, key), error=InvalidActivity)


def _required_id(d: Mapping[str, Any], key: str, path: str) -> str:
    if d.get(key) is None:
        raise InvalidActivity(f"{key} is required", field=_at(path, key))
    return validate_id(d[key], _at(path, key), error=InvalidActivity)


def _parse_native(d: dict[str, Any], now: datetime, path: str) -> ActivityInput:
    for key in d:
        if key not in NATIVE_KEYS:
            why = "the hub assigns id; put your own id in foreign_id" if key == "id" else (
                f"an activity has only {', '.join(NATIVE_KEYS)}; put anything else in extra"
            )
            raise InvalidActivity(f"unknown property {key!r}: {why}", field=_at(path, str(key)))
    actor = _required_id(d, "actor", path)
    verb = _required_id(d, "verb", path)
    object_ = _required_id(d, "object", path)
    target = _optional_id(d, "target", path)
    foreign_id = _optional_id(d, "foreign_id", path)
    time = now if d.get("time") is None else parse_time(d["time"], _at(path, "time"))
    to = d.get("to")
    if to is not None and not isinstance(to, list):
        raise InvalidActivity("to must be a list of feed ids such as \"notification:bob\"", field=_at(path, "to"))
    feeds = _feeds(list(enumerate(to or [])), path)
    extra = d.get("extra")
    if extra is None:
        extra = {}
    elif not isinstance(extra, dict):
        raise InvalidActivity("extra must be a JSON object", field=_at(path, "extra"))
    size = _json_size(extra, _at(path, "extra"))
    if size > MAX_EXTRA_BYTES:
        raise InvalidActivity(
            f"extra is {size} bytes as compact JSON; at most {MAX_EXTRA_BYTES} (16 KiB) are allowed",
            field=_at(path, "extra"),
        )
    return ActivityInput(
        actor=actor, verb=verb, object=object_, target=target, foreign_id=foreign_id,
        time=time, to=feeds, extra=extra,
    )


def _feeds(entries: list[tuple[int, object]], path: str) -> tuple[str, ...]:
    """Validated, de-duplicated feed ids; ``entries`` keep their index for error fields."""
    if len(entries) > MAX_TO:
        raise InvalidActivity(f"to names {len(entries)} feeds; at most {MAX_TO} are allowed", field=_at(path, "to"))
    return tuple(dict.fromkeys(
        validate_feed_id(feed, _at(path, f"to[{i}]"), error=InvalidActivity) for i, feed in entries
    ))
