"""Configuration: ``config.toml`` read once into frozen dataclasses.

Nothing here is global: :func:`load_settings` returns a :class:`Settings` that callers
pass down explicitly. Environment variables override the file (contract section 1). Any
bad value raises :class:`~hub.errors.ConfigError`, whose message is the single line the
operator sees.
"""

from __future__ import annotations

import base64
import binascii
import os
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from hub.errors import ConfigError

FEED_KINDS = ("flat", "aggregated", "notification")
TEMPLATE_FIELDS = ("verb", "actor", "object", "target", "day", "hour")
_APP_ID = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
_GROUP_ID = re.compile(r"^[a-z][a-z0-9_]{0,63}$")


@dataclass(frozen=True)
class ServerSettings:
    host: str = "127.0.0.1"
    port: int = 8080


@dataclass(frozen=True)
class RedisSettings:
    url: str = "redis://127.0.0.1:6379/0"
    # Every key the hub writes starts with this, so several hubs (or test runs) share a server.
    key_prefix: str = "hub"

    @property
    def host(self) -> str:
        return urlparse(self.url).hostname or "127.0.0.1"

    @property
    def port(self) -> int:
        return urlparse(self.url).port or 6379


@dataclass(frozen=True)
class CassandraSettings:
    hosts: tuple[str, ...] = ("127.0.0.1",)
    port: int = 9042
    keyspace: str = "hub"
    replication_factor: int = 1
    # 3 speaks to Cassandra 2.1; newer clusters negotiate up when this is None.
    protocol_version: int | None = 3
    request_timeout: float = 5.0


@dataclass(frozen=True)
class FanoutSettings:
    chunk_size: int = 100
    celebrity_threshold: int = 10_000
    active_days: int = 7


@dataclass(frozen=True)
class WorkerSettings:
    # A job killed with its worker is re-run after this many seconds (arq's in-progress
    # key expires with the job timeout), so keep it short: fan-out chunks are small.
    job_timeout: int = 5
    max_tries: int = 20
    max_jobs: int = 20
    poll_delay: float = 0.05


@dataclass(frozen=True)
class AppSettings:
    id: str
    secret: str
    allowed_origins: tuple[str, ...] = ()
    # Token bucket for signed app calls: ``rate`` requests a second, bursts up to ``burst``.
    rate: float = 2000.0
    burst: int = 4000

    @property
    def key(self) -> bytes:
        """The signing key: the bytes behind ``whsec_`` (Standard Webhooks)."""
        return base64.b64decode(self.secret.removeprefix("whsec_"))


@dataclass(frozen=True)
class FeedGroup:
    name: str
    kind: str = "flat"
    follows: str | None = None
    max_length: int = 1000
    aggregate: str | None = None
    ranking: str = "recency"

    @property
    def is_aggregated(self) -> bool:
        return self.kind in ("aggregated", "notification")


@dataclass(frozen=True)
class ServicesSettings:
    """Where ``hub services`` keeps what it installs (cache) and runs (state)."""

    state_dir: Path = Path(".hub")
    cache_dir: Path = Path.home() / ".cache" / "hub"
    cassandra_heap_mb: int = 512


DEFAULT_FEEDS: dict[str, FeedGroup] = {
    "user": FeedGroup("user", "flat", None, 1000),
    "timeline": FeedGroup("timeline", "flat", "user", 1000),
    "timeline_aggregated": FeedGroup("timeline_aggregated", "aggregated", "user", 1000, "{verb}:{day}"),
    "notification": FeedGroup("notification", "notification", None, 1000, "{verb}:{object}:{day}"),
}


@dataclass(frozen=True)
class Settings:
    server: ServerSettings = field(default_factory=ServerSettings)
    redis: RedisSettings = field(default_factory=RedisSettings)
    cassandra: CassandraSettings = field(default_factory=CassandraSettings)
    fanout: FanoutSettings = field(default_factory=FanoutSettings)
    worker: WorkerSettings = field(default_factory=WorkerSettings)
    services: ServicesSettings = field(default_factory=ServicesSettings)
    apps: Mapping[str, AppSettings] = field(default_factory=dict)
    feeds: Mapping[str, FeedGroup] = field(default_factory=lambda: dict(DEFAULT_FEEDS))

    def follower_groups(self, source: str = "user") -> tuple[FeedGroup, ...]:
        """The groups that receive fan-out from a followee's ``source`` group."""
        return tuple(g for g in self.feeds.values() if g.follows == source)


def config_path(explicit: str | os.PathLike[str] | None, env: Mapping[str, str]) -> Path:
    return Path(explicit or env.get("HUB_CONFIG") or "config.toml")


def load_settings(
    path: str | os.PathLike[str] | None = None, env: Mapping[str, str] | None = None
) -> Settings:
    env = os.environ if env is None else env
    p = config_path(path, env)
    try:
        raw = tomllib.loads(p.read_text())
    except FileNotFoundError:
        raise ConfigError(str(p), "file not found (pass --config or set HUB_CONFIG)") from None
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(str(p), f"not valid TOML: {e}") from None
    return parse_settings(raw, env, base_dir=p.resolve().parent)


def parse_settings(raw: Mapping[str, Any], env: Mapping[str, str], base_dir: Path | None = None) -> Settings:
    r = _Reader(raw)
    known = {"server", "redis", "cassandra", "fanout", "worker", "services", "apps", "feeds"}
    for key in raw:
        if key not in known:
            raise ConfigError(key, f"unknown table (expected one of {', '.join(sorted(known))})")

    server = ServerSettings(
        host=r.str("server.host", "127.0.0.1"),
        port=r.port("server.port", 8080, env_value=env.get("HUB_PORT"), env_name="HUB_PORT"),
    )
    redis_url = env.get("HUB_REDIS_URL") or r.str("redis.url", RedisSettings.url)
    if urlparse(redis_url).scheme not in ("redis", "rediss", "unix"):
        raise ConfigError("redis.url", f"{redis_url!r} is not a redis:// URL")
    redis = RedisSettings(url=redis_url, key_prefix=r.ident("redis.key_prefix", "hub"))

    hosts_env = env.get("HUB_CASSANDRA_HOSTS")
    hosts = tuple(h.strip() for h in hosts_env.split(",") if h.strip()) if hosts_env else r.str_list("cassandra.hosts", ["127.0.0.1"])
    if not hosts:
        raise ConfigError("cassandra.hosts", "needs at least one host")
    keyspace = env.get("HUB_CASSANDRA_KEYSPACE") or r.str("cassandra.keyspace", "hub")
    if not re.fullmatch(r"[A-Za-z][A-Za-z0-9_]{0,47}", keyspace):
        raise ConfigError("cassandra.keyspace", f"{keyspace!r} is not a valid keyspace name (letters, digits, _)")
    pv = r.raw("cassandra.protocol_version", 3)
    if pv is not None and pv not in (3, 4, 5):
        raise ConfigError("cassandra.protocol_version", "must be 3, 4 or 5")
    cassandra = CassandraSettings(
        hosts=hosts,
        port=r.port("cassandra.port", 9042),
        keyspace=keyspace,
        replication_factor=r.int("cassandra.replication_factor", 1, lo=1, hi=15),
        protocol_version=pv,
        request_timeout=r.num("cassandra.request_timeout", 5.0, lo=0.1),
    )
    fanout = FanoutSettings(
        chunk_size=r.int("fanout.chunk_size", 100, lo=1, hi=10_000),
        celebrity_threshold=r.int("fanout.celebrity_threshold", 10_000, lo=1),
        active_days=r.int("fanout.active_days", 7, lo=1),
    )
    worker = WorkerSettings(
        job_timeout=r.int("worker.job_timeout", 5, lo=1),
        max_tries=r.int("worker.max_tries", 20, lo=1),
        max_jobs=r.int("worker.max_jobs", 20, lo=1),
        poll_delay=r.num("worker.poll_delay", 0.05, lo=0.001),
    )
    state_dir = Path(r.str("services.state_dir", ".hub"))
    if base_dir is not None and not state_dir.is_absolute():
        state_dir = base_dir / state_dir
    cache_env = env.get("HUB_CACHE_DIR")
    services = ServicesSettings(
        state_dir=state_dir,
        cache_dir=Path(cache_env) if cache_env else Path(r.str("services.cache_dir", str(ServicesSettings.cache_dir))).expanduser(),
        cassandra_heap_mb=r.int("services.cassandra_heap_mb", 512, lo=256),
    )
    return Settings(
        server=server, redis=redis, cassandra=cassandra, fanout=fanout, worker=worker,
        services=services, apps=_apps(r, env), feeds=_feeds(r),
    )


def _apps(r: _Reader, env: Mapping[str, str]) -> dict[str, AppSettings]:
    apps: dict[str, AppSettings] = {}
    for app_id in r.table("apps"):
        if not _APP_ID.match(app_id):
            raise ConfigError(f"apps.{app_id}", "app ids are 1 to 64 letters, digits, _ or -")
        k = f"apps.{app_id}"
        secret = env.get(f"HUB_APP_{app_id.upper().replace('-', '_')}_SECRET") or r.str(f"{k}.secret")
        _check_secret(f"{k}.secret", secret)
        origins = r.str_list(f"{k}.allowed_origins", [])
        for o in origins:
            u = urlparse(o)
            if u.scheme not in ("http", "https") or not u.netloc or u.path not in ("", "/"):
                raise ConfigError(f"{k}.allowed_origins", f"{o!r} is not an origin like https://example.com")
        apps[app_id] = AppSettings(
            id=app_id, secret=secret, allowed_origins=tuple(o.rstrip("/") for o in origins),
            rate=r.num(f"{k}.rate", 2000.0, lo=0.001), burst=r.int(f"{k}.burst", 4000, lo=1),
        )
    return apps


def _check_secret(key: str, secret: str) -> None:
    if not secret.startswith("whsec_"):
        raise ConfigError(key, "must start with whsec_ followed by base64")
    try:
        raw = base64.b64decode(secret.removeprefix("whsec_"), validate=True)
    except (binascii.Error, ValueError):
        raise ConfigError(key, "the part after whsec_ is not valid base64") from None
    if len(raw) < 16:
        raise ConfigError(key, "too short: use at least 16 random bytes (24 base64 characters)")


def _feeds(r: _Reader) -> dict[str, FeedGroup]:
    feeds = dict(DEFAULT_FEEDS)
    for name in r.table("feeds"):
        k = f"feeds.{name}"
        if not _GROUP_ID.match(name):
            raise ConfigError(k, "group names are lowercase letters, digits and _, starting with a letter")
        base = feeds.get(name, FeedGroup(name))
        kind = r.str(f"{k}.kind", base.kind)
        if kind not in FEED_KINDS:
            raise ConfigError(f"{k}.kind", f"{kind!r} is not one of {', '.join(FEED_KINDS)}")
        follows = r.raw(f"{k}.follows", base.follows)
        if follows is not None and not isinstance(follows, str):
            raise ConfigError(f"{k}.follows", "must be a group name such as \"user\"")
        template = r.raw(f"{k}.aggregate", base.aggregate)
        if kind != "flat":
            template = template or "{verb}:{day}"
            _check_template(f"{k}.aggregate", template)
        ranking = r.str(f"{k}.ranking", base.ranking)
        feeds[name] = FeedGroup(
            name=name, kind=kind, follows=follows,
            max_length=r.int(f"{k}.max_length", base.max_length, lo=1, hi=100_000),
            aggregate=template if kind != "flat" else None, ranking=ranking,
        )
    for g in feeds.values():
        if g.follows is not None and g.follows not in feeds:
            raise ConfigError(f"feeds.{g.name}.follows", f"no feed group named {g.follows!r}")
    if feeds["user"].kind != "flat":
        raise ConfigError("feeds.user.kind", "the user group holds an actor's own activities and must be flat")
    return feeds


def _check_template(key: str, template: str) -> None:
    if not isinstance(template, str) or not template:
        raise ConfigError(key, "must be a template such as \"{verb}:{object}:{day}\"")
    names = re.findall(r"{([^{}]*)}", template)
    if not names:
        raise ConfigError(key, f"{template!r} uses no field; use some of {', '.join(TEMPLATE_FIELDS)}")
    for n in names:
        if n not in TEMPLATE_FIELDS:
            raise ConfigError(key, f"unknown field {{{n}}}; fields are {', '.join(TEMPLATE_FIELDS)}")


_MISSING = object()


class _Reader:
    """Typed access to the raw TOML by dotted key, raising ConfigError that names the key."""

    def __init__(self, raw: Mapping[str, Any]) -> None:
        self._raw = raw

    def raw(self, key: str, default: Any = _MISSING) -> Any:
        node: Any = self._raw
        for part in key.split("."):
            if not isinstance(node, Mapping):
                raise ConfigError(key.rsplit(".", 1)[0], "must be a table")
            if part not in node:
                if default is _MISSING:
                    raise ConfigError(key, "is missing")
                return default
            node = node[part]
        return node

    def table(self, key: str) -> list[str]:
        t = self.raw(key, {})
        if not isinstance(t, Mapping):
            raise ConfigError(key, "must be a table")
        for name, sub in t.items():
            if not isinstance(sub, Mapping):
                raise ConfigError(f"{key}.{name}", "must be a table")
        return list(t)

    def str(self, key: str, default: Any = _MISSING) -> str:
        v = self.raw(key, default)
        if not isinstance(v, str) or not v:
            raise ConfigError(key, f"must be a non-empty string, not {v!r}")
        return v

    def ident(self, key: str, default: str) -> str:
        v = self.str(key, default)
        if not re.fullmatch(r"[A-Za-z0-9_.:-]{1,64}", v):
            raise ConfigError(key, "use letters, digits and _ . : - only")
        return v

    def str_list(self, key: str, default: list[str]) -> tuple[str, ...]:
        v = self.raw(key, default)
        if not isinstance(v, list) or not all(isinstance(x, str) and x for x in v):
            raise ConfigError(key, "must be a list of strings")
        return tuple(v)

    def int(self, key: str, default: int, lo: int | None = None, hi: int | None = None) -> int:
        v = self.raw(key, default)
        if isinstance(v, bool) or not isinstance(v, int):
            raise ConfigError(key, f"must be an integer, not {v!r}")
        if lo is not None and v < lo:
            raise ConfigError(key, f"must be at least {lo}, not {v}")
        if hi is not None and v > hi:
            raise ConfigError(key, f"must be at most {hi}, not {v}")
        return v

    def num(self, key: str, default: float, lo: float | None = None) -> float:
        v = self.raw(key, default)
        if isinstance(v, bool) or not isinstance(v, (int, float)):
            raise ConfigError(key, f"must be a number, not {v!r}")
        if lo is not None and v < lo:
            raise ConfigError(key, f"must be at least {lo}, not {v}")
        return float(v)

    def port(self, key: str, default: int, env_value: str | None = None, env_name: str = "") -> int:
        if env_value is not None:
            if not env_value.isdigit() or not 0 < int(env_value) < 65536:
                raise ConfigError(env_name, f"{env_value!r} is not a port number (1 to 65535)")
            return int(env_value)
        return self.int(key, default, lo=1, hi=65535)
