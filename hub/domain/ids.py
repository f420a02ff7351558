"""Activity ids: fixed-width strings whose byte order is their time order.

An id is a ULID: a 48-bit Unix time in milliseconds followed by 80 bits that make it
unique, written as 26 characters of Crockford base32 (``0-9A-Z`` without ``I L O U``).
That alphabet is in ASCII order, so comparing two ids as strings compares their times;
this is what lets Redis keep feeds in lex-sorted sets and lets a cursor be an id. The
alphabet has no ``:`` or ``|``, so ids are safe inside composite keys.

Uniqueness: ids made by one :class:`IdGenerator` strictly increase (within a millisecond
the 80-bit part is incremented), and two processes draw their 80 bits independently at
random, so they collide with negligible probability.
"""

from __future__ import annotations

import os
import secrets
import threading
import time
from collections.abc import Callable

from hub.errors import InvalidRequest

ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
ID_LENGTH = 26
TIME_CHARS = 10
RANDOM_BITS = 80
MAX_TIME_MS = (1 << 48) - 1
_MAX_RANDOM = (1 << RANDOM_BITS) - 1
_DECODE = {c: i for i, c in enumerate(ALPHABET)}


def _encode(value: int, width: int) -> str:
    chars = []
    for _ in range(width):
        chars.append(ALPHABET[value & 31])
        value >>= 5
    return "".join(reversed(chars))


def _decode(text: str) -> int:
    value = 0
    for c in text:
        value = (value << 5) | _DECODE[c]
    return value


def _wall_clock_ms() -> int:
    return time.time_ns() // 1_000_000


class IdGenerator:
    """Makes ids for one process. Create one per process and pass it where needed.

    ``clock`` returns the time in milliseconds and ``randbits(k)`` returns k random bits;
    both are injectable so tests can pin them.
    """

    def __init__(
        self,
        *,
        clock: Callable[[], int] = _wall_clock_ms,
        randbits: Callable[[int], int] = secrets.randbits,
    ) -> None:
        self._clock = clock
        self._randbits = randbits
        # Several threads (e.g. a thread-pool executor) may share one generator.
        self._lock = threading.Lock()
        self._last_ms = -1
        self._last_random = 0
        self._pid = os.getpid()

    def new(self, now_ms: int | None = None) -> str:
        """A new id, greater than every id this generator made before.

        If the clock (or ``now_ms``) is behind the last id's time, which happens when the
        system clock is stepped back, the last time is reused: a reader holding a cursor
        would otherwise never see the entries created after the step.
        """
        ms = self._clock() if now_ms is None else now_ms
        if not 0 <= ms <= MAX_TIME_MS:
            raise ValueError(f"time {ms} ms is outside the 48-bit range of ids")
        with self._lock:
            pid = os.getpid()
            if pid != self._pid:
                # A forked child inherits our state; incrementing it would repeat the
                # parent's ids within the same millisecond, so start afresh.
                self._pid, self._last_ms = pid, -1
            if ms <= self._last_ms:
                ms, rand = self._last_ms, self._last_random + 1
                if rand > _MAX_RANDOM:
                    # 2**80 ids in one millisecond cannot happen with a random start,
                    # but move on to the next millisecond rather than wrap around.
                    ms, rand = ms + 1, self._randbits(RANDOM_BITS)
            else:
                rand = self._randbits(RANDOM_BITS)
            self._last_ms, self._last_random = ms, rand
        return _encode(ms, TIME_CHARS) + _encode(rand, ID_LENGTH - TIME_CHARS)


def is_valid_id(value: object) -> bool:
    """True if ``value`` is an id in the canonical form :class:`IdGenerator` writes."""
    return (
        isinstance(value, str)
        and len(value) == ID_LENGTH
        and all(c in _DECODE for c in value)
        and value[0] <= "7"  # 26 base32 chars hold 130 bits; a ULID uses 128
    )


def id_time_ms(id_: str) -> int:
    """The Unix time in milliseconds at which ``id_`` was made.

    Raises :class:`~hub.errors.InvalidRequest` (field ``id``) for anything that is not
    an id, because ids also arrive from clients as cursors.
    """
    if not is_valid_id(id_):
        raise InvalidRequest(f"{id_!r} is not a hub id (26 characters of Crockford base32)", field="id")
    return _decode(id_[:TIME_CHARS])


def _clamp_ms(ms: int) -> int:
    return min(max(ms, 0), MAX_TIME_MS)


def min_id_for_ms(ms: int) -> str:
    """The smallest id made at ``ms``: every id made at or after ``ms`` is ``>=`` it.

    Times outside the representable range are clamped, so bounds computed from any
    integer still select the right (possibly empty) range.
    """
    return _encode(_clamp_ms(ms), TIME_CHARS) + "0" * (ID_LENGTH - TIME_CHARS)


def max_id_for_ms(ms: int) -> str:
    """The largest id made at ``ms``: every id made at or before ``ms`` is ``<=`` it."""
    return _encode(_clamp_ms(ms), TIME_CHARS) + "Z" * (ID_LENGTH - TIME_CHARS)
