"""Helpers for tests of the wire: the app as ``hub serve`` runs it, and raw HTTP."""

from __future__ import annotations

import asyncio
import json
from typing import Any

from aiohttp import web
from aiohttp.test_utils import TestServer

import realtime
from hub.config import Settings
from web.app import create_app
from web.keys import HUB
from web.server import HubRunner


class HubTestServer(TestServer):
    """aiohttp's ``TestServer`` with web/server.py's runner (JSON protocol errors), and
    ``runner`` arguments for it (``keepalive_timeout``)."""

    def __init__(self, app: web.Application, *, runner: dict[str, Any] | None = None, **kwargs: Any) -> None:
        super().__init__(app, **kwargs)
        self._runner_args = runner or {}

    async def _make_runner(self, **kwargs: Any) -> web.BaseRunner:
        return HubRunner(self.app, **kwargs, **self._runner_args)


def full_app(settings: Settings, *, body_timeout: float = 15.0, **gateway: Any) -> web.Application:
    """The HTTP API and the websocket gateway, as ``hub serve`` composes them."""
    app = create_app(settings, body_timeout=body_timeout)
    realtime.setup(app, settings, get_hub=lambda a: a[HUB], **gateway)
    return app


async def raw_http(port: int, data: bytes, *, read_timeout: float = 5.0) -> tuple[int, dict[str, str], bytes]:
    """Send raw bytes, read one answer: ``(status, headers, body)``."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(data)
        await writer.drain()
        return await read_answer(reader, read_timeout)
    finally:
        writer.close()


async def read_answer(reader: asyncio.StreamReader, timeout: float = 5.0) -> tuple[int, dict[str, str], bytes]:
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), timeout)
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split(" ")[1])
    headers = {k.strip().lower(): v.strip() for k, _, v in (ln.partition(":") for ln in lines[1:] if ln)}
    length = int(headers.get("content-length", "0"))
    body = await asyncio.wait_for(reader.readexactly(length), timeout) if length else b""
    return status, headers, body


def error_of(status: int, headers: dict[str, str], body: bytes) -> tuple[int, str]:
    """``(status, code)`` of an answer that must be in the contract's error shape."""
    assert headers.get("content-type", "").startswith("application/json"), (status, headers, body)
    err = json.loads(body)["error"]
    assert isinstance(err["message"], str) and err["message"], body
    return status, err["code"]


class TcpProxy:
    """A TCP relay to a real service, which a test can cut (an outage of that service as
    the hub sees it, without touching the service other tests share)."""

    def __init__(self, host: str, port: int) -> None:
        self.target = (host, port)
        self.port = 0
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()

    async def start(self) -> int:
        self._server = await asyncio.start_server(self._relay, "127.0.0.1", 0)
        self.port = int(self._server.sockets[0].getsockname()[1])
        return self.port

    async def _relay(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            up_reader, up_writer = await asyncio.open_connection(*self.target)
        except OSError:
            writer.close()
            return
        self._writers |= {writer, up_writer}

        async def pipe(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
            try:
                while data := await src.read(65536):
                    dst.write(data)
                    await dst.drain()
            except (OSError, asyncio.CancelledError):
                pass
            finally:
                dst.close()

        await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer))

    async def cut(self) -> None:
        """Refuse new connections and reset the open ones."""
        if self._server is not None:
            self._server.close()
        for w in list(self._writers):
            w.transport.abort()
        self._writers.clear()
