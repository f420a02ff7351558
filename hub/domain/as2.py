"""The Activity Streams 2.0 shape of an incoming activity (docs/api.md, Activities).

A document with ``type`` or ``@context`` is read as AS2 and mapped onto the hub's own
fields (:class:`~hub.domain.fields.ActivityInput`) as follows:

- ``type`` gives the verb, lowercased; of a list of types the first string is used.
- ``actor``, ``object``, ``target`` may be an id string, an object, or a list (the first
  entry is used). An object gives its ``id`` (or a Link's ``href``). An object without
  either is anonymous in AS2 (``{"type": "Person", "name": "Sally"}``); it is named
  ``_:<hash>``, a JSON-LD blank-node label made from a hash of its content, so the same
  embedded object always gets the same id. Its ``name`` is deliberately not used: it is
  not unique and could collide with one of the app's real user ids.
- ``published`` gives the time and ``id`` the foreign_id.
- ``to``: AS2 addresses are usually actor URIs, not feeds. Entries that are not strings,
  contain ``://`` or are the public collection (``as:Public``) are ignored; every other
  entry must be a feed id ``<group>:<user>``.
- Every other property (``@context``, ``summary``, ``content``, ...) is kept in
  ``extra`` under its own name, and so is any mapped property the hub's fields do not
  carry in full: an embedded actor/object/target object (renderers need its ``name``), a
  list of types, a ``to`` with ignored entries. ``extra`` is limited to 16 KiB either
  way; a document whose kept properties exceed it is refused, naming the largest.
- The hub's ``verb``, ``time``, ``foreign_id`` and ``extra`` are refused in an AS2
  document: each duplicates an AS2 property and silently preferring one would surprise.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from hub.domain.fields import (
    MAX_EXTRA_BYTES,
    ActivityInput,
    at,
    feed_ids,
    json_size,
    optional_id,
    parse_time,
    validate_feed_id,
    validate_id,
)
from hub.errors import InvalidActivity

_AS2_MAPPED = frozenset({"type", "id", "published", "actor", "object", "target", "to"})
_AS2_PUBLIC = frozenset({"as:Public", "Public"})
_AS2_INSTEAD = {"verb": "type", "time": "published", "foreign_id": "id", "extra": "top-level properties"}


def parse_as2(d: dict[str, Any], now: datetime, path: str) -> ActivityInput:
    """One AS2 activity, already known to be an object; ``now`` (aware, UTC) is the default time."""
    for key, instead in _AS2_INSTEAD.items():
        if key in d:
            raise InvalidActivity(
                f"{key!r} cannot be used in an Activity Streams document (it has type or @context); "
                f"use {instead}", field=at(path, key),
            )
    if "@context" in d and not isinstance(d["@context"], (str, dict, list)):
        raise InvalidActivity("@context must be a URL, an object or a list", field=at(path, "@context"))
    kept = {k: v for k, v in d.items() if k not in _AS2_MAPPED}
    _check_as2_text(kept, path)
    types = d.get("type")
    if isinstance(types, list):
        kept["type"] = types
        types = next((t for t in types if isinstance(t, str)), types)
    if types is None:
        raise InvalidActivity("type is required: it gives the verb", field=at(path, "type"))
    if not isinstance(types, str):
        raise InvalidActivity("type must be a string or a list of strings", field=at(path, "type"))
    verb = validate_id(types, at(path, "type"), error=InvalidActivity).lower()
    foreign_id = optional_id(d, "id", path)
    actor = _as2_ref(d, "actor", path, kept)
    object_ = _as2_ref(d, "object", path, kept)
    target = _as2_ref(d, "target", path, kept) if d.get("target") is not None else None
    published = d.get("published")
    time = now if published is None else parse_time(published, at(path, "published"))
    to, complete = _as2_to(d.get("to"), path)
    if not complete:
        kept["to"] = d["to"]
    return ActivityInput(
        actor=actor, verb=verb, object=object_, target=target, foreign_id=foreign_id,
        time=time, to=to, extra=_fit_as2_extra(kept, path),
    )


def _as2_ref(d: Mapping[str, Any], key: str, path: str, kept: dict[str, Any]) -> str:
    """The id of an AS2 reference: a string, an object (its id), or a list (the first).

    A value that is more than an id string is also kept (in ``kept``, later ``extra``).
    """
    value, field = d.get(key), at(path, key)
    if value is None:
        raise InvalidActivity(f"{key} is required", field=field)
    if not isinstance(value, str):
        kept[key] = value
    if isinstance(value, list):
        if not value:
            raise InvalidActivity(f"{field} is an empty list", field=field)
        value, field = value[0], f"{field}[0]"
    if isinstance(value, str):
        return validate_id(value, field, error=InvalidActivity)
    if not isinstance(value, dict):
        raise InvalidActivity(f"{field} must be an id, an object with an id, or a list of them", field=field)
    for prop in ("id", "href"):
        if value.get(prop) is not None:
            return validate_id(value[prop], f"{field}.{prop}", error=InvalidActivity)
    if not value:
        raise InvalidActivity(f"{field} is an empty object, so it has no id", field=field)
    # Anonymous object: identify it by its content (see the module docstring).
    try:
        canonical = json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
        return "_:" + hashlib.sha256(canonical.encode()).hexdigest()[:32]
    except (ValueError, TypeError, RecursionError, UnicodeEncodeError):
        raise InvalidActivity(f"{field} is not representable as JSON", field=field) from None


def _as2_to(value: object, path: str) -> tuple[tuple[str, ...], bool]:
    """The feeds named in an AS2 ``to`` and whether every entry was one."""
    if value is None:
        return (), True
    entries = list(enumerate(value)) if isinstance(value, list) else [(0, value)]
    feeds = [(i, e) for i, e in entries if isinstance(e, str) and "://" not in e and e not in _AS2_PUBLIC]
    if isinstance(value, list):
        return feed_ids(feeds, path), len(feeds) == len(entries)
    # A single value has no index: name the property itself in errors.
    return tuple(validate_feed_id(f, at(path, "to"), error=InvalidActivity) for _, f in feeds), bool(feeds)


def _check_as2_text(props: Mapping[str, Any], path: str) -> None:
    """Natural-language properties: strings, or their ``*Map`` forms: objects of strings."""
    for key in ("name", "summary", "content"):
        if props.get(key) is not None and not isinstance(props[key], str):
            raise InvalidActivity(
                f"{key} must be a string (use {key}Map for several languages)", field=at(path, key)
            )
        value = props.get(key + "Map")
        if value is not None and not (isinstance(value, dict) and all(isinstance(v, str) for v in value.values())):
            raise InvalidActivity(
                f"{key}Map must be an object mapping language tags to strings", field=at(path, key + "Map")
            )


def _fit_as2_extra(kept: dict[str, Any], path: str) -> dict[str, Any]:
    size = json_size(kept, at(path, "extra"))
    if size > MAX_EXTRA_BYTES:
        largest = max(kept, key=lambda k: json_size(kept[k], at(path, k)))
        raise InvalidActivity(
            f"the document's properties kept in extra take {size} bytes; at most {MAX_EXTRA_BYTES} "
            f"(16 KiB) are allowed, and {largest!r} is the largest",
            field=at(path, largest),
        )
    return kept
