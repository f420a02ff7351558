"""The keyspace guard (README, configuration; docs/design.md): a Redis key prefix serves one keyspace, and a
hub whose prefix is bound to another keyspace refuses to start with one line naming both.

Each test binds a prefix of its own under the run's prefix (cleaned up with it), so the
run's own binding, shared by every other test, is never touched."""

from __future__ import annotations

import asyncio
import dataclasses
import secrets
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from hub.config import Settings
from hub.storage.binding import KeyspaceConflict, bind_keyspace, binding_key
from tests.conftest import ROOT
from workers.context import close_hub, open_hub


def hub_on(settings: Settings, prefix: str, keyspace: str) -> Settings:
    return dataclasses.replace(settings, redis=dataclasses.replace(settings.redis, key_prefix=prefix),
                               cassandra=dataclasses.replace(settings.cassandra, keyspace=keyspace))


def own_prefix(settings: Settings) -> str:
    return f"{settings.redis.key_prefix}:guard{secrets.token_hex(3)}"


async def test_a_second_hub_on_another_keyspace_refuses_to_start(settings: Settings, redis: Any) -> None:
    prefix = own_prefix(settings)
    first = hub_on(settings, prefix, settings.cassandra.keyspace)
    second = hub_on(settings, prefix, "other_keyspace")
    hubs = [await open_hub(first), await open_hub(first)]  # any number of processes of one hub
    try:
        assert await redis.get(binding_key(prefix)) == settings.cassandra.keyspace
        with pytest.raises(KeyspaceConflict) as e:
            await open_hub(second)
        line = str(e.value)
        assert "\n" not in line
        assert repr(settings.cassandra.keyspace) in line and "'other_keyspace'" in line and repr(prefix) in line
        assert e.value.key == "redis.key_prefix"
        # The first hub's binding is unchanged: its processes go on.
        assert await redis.get(binding_key(prefix)) == settings.cassandra.keyspace
    finally:
        for h in hubs:
            await close_hub(h)


async def test_a_flushed_binding_is_bound_again_by_the_first_hub_to_start(settings: Settings, redis: Any) -> None:
    prefix = own_prefix(settings)
    await bind_keyspace(redis, hub_on(settings, prefix, "ks_a"))
    await redis.delete(binding_key(prefix))  # what FLUSHALL does to it
    await bind_keyspace(redis, hub_on(settings, prefix, "ks_b"))
    assert await redis.get(binding_key(prefix)) == "ks_b"
    with pytest.raises(KeyspaceConflict):
        await bind_keyspace(redis, hub_on(settings, prefix, "ks_a"))


async def test_the_web_app_refuses_to_start(settings: Settings, redis: Any, aiohttp_client: Any) -> None:
    from web.app import create_app

    prefix = own_prefix(settings)
    await bind_keyspace(redis, hub_on(settings, prefix, settings.cassandra.keyspace))
    with pytest.raises(KeyspaceConflict):
        await aiohttp_client(create_app(hub_on(settings, prefix, "other_keyspace")))


async def test_hub_worker_exits_with_one_line(settings: Settings, redis: Any, tmp_path: Path) -> None:
    prefix = own_prefix(settings)
    await bind_keyspace(redis, hub_on(settings, prefix, settings.cassandra.keyspace))
    c = settings.cassandra
    config = tmp_path / "second.toml"
    config.write_text(
        f'[redis]\nurl = "{settings.redis.url}"\nkey_prefix = "{prefix}"\n'
        f'[cassandra]\nhosts = [{", ".join(repr(h) for h in c.hosts)}]\nport = {c.port}\nkeyspace = "second_hub"\n'
        .replace("'", '"')
    )
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "cli.main", "--config", str(config), "worker",
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env={"PATH": "/usr/bin:/bin"},
    )
    try:
        _, err = await asyncio.wait_for(proc.communicate(), 120)
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    assert proc.returncode == 2, err
    last = err.decode().strip().splitlines()[-1]
    assert last.startswith("hub: config: redis.key_prefix: ") and "Traceback" not in err.decode()
    assert repr(settings.cassandra.keyspace) in last and "'second_hub'" in last
