"""The hub's domain records: plain frozen dataclasses, no I/O."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any


def format_time(t: datetime) -> str:
    """RFC 3339 in UTC with microseconds, the one form the hub writes. The year has four
    digits: strftime's ``%Y`` writes the year 828 as ``828``, which is not RFC 3339, which
    ``parse_stored_time`` refuses and which sorts after ``2026`` as text."""
    u = t.astimezone(timezone.utc)
    return f"{u.year:04d}-" + u.strftime("%m-%dT%H:%M:%S.%fZ")


def parse_stored_time(s: str) -> datetime:
    """Parse a time the hub wrote itself (see :func:`format_time`)."""
    return datetime.strptime(s, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=timezone.utc)


@dataclass(frozen=True, slots=True)
class Activity:
    """One activity, as stored once and referenced from every feed it reaches.

    ``id`` is assigned by the hub and sorts by time (see :mod:`hub.domain.ids`).
    ``time`` is the app's own time for the event (defaults to the intake time).
    """

    id: str
    actor: str
    verb: str
    object: str
    time: datetime
    target: str | None = None
    foreign_id: str | None = None
    to: tuple[str, ...] = ()
    extra: Mapping[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        d: dict[str, Any] = {
            "id": self.id, "actor": self.actor, "verb": self.verb, "object": self.object,
            "target": self.target, "time": format_time(self.time),
            "foreign_id": self.foreign_id, "to": list(self.to), "extra": dict(self.extra),
        }
        return d

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> Activity:
        """Rebuild from :meth:`to_json` output (trusted, already validated data)."""
        return cls(
            id=d["id"], actor=d["actor"], verb=d["verb"], object=d["object"],
            time=parse_stored_time(d["time"]), target=d.get("target"),
            foreign_id=d.get("foreign_id"), to=tuple(d.get("to") or ()), extra=d.get("extra") or {},
        )
