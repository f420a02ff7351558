"""Tasks started for their effect alone, kept referenced until they finish.

asyncio holds only weak references to tasks, so a task nobody keeps can be collected
before it has run. Owners start such tasks here and wait for them when they close.
"""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from typing import Any


class Background:
    def __init__(self) -> None:
        self._tasks: set[asyncio.Task[Any]] = set()

    def spawn(self, coro: Coroutine[Any, Any, Any]) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def close(self) -> None:
        """Wait for the tasks still running (their errors are theirs to handle)."""
        await asyncio.gather(*self._tasks, return_exceptions=True)
