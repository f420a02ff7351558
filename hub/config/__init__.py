"""Configuration: ``config.toml`` read once into frozen dataclasses.

Nothing here is global: :func:`load_settings` returns a :class:`Settings` that callers
pass down explicitly. Environment variables override the file (README.md, Configuration). Any
bad value raises :class:`~hub.errors.ConfigError`, whose message is the single line the
operator sees.
"""

from __future__ import annotations

# The package splits the shape (settings) from the reading (loader, reader); callers
# import everything from here, as they did when this was one module.
from hub.config.loader import (
    FEED_KINDS,
    TEMPLATE_FIELDS,
    config_path,
    load_settings,
    parse_settings,
)
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

__all__ = [
    "CONSISTENCY_LEVELS",
    "DEFAULT_FEEDS",
    "FEED_KINDS",
    "TEMPLATE_FIELDS",
    "AppSettings",
    "CassandraSettings",
    "FanoutSettings",
    "FeedGroup",
    "QueueSettings",
    "RedisSettings",
    "ServerSettings",
    "ServicesSettings",
    "Settings",
    "WorkerSettings",
    "config_path",
    "load_settings",
    "parse_settings",
    "prefix_for",
]
