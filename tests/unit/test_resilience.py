"""Backoff, dependency errors and ``hub up``'s supervision of its children."""

from __future__ import annotations

import asyncio
import sys
import time

from redis.exceptions import BusyLoadingError, ReadOnlyError, ResponseError
from redis.exceptions import ConnectionError as RedisConnectionError

from cli.up import Child
from hub.errors import Unavailable
from workers.jobs.fanout import retry_budget, retry_delay
from workers.resilience import Backoff, is_dependency_error


def test_backoff_doubles_to_its_cap_and_resets_after_a_long_run() -> None:
    b = Backoff(first=1.0, cap=30.0, reset_after=60.0)
    assert [b.delay(ran_for=0.1) for _ in range(7)] == [1, 2, 4, 8, 16, 30, 30]
    assert b.delay(ran_for=61.0) == 1.0
    assert b.delay(ran_for=5.0) == 2.0


def test_dependency_errors_are_told_from_bugs() -> None:
    for e in (Unavailable("x"), RedisConnectionError("reset"), BusyLoadingError("LOADING"), asyncio.TimeoutError(),
              ConnectionRefusedError(), ReadOnlyError("READONLY You can't write"), ResponseError("MISCONF no save"),
              ResponseError("LOADING Redis is loading the dataset in memory")):
        assert is_dependency_error(e), e
    for e in (ResponseError("WRONGTYPE Operation against a key"), ValueError("x"), KeyError("k")):
        assert not is_dependency_error(e), e


def test_job_retries_ride_out_minutes_of_outage() -> None:
    assert [retry_delay(t) for t in range(1, 8)] == [2, 4, 8, 16, 30, 30, 30]
    assert retry_delay(10_000) == 30
    assert retry_budget(20) == 480  # seconds: docs/design.md (Outages)


def test_a_crashing_child_is_restarted_with_backoff() -> None:
    child = Child("crasher", [sys.executable, "-c", "import sys; sys.exit(3)"],
                  backoff=Backoff(first=0.2, cap=0.8, reset_after=60.0))
    child.start()
    starts = [child.started]
    deadline = time.monotonic() + 3.5
    while time.monotonic() < deadline:
        child.tend()
        if child.started != starts[-1]:
            starts.append(child.started)
        time.sleep(0.02)
    gaps = [b - a for a, b in zip(starts, starts[1:])]
    # Each gap is the child's (short) run plus a delay of 0.2, 0.4, 0.8, 0.8... s.
    assert len(starts) >= 4, gaps
    assert all(g >= d for g, d in zip(gaps, [0.2, 0.4, 0.8, 0.8, 0.8])), gaps
    assert child.proc is not None
    child.proc.wait(5)


def test_a_running_child_is_left_alone() -> None:
    child = Child("sleeper", [sys.executable, "-c", "import time; time.sleep(30)"])
    child.start()
    try:
        first = child.proc
        for _ in range(5):
            child.tend()
            time.sleep(0.05)
        assert child.proc is first and child.restart_at is None
    finally:
        assert child.proc is not None
        child.proc.kill()
        child.proc.wait(5)
