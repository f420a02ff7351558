"""Signed app calls: size limit, signature, rate limit and replay protection.

``signed(view)`` wraps a view that takes ``(request, app, body)`` and returns
``(status, json_or_None)``. The first answer to a ``webhook-id`` is kept for 10 minutes
and repeated to a retry without running the view again: in Redis, where repeats are
looked up, and in Cassandra (written before the answer is sent), where they are looked up
while Redis may have lost its records (after a flush or restart; web/gate.py). ``signed_claiming(prepare)``
does the same for a view whose call is checked before admission and claims Redis keys
in the admission's own round trip (posting activities: their foreign ids).
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from aiohttp import web

from hub.config import AppSettings
from hub.domain.signing import verify
from hub.errors import HubError, NotFound, RateLimited, TooLarge, Unavailable
from hub.storage.answers import ANSWER_TTL, PendingAnswer, WebhookAnswers
from hub.storage.outage import DEPENDENCY_DOWN
from hub.storage.redis import REDIS_DOWN, Keys
from web.errors import error_response
from web.gate import RECENT, UNKNOWN, SignedScripts
from web.keys import CASSANDRA, REDIS, SETTINGS, SIGNED

log = logging.getLogger(__name__)

REPLAY_TTL = ANSWER_TTL
# How long a webhook-id stays claimed by a try that neither answered nor failed cleanly
# (its process died): then a retry runs it again.
RUNNING_TTL = 60
MAX_BODY = 1024 * 1024
# A retry arriving while the first try is still running waits this long for its answer.
REPLAY_WAIT = 10.0
# Request keys: the signed call's (app, webhook-id), and its answer written with its work.
_CALL = web.RequestKey("hub.signed.call", tuple)
_PENDING = web.RequestKey("hub.signed.pending", PendingAnswer)

SignedView = Callable[[web.Request, AppSettings, bytes], Awaitable[tuple[int, Any]]]
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
P = TypeVar("P")
# Cassandra away while an answer is kept (storage's Unavailable, or a driver error).
_AWAY: tuple[type[BaseException], ...] = (Unavailable, *DEPENDENCY_DOWN)


@dataclass(frozen=True)
class Prepared(Generic[P]):
    """A signed call checked before admission, and the Redis keys it claims.

    Its claims (``SET key value NX GET EX ttl`` each) ride on the gate's round trip and are
    made only when the call is admitted (not a repeat, not over the rate limit): a call
    that must claim keys before it writes pays no round trip of its own for them.
    """

    call: P
    claims: Sequence[tuple[str, str]] = ()  # key, value
    ttl: int = 0


Prepare = Callable[[web.Request, AppSettings, bytes], Prepared[P]]
# The prepared call, and what each claimed key held before (None: this call has it).
ClaimingView = Callable[[web.Request, AppSettings, P, list[Any]], Awaitable[tuple[int, Any]]]


def app_of(request: web.Request) -> AppSettings:
    app = request.app[SETTINGS].apps.get(request.match_info["app"])
    if app is None:
        raise NotFound("no such app", field="app")
    return app


async def read_body(request: web.Request) -> bytes:
    if request.content_length is not None and request.content_length > MAX_BODY:
        raise TooLarge(f"the body is over {MAX_BODY} bytes", field="body")
    try:
        return await request.read()
    except web.HTTPRequestEntityTooLarge:
        raise TooLarge(f"the body is over {MAX_BODY} bytes", field="body") from None


def signed(view: SignedView) -> Handler:
    def prepare(request: web.Request, app: AppSettings, body: bytes) -> Prepared[bytes]:
        return Prepared(body)

    async def run(request: web.Request, app: AppSettings, body: bytes, found: list[Any]) -> tuple[int, Any]:
        return await view(request, app, body)

    return _signed(prepare, run)


def signed_claiming(prepare: Prepare[P]) -> Callable[[ClaimingView[P]], Handler]:
    """``signed`` for a view whose call is checked first (``prepare``, no I/O) and claims
    keys in the gate's round trip. A call that fails its check still goes through the
    gate, without claims, so its error is rate-limited and repeated like any answer."""

    def wrap(view: ClaimingView[P]) -> Handler:
        return _signed(prepare, view)

    return wrap


def _signed(prepare: Prepare[P], view: ClaimingView[P]) -> Handler:
    async def handler(request: web.Request) -> web.StreamResponse:
        app = app_of(request)
        body = await read_body(request)
        webhook_id = verify(app.key, request.headers, body, now=time.time())
        redis = request.app[REDIS]
        keys = Keys(request.app[SETTINGS].redis.key_prefix, app.id)
        replay_key = keys.webhook(webhook_id)
        request[_CALL] = (app.id, webhook_id)
        try:
            prepared: Prepared[P] | HubError = prepare(request, app, body)
        except HubError as e:
            prepared = e  # answered once admitted, like any other answer
        claims: Prepared[Any] = prepared if isinstance(prepared, Prepared) else Prepared(None)
        scripts = request.app[SIGNED]
        answers = WebhookAnswers(request.app[CASSANDRA], scripts.touched)
        since_key = keys.complete_since()

        async def admit(checked: bool) -> list[Any]:
            return list(await scripts.gate(
                [replay_key, keys.rate(), since_key, *(key for key, _ in claims.claims)],
                [app.rate, app.burst, time.time(), RUNNING_TTL, claims.ttl, "1" if checked else "0", REPLAY_TTL,
                 *(value for _, value in claims.claims)],
            ))

        try:
            gate = await admit(False)
            if gate[0] in (UNKNOWN, RECENT):
                found = await _durable_answer(scripts, answers, app.id, webhook_id, since_key, gate[0] == RECENT)
                if found is not None:
                    scripts.keep(replay_key, *found)
                    return _from_record(found[0])
                gate = await admit(True)
            if gate[0] == 1:
                return await _repeat(redis, replay_key, gate[1])
        except REDIS_DOWN as e:
            raise Unavailable(f"redis: {e}") from e
        if gate[0] == 2:
            raise RateLimited(f"app {app.id} is over {app.rate:g} requests/s", retry_after=int(gate[1]))
        try:
            if isinstance(prepared, HubError):
                raise prepared
            status, payload = await view(request, app, prepared.call, list(gate[1:]))
            resp = _answer(status, payload)
        except HubError as e:
            resp = error_response(e)
        except BaseException:
            # Not answered: let the retry run it again rather than repeat nothing.
            await redis.delete(replay_key)
            raise
        pending: PendingAnswer | None = request.get(_PENDING)
        if resp.status >= 500 or resp.status == 429:
            await redis.delete(replay_key)  # a retry should really be retried
            if pending is not None and pending.written is not None:
                await _forget(answers, app.id, webhook_id)
        else:
            record = _record(resp)
            scripts.keep(replay_key, record, REPLAY_TTL)
            # Durable before it is sent, so that a repeat after a Redis flush finds it:
            # written with the work where the view did that (pending_answer), else now;
            # not at all for a post whose every activity has a foreign id (a repeat run
            # again answers the same ids).
            if pending is None or not (pending.idempotent or pending.written == record):
                try:
                    await answers.keep(app.id, webhook_id, record)
                except _AWAY as e:  # the work is done: answer it (Redis keeps it)
                    scripts.answers_down.failed(e)  # one line per outage, not one per request
                except Exception as e:
                    log.warning("answer to %s not kept in Cassandra: %s", replay_key, e)
                else:
                    scripts.answers_down.recovered()
        return resp

    return handler


def pending_answer(request: web.Request, shape: Callable[[Any], tuple[int, Any]]) -> PendingAnswer:
    """For a view that writes its answer with its work (posting activities: in intake's
    Cassandra round): ``shape`` turns the work's result into the view's ``(status,
    payload)``, so the record written is the one this module would keep."""
    app, webhook_id = request[_CALL]
    answers = WebhookAnswers(request.app[CASSANDRA], request.app[SIGNED].touched)
    pending = PendingAnswer(answers, app, webhook_id, lambda result: _record(_answer(*shape(result))))
    request[_PENDING] = pending
    return pending


def _record(resp: web.Response) -> str:
    return json.dumps({"s": resp.status, "b": resp.text if resp.body else None})


async def _forget(answers: WebhookAnswers, app: str, webhook_id: str) -> None:
    try:
        await answers.forget(app, webhook_id)
    except Exception as e:
        log.warning("answer to %s/%s written with its work not taken back: %s", app, webhook_id, e)


def _answer(status: int, payload: Any) -> web.Response:
    if payload is None:
        return web.Response(status=status)
    return web.json_response(payload, status=status)


async def _durable_answer(
    scripts: SignedScripts, answers: WebhookAnswers, app: str, webhook_id: str, since_key: str, recent: bool
) -> tuple[str, int] | None:
    """The answer kept in Cassandra (record, seconds left), when Redis may have lost it.

    ``recent``: Redis has been complete for less than REPLAY_TTL. Otherwise Redis does
    not know since when (it was flushed or restarted, or is new): it is complete from
    now on, and was before too if the app answered nothing in the last 10 minutes."""
    if not recent:
        now = time.time()
        lost = await answers.recent(app)
        await scripts.complete_since(since_key, now if lost else now - REPLAY_TTL)
        if not lost:
            return None
    return await answers.find(app, webhook_id)


def _from_record(raw: str | bytes) -> web.Response:
    rec = json.loads(raw)
    if rec["b"] is None:
        return web.Response(status=rec["s"])
    return web.Response(status=rec["s"], text=rec["b"], content_type="application/json")


async def _repeat(redis: Any, key: str, raw: Any) -> web.Response:
    deadline = time.monotonic() + REPLAY_WAIT
    while True:
        if raw:
            return _from_record(raw)
        if raw is None or time.monotonic() > deadline:
            # The first try failed (its record was dropped) or hangs: ask for a retry.
            raise Unavailable("the first delivery of this webhook-id is still being processed; retry")
        await asyncio.sleep(0.05)
        raw = await redis.get(key)
