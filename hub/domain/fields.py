"""The fields of an incoming activity, validated: ids, feed ids, times, sizes.

Shared by both shapes an activity comes in, the hub's own (:mod:`hub.domain.activity`)
and Activity Streams 2.0 (:mod:`hub.domain.as2`), and by the HTTP views that take ids. Pure:
every function returns the value it was given (or a normalised form) or raises the
``error`` class it is given (a :class:`~hub.errors.HubError`, answered as a 4xx), with
``field`` naming where in the body the bad value was.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

from hub.domain.models import Activity
from hub.errors import HubError, InvalidActivity, InvalidRequest

MAX_ID_LENGTH = 256
MAX_TO = 100
MAX_EXTRA_BYTES = 16 * 1024
GROUP_PATTERN = re.compile(r"[a-z][a-z0-9_]{0,63}")
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


def at(path: str, name: str) -> str:
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


def json_size(value: object, field: str) -> int:
    try:
        text = json.dumps(value, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
        return len(text.encode())
    except (ValueError, TypeError, RecursionError, UnicodeEncodeError):
        raise InvalidActivity(f"{field} is not representable as JSON", field=field) from None


def optional_id(d: Mapping[str, Any], key: str, path: str) -> str | None:
    value = d.get(key)
    return None if value is None else validate_id(value, at(path, key), error=InvalidActivity)


def required_id(d: Mapping[str, Any], key: str, path: str) -> str:
    if d.get(key) is None:
        raise InvalidActivity(f"{key} is required", field=at(path, key))
    return validate_id(d[key], at(path, key), error=InvalidActivity)


def feed_ids(entries: Sequence[tuple[int, object]], path: str) -> tuple[str, ...]:
    """Validated, de-duplicated feed ids; ``entries`` keep their index for error fields."""
    if len(entries) > MAX_TO:
        raise InvalidActivity(f"to names {len(entries)} feeds; at most {MAX_TO} are allowed", field=at(path, "to"))
    return tuple(dict.fromkeys(
        validate_feed_id(feed, at(path, f"to[{i}]"), error=InvalidActivity) for i, feed in entries
    ))
