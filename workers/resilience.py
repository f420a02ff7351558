"""Riding out dependency outages: which errors mean "down", how long to wait, what to log.

A worker never exits because Redis or Cassandra went away: it waits for them with capped
exponential backoff and logs one line when an outage starts and one when it ends, however
many jobs and loops meet it meanwhile.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from redis.exceptions import ResponseError

from hub.errors import Unavailable
from hub.storage.outage import OutageLog
from hub.storage.redis import REDIS_DOWN

log = logging.getLogger(__name__)

# Redis replies that mean "not now" rather than "wrong": still loading its data set
# (LOADING, raised as BusyLoadingError, a ConnectionError), a replica or a failover
# (READONLY), a failed background save (MISCONF), out of memory (OOM), a script running
# too long (BUSY), a cluster moving slots (TRYAGAIN).
_REDIS_NOT_NOW = ("LOADING", "READONLY", "MISCONF", "OOM", "BUSY", "TRYAGAIN")

# Connection errors, timeouts (TimeoutError is an OSError) and Cassandra's Unavailable
# (hub/storage/cassandra.py turns every driver availability failure into it).
DEPENDENCY_ERRORS: tuple[type[BaseException], ...] = (Unavailable, asyncio.TimeoutError, *REDIS_DOWN)


def is_dependency_error(exc: BaseException) -> bool:
    """True when ``exc`` says a dependency is down or busy, not that the work is wrong."""
    if isinstance(exc, DEPENDENCY_ERRORS):
        return True
    return isinstance(exc, ResponseError) and str(exc).startswith(_REDIS_NOT_NOW)


@dataclass
class Backoff:
    """Delays of ``first`` seconds doubling up to ``cap``; back to ``first`` once something
    has run for ``reset_after`` seconds (a crash loop backs off, a rare crash does not)."""

    first: float = 1.0
    cap: float = 30.0
    reset_after: float = 60.0
    _next: float = field(default=0.0, init=False)

    def delay(self, ran_for: float = 0.0) -> float:
        if ran_for >= self.reset_after or self._next == 0.0:
            self._next = self.first
        current = self._next
        self._next = min(self.cap, self._next * 2)
        return current


def outage_log(what: str) -> OutageLog:
    """One warning when ``what`` goes down, one when it is back: never a line per failed
    attempt, whichever of several loops notices (hub/storage/outage.py, logged here)."""
    return OutageLog(what, log)


async def wait_until(check: Callable[[], Awaitable[object]], outage: OutageLog, stop: asyncio.Event,
                     backoff: Backoff | None = None) -> bool:
    """Call ``check`` until it returns without a dependency error; False if ``stop`` was
    set first. Other errors propagate (they are bugs, not outages)."""
    backoff = backoff or Backoff(first=0.5, cap=10.0)
    while not stop.is_set():
        try:
            await check()
        except Exception as e:
            if not is_dependency_error(e):
                raise
            outage.failed(e)
        else:
            outage.recovered()
            return True
        await sleep_unless(stop, backoff.delay())
    return False


async def sleep_unless(stop: asyncio.Event, seconds: float) -> None:
    """Sleep ``seconds``, or less if ``stop`` is set meanwhile."""
    try:
        await asyncio.wait_for(stop.wait(), seconds)
    except asyncio.TimeoutError:
        pass
