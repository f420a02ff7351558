"""A connection's per-feed replay state (realtime/conn.py): live frames held during a
replay, repeats dropped after it, and a resume that waits for a replay of its feed."""

from __future__ import annotations

import asyncio
from typing import Any, cast

from realtime.conn import Conn


def conn() -> Conn:
    # The socket and request are only used to send and close: replay state needs neither.
    return Conn(cast(Any, None), cast(Any, None), "t1", "u", 0, queue_size=10, on_full=lambda _: None)


def test_frames_held_during_a_replay_come_after_it_once() -> None:
    c = conn()
    assert c.start_replay("timeline:u") is False
    c.push_live("timeline:u", (1, 0), b"covered")
    c.push_live("timeline:u", (3, 0), b"newer")
    assert c.end_replay("timeline:u", (2, 0)) == [b"newer"]
    c.feeds["timeline:u"].after = (3, 0)
    c.push_live("timeline:u", (3, 0), b"repeat")
    assert list(c.queue) == []  # a repeat of a frame sent is dropped


async def test_a_resume_waits_for_the_replay_of_its_feed_to_end() -> None:
    c = conn()
    await asyncio.wait_for(c.replay_ended("timeline:u"), 0.1)  # not followed: at once
    c.start_replay("timeline:u")
    waiting = asyncio.create_task(c.replay_ended("timeline:u"))
    await asyncio.sleep(0.01)
    assert not waiting.done()
    c.end_replay("timeline:u", (1, 0))
    await asyncio.wait_for(waiting, 0.1)
    await asyncio.wait_for(c.replay_ended("timeline:u"), 0.1)  # live now: at once


async def test_a_failed_replay_or_an_unfollow_lets_a_waiting_resume_go() -> None:
    c = conn()
    c.start_replay("a")
    c.start_replay("b")
    waiting = [asyncio.create_task(c.replay_ended(f)) for f in ("a", "b")]
    await asyncio.sleep(0.01)
    c.abandon_replay("a", was_following=False)
    c.unfollow("b")
    await asyncio.wait_for(asyncio.gather(*waiting), 0.1)
    assert c.feeds == {}
