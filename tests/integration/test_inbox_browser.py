# ruff: noqa: F811  (the fixtures of test_browser.py, imported, are parameters here)
"""hub-client.js and <hub-inbox> (web/static) in a real headless Chromium, against the real
app, gateway and worker (fixtures of tests/integration/test_browser.py).

axe-core comes from the npm registry (``npm pack``) into ~/.cache/hub, once.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import re
import subprocess
import tarfile
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

import realtime
from bench.common import free_port
from hub.config import Settings
from tests.conftest import uid
from tests.helpers import token
from tests.integration.test_browser import _post, browser, served  # noqa: F401  (fixtures)

AXE_VERSION = "4.10.2"
CACHE = Path.home() / ".cache" / "hub" / "axe-core"

# The element's shadow DOM, read from the page.
ROWS = "[...document.querySelector('hub-inbox').shadowRoot.querySelectorAll('li')]"
TEXTS = f"{ROWS}.map(li => li.querySelector('.text').textContent)"
BADGE = "document.querySelector('hub-inbox').shadowRoot.querySelector('.count')"


def axe_source() -> str:
    js = CACHE / AXE_VERSION / "axe.min.js"
    if not js.exists():
        js.parent.mkdir(parents=True, exist_ok=True)
        out = subprocess.run(["npm", "pack", f"axe-core@{AXE_VERSION}", "--pack-destination", str(js.parent)],
                             check=True, capture_output=True, text=True, timeout=300)
        tgz = js.parent / out.stdout.strip().splitlines()[-1]
        with tarfile.open(tgz) as tar:
            member = tar.extractfile("package/axe.min.js")
            assert member is not None
            js.write_bytes(member.read())
    return js.read_text()


async def _page(ctx: Any, url: str, errors: list[str]) -> Any:
    p = await ctx.new_page()
    p.on("pageerror", lambda e: errors.append(str(e)))
    await p.goto(url)
    await p.wait_for_selector("hub-inbox[data-status=live]", timeout=10_000)
    return p


async def _wait(p: Any, js: str, timeout: int = 10_000) -> None:
    await p.wait_for_function(js, timeout=timeout)


async def _feed(origin: str, settings: Settings, user: str, *, groups: int | None = None) -> list[dict[str, Any]]:
    """The user's notification feed over HTTP, read again until it holds ``groups`` groups
    (the worker's fan-out is done: nothing is left to arrive live)."""
    import aiohttp

    headers = {"Authorization": f"Bearer {token(settings, user)}"}
    deadline = time.monotonic() + 10
    async with aiohttp.ClientSession() as s:
        while True:
            async with s.get(f"{origin}/v1/feeds/notification/{user}?limit=100", headers=headers) as r:
                assert r.status == 200, await r.text()
                results: list[dict[str, Any]] = (await r.json())["results"]
            if groups is None or len(results) == groups:
                return results
            assert time.monotonic() < deadline, f"{len(results)} groups, not {groups}"
            await asyncio.sleep(0.05)


def _sent_subscribes(p: Any) -> list[dict[str, Any]]:
    """Every subscribe frame the page's websockets send, as they are sent."""
    sent: list[dict[str, Any]] = []

    def on_socket(ws: Any) -> None:
        ws.on("framesent", lambda payload: sent.append(json.loads(payload)) if '"subscribe"' in str(payload) else None)

    p.on("websocket", on_socket)
    return sent


async def test_element_text_marks_and_accessibility(served, browser) -> None:  # type: ignore[no-untyped-def]
    origin, settings = served
    bob = uid("bob")
    errors: list[str] = []
    ctx = await browser.new_context()
    p = await _page(ctx, f"{origin}/demo?token={token(settings, bob)}", errors)
    assert await p.locator("hub-inbox .count").is_hidden()

    for actor in ("alice", "carol", "dan", "erin"):
        await _post(origin, settings, actor=actor, verb="like", object="photo:42", to=[f"notification:{bob}"])
    await _post(origin, settings, actor="fay", verb="comment", object="photo:7", to=[f"notification:{bob}"])
    await _wait(p, f"{ROWS}.length === 2 && {BADGE}.textContent === '2'")
    texts = await p.evaluate(TEXTS)
    assert texts == ["fay commented on photo:7", "erin and 3 others liked photo:42"]
    # The bell announced the new notifications politely.
    live = p.locator("hub-inbox [role=status]")
    assert await live.get_attribute("aria-live") == "polite"
    assert re.fullmatch(r"\d+ new notifications?", await live.text_content() or "")
    assert await p.locator("hub-inbox button.bell").get_attribute("aria-label") == "Notifications, 2 unread"

    # A template per verb, set from JavaScript.
    await p.evaluate("() => { customElements.get('hub-inbox').templates.comment = c => `${c.subject} wrote on ${c.object}`; }")
    await p.evaluate("document.querySelector('hub-inbox').setAttribute('locale', 'en-GB')")
    assert (await p.evaluate(TEXTS))[0] == "fay wrote on photo:7"
    # Relative times in the element's locale (Intl.RelativeTimeFormat).
    times = f"{ROWS}.map(li => li.querySelector('time').textContent)"
    assert all(re.fullmatch(r"now|\d+ seconds? ago", t) for t in await p.evaluate(times))
    await p.evaluate("document.querySelector('hub-inbox').setAttribute('locale', 'de')")
    assert all(re.fullmatch(r"jetzt|vor \d+ Sekunden?", t) for t in await p.evaluate(times))
    await p.evaluate("document.querySelector('hub-inbox').setAttribute('locale', 'en-GB')")

    # Opening the panel marks everything seen; clicking a group marks it read.
    await p.click("hub-inbox button.bell")
    await _wait(p, "document.querySelector('hub-inbox').feed.state.unseen === 0")
    await p.keyboard.press("Tab")  # from the selected tab into the list
    await p.locator("hub-inbox li button.open").nth(1).click()
    await _wait(p, f"{BADGE}.textContent === '1'")
    assert await p.locator("hub-inbox li.unread").count() == 1

    # No serious or critical accessibility violation, panel open.
    await p.add_script_tag(content=axe_source())
    result = await p.evaluate("axe.run(document, {resultTypes: ['violations']})")
    bad = [(v["id"], v["impact"]) for v in result["violations"] if v["impact"] in ("serious", "critical")]
    assert bad == []
    await p.keyboard.press("Escape")
    assert await p.locator("hub-inbox .panel").is_hidden()
    assert errors == []
    await ctx.close()


async def test_tabs_share_one_connection_and_hand_over(served, browser) -> None:  # type: ignore[no-untyped-def]
    origin, settings = served
    bob = uid("bob")
    url = f"{origin}/demo?token={token(settings, bob)}"
    errors: list[str] = []
    sockets: dict[str, list[Any]] = {"t1": [], "t2": []}
    ctx = await browser.new_context()
    t1 = await _page(ctx, url, errors)
    t1.on("websocket", lambda ws: sockets["t1"].append(ws))
    t2 = await ctx.new_page()
    t2.on("websocket", lambda ws: sockets["t2"].append(ws))
    t2.on("pageerror", lambda e: errors.append(str(e)))
    await t2.goto(url)
    await t2.wait_for_selector("hub-inbox[data-status=live]", timeout=10_000)  # the holder's status
    await asyncio.sleep(0.5)
    assert sockets["t2"] == []  # the follower opened no connection

    await _post(origin, settings, actor="alice", verb="like", object="photo:1", to=[f"notification:{bob}"])
    await _post(origin, settings, actor="carol", verb="comment", object="photo:2", to=[f"notification:{bob}"])
    for p in (t1, t2):
        await _wait(p, f"{ROWS}.length === 2 && {BADGE}.textContent === '2'")

    # A mark made in the follower reaches the holder (and back).
    await t2.click("hub-inbox button.bell")
    await t2.locator("hub-inbox li button.open").first.click()
    for p in (t1, t2):
        await _wait(p, f"{BADGE}.textContent === '1' && {ROWS}.filter(li => li.classList.contains('unread')).length === 1")

    # The holder goes away: the other tab holds the connection within 2 s.
    started = time.monotonic()
    await t1.close()
    await t2.wait_for_event("websocket", timeout=2_000)
    await t2.wait_for_selector("hub-inbox[data-status=live]", timeout=2_000)
    assert time.monotonic() - started < 2.0
    await _post(origin, settings, actor="dan", verb="follow", object=f"user:{bob}", to=[f"notification:{bob}"])
    await _wait(t2, f"{ROWS}.length === 3")
    assert (await t2.evaluate(TEXTS))[0] == f"dan followed user:{bob}"
    assert errors == []
    await ctx.close()


async def test_offline_then_online_each_missed_group_once(served, browser) -> None:  # type: ignore[no-untyped-def]
    origin, settings = served
    bob = uid("bob")
    errors: list[str] = []
    ctx = await browser.new_context()
    p = await ctx.new_page()
    subscribes = _sent_subscribes(p)
    p.on("pageerror", lambda e: errors.append(str(e)))
    await p.goto(f"{origin}/demo?token={token(settings, bob)}")
    await p.wait_for_selector("hub-inbox[data-status=live]", timeout=10_000)
    await _post(origin, settings, actor="alice", verb="like", object="photo:1", to=[f"notification:{bob}"])
    await _wait(p, f"{ROWS}.length === 1")

    await ctx.set_offline(True)
    await p.wait_for_selector("hub-inbox[data-status=offline]", timeout=5_000)
    await _post(origin, settings, actor="carol", verb="like", object="photo:1", to=[f"notification:{bob}"])
    for n in range(5):
        await _post(origin, settings, actor=f"u{n}", verb="comment", object=f"post:{n}", to=[f"notification:{bob}"])
    await _feed(origin, settings, bob, groups=6)  # all fanned out while the page is away
    await ctx.set_offline(False)
    await _wait(p, f"{ROWS}.length === 6", timeout=20_000)
    assert "since" not in subscribes[0] and subscribes[-1].get("since")  # resumed, not started over
    ids = await p.evaluate(f"{ROWS}.map(li => li.dataset.id)")
    assert len(ids) == len(set(ids)) == 6
    texts = await p.evaluate(TEXTS)
    assert texts[:5] == [f"u{n} commented on post:{n}" for n in (4, 3, 2, 1, 0)]
    assert texts[5] == "carol and 1 other liked photo:1"
    assert await p.get_attribute("hub-inbox", "data-status") == "live"
    assert errors == []
    await ctx.close()


async def test_marks_and_archives_made_elsewhere_while_offline_converge(served, browser) -> None:  # type: ignore[no-untyped-def]
    """Another device archives and marks while this browser is offline (no frame can reach
    it, and the server's replay carries entries, not marks): back online, the list and the
    badge are the server's."""
    import aiohttp

    origin, settings = served
    bob = uid("bob")
    errors: list[str] = []
    ctx = await browser.new_context()
    p = await _page(ctx, f"{origin}/demo?token={token(settings, bob)}", errors)
    for obj in ("post:a", "post:b", "post:c"):
        await _post(origin, settings, actor="alice", verb="comment", object=obj, to=[f"notification:{bob}"])
    await _wait(p, f"{ROWS}.length === 3 && {BADGE}.textContent === '3'")
    gid = {g["activities"][0]["object"]: g["id"] for g in await _feed(origin, settings, bob, groups=3)}

    await ctx.set_offline(True)
    await p.wait_for_selector("hub-inbox[data-status=offline]", timeout=5_000)
    elsewhere = {"Authorization": f"Bearer {token(settings, bob)}"}
    base = f"{origin}/v1/feeds/notification/{bob}"
    async with aiohttp.ClientSession() as s:
        async with s.post(f"{base}/archive", json={"ids": [gid["post:b"]]}, headers=elsewhere) as r:
            assert r.status == 200
        async with s.post(f"{base}/read", json={"ids": [gid["post:a"]]}, headers=elsewhere) as r:
            assert (await r.json())["unread"] == 1
    await _post(origin, settings, actor="dan", verb="like", object="photo:9", to=[f"notification:{bob}"])
    await _feed(origin, settings, bob, groups=3)  # c, a and the new one: fanned out
    await ctx.set_offline(False)
    await _wait(p, f"{ROWS}.length === 3 && {ROWS}[0].textContent.includes('photo:9')", timeout=20_000)
    await _wait(p, f"{BADGE}.textContent === '2' && !{TEXTS}.some(t => t.includes('post:b'))")
    assert await p.evaluate(TEXTS) == ["dan liked photo:9", "alice commented on post:c", "alice commented on post:a"]
    unread = await p.evaluate(f"{ROWS}.map(li => li.classList.contains('unread'))")
    assert unread == [True, True, False]
    assert errors == []
    await ctx.close()


async def test_token_expiring_while_open_is_refreshed_without_gap(served, browser) -> None:  # type: ignore[no-untyped-def]
    origin, settings = served
    bob = uid("bob")
    ctx = await browser.new_context()
    p = await ctx.new_page()
    issued: list[float] = []

    def fresh() -> str:
        issued.append(time.monotonic())
        return token(settings, bob, ttl=3)

    await p.expose_function("freshToken", fresh)
    await p.goto(f"{origin}/healthz")  # any page of the origin
    await p.evaluate("""async (t) => {
        const { HubClient } = await import('/static/hub-client.js');
        window.hub = new HubClient({ url: location.origin, token: t, refreshToken: () => window.freshToken() });
        window.seen = []; window.statuses = [];
        window.hub.feed('notification').subscribe(s => {
            if (window.statuses.at(-1) !== s.status) window.statuses.push(s.status);
            window.seen = s.entries.map(e => e.actors[0]);
        });
    }""", token(settings, bob, ttl=3))
    await _wait(p, "window.statuses.includes('live')")
    for n in range(8):  # across at least two expiries
        await _post(origin, settings, actor=f"a{n}", verb="follow", object=f"user:{bob}", to=[f"notification:{bob}"])
        await asyncio.sleep(0.9)
    await _wait(p, "window.seen.length === 1 && window.hub.feed('notification').state.entries[0].actor_count === 8")
    assert len(issued) >= 2
    assert await p.evaluate("window.statuses") == ["connecting", "live"]  # never dropped
    await p.evaluate("window.hub.close()")
    await ctx.close()


async def test_a_4001_close_refreshes_the_token_and_resumes(served, browser) -> None:  # type: ignore[no-untyped-def]
    """The refresh before expiry fails (a backend hiccup): the server closes with 4001 at
    expiry, the client refreshes then and resumes with since; nothing is lost."""
    origin, settings = served
    bob = uid("bob")
    ctx = await browser.new_context()
    p = await ctx.new_page()
    calls: list[float] = []

    def fresh() -> str:
        calls.append(time.monotonic())
        if len(calls) == 1:
            raise RuntimeError("the backend is down for a moment")
        return token(settings, bob, ttl=60)

    await p.expose_function("freshToken", fresh)
    subscribes = _sent_subscribes(p)
    await p.goto(f"{origin}/healthz")
    await p.evaluate("""async (t) => {
        const { HubClient } = await import('/static/hub-client.js');
        window.hub = new HubClient({ url: location.origin, token: t, refreshToken: () => window.freshToken() });
        window.statuses = []; window.objects = [];
        window.hub.feed('notification').subscribe(s => {
            if (window.statuses.at(-1) !== s.status) window.statuses.push(s.status);
            window.objects = s.entries.map(e => e.activities[0].object);
        });
    }""", token(settings, bob, ttl=2))
    await _wait(p, "window.statuses.includes('live')")
    await _post(origin, settings, actor="alice", verb="like", object="before", to=[f"notification:{bob}"])
    await _wait(p, "window.objects.includes('before')")
    deadline = time.monotonic() + 15
    while not (len(subscribes) == 2 and len(calls) == 2):  # the 4001 at expiry, the refresh, the resume
        assert time.monotonic() < deadline, (calls, subscribes)
        await asyncio.sleep(0.05)
    assert subscribes[1].get("since")
    assert await p.evaluate("window.statuses") == ["connecting", "live"]  # never an error
    await _post(origin, settings, actor="carol", verb="like", object="after", to=[f"notification:{bob}"])
    await _wait(p, "window.objects.join() === 'after,before'")
    await p.evaluate("window.hub.close()")
    await ctx.close()


async def test_reconnects_back_off_while_nothing_connects(served, browser) -> None:  # type: ignore[no-untyped-def]
    """Websocket refused and SSE answered 503: the client alternates between them, each wait
    at least as long as the one before (0.25-0.5 s doubling, with jitter), status connecting."""
    origin, settings = served
    bob = uid("bob")
    ctx = await browser.new_context()
    attempts: list[tuple[str, float]] = []

    async def refuse_ws(ws: Any) -> None:
        attempts.append(("ws", time.monotonic()))
        await ws.close(code=1011, reason="no websockets here")

    async def refuse_sse(route: Any) -> None:
        attempts.append(("sse", time.monotonic()))
        await route.fulfill(status=503, content_type="application/json", body='{"error": {"code": "unavailable"}}')

    await ctx.route_web_socket(re.compile(r".*/v1/realtime\?.*"), refuse_ws)
    await ctx.route(re.compile(r".*/v1/realtime/sse\?.*"), refuse_sse)
    p = await ctx.new_page()
    await p.goto(f"{origin}/demo?token={token(settings, bob)}")
    deadline = time.monotonic() + 20
    while len(attempts) < 5:
        assert time.monotonic() < deadline, attempts
        await asyncio.sleep(0.05)
    assert [kind for kind, _ in attempts[:5]] == ["ws", "sse", "ws", "sse", "ws"]
    gaps = [b - a for (_, a), (_, b) in zip(attempts, attempts[1:5], strict=False)]
    assert gaps[0] < 0.3  # a refused websocket tries server-sent events at once
    assert 0.4 <= gaps[1] and gaps[1] * 0.9 <= gaps[2] and gaps[2] * 0.9 <= gaps[3] and gaps[3] >= 1.5 * gaps[1], gaps
    assert await p.get_attribute("hub-inbox", "data-status") == "connecting"
    await ctx.close()


async def test_archive_and_each_filter_across_tabs(served, browser) -> None:  # type: ignore[no-untyped-def]
    origin, settings = served
    bob = uid("bob")
    url = f"{origin}/demo?token={token(settings, bob)}"
    errors: list[str] = []
    ctx = await browser.new_context()
    t1 = await _page(ctx, url, errors)
    t2 = await _page(ctx, url, errors)
    for obj in ("post:a", "post:b", "post:c"):
        await _post(origin, settings, actor="alice", verb="comment", object=obj, to=[f"notification:{bob}"])
    for p in (t1, t2):
        await _wait(p, f"{ROWS}.length === 3")

    # Archive b in tab 1: it leaves the default view (and the counts) in both tabs.
    await t1.click("hub-inbox button.bell")
    await t1.locator("hub-inbox li", has_text="post:b").locator("button.archive").click()
    for p in (t1, t2):
        await _wait(p, f"{ROWS}.length === 2 && {BADGE}.textContent === '2'")
        assert await p.evaluate(TEXTS) == ["alice commented on post:c", "alice commented on post:a"]

    # The Archived tab holds it; the Unread tab leaves out what was read.
    await t1.locator("hub-inbox [role=tab]", has_text="Archived").click()
    await _wait(t1, f"{ROWS}.length === 1")
    assert await t1.evaluate(TEXTS) == ["alice commented on post:b"]
    assert await t1.locator("hub-inbox button.archive").count() == 0
    await t1.locator("hub-inbox [role=tab]", has_text="All").click()
    await _wait(t1, f"{ROWS}.length === 2")
    await t1.locator("hub-inbox li", has_text="post:a").locator("button.open").click()
    await t1.locator("hub-inbox [role=tab]", has_text="Unread").click()
    await _wait(t1, f"{ROWS}.length === 1 && {BADGE}.textContent === '1'")
    assert await t1.evaluate(TEXTS) == ["alice commented on post:c"]
    await _wait(t2, f"{BADGE}.textContent === '1'")
    feed = "document.querySelector('hub-inbox').feed"
    await t2.evaluate(f"{feed}.setFilter('unseen')")  # the panel opened in tab 1: all seen
    await _wait(t2, f"{feed}.state.filter === 'unseen' && {ROWS}.length === 0")
    assert await t2.locator("hub-inbox .empty").is_visible() is False  # the panel is closed in tab 2
    await t2.evaluate(f"{feed}.setFilter('all')")

    # A new activity that joins the archived group brings it back, on top.
    await _post(origin, settings, actor="carol", verb="comment", object="post:b", to=[f"notification:{bob}"])
    await _wait(t2, f"{ROWS}.length === 3")
    assert (await t2.evaluate(TEXTS))[0] == "carol and 1 other commented on post:b"
    await t1.locator("hub-inbox [role=tab]", has_text="Archived").click()
    await _wait(t1, f"{ROWS}.length === 0")
    assert await t1.locator("hub-inbox .empty").is_visible()
    assert errors == []
    await ctx.close()


async def test_infinite_scroll_keyboard_and_theme(served, browser) -> None:  # type: ignore[no-untyped-def]
    origin, settings = served
    bob = uid("bob")
    errors: list[str] = []
    acts = [{"actor": "alice", "verb": "like", "object": f"photo:{n}", "to": [f"notification:{bob}"]} for n in range(30)]
    await _post(origin, settings, activities=acts)
    await _feed(origin, settings, bob, groups=30)
    ctx = await browser.new_context()
    p = await _page(ctx, f"{origin}/demo?token={token(settings, bob)}", errors)
    await _wait(p, f"{ROWS}.length === 25 && {BADGE}.textContent === '30'")
    inbox = "document.querySelector('hub-inbox')"

    # Themed through custom properties on the element.
    await p.evaluate(f"{inbox}.style.setProperty('--hub-accent', 'rgb(1, 2, 3)')")
    assert await p.evaluate(f"getComputedStyle({BADGE}).backgroundColor") == "rgb(1, 2, 3)"

    # Scrolling to the end of the panel loads the next page, once.
    await p.click("hub-inbox button.bell")
    assert await p.evaluate(f"{ROWS}.length") == 25
    await p.evaluate(f"{inbox}.shadowRoot.querySelector('.panel').scrollTop = 1e6")
    await _wait(p, f"{ROWS}.length === 30 && {inbox}.feed.state.hasMore === false")
    ids = await p.evaluate(f"{ROWS}.map(li => li.dataset.id)")
    assert len(set(ids)) == 30

    # Keyboard: Right/Left move between the tabs (and switch the view), Down/End/Home move in the list.
    focused = f"{inbox}.shadowRoot.activeElement"
    await p.evaluate(f"{inbox}.shadowRoot.querySelector('[role=tab]').focus()")
    await p.keyboard.press("ArrowRight")
    assert await p.evaluate(f"{focused}.textContent") == "Unread"
    assert await p.get_attribute("hub-inbox [role=tab][data-filter=unread]", "aria-selected") == "true"
    await _wait(p, f"{inbox}.feed.state.filter === 'unread'")
    await p.keyboard.press("ArrowLeft")
    await _wait(p, f"{inbox}.feed.state.filter === 'all' && {ROWS}.length === 25")
    await p.evaluate(f"{inbox}.shadowRoot.querySelector('li button.open').focus()")
    row = f"{focused}.closest('li').dataset.id"
    await p.keyboard.press("ArrowDown")
    assert await p.evaluate(row) == ids[1]
    await p.keyboard.press("End")
    assert await p.evaluate(row) == ids[24]
    await p.keyboard.press("Home")
    assert await p.evaluate(row) == ids[0]
    await p.keyboard.press("Escape")
    assert await p.evaluate(f"{focused}.classList.contains('bell')")
    assert errors == []
    await ctx.close()


def _members(dts: str, head: str) -> dict[str, bool]:
    """The members a declaration block of hub-client.d.ts names: name -> is a method."""
    block = dts.split(head + " {", 1)[1].split("\n}", 1)[0]
    found = re.findall(r"^  (?:readonly )?(\w+)(\??)([(:])", block, re.M)
    return {name: kind == "(" for name, _, kind in found if name != "constructor"}


async def test_the_declarations_match_the_module(served, browser) -> None:  # type: ignore[no-untyped-def]
    """Every member hub-client.d.ts declares exists in hub-client.js with its kind, and the
    state has exactly the declared fields (the d.ts is the contract's interface)."""
    origin, settings = served
    dts = (Path(__file__).resolve().parents[2] / "web" / "static" / "hub-client.d.ts").read_text()
    want = {"Feed": _members(dts, "export interface Feed"),
            "HubClient": _members(dts, "export declare class HubClient"),
            "FeedState": _members(dts, "export interface FeedState")}
    assert {"subscribe", "loadMore", "markRead", "markSeen", "archive", "setFilter"} <= set(want["Feed"])
    ctx = await browser.new_context()
    p = await ctx.new_page()
    await p.goto(f"{origin}/healthz")
    have = await p.evaluate("""async ([t, want]) => {
        const m = await import('/static/hub-client.js');
        const hub = new m.HubClient({ url: location.origin, token: t });
        const feed = hub.feed('notification');
        const kinds = (o, names) => Object.fromEntries(Object.keys(names).map(n => [n, n in o ? typeof o[n] : 'missing']));
        const out = { Feed: kinds(feed, want.Feed), HubClient: kinds(hub, want.HubClient),
                      state: Object.keys(feed.state).sort(),
                      exports: [typeof m.HubClient, typeof m.HubError, typeof m.claims] };
        hub.close();
        return out;
    }""", [token(settings, uid("bob")), want])
    for name in ("Feed", "HubClient"):
        for member, is_method in want[name].items():
            assert have[name][member] != "missing", f"{name}.{member}"
            assert (have[name][member] == "function") == is_method, f"{name}.{member}: {have[name][member]}"
    assert have["state"] == sorted(want["FeedState"])
    assert have["exports"] == ["function", "function", "function"]
    await ctx.close()


async def test_demo_helpers_only_for_the_demo_app(served) -> None:  # type: ignore[no-untyped-def]
    import aiohttp

    from web.views.pages import DEV_SECRET

    origin, settings = served
    bob = uid("bob")
    async with aiohttp.ClientSession() as s:
        # Another app's token: refused, nothing posted.
        headers = {"Authorization": f"Bearer {token(settings, bob)}"}
        async with s.post(f"{origin}/demo/activities", json={"actor": "x", "verb": "like", "object": "o"},
                          headers=headers) as r:
            assert r.status == 403 and (await r.json())["error"]["code"] == "forbidden"
        async with s.post(f"{origin}/demo/token", headers=headers) as r:
            assert r.status == 403
        async with s.post(f"{origin}/demo/token") as r:
            assert r.status == 401

        # The development app (its published secret): a test activity as another user into
        # the caller's own notification feed, and a fresh token.
        assert settings.apps["demo"].secret == DEV_SECRET
        headers = {"Authorization": f"Bearer {token(settings, bob, app='demo')}"}
        async with s.post(f"{origin}/demo/activities", json={"actor": "alice", "verb": "like", "object": "photo:1",
                                                             "to": ["notification:someone-else"]}, headers=headers) as r:
            assert r.status == 202, await r.text()
        async with s.post(f"{origin}/demo/activities", json={"actor": "alice"}, headers=headers) as r:
            assert r.status == 400
        async with s.post(f"{origin}/demo/token", headers=headers) as r:
            assert r.status == 200
            fresh = {"Authorization": f"Bearer {(await r.json())['token']}"}
        for _ in range(100):
            async with s.get(f"{origin}/v1/feeds/notification/{bob}", headers=fresh) as r:
                assert r.status == 200
                results = (await r.json())["results"]
            if results:
                break
            await asyncio.sleep(0.1)
        assert [(g["verb"], g["actors"]) for g in results] == [("like", ["alice"])]


@pytest.fixture
async def served_sse(settings: Settings, worker) -> AsyncIterator[tuple[str, Settings]]:  # type: ignore[no-untyped-def]
    """As ``served`` (its origin, and last an app page's, allowed for apps t1 and demo), with SSE
    heartbeats every 0.5 s: a stream whose client left ends at once, so the app's clean-up
    does not wait."""
    from web.app import create_app
    from web.keys import HUB

    port = free_port()
    origin = f"http://127.0.0.1:{port}"
    extra = (origin, f"http://127.0.0.1:{free_port()}")  # the hub's own, and an app page's
    apps = {name: dataclasses.replace(settings.apps[name], allowed_origins=(*settings.apps[name].allowed_origins, *extra))
            for name in ("t1", "demo")}
    s2 = dataclasses.replace(settings, apps={**settings.apps, **apps})
    app = create_app(s2)
    realtime.setup(app, s2, get_hub=lambda a: a[HUB], sse_heartbeat=0.5)
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    yield origin, s2
    await runner.cleanup()


async def test_server_sent_events_when_websockets_are_refused(served_sse, browser) -> None:  # type: ignore[no-untyped-def]
    origin, settings = served_sse
    bob = uid("bob")
    errors: list[str] = []
    ctx = await browser.new_context()
    refused: list[str] = []

    async def refuse(ws: Any) -> None:  # a proxy that breaks the upgrade: closed at once
        refused.append(ws.url)
        await ws.close(code=1011, reason="no websockets here")

    await ctx.route_web_socket(re.compile(r".*/v1/realtime\?.*"), refuse)
    streams: list[str] = []
    ctx.on("request", lambda r: streams.append(r.url) if "/v1/realtime/sse" in r.url else None)
    p = await _page(ctx, f"{origin}/demo?token={token(settings, bob)}", errors)
    assert refused and streams
    await _post(origin, settings, actor="alice", verb="like", object="photo:1", to=[f"notification:{bob}"])
    await _wait(p, f"{ROWS}.length === 1")

    await _post(origin, settings, actor="carol", verb="like", object="photo:1", to=[f"notification:{bob}"])
    await _post(origin, settings, actor="dan", verb="comment", object="post:1", to=[f"notification:{bob}"])
    await _wait(p, f"{ROWS}.length === 2")
    assert await p.evaluate(TEXTS) == ["dan commented on post:1", "carol and 1 other liked photo:1"]
    assert len(streams) == 1

    # Resumed after a drop with since: every missed group once.
    await ctx.set_offline(True)
    await p.wait_for_selector("hub-inbox[data-status=offline]", timeout=5_000)
    for n in range(3):
        await _post(origin, settings, actor=f"u{n}", verb="share", object=f"doc:{n}", to=[f"notification:{bob}"])
    await _feed(origin, settings, bob, groups=5)  # all fanned out while the page is away
    await ctx.set_offline(False)
    await _wait(p, f"{ROWS}.length === 5", timeout=20_000)
    assert len(set(await p.evaluate(f"{ROWS}.map(li => li.dataset.id)"))) == 5
    assert "since=" in streams[-1]
    await p.evaluate("document.querySelector('hub-inbox').remove()")  # closes the stream
    await asyncio.sleep(1.0)  # the server's next heartbeat finds it gone
    assert errors == []
    await ctx.close()


async def test_demo_page_posts_as_another_user_and_shows_it(served_sse, browser) -> None:  # type: ignore[no-untyped-def]
    """/demo: the element plus a form posting test activities as other users (app demo)."""
    origin, settings = served_sse
    bob = uid("bob")
    errors: list[str] = []
    ctx = await browser.new_context()
    p = await _page(ctx, f"{origin}/demo?token={token(settings, bob, app='demo')}", errors)
    await p.fill("#post input[name=actor]", "zoe")
    await p.select_option("#post select[name=verb]", "comment")
    await p.fill("#post input[name=object]", "post:z")
    await p.click("#post button[type=submit]")
    await _wait(p, f"{ROWS}.length === 1 && {BADGE}.textContent === '1'")
    assert await p.evaluate(TEXTS) == ["zoe commented on post:z"]
    assert (await p.text_content("#posted") or "").startswith("posted ")
    await p.evaluate("document.querySelector('hub-inbox').remove()")  # closes the connection
    assert errors == []
    await ctx.close()


async def test_embedded_in_a_page_of_another_origin(served_sse, browser) -> None:  # type: ignore[no-untyped-def]
    """The element on an app's own site (another origin): the module, the reads, the marks
    (a preflighted POST) and the realtime connection all cross origins."""
    origin, settings = served_sse
    bob = uid("bob")
    errors: list[str] = []
    ctx = await browser.new_context()
    html = (f'<!doctype html><html lang="en"><head><title>app</title>'
            f'<script type="module" src="{origin}/static/hub-inbox.js"></script></head>'
            f'<body><header style="display: flex; justify-content: flex-end"><hub-inbox url="{origin}" '
            f'token="{token(settings, bob)}"></hub-inbox></header></body></html>')
    page_origin = settings.apps["t1"].allowed_origins[-1]  # on loopback too: Chromium keeps
    # a page of a public origin from reading loopback addresses (Private Network Access)
    async def inbox_page(_: web.Request) -> web.Response:
        return web.Response(text=html, content_type="text/html")

    site = web.Application()
    site.router.add_get("/inbox", inbox_page)
    runner = web.AppRunner(site)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", int(page_origin.rsplit(":", 1)[1])).start()
    p = await _page(ctx, f"{page_origin}/inbox", errors)
    for obj in ("photo:1", "photo:2"):
        await _post(origin, settings, actor="alice", verb="like", object=obj, to=[f"notification:{bob}"])
    await _wait(p, f"{ROWS}.length === 2 && {BADGE}.textContent === '2'")
    await p.click("hub-inbox button.bell")
    await p.locator("hub-inbox li button.open").first.click()
    await _wait(p, f"{BADGE}.textContent === '1'")
    assert len(await _feed(origin, settings, bob)) == 2
    await p.evaluate("document.querySelector('hub-inbox').remove()")  # closes the connection
    assert errors == []
    await ctx.close()
    await runner.cleanup()


async def test_cross_origin_headers(served) -> None:  # type: ignore[no-untyped-def]
    import aiohttp

    origin, settings = served
    bob = uid("bob")
    feed = f"{origin}/v1/feeds/notification/{bob}"
    auth = {"Authorization": f"Bearer {token(settings, bob)}"}
    async with aiohttp.ClientSession() as s:
        # Static files: any origin may read them.
        async with s.get(f"{origin}/static/hub-client.js", headers={"Origin": "http://anyone.example"}) as r:
            assert r.status == 200 and r.headers["Access-Control-Allow-Origin"] == "*"
        # User calls: an allowed origin gets its preflight and its answers (errors too).
        pre = {"Origin": origin, "Access-Control-Request-Method": "POST",
               "Access-Control-Request-Headers": "authorization, content-type"}
        async with s.options(f"{feed}/read", headers=pre) as r:
            assert r.status == 204 and r.headers["Access-Control-Allow-Origin"] == origin
            assert "POST" in r.headers["Access-Control-Allow-Methods"]
            assert "Authorization" in r.headers["Access-Control-Allow-Headers"]
        async with s.get(feed, headers={**auth, "Origin": origin}) as r:
            assert r.status == 200 and r.headers["Access-Control-Allow-Origin"] == origin
        async with s.get(feed, headers={"Origin": origin}) as r:
            assert r.status == 401 and r.headers["Access-Control-Allow-Origin"] == origin
        # Any other origin: no such header (the browser keeps the answer from the page).
        async with s.options(f"{feed}/read", headers={**pre, "Origin": "http://evil.example"}) as r:
            assert "Access-Control-Allow-Origin" not in r.headers
        async with s.get(feed, headers={**auth, "Origin": "http://evil.example"}) as r:
            assert r.status == 200 and "Access-Control-Allow-Origin" not in r.headers
