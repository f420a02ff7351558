"""Fuzzing the real server (issue 18): 6,000 signed and user HTTP calls and 5,000 websocket
frames built by hypothesis from hostile pieces (lone surrogates, Unicode digits, deep
nesting, wrong types, raw bytes). Every answer is under 500 and, when an error, in the
contract's shape with one of its codes; every frame is answered and the socket lives.

The server runs in a thread of its own (its own event loop), as ``hub serve`` runs it
(web/server.py's runner), so hypothesis drives it from a plain synchronous test.
"""

from __future__ import annotations

import asyncio
import collections
import dataclasses
import json
import threading
from collections.abc import Coroutine, Iterator
from typing import Any, TypeVar
from urllib.parse import quote

import aiohttp
import pytest
from aiohttp import web
from hypothesis import HealthCheck, given
from hypothesis import settings as hsettings
from hypothesis import strategies as st

from hub.config import Settings
from tests.conftest import make_app, sign, uid
from tests.helpers import token
from tests.wire import full_app
from web.errors import STATUS
from web.server import HubRunner

HTTP_CASES = 6000
FRAME_CASES = 5000
CODES = set(STATUS) | {"internal"}  # "internal" would be a 500: caught by the status check
T = TypeVar("T")



def fuzz(cases: int) -> hsettings:
    return hsettings(max_examples=cases, deadline=None, database=None, derandomize=True, print_blob=True,
                     suppress_health_check=list(HealthCheck))


class ServerThread:
    """The app, an HTTP session and a websocket, on an event loop in another thread."""

    def __init__(self, settings: Settings) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.settings = settings
        self.runner = HubRunner(full_app(settings))
        self.port = 0
        self.session: aiohttp.ClientSession
        self.run(self._start())

    def run(self, coro: Coroutine[Any, Any, T], timeout: float = 30) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    async def _start(self) -> None:
        await self.runner.setup()
        site = web.TCPSite(self.runner, "127.0.0.1", 0)
        await site.start()
        self.port = int(site._server.sockets[0].getsockname()[1])  # type: ignore[union-attr]  # noqa: SLF001
        self.session = aiohttp.ClientSession(f"http://127.0.0.1:{self.port}")

    async def _stop(self) -> None:
        await self.session.close()
        await self.runner.cleanup()

    def close(self) -> None:
        self.run(self._stop())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)


@pytest.fixture(scope="module")
def server(settings: Settings) -> Iterator[ServerThread]:
    # An app of its own with a rate limit out of the way: every case reaches validation.
    s = dataclasses.replace(settings, apps={**settings.apps, "fz": make_app("fz", rate=1e6, burst=10**6)})
    srv = ServerThread(s)
    yield srv
    srv.close()


# --- pieces -----------------------------------------------------------------------------

HOSTILE = ["\ud800", "\udfff", "a\ud800b", "²", "①", "٥", "５", "0" * 5000, "x" * 300, "", " ", "\x00", "a\nb",
           "notification:\ud800", "[" * 50, "\u2028", "é", "-1", "1e3", "null"]
any_text = st.text(alphabet=st.characters(exclude_categories=()), max_size=12)  # surrogates included
texts = any_text | st.sampled_from(HOSTILE)
scalars = st.none() | st.booleans() | st.integers(-2**70, 2**70) | st.floats(allow_nan=False) | texts
json_values = st.recursive(scalars, lambda c: st.lists(c, max_size=3) | st.dictionaries(texts, c, max_size=3),
                           max_leaves=8)
ids = st.sampled_from(["alice", "bob", "photo:1"]) | texts
activity = st.fixed_dictionaries(
    {"actor": ids, "verb": st.sampled_from(["like", "comment"]) | texts, "object": ids},
    optional={"target": ids | json_values, "time": st.sampled_from(["2024-01-01T00:00:00Z", "nope"]) | json_values,
              "foreign_id": ids | json_values, "to": st.lists(st.sampled_from(["notification:bob"]) | texts, max_size=3),
              "extra": json_values, "bogus": json_values},
)
bodies = (activity | st.fixed_dictionaries({"activities": st.lists(activity, max_size=3)}) | json_values
          | st.fixed_dictionaries({"follower": ids, "followee": ids}, optional={"copy": json_values,
                                                                                "keep_history": json_values})
          | st.fixed_dictionaries({"user": ids}, optional={"ttl": json_values})
          | st.fixed_dictionaries({"ids": st.lists(texts, max_size=4) | json_values})
          | st.fixed_dictionaries({"all": json_values}))


def encode(value: Any, ascii_only: bool) -> bytes:
    # ensure_ascii=False writes a lone surrogate as such: bytes that are not UTF-8 at all.
    return json.dumps(value, ensure_ascii=ascii_only).encode("utf-8", "surrogatepass")


raw_bodies = st.one_of(st.builds(encode, bodies, st.booleans()), st.binary(max_size=64))
queries = st.dictionaries(st.sampled_from(["limit", "id_lt", "cursor", "foreign_id"]), texts, max_size=2)
ROUTES = [("POST", "/v1/apps/fz/activities"), ("PUT", "/v1/apps/fz/follows"), ("DELETE", "/v1/apps/fz/follows"),
          ("POST", "/v1/apps/fz/tokens"), ("GET", "/v1/apps/fz/users/{u}/followers"),
          ("GET", "/v1/apps/fz/users/{u}/following"), ("GET", "/v1/apps/fz/feeds/{g}/{u}"),
          ("DELETE", "/v1/apps/fz/activities"), ("DELETE", "/v1/apps/fz/activities/{u}"),
          ("GET", "/v1/feeds/{g}/{u}"), ("POST", "/v1/feeds/{g}/{u}/seen"), ("POST", "/v1/feeds/{g}/{u}/read")]
GROUPS = st.sampled_from(["notification", "timeline_aggregated", "user", "nosuch"])


def check(status: int, text: str, what: Any) -> None:
    assert status < 500, (status, text, what)
    if status >= 400:
        err = json.loads(text)["error"]
        assert err["code"] in CODES and isinstance(err["message"], str), (status, text, what)


# --- HTTP ---------------------------------------------------------------------------------

def test_fuzz_http(server: ServerThread) -> None:
    counts: collections.Counter[int] = collections.Counter()
    user = uid("fz")
    bearer = {"Authorization": f"Bearer {token(server.settings, user, app='fz')}"}
    app = server.settings.apps["fz"]

    async def call(method: str, path: str, body: bytes, user_call: bool) -> tuple[int, str]:
        headers = bearer if user_call else sign(app, body)
        async with server.session.request(method, path, data=body, headers=headers) as r:
            return r.status, await r.text()

    @fuzz(HTTP_CASES)
    @given(route=st.sampled_from(ROUTES), group=GROUPS, own=st.booleans(), other=texts, query=queries,
           body=raw_bodies)
    def case(route: tuple[str, str], group: str, own: bool, other: str, query: dict[str, str], body: bytes) -> None:
        method, template = route
        who = user if own else other
        path = template.format(g=group, u=quote(who.encode("utf-8", "surrogatepass"), safe="") or "x")
        if query:
            path += "?" + "&".join(f"{k}={quote(v.encode('utf-8', 'surrogatepass'))}" for k, v in query.items())
        status, text = server.run(call(method, path, body, template.startswith("/v1/feeds")))
        check(status, text, (method, path, body[:200]))
        counts[status] += 1

    case()
    assert sum(counts.values()) >= HTTP_CASES
    print("http statuses:", dict(counts))


# --- websocket frames -----------------------------------------------------------------------

def frame_texts(user: str) -> st.SearchStrategy[str]:
    feeds = st.sampled_from([f"notification:{user}", f"user:{user}", f"timeline_aggregated:{user}",
                             "notification:someone-else", f"nosuch:{user}", user]) | texts | json_values
    ops = st.sampled_from(["ping", "subscribe", "unsubscribe"]) | texts | json_values
    frames = st.fixed_dictionaries({"op": ops}, optional={"feed": feeds, "since": texts | json_values,
                                                          "x": json_values})
    as_json = st.builds(lambda v: json.dumps(v), frames | json_values)  # ASCII: surrogates escaped
    # At most 15,000 characters: over 16 KiB a frame is refused by the transport (close 1009).
    # At most 15,000 characters: over 16 KiB the transport refuses a frame (close 1009).
    nested = st.builds(lambda n, c: c * n, st.integers(1, 3000), st.sampled_from(["[", "{", '{"a":', "[{"]))
    raw = st.text(alphabet=st.characters(exclude_categories=("Cs",)), max_size=40)
    return as_json | nested | raw


def test_fuzz_websocket_frames(server: ServerThread) -> None:
    user = uid("fzws")
    ops: collections.Counter[str] = collections.Counter()
    ws: aiohttp.ClientWebSocketResponse = server.run(server.session.ws_connect(
        f"/v1/realtime?token={token(server.settings, user, app='fz')}", headers={"Origin": "http://127.0.0.1:8080"}))

    async def exchange(text: str) -> dict[str, Any]:
        await ws.send_str(text)
        msg = await ws.receive(timeout=10)
        assert msg.type == aiohttp.WSMsgType.TEXT, (msg, text[:200])
        return json.loads(msg.data)  # type: ignore[no-any-return]

    @fuzz(FRAME_CASES)
    @given(text=frame_texts(user))
    def case(text: str) -> None:
        f = server.run(exchange(text))
        assert f["op"] in ("pong", "subscribed", "unsubscribed", "error"), (f, text[:200])
        if f["op"] == "error":
            assert f["code"] in CODES - {"internal", "unavailable"}, (f, text[:200])
        ops[f["op"]] += 1

    try:
        case()
        assert server.run(exchange('{"op": "ping"}')) == {"op": "pong"}
    finally:
        server.run(ws.close())
    assert sum(ops.values()) >= FRAME_CASES
    print("frame answers:", dict(ops))
