"""A memcache stand-in for one Swift proxy: its cache (``env["swift.cache"]``) in a
dict of the proxy's own process, so no ``memcached`` is needed. Swift's tempauth
keeps its tokens there and the proxy caches account and container information,
as with memcached: values are stored as JSON and expire after their ``time``.

:mod:`covalent_plugin_testing.s3_server` copies this file next to the proxy's
configuration; Debian's Python loads it as the ``cache`` filter of the proxy's
pipeline (``paste.filter_factory = swift_cache:filter_factory``), so it imports
nothing of the kit.
"""

from __future__ import annotations

import json
import time
from typing import Any


class MemoryCache:
    """The part of Swift's ``MemcacheRing`` that the proxy and its middleware use."""

    def __init__(self) -> None:
        self._values: dict[str, tuple[float, str]] = {}

    def set(self, key: str, value: Any, serialize: bool = True, time: float = 0, **_: Any) -> None:
        text = json.dumps(value) if serialize else str(value)
        self._values[key] = (_expiry(time), text)

    def get(self, key: str, raise_on_error: bool = False) -> Any:
        expires, text = self._values.get(key, (0.0, "null"))
        if expires and expires < _now():
            self._values.pop(key, None)
            return None
        return json.loads(text)

    def incr(self, key: str, delta: int = 1, time: float = 0) -> int:
        value = max(0, int(self.get(key) or 0) + int(delta))
        self.set(key, value, time=time)
        return value

    def decr(self, key: str, delta: int = 1, time: float = 0) -> int:
        return self.incr(key, -delta, time)

    def delete(self, key: str, server_key: str | None = None) -> None:
        self._values.pop(key, None)

    def set_multi(self, mapping: dict, server_key: str, serialize: bool = True, time: float = 0,
                  **_: Any) -> None:  # fmt: skip
        for key, value in mapping.items():
            self.set(key, value, serialize, time)

    def get_multi(self, keys: list[str], server_key: str) -> list[Any]:
        return [self.get(key) for key in keys]


def _now() -> float:
    return time.time()


def _expiry(seconds: float) -> float:
    """When a value set for ``seconds`` expires (0: never), as memcached reads ``time``:
    up to 30 days a duration, beyond that a Unix time."""
    if not seconds:
        return 0.0
    return float(seconds) if seconds > 30 * 24 * 3600 else _now() + float(seconds)


def filter_factory(global_conf: dict, **local_conf: Any):
    """The Paste Deploy factory of the filter: one cache for the proxy's process."""
    cache = MemoryCache()

    def cache_filter(app):
        def middleware(env, start_response):
            env["swift.cache"] = cache
            return app(env, start_response)

        return middleware

    return cache_filter
