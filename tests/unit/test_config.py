from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from hub.config import load_settings, parse_settings
from hub.errors import ConfigError

ROOT = Path(__file__).resolve().parents[2]


def test_shipped_config_loads() -> None:
    s = load_settings(ROOT / "config.toml", env={})
    assert s.server.port == 8080
    assert s.apps["demo"].key  # decodes
    assert {"user", "timeline", "timeline_aggregated", "notification"} <= set(s.feeds)
    assert [g.name for g in s.follower_groups()] == ["timeline", "timeline_aggregated"]
    assert s.feeds["notification"].aggregate == "{verb}:{object}:{day}"


def test_environment_overrides() -> None:
    env = {
        "HUB_PORT": "9999", "HUB_REDIS_URL": "redis://10.0.0.5:6380/2",
        "HUB_CASSANDRA_HOSTS": "c1, c2,c3", "HUB_CASSANDRA_KEYSPACE": "prod",
        "HUB_APP_DEMO_SECRET": "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
    }
    s = load_settings(ROOT / "config.toml", env=env)
    assert s.server.port == 9999
    assert (s.redis.host, s.redis.port) == ("10.0.0.5", 6380)
    assert s.cassandra.hosts == ("c1", "c2", "c3")
    assert s.cassandra.keyspace == "prod"
    assert s.apps["demo"].secret == "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"


@pytest.mark.parametrize(
    ("raw", "env", "key", "words"),
    [
        ({"server": {"port": "80"}}, {}, "server.port", "integer"),
        ({"server": {"port": 70000}}, {}, "server.port", "at most"),
        ({}, {"HUB_PORT": "abc"}, "HUB_PORT", "port number"),
        ({"redis": {"url": "http://x"}}, {}, "redis.url", "redis://"),
        ({"cassandra": {"hosts": "127.0.0.1"}}, {}, "cassandra.hosts", "list"),
        ({"cassandra": {"keyspace": "bad-name"}}, {}, "cassandra.keyspace", "keyspace"),
        ({"cassandra": {"replication_factor": 0}}, {}, "cassandra.replication_factor", "at least 1"),
        ({"fanout": {"chunk_size": 0}}, {}, "fanout.chunk_size", "at least 1"),
        ({"apps": {"x": {}}}, {}, "apps.x.secret", "missing"),
        ({"apps": {"x": {"secret": "nope"}}}, {}, "apps.x.secret", "whsec_"),
        ({"apps": {"x": {"secret": "whsec_!!!"}}}, {}, "apps.x.secret", "base64"),
        ({"apps": {"x": {"secret": "whsec_c2hvcnQ="}}}, {}, "apps.x.secret", "too short"),
        ({"apps": {"x": {"secret": "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", "allowed_origins": ["example.com"]}}},
         {}, "apps.x.allowed_origins", "origin"),
        ({"feeds": {"n": {"kind": "weird"}}}, {}, "feeds.n.kind", "not one of"),
        ({"feeds": {"n": {"kind": "aggregated", "aggregate": "{verb}:{colour}"}}}, {}, "feeds.n.aggregate", "unknown field"),
        ({"feeds": {"n": {"follows": "nosuch"}}}, {}, "feeds.n.follows", "no feed group"),
        ({"feeds": {"user": {"kind": "aggregated"}}}, {}, "feeds.user.kind", "flat"),
        ({"sever": {}}, {}, "sever", "unknown table"),
        ({"feeds": {"n": {"ranking": "hot"}}}, {}, "feeds.n.ranking", "not one of"),
        ({"feeds": {"n": {"ranking": "weighted"}}}, {}, "feeds.n.weights", "needs weights"),
        ({"feeds": {"n": {"kind": "notification", "ranking": "weighted", "weights": {"likes": 1}}}}, {},
         "feeds.n.ranking", "only flat"),
        ({"feeds": {"n": {"ranking": "weighted", "weights": {"likes": -1}}}}, {}, "feeds.n.weights.likes", "0 or more"),
        ({"feeds": {"n": {"ranking": "weighted", "weights": {"likes": "a"}}}}, {}, "feeds.n.weights.likes", "number"),
        ({"feeds": {"n": {"ranking": "weighted", "weights": []}}}, {}, "feeds.n.weights", "table"),
        ({"feeds": {"n": {"ranking": "weighted", "weights": {"x": 1}, "half_life_hours": 0}}}, {},
         "feeds.n.half_life_hours", "more than 0"),
    ],
)
def test_bad_values_name_the_key(raw: dict, env: dict, key: str, words: str) -> None:
    with pytest.raises(ConfigError) as e:
        parse_settings(raw, env)
    assert e.value.key == key
    assert words in str(e.value)
    assert "\n" not in str(e.value)


def test_weighted_ranking_config() -> None:
    raw = {"feeds": {"popular": {"follows": "user", "ranking": "weighted", "half_life_hours": 6,
                                 "weights": {"likes": 1, "reposts": 2.5}}}}
    g = parse_settings(raw, {}).feeds["popular"]
    assert (g.kind, g.is_ranked, g.half_life_hours) == ("flat", True, 6.0)
    assert g.weights == (("likes", 1.0), ("reposts", 2.5))
    assert not parse_settings({}, {}).feeds["timeline"].is_ranked


def test_missing_file() -> None:
    with pytest.raises(ConfigError, match="file not found"):
        load_settings("/nonexistent/hub.toml", env={})


def test_cli_reports_one_line_without_traceback(tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text('[server]\nport = "eighty"\n')
    out = subprocess.run(
        [sys.executable, "-m", "cli.main", "--config", str(bad), "migrate"],
        capture_output=True, text=True, cwd=ROOT, timeout=60,
    )
    assert out.returncode == 2
    assert out.stderr.strip() == "hub: config: server.port: must be an integer, not 'eighty'"
    assert "Traceback" not in out.stderr


# Cluster settings (docs/scaling.md): consistency, routing, replication, the key prefix.


@pytest.mark.parametrize(
    ("cassandra", "level"),
    [
        ({}, "one"),
        ({"replication_factor": 2}, "one"),
        ({"replication_factor": 3}, "local_quorum"),
        ({"replication_factor": 5}, "local_quorum"),
        ({"replication_factor": 3, "consistency": "one"}, "one"),
        ({"consistency": "all"}, "all"),
        ({"replication": {"dc1": 3, "dc2": 3}}, "local_quorum"),
        ({"replication": {"dc1": 3, "dc2": 1}}, "one"),  # the smallest datacenter decides
    ],
)
def test_consistency_defaults_by_replication(cassandra: dict, level: str) -> None:
    assert parse_settings({"cassandra": cassandra}, {}).cassandra.level == level


def test_cluster_settings_are_read() -> None:
    c = parse_settings({"cassandra": {"consistency": "quorum", "local_dc": "dc2",
                                      "replication": {"dc1": 3, "dc2": 2}}}, {}).cassandra
    assert (c.consistency, c.local_dc, c.replication) == ("quorum", "dc2", (("dc1", 3), ("dc2", 2)))
    plain = parse_settings({}, {}).cassandra
    assert (plain.consistency, plain.local_dc, plain.replication) == (None, None, ())


@pytest.mark.parametrize(
    ("cassandra", "key", "words"),
    [
        ({"consistency": "two"}, "cassandra.consistency", "not one of one, quorum, local_quorum, local_one, all"),
        ({"consistency": 2}, "cassandra.consistency", "not one of"),
        ({"consistency": "QUORUM"}, "cassandra.consistency", "not one of"),
        ({"local_dc": ""}, "cassandra.local_dc", "non-empty"),
        ({"local_dc": "dc 1"}, "cassandra.local_dc", "letters"),
        ({"local_dc": "dc3", "replication": {"dc1": 3}}, "cassandra.local_dc", "not a datacenter"),
        ({"replication": 3}, "cassandra.replication", "table"),
        ({"replication": {}}, "cassandra.replication", "table"),
        ({"replication": {"dc1": 0}}, "cassandra.replication.dc1", "1 to 15"),
        ({"replication": {"dc1": "3"}}, "cassandra.replication.dc1", "1 to 15"),
        ({"replication": {"dc'1": 3}}, "cassandra.replication.dc'1", "datacenter names"),
    ],
)
def test_bad_cluster_values_name_the_key(cassandra: dict, key: str, words: str) -> None:
    with pytest.raises(ConfigError) as e:
        parse_settings({"cassandra": cassandra}, {})
    assert e.value.key == key
    assert words in str(e.value)
    assert "\n" not in str(e.value)


def test_key_prefix_is_derived_from_the_keyspace() -> None:
    assert parse_settings({}, {}).redis.key_prefix == "hub"  # as before the derivation
    assert parse_settings({"cassandra": {"keyspace": "ks"}}, {}).redis.key_prefix == "hub-ks"
    assert parse_settings({}, {"HUB_CASSANDRA_KEYSPACE": "prod"}).redis.key_prefix == "hub-prod"
    explicit = {"redis": {"key_prefix": "mine"}, "cassandra": {"keyspace": "ks"}}
    assert parse_settings(explicit, {}).redis.key_prefix == "mine"  # an explicit prefix wins
    assert load_settings(ROOT / "config.toml", env={"HUB_CASSANDRA_KEYSPACE": "prod"}).redis.key_prefix == "hub-prod"
