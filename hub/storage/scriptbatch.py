"""Concurrent calls of one Lua script, sent to Redis together.

A hot feed read is one script call (hub/storage/feedcache.py), and at 50 concurrent reads
redis-py's fixed cost per command (taking a pooled connection and its lock, the
readiness check, the health check, one send system call) was about a fifth of the
server's CPU. Calls made in the same event-loop turn are therefore queued and sent as one
pipeline when the turn ends: no call waits for a later turn, and those costs are paid once
per batch. Redis also reads and answers the batch with fewer system calls. Each call still
gets its own answer or error; a connection error fails every call of its batch, as it
would have failed each of them.
"""

from __future__ import annotations

import asyncio
from typing import Any

from redis.asyncio import Redis
from redis.commands.core import AsyncScript
from redis.exceptions import NoScriptError

from hub.background import Background
from hub.storage.trip import Trip


class ScriptBatch:
    def __init__(self, redis: Redis, script: AsyncScript) -> None:
        self.redis = redis
        self.script = script
        self._queue: list[tuple[list[Any], int, asyncio.Future[Any]]] = []
        self._sending = Background()

    async def __call__(self, keys: list[Any], args: list[Any]) -> Any:
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[Any] = loop.create_future()
        if not self._queue:
            loop.call_soon(self._flush)  # after the callbacks already due: this turn's other reads
        self._queue.append(([*keys, *args], len(keys), fut))
        return await fut

    def _flush(self) -> None:
        batch, self._queue = self._queue, []
        self._sending.spawn(self._send(batch))

    async def _send(self, batch: list[tuple[list[Any], int, asyncio.Future[Any]]]) -> None:
        try:
            if len(batch) == 1:
                argv, nkeys, _ = batch[0]
                results: list[Any] = [await self._one(argv, nkeys)]
            else:
                trip = Trip(self.redis)
                for argv, nkeys, _ in batch:
                    trip.script(self.script, argv[:nkeys], argv[nkeys:])
                results = await trip.execute(raise_on_error=False)
        except Exception as e:  # handed to every waiting call
            for _, _, fut in batch:
                if not fut.done():
                    fut.set_exception(e)
            return
        except BaseException:  # cancelled (shutdown): so are the calls
            for _, _, fut in batch:
                fut.cancel()
            raise
        for (_, _, fut), r in zip(batch, results):
            if fut.done():  # the caller was cancelled
                continue
            if isinstance(r, Exception):
                fut.set_exception(r)
            else:
                fut.set_result(r)

    async def _one(self, argv: list[Any], nkeys: int) -> Any:
        try:
            return await self.redis.evalsha(self.script.sha, nkeys, *argv)  # type: ignore[misc]
        except NoScriptError:
            return await self.script(keys=argv[:nkeys], args=argv[nkeys:])  # loads it
