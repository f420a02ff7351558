"""Preconditions a Redis script checks in the same call as its write.

Kept in storage (not beside the job queue that checks one) because it names Redis keys:
``hub/storage/follows.py`` builds it from its follower-set keys, ``hub/queue.py`` hands it
to its enqueue script, and neither has to import the other.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class SetsHoldOnly:
    """A job's precondition, checked in the call that queues it: the job is skipped when
    every one of ``keys`` is a set holding ``member`` and nothing else (a loaded cache
    saying "none"). A missing key never skips: the job finds out for itself."""

    member: str
    keys: Sequence[str]
