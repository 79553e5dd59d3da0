"""live_from_url: the [live] url setting picks the backend."""

from __future__ import annotations

import pytest
from twisted.internet.task import Clock

from watchline.live import live_from_url
from watchline.live.memory import MemoryLiveState
from watchline.live.redis import RedisLiveState


def test_memory_url() -> None:
    assert isinstance(live_from_url("memory://", Clock()), MemoryLiveState)


def test_redis_url_with_options() -> None:
    live = live_from_url("redis://:secret@cache.example:6380/2", Clock(), prefix="fleet1:", threads=2)
    assert isinstance(live, RedisLiveState) and live.prefix == "fleet1:"
    kwargs = live._redis.connection_pool.connection_kwargs
    assert (kwargs["host"], kwargs["port"], kwargs["db"], kwargs["password"]) == ("cache.example", 6380, 2, "secret")


@pytest.mark.parametrize("url", ["amqp://h", "memory://x", "redis://h:port/0", "redis://h/cache", "", None, "h:6379"])
def test_other_urls_are_refused_clearly(url) -> None:
    with pytest.raises(ValueError, match="URL"):
        live_from_url(url, Clock())
