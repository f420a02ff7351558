"""Typed keys for what the application holds."""

from __future__ import annotations

from aiohttp import web
from arq.connections import ArqRedis
from redis.asyncio import Redis

from hub.config import Settings
from hub.core import Hub
from hub.ops.intake import Intake
from hub.storage.cassandra import Cassandra
from web.gate import SignedScripts
from web.metrics import Metrics
from web.tokencache import VerifiedTokens

SETTINGS = web.AppKey("settings", Settings)
REDIS = web.AppKey("redis", Redis)
CASSANDRA = web.AppKey("cassandra", Cassandra)
QUEUE = web.AppKey("queue", ArqRedis)
METRICS = web.AppKey("metrics", Metrics)
HUB = web.AppKey("hub", Hub)
INTAKE = web.AppKey("intake", Intake)
SIGNED = web.AppKey("signed", SignedScripts)
VERIFIED_TOKENS = web.AppKey("verified_tokens", VerifiedTokens)
