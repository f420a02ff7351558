"""The HTTP server around the app: aiohttp's own errors in the error shape of docs/api.md.

aiohttp answers a request its parser refuses (a header over 8,190 bytes or with a NUL, a
bad request line, an unsupported ``Content-Encoding`` such as ``br``) before any
middleware runs, in plain text, from ``RequestHandler.handle_error``; the same method
answers an exception that escaped every middleware. aiohttp offers no hook for it
(aio-libs/aiohttp#3287, #9882), so the runner here builds its connections with a
``RequestHandler`` whose ``handle_error`` answers ``{"error": {"code", "message"}}``:
``invalid_request`` for a 4xx, ``internal`` for a 500. ``hub serve`` runs the app with
:func:`serve`; tests use :class:`HubRunner` through a ``TestServer``.
"""

from __future__ import annotations

import asyncio
import json
import logging
import signal
from typing import Any

from aiohttp import web
from aiohttp.web_protocol import RequestHandler
from aiohttp.web_request import BaseRequest

log = logging.getLogger(__name__)

# Status -> error code (docs/api.md) for what aiohttp answers itself (its parser says 400 or 413).
_CODES = {413: "too_large", 431: "invalid_request"}


def error_body(status: int, message: str | None) -> bytes:
    if status >= 500:
        code, text = "internal", "internal error"
    else:
        code = _CODES.get(status, "invalid_request")
        # The parser's message names the fault ("Got more than 8190 bytes ..."); its first
        # line is enough, and it says nothing about the server's insides.
        first = (message or "").strip().splitlines()[0] if (message or "").strip() else ""
        text = f"malformed HTTP request: {first}"[:300] if first else "malformed HTTP request"
    return json.dumps({"error": {"code": code, "message": text}}).encode()


class JsonErrorHandler(RequestHandler):
    """aiohttp's connection handler, answering its own errors in the error shape of docs/api.md."""

    def handle_error(self, request: BaseRequest, status: int = 500, exc: BaseException | None = None,
                     message: str | None = None) -> web.StreamResponse:
        if status >= 500:
            self.log_exception("Error handling request from %s", request.remote, exc_info=exc)
        else:
            log.debug("malformed request from %s: %s", request.remote, message)
        if request.writer.output_size > 0:
            # Part of an answer (or a websocket upgrade) is out already: nothing can follow.
            raise ConnectionError("Response is sent already, cannot send another response with the error message")
        resp = web.Response(status=status, body=error_body(status, message), content_type="application/json")
        resp.force_close()
        return resp


class _JsonErrorServer(web.Server):
    def __call__(self) -> RequestHandler:
        return JsonErrorHandler(self, loop=self._loop, **self._kwargs)


# A connection is closed when it has sent no whole request head for this long, from its
# start or from its last answer (aiohttp's keep-alive timer, which arriving bytes do not
# reset): idle sockets and heads trickled in a byte at a time cannot pile up. run_app's
# default; aiohttp's server alone waits an hour. Bodies have their own timeout (app.py).
IDLE_TIMEOUT_S = 75.0


class HubRunner(web.AppRunner):
    """``AppRunner`` whose connections answer aiohttp's own errors as JSON, and time out
    after ``IDLE_TIMEOUT_S`` without a request (``keepalive_timeout=`` to change it)."""

    def __init__(self, app: web.Application, **kwargs: Any) -> None:
        kwargs.setdefault("keepalive_timeout", IDLE_TIMEOUT_S)
        super().__init__(app, **kwargs)

    async def _make_server(self) -> web.Server:
        base = await super()._make_server()
        return _JsonErrorServer(base.request_handler, request_factory=base.request_factory,
                                handler_cancellation=base.handler_cancellation,
                                loop=base._loop, **base._kwargs)  # noqa: SLF001 - see the module doc


async def _serve(app: web.Application, host: str, port: int) -> None:
    runner = HubRunner(app, access_log=None)
    await runner.setup()
    try:
        await web.TCPSite(runner, host, port).start()
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        await stop.wait()
    finally:
        await runner.cleanup()


def serve(app: web.Application, host: str, port: int) -> None:
    """Run ``app`` until SIGINT or SIGTERM, then shut it down gracefully (as ``run_app``)."""
    asyncio.run(_serve(app, host, port))
