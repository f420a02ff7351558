"""Reading ``config.toml`` and the environment into :class:`~hub.config.settings.Settings`.

Environment variables override the file (README.md, Configuration). Every value is checked
here, so a bad one fails at start-up with a :class:`~hub.errors.ConfigError` naming the
key, not later in whatever first uses it.
"""

from __future__ import annotations

import base64
import binascii
import os
import re
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from hub.config.reader import Reader
from hub.config.settings import (
    CONSISTENCY_LEVELS,
    DEFAULT_FEEDS,
    AppSettings,
    CassandraSettings,
    FanoutSettings,
    FeedGroup,
    QueueSettings,
    RedisSettings,
    ServerSettings,
    ServicesSettings,
    Settings,
    WorkerSettings,
    prefix_for,
)
from hub.domain.ranking import RANKINGS
from hub.errors import ConfigError

FEED_KINDS = ("flat", "aggregated", "notification")
TEMPLATE_FIELDS = ("verb", "actor", "object", "target", "day", "hour")
_APP_ID = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
_GROUP_ID = re.compile(r"^[a-z][a-z0-9_]{0,63}$")
# Spliced into CREATE KEYSPACE as a string literal: nothing that could end it.
_DC_NAME = re.compile(r"[A-Za-z0-9_.-]{1,64}")


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
    r = Reader(raw)
    known = {"server", "redis", "queue", "cassandra", "fanout", "worker", "services", "apps", "feeds"}
    for key in raw:
        if key not in known:
            raise ConfigError(key, f"unknown table (expected one of {', '.join(sorted(known))})")

    server = ServerSettings(
        host=r.text("server.host", "127.0.0.1"),
        port=r.port("server.port", 8080, env_value=env.get("HUB_PORT"), env_name="HUB_PORT"),
    )
    cassandra = _cassandra(r, env)
    redis = _redis(r, env, cassandra.keyspace)
    queue = _queue(r, env, redis)
    fanout = FanoutSettings(
        chunk_size=r.integer("fanout.chunk_size", 100, lo=1, hi=10_000),
        celebrity_threshold=r.integer("fanout.celebrity_threshold", 10_000, lo=1),
        active_days=r.integer("fanout.active_days", 7, lo=1),
        cache_days=r.num("fanout.cache_days", 14.0, lo=0.00001),
    )
    worker = WorkerSettings(
        job_timeout=r.integer("worker.job_timeout", 5, lo=1),
        max_tries=r.integer("worker.max_tries", 20, lo=1),
        max_jobs=r.integer("worker.max_jobs", 20, lo=1),
        poll_delay=r.num("worker.poll_delay", 0.05, lo=0.001),
    )
    state_dir = Path(r.text("services.state_dir", ".hub"))
    if base_dir is not None and not state_dir.is_absolute():
        state_dir = base_dir / state_dir
    cache_env = env.get("HUB_CACHE_DIR")
    services = ServicesSettings(
        state_dir=state_dir,
        cache_dir=Path(cache_env) if cache_env else Path(r.text("services.cache_dir", str(ServicesSettings.cache_dir))).expanduser(),
        cassandra_heap_mb=r.integer("services.cassandra_heap_mb", 512, lo=256),
    )
    return Settings(
        server=server, redis=redis, cassandra=cassandra, fanout=fanout, worker=worker,
        services=services, queue=queue, apps=_apps(r, env), feeds=_feeds(r),
    )


def _redis(r: Reader, env: Mapping[str, str], keyspace: str) -> RedisSettings:
    url = env.get("HUB_REDIS_URL") or r.text("redis.url", RedisSettings.url)
    if urlparse(url).scheme not in ("redis", "rediss", "unix"):
        raise ConfigError("redis.url", f"{url!r} is not a redis:// URL")
    cluster_env = env.get("HUB_REDIS_CLUSTER")
    if cluster_env is not None:
        if cluster_env not in ("0", "1", "true", "false"):
            raise ConfigError("HUB_REDIS_CLUSTER", f"{cluster_env!r} is not 1 or 0")
        cluster = cluster_env in ("1", "true")
    else:
        cluster = r.raw("redis.cluster", False)
        if not isinstance(cluster, bool):
            raise ConfigError("redis.cluster", f"must be true or false, not {cluster!r}")
    nodes = r.str_list("redis.nodes", [])
    for n in nodes:
        host, _, port = n.rpartition(":")
        if not host or not port.isdigit() or not 0 < int(port) < 65536:
            raise ConfigError("redis.nodes", f"{n!r} is not host:port")
    if nodes and not cluster:
        raise ConfigError("redis.nodes", "start-up nodes are for a Redis Cluster: set redis.cluster = true")
    if cluster and urlparse(url).scheme == "unix":
        raise ConfigError("redis.url", "a Redis Cluster is reached over TCP, not a unix socket")
    # ident() allows no braces: a prefix with "{" or "}" would change the hash tags that
    # keep all of one feed's keys in one slot (hub/storage/redis.py, Keys).
    return RedisSettings(url=url, key_prefix=r.ident("redis.key_prefix", prefix_for(keyspace)),
                         cluster=cluster, nodes=nodes)


def _queue(r: Reader, env: Mapping[str, str], redis: RedisSettings) -> QueueSettings:
    url = env.get("HUB_QUEUE_URL") or r.raw("queue.url", None)
    if url is None:
        if redis.cluster:
            raise ConfigError("queue.url", "redis.cluster is true, and arq cannot keep its queues on a Redis "
                                           "Cluster: name a single Redis (redis://host:port) or a Sentinel master "
                                           "(redis+sentinel://host:port/mastername)")
        return QueueSettings()
    if not isinstance(url, str) or urlparse(url).scheme not in ("redis", "rediss", "unix", "redis+sentinel"):
        raise ConfigError("queue.url", f"{url!r} is not a redis:// or redis+sentinel://host:port/mastername URL")
    q = QueueSettings(url=url)
    sentinel = q.sentinel
    if sentinel is not None and (not sentinel[1] or not all(h for h, _ in sentinel[0])):
        raise ConfigError("queue.url", f"{url!r}: use redis+sentinel://host:port[,host:port]/mastername")
    if redis.cluster and url == redis.url:
        raise ConfigError("queue.url", "names the Redis Cluster of redis.url; the queues need a single Redis")
    return q


def _cassandra(r: Reader, env: Mapping[str, str]) -> CassandraSettings:
    hosts_env = env.get("HUB_CASSANDRA_HOSTS")
    hosts = tuple(h.strip() for h in hosts_env.split(",") if h.strip()) if hosts_env else r.str_list("cassandra.hosts", ["127.0.0.1"])
    if not hosts:
        raise ConfigError("cassandra.hosts", "needs at least one host")
    keyspace = env.get("HUB_CASSANDRA_KEYSPACE") or r.text("cassandra.keyspace", "hub")
    if not re.fullmatch(r"[A-Za-z][A-Za-z0-9_]{0,47}", keyspace):
        raise ConfigError("cassandra.keyspace", f"{keyspace!r} is not a valid keyspace name (letters, digits, _)")
    consistency = r.raw("cassandra.consistency", None)
    if consistency is not None and consistency not in CONSISTENCY_LEVELS:
        raise ConfigError("cassandra.consistency", f"{consistency!r} is not one of {', '.join(CONSISTENCY_LEVELS)}")
    replication = _replication(r)
    local_dc = r.raw("cassandra.local_dc", None)
    if local_dc is not None:
        local_dc = r.ident("cassandra.local_dc", "")
        if replication and local_dc not in dict(replication):
            raise ConfigError("cassandra.local_dc", f"{local_dc!r} is not a datacenter of cassandra.replication")
    pv = r.raw("cassandra.protocol_version", 3)
    if pv is not None and pv not in (3, 4, 5):
        raise ConfigError("cassandra.protocol_version", "must be 3, 4 or 5")
    return CassandraSettings(
        hosts=hosts,
        port=r.port("cassandra.port", 9042),
        keyspace=keyspace,
        replication_factor=r.integer("cassandra.replication_factor", 1, lo=1, hi=15),
        protocol_version=pv,
        request_timeout=r.num("cassandra.request_timeout", 5.0, lo=0.1),
        consistency=consistency, local_dc=local_dc, replication=replication,
    )


def _replication(r: Reader) -> tuple[tuple[str, int], ...]:
    """``{dc1 = 3, dc2 = 3}``: NetworkTopologyStrategy's factor per datacenter."""
    raw = r.raw("cassandra.replication", None)
    if raw is None:
        return ()
    if not isinstance(raw, dict) or not raw:
        raise ConfigError("cassandra.replication", "must be a table of datacenters and factors, such as { dc1 = 3 }")
    out = []
    for dc, factor in raw.items():
        if not _DC_NAME.fullmatch(dc):
            raise ConfigError(f"cassandra.replication.{dc}", "datacenter names are letters, digits and _ . -")
        if isinstance(factor, bool) or not isinstance(factor, int) or not 1 <= factor <= 15:
            raise ConfigError(f"cassandra.replication.{dc}", f"must be an integer from 1 to 15, not {factor!r}")
        out.append((dc, factor))
    return tuple(out)


def _apps(r: Reader, env: Mapping[str, str]) -> dict[str, AppSettings]:
    apps: dict[str, AppSettings] = {}
    for app_id in r.table("apps"):
        if not _APP_ID.match(app_id):
            raise ConfigError(f"apps.{app_id}", "app ids are 1 to 64 letters, digits, _ or -")
        k = f"apps.{app_id}"
        secret = env.get(f"HUB_APP_{app_id.upper().replace('-', '_')}_SECRET") or r.text(f"{k}.secret")
        _check_secret(f"{k}.secret", secret)
        origins = r.str_list(f"{k}.allowed_origins", [])
        for o in origins:
            u = urlparse(o)
            if u.scheme not in ("http", "https") or not u.netloc or u.path not in ("", "/"):
                raise ConfigError(f"{k}.allowed_origins", f"{o!r} is not an origin like https://example.com")
        apps[app_id] = AppSettings(
            id=app_id, secret=secret, allowed_origins=tuple(o.rstrip("/") for o in origins),
            rate=r.num(f"{k}.rate", 2000.0, lo=0.001), burst=r.integer(f"{k}.burst", 4000, lo=1),
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


def _half_life(r: Reader, k: str, base: FeedGroup) -> float:
    h = r.num(f"{k}.half_life_hours", base.half_life_hours)
    if not h > 0:
        raise ConfigError(f"{k}.half_life_hours", f"must be more than 0, not {h:g}")
    return h


def _weights(r: Reader, k: str, base: FeedGroup, ranking: str) -> tuple[tuple[str, float], ...]:
    raw = r.raw(f"{k}.weights", None)
    if raw is None:
        if ranking == "weighted" and not base.weights:
            raise ConfigError(f"{k}.weights", "a weighted ranking needs weights, such as { likes = 1.0 }")
        return base.weights
    if not isinstance(raw, dict) or not raw:
        raise ConfigError(f"{k}.weights", "must be a table of extra fields and weights, such as { likes = 1.0 }")
    out = []
    for field_name, w in raw.items():
        if isinstance(w, bool) or not isinstance(w, (int, float)) or not w >= 0:
            raise ConfigError(f"{k}.weights.{field_name}", f"must be a number, 0 or more, not {w!r}")
        out.append((field_name, float(w)))
    return tuple(out)


def _feeds(r: Reader) -> dict[str, FeedGroup]:
    feeds = dict(DEFAULT_FEEDS)
    for name in r.table("feeds"):
        k = f"feeds.{name}"
        if not _GROUP_ID.match(name):
            raise ConfigError(k, "group names are lowercase letters, digits and _, starting with a letter")
        base = feeds.get(name, FeedGroup(name))
        kind = r.text(f"{k}.kind", base.kind)
        if kind not in FEED_KINDS:
            raise ConfigError(f"{k}.kind", f"{kind!r} is not one of {', '.join(FEED_KINDS)}")
        follows = r.raw(f"{k}.follows", base.follows)
        if follows is not None and not isinstance(follows, str):
            raise ConfigError(f"{k}.follows", "must be a group name such as \"user\"")
        template = r.raw(f"{k}.aggregate", base.aggregate)
        if kind != "flat":
            template = template or "{verb}:{day}"
            _check_template(f"{k}.aggregate", template)
        ranking = r.text(f"{k}.ranking", base.ranking)
        if ranking not in RANKINGS:
            raise ConfigError(f"{k}.ranking", f"{ranking!r} is not one of {', '.join(RANKINGS)}")
        if ranking != "recency" and kind != "flat":
            raise ConfigError(f"{k}.ranking", "only flat groups are ranked; aggregated groups follow their updates")
        feeds[name] = FeedGroup(
            name=name, kind=kind, follows=follows,
            max_length=r.integer(f"{k}.max_length", base.max_length, lo=1, hi=100_000),
            aggregate=template if kind != "flat" else None, ranking=ranking,
            half_life_hours=_half_life(r, k, base), weights=_weights(r, k, base, ranking),
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
