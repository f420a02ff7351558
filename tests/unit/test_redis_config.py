"""``[redis] cluster``, ``[queue] url`` and what a Redis Cluster's failover raises (issue 21)."""

from __future__ import annotations

import pytest
from redis.exceptions import (
    ClusterCrossSlotError,
    ClusterDownError,
    MasterDownError,
    ResponseError,
    SlotNotCoveredError,
    TryAgainError,
)

from hub.config import parse_settings
from hub.errors import ConfigError
from hub.queue import arq_redis_settings
from hub.storage.outage import DEPENDENCY_DOWN, as_unavailable
from hub.storage.redis import REDIS_DOWN
from hub.storage.redisclient import startup_nodes

CLUSTER = {"redis": {"url": "redis://127.0.0.1:7100/0", "cluster": True}}


def test_by_default_the_queues_share_the_main_redis() -> None:
    s = parse_settings({}, {})
    assert not s.redis.cluster and s.queue.url is None
    assert s.queue_url == s.redis.url and not s.queue_apart


def test_a_cluster_needs_a_queue_redis_of_its_own() -> None:
    with pytest.raises(ConfigError) as e:
        parse_settings(CLUSTER, {})
    assert e.value.key == "queue.url" and "\n" not in str(e.value) and "redis+sentinel://" in str(e.value)
    with pytest.raises(ConfigError):  # the cluster's own url is no queue Redis
        parse_settings({**CLUSTER, "queue": {"url": "redis://127.0.0.1:7100/0"}}, {})
    s = parse_settings({**CLUSTER, "queue": {"url": "redis://127.0.0.1:6380/0"}}, {})
    assert s.redis.cluster and s.queue_url == "redis://127.0.0.1:6380/0" and s.queue_apart


def test_environment_turns_the_cluster_on_and_names_the_queue() -> None:
    s = parse_settings({}, {"HUB_REDIS_CLUSTER": "1", "HUB_REDIS_URL": "redis://127.0.0.1:7100/0",
                            "HUB_QUEUE_URL": "redis://127.0.0.1:6380/0"})
    assert s.redis.cluster and s.redis.port == 7100 and s.queue_url.endswith(":6380/0")
    assert not parse_settings(CLUSTER | {"queue": {"url": "redis://h:1/0"}}, {"HUB_REDIS_CLUSTER": "0"}).redis.cluster
    with pytest.raises(ConfigError):
        parse_settings({}, {"HUB_REDIS_CLUSTER": "yes please"})


@pytest.mark.parametrize("raw", [
    {"redis": {"cluster": "yes"}},
    {"redis": {"nodes": ["127.0.0.1:7101"]}},  # start-up nodes without a cluster
    {"redis": {"cluster": True, "nodes": ["no-port"]}, "queue": {"url": "redis://h:1/0"}},
    {"queue": {"url": "http://127.0.0.1:6380"}},
    {"queue": {"url": "redis+sentinel://127.0.0.1:26379/"}},  # no master name
    {"redis": {"key_prefix": "hub{x}"}},  # braces would change the hash tags
    {"apps": {"a{b}": {"secret": "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"}}},
])
def test_bad_redis_and_queue_settings_are_refused(raw: dict[str, object]) -> None:
    with pytest.raises(ConfigError) as e:
        parse_settings(raw, {})
    assert "\n" not in str(e.value)


def test_a_sentinel_url_becomes_arqs_sentinel_settings() -> None:
    s = parse_settings({**CLUSTER, "queue": {"url": "redis+sentinel://127.0.0.1:26379,127.0.0.2:26380/hubq/2"}}, {})
    assert s.queue.sentinel == ((("127.0.0.1", 26379), ("127.0.0.2", 26380)), "hubq", 2)
    arq = arq_redis_settings(s)
    assert arq.sentinel and arq.sentinel_master == "hubq" and arq.database == 2
    assert arq.host == [("127.0.0.1", 26379), ("127.0.0.2", 26380)]
    plain = arq_redis_settings(parse_settings({"queue": {"url": "redis://127.0.0.1:6380/3"}}, {}))
    assert not plain.sentinel and (plain.host, plain.port, plain.database) == ("127.0.0.1", 6380, 3)


def test_a_local_cluster_is_found_through_every_node() -> None:
    s = parse_settings({**CLUSTER, "queue": {"url": "redis://127.0.0.1:6380/0"}}, {})
    assert startup_nodes(s.redis) == [("127.0.0.1", p) for p in range(7100, 7106)]
    listed = parse_settings({"redis": {"url": "redis://r1:6379/0", "cluster": True, "nodes": ["r2:6379", "r3:6379"]},
                             "queue": {"url": "redis://q:6379/0"}}, {})
    assert startup_nodes(listed.redis) == [("r1", 6379), ("r2", 6379), ("r3", 6379)]


@pytest.mark.parametrize("exc", [
    ClusterDownError("CLUSTERDOWN The cluster is down"), MasterDownError("MASTERDOWN"),
    TryAgainError("TRYAGAIN"), SlotNotCoveredError("slot 42 not covered"),
], ids=lambda e: type(e).__name__)
def test_a_cluster_in_failover_is_an_outage(exc: Exception) -> None:
    assert isinstance(exc, DEPENDENCY_DOWN)  # a 503, never a 500
    assert isinstance(exc, REDIS_DOWN)  # intake leaves the fan-out to the sweep; jobs retry
    assert "Redis does not answer" in as_unavailable(exc).message


@pytest.mark.parametrize("exc", [ClusterCrossSlotError("CROSSSLOT"), ResponseError("WRONGTYPE")],
                         ids=lambda e: type(e).__name__)
def test_a_script_across_slots_is_a_bug_not_an_outage(exc: Exception) -> None:
    assert not isinstance(exc, DEPENDENCY_DOWN)


def test_the_shipped_cluster_config_is_a_redis_cluster_with_a_queue_redis() -> None:
    from pathlib import Path

    from hub.config import load_settings
    from hub.services.redis_cluster import configured

    s = load_settings(Path(__file__).resolve().parents[2] / "config.cluster.toml", env={})
    assert s.redis.cluster and s.redis.url == "redis://127.0.0.1:7100/0" and s.queue_url == "redis://127.0.0.1:6380/0"
    assert configured(s) == [("127.0.0.1", p) for p in (7100, 7101, 7102, 7103, 7104, 7105, 6380)]
