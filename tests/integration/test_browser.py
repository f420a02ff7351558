"""The live inbox (/demo) in a real headless Chromium, against the real app and services.

Debian's ``chromium`` is installed with apt when missing (as hub/services does for
Redis); Playwright drives it (its own browser download does not work here).
"""

from __future__ import annotations

import dataclasses
import json
import shutil
import subprocess
import tempfile
from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiohttp import web

import realtime
from hub.config import Settings
from tests.conftest import sign, uid
from tests.helpers import token

CHROMIUM = "/usr/bin/chromium"
FLAGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--disable-dev-shm-usage"]


def ensure_chromium() -> str:
    if shutil.which("chromium") is None:
        subprocess.run(["apt-get", "install", "-y", "chromium"], check=True, capture_output=True, timeout=900)
    path = shutil.which("chromium")
    assert path, "chromium did not install"
    return path


@pytest.fixture
async def served(settings: Settings, worker) -> AsyncIterator[tuple[str, Settings]]:  # type: ignore[no-untyped-def]
    """The app on a real port, with that port's origin allowed for app t1."""
    import socket

    from web.app import create_app
    from web.keys import HUB

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    origin = f"http://127.0.0.1:{port}"
    t1 = dataclasses.replace(settings.apps["t1"], allowed_origins=(*settings.apps["t1"].allowed_origins, origin))
    s2 = dataclasses.replace(settings, apps={**settings.apps, "t1": t1})
    app = create_app(s2)
    realtime.setup(app, s2, get_hub=lambda a: a[HUB])
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", port)
    await site.start()
    yield origin, s2
    await runner.cleanup()


@pytest.fixture
async def browser() -> AsyncIterator[Any]:
    from playwright.async_api import async_playwright

    path = ensure_chromium()
    # Playwright gives every launch a fresh profile directory of its own (--user-data-dir).
    async with async_playwright() as pw:
        b = await pw.chromium.launch(executable_path=path, headless=True, args=FLAGS)
        yield b
        await b.close()


async def _post(origin: str, settings: Settings, **activity: object) -> None:
    import aiohttp

    body = json.dumps(activity).encode()
    async with aiohttp.ClientSession() as s:
        async with s.post(f"{origin}/v1/apps/t1/activities", data=body, headers=sign(settings.apps["t1"], body)) as r:
            assert r.status == 202, await r.text()


async def test_live_inbox_in_chromium(served, browser) -> None:  # type: ignore[no-untyped-def]
    """/demo is the <hub-inbox> element: live groups, marks across tabs, a resume after the
    network drops (tests/integration/test_inbox_browser.py goes further)."""
    origin, settings = served
    bob = uid("bob")
    url = f"{origin}/demo?token={token(settings, bob)}"
    rows = "[...document.querySelector('hub-inbox').shadowRoot.querySelectorAll('li')]"
    badge = "document.querySelector('hub-inbox').shadowRoot.querySelector('.count').textContent"
    ctx = await browser.new_context()
    tab1, tab2 = await ctx.new_page(), await ctx.new_page()
    errors: list[str] = []
    for p in (tab1, tab2):
        p.on("pageerror", lambda e: errors.append(str(e)))
        await p.goto(url)
        await p.wait_for_selector("hub-inbox[data-status=live]", timeout=10_000)

    # Activities posted through the API appear live, grouped.
    await _post(origin, settings, actor="alice", verb="like", object="photo:42", to=[f"notification:{bob}"])
    for actor in ("carol", "dan", "erin"):
        await _post(origin, settings, actor=actor, verb="like", object="photo:42", to=[f"notification:{bob}"])
    await _post(origin, settings, actor="fay", verb="comment", object="photo:7", to=[f"notification:{bob}"])
    for p in (tab1, tab2):
        await p.wait_for_function(f"{rows}.length === 2 && {badge} === '2'", timeout=10_000)
        texts = await p.evaluate(f"{rows}.map(li => li.querySelector('.text').textContent)")
        assert texts == ["fay commented on photo:7", "erin and 3 others liked photo:42"]

    # Mark one group read in tab 1: tab 2's bell follows.
    await tab1.click("hub-inbox button.bell")
    await tab1.locator("hub-inbox li button.open").nth(1).click()
    for p in (tab1, tab2):
        await p.wait_for_function(f"{badge} === '1'", timeout=10_000)

    # The network drops: an activity posted meanwhile arrives after the reconnect (resume).
    await ctx.set_offline(True)
    await tab2.wait_for_selector("hub-inbox[data-status=offline]", timeout=5_000)
    await _post(origin, settings, actor="gus", verb="follow", object=f"user:{bob}", to=[f"notification:{bob}"])
    await ctx.set_offline(False)
    await tab2.wait_for_function(f"{rows}.length === 3", timeout=20_000)
    assert (await tab2.evaluate(f"{rows}[0].querySelector('.text').textContent")).startswith("gus followed")
    await tab2.wait_for_selector("hub-inbox[data-status=live]", timeout=10_000)
    await tab2.screenshot(path=tempfile.gettempdir() + "/hub-demo.png")
    assert errors == []
    await ctx.close()
