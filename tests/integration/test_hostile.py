"""Hostile input against the real server (issue 18): every cause of a 5xx or of an answer
outside the contract's shape, one test each. The server runs as ``hub serve`` runs it
(web/server.py's runner), against the real Redis and Cassandra."""

from __future__ import annotations

import asyncio
import gzip
import json
import time
from typing import Any
from urllib.parse import quote

import aiohttp
import pytest
from aiohttp import web

from hub.config import Settings
from realtime.conn import CLOSE_TOO_SLOW
from tests.conftest import AppCaller, sign, uid
from tests.helpers import token
from tests.wire import HubTestServer, error_of, full_app, raw_http, read_answer
from web.server import IDLE_TIMEOUT_S, HubRunner

ORIGIN = "http://127.0.0.1:8080"
GROUPS = ("user", "timeline", "timeline_aggregated", "notification")


@pytest.fixture
async def wire(settings: Settings, aiohttp_client):  # type: ignore[no-untyped-def]
    return await aiohttp_client(HubTestServer(full_app(settings, body_timeout=1.0, queue_size=16)))


async def expect(resp: Any, status: int, code: str, field: str | None = None) -> None:
    text = await resp.text()
    assert resp.status == status, f"{resp.status} {text}"
    assert resp.content_type == "application/json", text
    err = json.loads(text)["error"]
    assert err["code"] == code, text
    if field is not None:
        assert err.get("field") == field, text


def bearer(settings: Settings, user: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token(settings, user)}"}


async def test_mark_with_no_ids_answers_the_counts(wire, settings: Settings) -> None:  # type: ignore[no-untyped-def]
    bob = uid("bob")
    for group in GROUPS:
        for kind in ("seen", "read"):
            r = await wire.post(f"/v1/feeds/{group}/{bob}/{kind}", json={"ids": []}, headers=bearer(settings, bob))
            assert r.status == 200, await r.text()
            assert await r.json() == {"unseen": 0, "unread": 0}


async def test_lone_surrogates_are_400(wire, settings: Settings) -> None:  # type: ignore[no-untyped-def]
    bob = uid("bob")
    t1 = AppCaller(wire, settings.apps["t1"])
    lone = '"\\ud800"'
    for group in GROUPS:
        body = f'{{"ids": [{lone}]}}'.encode()
        r = await wire.post(f"/v1/feeds/{group}/{bob}/seen", data=body, headers=bearer(settings, bob))
        await expect(r, 400, "invalid_request", "ids")
    signed_bodies = [
        ("PUT", "/follows", f'{{"follower": {lone}, "followee": "x"}}'),
        ("DELETE", "/follows", f'{{"follower": "x", "followee": {lone}}}'),
        ("POST", "/tokens", f'{{"user": {lone}}}'),
        ("POST", "/activities", f'{{"actor": {lone}, "verb": "like", "object": "o"}}'),
        ("POST", "/activities", f'{{"actor": "a", "verb": "like", "object": "o", "extra": {{{lone}: 1}}}}'),
        ("POST", "/activities", f'{{"actor": "a", "verb": "like", "object": "o", "to": ["notification:{lone[1:-1]}"]}}'),
    ]
    for method, path, text in signed_bodies:
        body = text.encode()
        r = await wire.request(method, f"/v1/apps/t1{path}", data=body, headers=sign(t1.app, body))
        assert r.status == 400, (path, text, r.status, await r.text())
        assert (await r.json())["error"]["code"] in ("invalid_request", "invalid_activity", "invalid_json")
    # In the path and in the query: percent-encoded U+D800 is not UTF-8, so it never decodes
    # to a surrogate (yarl keeps or replaces it); whatever it becomes, no 5xx.
    for path in ("/users/%ED%A0%80/followers", "/users/a/following?cursor=%ED%A0%80",
                 "/activities?foreign_id=%ED%A0%80", "/feeds/notification/%ED%A0%80"):
        method = "DELETE" if "activities" in path else "GET"
        r = await wire.request(method, f"/v1/apps/t1{path}", headers=sign(t1.app, b""))
        assert r.status < 500, (path, r.status, await r.text())


BAD_LIMITS = ["²", "①", "٥", "５", "0" * 5000, "1" * 5000, "-1", "+5", " 5", "5 ", "1e2", "0x10", "0", "101", ""]


async def test_limit_is_ascii_digits_only(wire, settings: Settings) -> None:  # type: ignore[no-untyped-def]
    bob = uid("bob")
    t1 = settings.apps["t1"]
    for raw in BAD_LIMITS:
        q = f"limit={quote(raw)}"
        r = await wire.get(f"/v1/feeds/notification/{bob}?{q}", headers=bearer(settings, bob))
        await expect(r, 400, "invalid_request", "limit")
        for path in (f"/feeds/timeline/{bob}", f"/users/{bob}/followers", f"/users/{bob}/following"):
            r = await wire.get(f"/v1/apps/t1{path}?{q}", headers=sign(t1, b""))
            await expect(r, 400, "invalid_request", "limit")
    r = await wire.get(f"/v1/feeds/notification/{bob}?limit=5&id_lt={quote('x' * 5000)}", headers=bearer(settings, bob))
    await expect(r, 400, "invalid_request", "id_lt")
    r = await wire.get(f"/v1/feeds/notification/{bob}?limit=100", headers=bearer(settings, bob))
    assert r.status == 200


async def test_content_encoding_that_does_not_decode_is_400(wire, settings: Settings) -> None:  # type: ignore[no-untyped-def]
    t1 = settings.apps["t1"]
    body = json.dumps({"actor": uid("a"), "verb": "like", "object": "o"}).encode()
    for enc, data in (("gzip", body), ("deflate", b"\xff" * 40), ("br", body), ("zstd", body)):
        headers = {**sign(t1, body), "Content-Encoding": enc}
        r = await wire.post("/v1/apps/t1/activities", data=data, headers=headers)
        await expect(r, 400, "invalid_request")
    # Really gzip: decoded, and the signature is over the decoded body.
    r = await wire.post("/v1/apps/t1/activities", data=gzip.compress(body),
                        headers={**sign(t1, body), "Content-Encoding": "gzip"})
    assert r.status == 202, await r.text()


PROTOCOL_ERRORS = [
    b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 9000 + b"\r\n\r\n",
    b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Nul: a\x00b\r\n\r\n",
    b"GET /" + b"a" * 9000 + b" HTTP/1.1\r\nHost: x\r\n\r\n",
    b"GARBAGE\r\n\r\n",
    b"GET /healthz HTTP/9.9\r\nHost: x\r\n\r\n",
    b"GET /healthz HTTP/1.1\r\nHost: x\r\nContent-Length: -1\r\n\r\n",
    b"POST /healthz HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
    b"POST /v1/apps/t1/activities HTTP/1.1\r\nHost: x\r\nContent-Encoding: br\r\nContent-Length: 2\r\n\r\n{}",
]


async def test_protocol_errors_are_in_the_contract_shape(wire) -> None:  # type: ignore[no-untyped-def]
    for data in PROTOCOL_ERRORS:
        status, headers, body = await raw_http(wire.port, data)
        assert error_of(status, headers, body) == (400, "invalid_request"), (data[:60], body)


async def test_a_body_that_trickles_in_is_timed_out(wire, settings: Settings) -> None:  # type: ignore[no-untyped-def]
    body = b'{"actor": "a", "verb": "like", "object": "o"}'
    head = "".join(f"{k}: {v}\r\n" for k, v in sign(settings.apps["t1"], body).items())
    reader, writer = await asyncio.open_connection("127.0.0.1", wire.port)
    started = time.monotonic()
    writer.write(f"POST /v1/apps/t1/activities HTTP/1.1\r\nHost: x\r\nContent-Length: {len(body)}\r\n{head}\r\n"
                 .encode() + body[:5])
    await writer.drain()
    status, headers, answer = await read_answer(reader, timeout=10)
    assert error_of(status, headers, answer) == (400, "invalid_request")
    assert "did not arrive" in json.loads(answer)["error"]["message"]
    assert time.monotonic() - started < 5
    assert await asyncio.wait_for(reader.read(), 5) == b""  # and the connection is closed
    writer.close()


async def test_idle_connections_and_trickled_heads_are_closed(settings: Settings) -> None:
    """A connection that sends nothing, or a request head a byte at a time (slowloris),
    is closed after the idle timeout: 1 s here, IDLE_TIMEOUT_S by default. A connection
    whose requests come in time is served on."""
    assert HubRunner(web.Application())._kwargs["keepalive_timeout"] == IDLE_TIMEOUT_S  # noqa: SLF001
    async with HubTestServer(full_app(settings), runner={"keepalive_timeout": 1.0}) as server:
        port = server.port
        assert port is not None

        async def closed_after(trickle: bytes) -> float:
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            started = time.monotonic()
            eof = asyncio.create_task(reader.read())
            for byte in trickle:
                if eof.done():
                    break
                writer.write(bytes([byte]))
                await asyncio.sleep(0.1)
            assert await asyncio.wait_for(eof, 5) == b""  # closed, nothing answered
            writer.close()
            return time.monotonic() - started

        assert 0.9 < await closed_after(b"") < 3
        assert 0.9 < await closed_after(b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: " + b"y" * 60) < 3

        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        for _ in range(3):  # keep-alive: each request within the timeout of the last answer
            writer.write(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
            await writer.drain()
            status, _, _ = await read_answer(reader, 5)
            assert status == 200
            await asyncio.sleep(0.6)
        writer.close()


async def test_origin_ports_are_numbers(wire, settings: Settings) -> None:  # type: ignore[no-untyped-def]
    t = token(settings, uid("bob"))
    for origin in ("http://127.0.0.1:08080", "http://127.0.0.1:+8080",
                   "http://127.0.0.1:80800", "http://127.0.0.1:８０８０"):
        with pytest.raises(aiohttp.WSServerHandshakeError) as e:
            await wire.ws_connect(f"/v1/realtime?token={t}", headers={"Origin": origin})
        assert e.value.status == 403, origin
    ws = await wire.ws_connect(f"/v1/realtime?token={t}", headers={"Origin": "HTTP://127.0.0.1:8080"})
    await ws.close()


async def frame(ws: Any, timeout: float = 5.0) -> dict[str, Any]:
    msg = await ws.receive(timeout=timeout)
    assert msg.type == aiohttp.WSMsgType.TEXT, msg
    return json.loads(msg.data)  # type: ignore[no-any-return]


async def test_deep_frames_are_refused_and_the_socket_lives(wire, settings: Settings) -> None:  # type: ignore[no-untyped-def]
    bob = uid("bob")
    ws = await wire.ws_connect(f"/v1/realtime?token={token(settings, bob)}", headers={"Origin": ORIGIN})
    for text in ("[" * 990, "[" * 990 + "]" * 990, '{"a":' * 900 + "1" + "}" * 900, "{" * 16000,
                 '{"op": "ping", "x": ' + "[" * 5000 + "]" * 5000 + "}", '"\\ud800"', "\x00", "null"):
        await ws.send_str(text)
        f = await frame(ws)
        assert f["op"] == "error" and f["code"] in ("invalid_json", "invalid_request"), (text[:20], f)
    await ws.send_str(json.dumps({"op": "subscribe", "feed": "notification:\ud800"}))
    f = await frame(ws)
    assert f["op"] == "error" and f["code"] == "invalid_request", f
    await ws.send_json({"op": "ping"})
    assert await frame(ws) == {"op": "pong"}
    await ws.close()


async def test_a_reading_client_survives_a_burst_of_pings(wire, settings: Settings) -> None:  # type: ignore[no-untyped-def]
    # The gateway's queue holds 16 frames here: 300 pings are far more than it can hold.
    ws = await wire.ws_connect(f"/v1/realtime?token={token(settings, uid('bob'))}", headers={"Origin": ORIGIN})
    for _ in range(300):
        await ws.send_str('{"op": "ping"}')
    for i in range(300):
        assert await frame(ws) == {"op": "pong"}, i
    await ws.send_json({"op": "ping"})
    assert await frame(ws) == {"op": "pong"}
    await ws.close()
    assert ws.close_code != CLOSE_TOO_SLOW
