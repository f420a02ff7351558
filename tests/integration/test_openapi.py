"""The OpenAPI document: valid 3.1, in step with the router, and true of every answer.

Schemathesis (from PyPI) takes the document and, for every operation, sends generated
requests (valid and invalid) to a running server and checks each answer: no 5xx, a
documented status, content type, headers and body schema, and a 4xx for what the
document calls invalid. App calls are signed by a ``requests`` auth hook over the exact
bytes sent (Standard Webhooks); user calls get a bearer token for their path's user, so
the checks reach past 401/403.

The tests are parametrized from ``document()`` at collection; the ``served`` fixture
checks that the server's own /openapi.json is that same document. The server runs in a
thread with its own event loop: schemathesis calls it synchronously (``requests``), which
the test's own loop could not answer. Generation is random on every run (no fixed seed,
no example database), so runs explore different inputs; a failure prints a curl command
that reproduces it.
"""

from __future__ import annotations

import asyncio
import dataclasses
import os
import re
import threading
import time
from collections.abc import Iterator
from typing import Any
from urllib.parse import unquote, urlsplit

import pytest
import requests
import schemathesis
from aiohttp import web
from openapi_spec_validator import validate
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    negative_data_rejection,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

import realtime
from hub.config import AppSettings, Settings
from hub.domain.signing import sign
from hub.domain.tokens import issue_token
from hub.errors import HubError
from hub.ops import follow as follow_ops
from tests.conftest import make_app
from tests.helpers import post
from web.app import create_app
from web.keys import HUB
from web.openapi import document, router_operations
from web.server import HubRunner
from web.views.pages import STATIC

APP_ID = "oapi"
SEEDED = ("oa-alice", "oa-bob", "oa-carol")
STATIC_FILES = tuple(sorted(p.name for p in STATIC.iterdir() if p.is_file()))
# negative_data_rejection: a request the document calls invalid must be refused (4xx), so
# the document is no looser than the server.
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance,
          response_headers_conformance, response_schema_conformance, negative_data_rejection]
# Fuzzed examples per operation (the coverage phase adds its own), bounded so that the
# module runs in well under two minutes on a shared 2-core machine; raise it to hunt.
MAX_EXAMPLES = int(os.environ.get("HUB_OPENAPI_EXAMPLES", "150"))
SIGNATURE_HEADERS = ("webhook-id", "webhook-timestamp", "webhook-signature")
_FEED_PATH = re.compile(r"^/v1/feeds/[^/]+/(?P<user>[^/]+)(/seen|/read|/archive|/unarchive)?$")


def _composed_app(settings: Settings) -> web.Application:
    """The app as ``hub serve`` composes it (cli/main.py): API, pages and the gateway."""
    app = create_app(settings)
    realtime.setup(app, settings, get_hub=lambda a: a[HUB])
    return app


def test_document_is_valid_openapi_31() -> None:
    doc = document()
    assert doc["openapi"].startswith("3.1")
    validate(doc)


def test_document_and_router_name_the_same_routes(settings: Settings) -> None:
    documented = {(m.upper(), p) for p, item in document()["paths"].items() for m in item
                  if m in ("get", "put", "post", "delete", "patch")}
    served = router_operations(_composed_app(settings))
    assert served - documented == set(), "routes missing from the OpenAPI document"
    assert documented - served == set(), "documented operations the router does not serve"


async def test_openapi_json_and_docs_are_served(client) -> None:  # type: ignore[no-untyped-def]
    r = await client.get("/openapi.json")
    assert r.status == 200 and r.content_type == "application/json"
    assert await r.json() == document()
    r = await client.get("/docs")
    assert r.status == 200 and r.content_type == "text/html"
    page = await r.text()
    assert "/v1/feeds/{group}/{user}/seen" in page and "webhook-signature" in page
    assert "<script" not in page  # rendered on the server: nothing to fetch from a CDN


async def test_static_files_and_missing_ones(client) -> None:  # type: ignore[no-untyped-def]
    r = await client.get("/static/hub-inbox.js")
    assert r.status == 200 and r.content_type in ("text/javascript", "application/javascript")
    assert "customElements.define" in await r.text()
    for path in ("/static/nope.js", "/static/%2e%2e/templates/demo.html", "/static/..%2Fapp.py", "/static/%00"):
        r = await client.get(path)
        assert r.status == 404, path
        assert (await r.json())["error"]["code"] == "not_found"


# --- schemathesis ----------------------------------------------------------------------


class HubAuth(requests.auth.AuthBase):
    """Makes generated credentials valid: signs app calls over the body as sent, gives user
    calls a token for the path's user. A call that schemathesis sent without them (to
    see it refused) is left without."""

    def __init__(self, app: AppSettings) -> None:
        self.app = app

    def __call__(self, r: requests.PreparedRequest) -> requests.PreparedRequest:
        path = urlsplit(r.url or "").path
        if path.startswith("/v1/apps/") and all(h in r.headers for h in SIGNATURE_HEADERS):
            body = r.body or b""
            body = body.encode() if isinstance(body, str) else body
            assert isinstance(body, bytes)  # schemathesis sends prepared bodies, never streams
            msg_id, ts = f"msg_{time.monotonic_ns()}", int(time.time())
            r.headers.update({"webhook-id": msg_id, "webhook-timestamp": str(ts),
                              "webhook-signature": sign(self.app.key, msg_id, ts, body)})
        elif (m := _FEED_PATH.match(path)) and "Authorization" in r.headers:
            token = self.token(unquote(m["user"]))
            if token:
                r.headers["Authorization"] = f"Bearer {token}"
        return r

    def token(self, user: str) -> str | None:
        try:
            return issue_token(self.app.id, self.app.key, user, 600, now=int(time.time()))
        except HubError:
            return None  # not a valid user id: the call goes without, as a client's would


@dataclasses.dataclass(frozen=True)
class Served:
    base_url: str
    app: AppSettings
    groups: tuple[str, ...]


async def _seed(hub: Any) -> None:
    """A few users with follows, flat and aggregated entries, so reads return entries."""
    alice, bob, carol = SEEDED
    await follow_ops.follow(hub, APP_ID, bob, alice, 0)
    await follow_ops.follow(hub, APP_ID, carol, alice, 0)
    for i in range(3):
        await post(hub, APP_ID, actor=alice, verb="like", object=f"photo:{i}", to=[f"notification:{bob}"])
        await post(hub, APP_ID, actor=carol, verb="comment", object="photo:1", to=[f"notification:{bob}"],
                   extra={"text": f"nice {i}"})


@pytest.fixture(scope="module")
def served(settings: Settings) -> Iterator[Served]:
    app_settings = make_app(APP_ID, rate=100_000.0, burst=100_000)  # the fuzzing is not to meet 429s
    s = dataclasses.replace(settings, apps={**settings.apps, APP_ID: app_settings})
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, name="openapi-server", daemon=True)
    thread.start()
    runner = HubRunner(_composed_app(s), access_log=None)  # as `hub serve` runs it

    async def start() -> int:
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        await _seed(runner.app[HUB])
        return int(runner.addresses[0][1])

    try:
        port = asyncio.run_coroutine_threadsafe(start(), loop).result(120)
        own = requests.get(f"http://127.0.0.1:{port}/openapi.json", timeout=30).json()
        assert own == document(), "the server's /openapi.json is not the document under test"
        yield Served(f"http://127.0.0.1:{port}", app_settings, tuple(sorted(s.feeds)))
    finally:
        asyncio.run_coroutine_threadsafe(runner.cleanup(), loop).result(60)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)
        loop.close()


# Parametrized at collection, one test per operation, from the document the server serves
# (``served`` checks that its /openapi.json is this very document). schemathesis's lazy
# ``from_fixture`` loader does not run under pytest 9.2 (it sets ``node._nodeid``).
schema = schemathesis.openapi.from_dict(document(), config=schemathesis.Config.from_dict({
    "generation": {"max-examples": MAX_EXAMPLES, "database": "none", "allow-extra-parameters": False},
    "request-timeout": 30,
    # The machine is shared: a slow answer is the load, not a fault of the generation.
    "suppress-health-check": ["too_slow"],
}))


def _aim(case: Any, served: Served) -> None:
    """Point generated calls at things that exist, so they get past 404 into the views:
    our app, configured groups, and half of the time (by the generated value's length) a
    seeded user whose feeds hold entries, a real static file, a valid socket token."""
    params = case.path_parameters or {}
    if "app" in params:
        params["app"] = APP_ID
    if "group" in params:
        params["group"] = served.groups[len(str(params["group"])) % len(served.groups)]
    for name, real in (("user", SEEDED), ("filename", STATIC_FILES)):
        if isinstance(params.get(name), str) and len(params[name]) % 2 == 0:
            params[name] = real[len(params[name]) % len(real)]
    query = case.query if isinstance(case.query, dict) else {}
    if case.operation.path == "/v1/realtime" and len(str(query.get("token", ""))) % 2 == 0:
        query["token"] = issue_token(APP_ID, served.app.key, SEEDED[0], 600, now=int(time.time()))


@schema.parametrize()
def test_every_answer_conforms(case: Any, served: Served) -> None:
    _aim(case, served)
    case.call_and_validate(base_url=served.base_url, checks=CHECKS, auth=HubAuth(served.app))
