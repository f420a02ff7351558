"""Typed, key-naming access to the raw TOML, for :mod:`hub.config.loader`."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from hub.errors import ConfigError

_MISSING = object()


class Reader:
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

    def text(self, key: str, default: Any = _MISSING) -> str:
        v = self.raw(key, default)
        if not isinstance(v, str) or not v:
            raise ConfigError(key, f"must be a non-empty string, not {v!r}")
        return v

    def ident(self, key: str, default: str) -> str:
        v = self.text(key, default)
        if not re.fullmatch(r"[A-Za-z0-9_.:-]{1,64}", v):
            raise ConfigError(key, "use letters, digits and _ . : - only")
        return v

    def str_list(self, key: str, default: list[str]) -> tuple[str, ...]:
        v = self.raw(key, default)
        if not isinstance(v, list) or not all(isinstance(x, str) and x for x in v):
            raise ConfigError(key, "must be a list of strings")
        return tuple(v)

    def integer(self, key: str, default: int, lo: int | None = None, hi: int | None = None) -> int:
        v = self.raw(key, default)
        if isinstance(v, bool) or not isinstance(v, int):
            raise ConfigError(key, f"must be an integer, not {v!r}")
        if lo is not None and v < lo:
            raise ConfigError(key, f"must be at least {lo}, not {v}")
        if hi is not None and v > hi:
            raise ConfigError(key, f"must be at most {hi}, not {v}")
        return int(v)

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
        return self.integer(key, default, lo=1, hi=65535)
