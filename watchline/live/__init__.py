"""Live state: ``live_from_url`` picks the backend named by config ``[live] url``.

``memory://`` (the default) keeps it in this process; ``redis://host:port/db`` (or ``rediss://``)
shares it through Redis. Both return an unstarted twisted Service implementing
``watchline.live.base.LiveState``.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from watchline.live.base import LiveState, LiveUnavailable, Lock

__all__ = ["LiveState", "LiveUnavailable", "Lock", "live_from_url"]


def live_from_url(url: str, reactor: Any, **options: Any) -> Any:
    """The live state for ``url``; ``options`` go to the backend (e.g. ``prefix``, ``threads``).

    Raises ValueError for an unknown scheme or a malformed URL.
    """
    if not isinstance(url, str):
        raise ValueError(f"live-state URL must be a string, not {url!r}")
    scheme = url.partition("://")[0].lower() if "://" in url else ""
    if scheme == "memory":
        if url.rstrip("/") != "memory:":
            raise ValueError(f"a memory:// URL takes no host, path or options: {url!r}")
        from watchline.live.memory import MemoryLiveState

        return MemoryLiveState(reactor, **options)
    if scheme in ("redis", "rediss"):
        from watchline.live.redis import RedisLiveState

        database = urlsplit(url).path.strip("/")
        if database and not database.isdigit():
            raise ValueError(f"Redis URL path must be a database number: {url!r}")
        try:
            return RedisLiveState(reactor, url, **options)
        except ValueError as e:  # redis-py's own URL checks
            raise ValueError(f"bad Redis URL {url!r}: {e}") from None
    raise ValueError(f"unsupported live-state URL {url!r}: expected memory:// or redis://host:port/db")
