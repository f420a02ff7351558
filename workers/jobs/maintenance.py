"""Small jobs: a round-trip check used by tests and operators."""

from __future__ import annotations

from typing import Any


async def ping(ctx: dict[str, Any], value: str) -> dict[str, Any]:
    """Echo ``value`` with the try number: proves a worker consumes the queue end to end."""
    return {"pong": value, "try": ctx["job_try"]}
