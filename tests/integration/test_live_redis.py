"""The live-state contract on a real Redis at 127.0.0.1:6379 (database 0).

Every test uses its own key prefix ``wltest:<run id>:`` and deletes its keys afterwards. Fails
when Redis is missing and CI=true; skipped otherwise.
"""

from __future__ import annotations

import uuid
from contextlib import asynccontextmanager

import pytest
import pytest_twisted
import redis
from twisted.internet import reactor, threads
from twisted.internet.defer import Deferred

from tests.conftest import require_service
from tests.watchline.live import contract
from watchline.live import live_from_url
from watchline.live.base import LiveUnavailable
from watchline.live.redis import RedisLiveState

pytestmark = pytest.mark.integration

HOST, PORT = "127.0.0.1", 6379
URL = f"redis://{HOST}:{PORT}/0"


def require_redis() -> None:
    require_service("Redis", HOST, PORT)


def delete_keys(prefix: str) -> int:
    client = redis.Redis.from_url(URL, socket_timeout=5)
    try:
        keys = list(client.scan_iter(match=f"{prefix}*", count=500))
        return client.delete(*keys) if keys else 0
    finally:
        client.close()


@asynccontextmanager
async def redis_states(count: int = 2):
    require_redis()
    prefix = f"wltest:{uuid.uuid4().hex[:12]}:"
    states = [RedisLiveState(reactor, URL, prefix=prefix, threads=2) for _ in range(count)]
    for state in states:
        await state.startService()
    try:
        yield states
    finally:
        for state in states:
            await state.stopService()
        await threads.deferToThread(delete_keys, prefix)


@pytest.mark.parametrize("check", contract.ALL, ids=lambda check: check.__name__)
@pytest_twisted.ensureDeferred
async def test_contract(check) -> None:
    async with redis_states() as (live, other):
        await check(contract.LiveHarness(live=live, other=other, clock=reactor))


@pytest_twisted.ensureDeferred
async def test_keys_live_under_the_prefix_and_are_cleaned_up() -> None:
    async with redis_states(1) as (live,):
        await live.set("k", {"a": 1})
        await live.set_position("v1", contract.position("2024-05-01T10:00:00Z"))
        lock = await live.acquire_lock("l", ttl=5)
        keys = await threads.deferToThread(
            lambda: sorted(key.decode() for key in redis.Redis.from_url(URL).scan_iter(match=f"{live.prefix}*")))
        assert keys == [f"{live.prefix}{name}" for name in ["lock:l", "position_times", "positions", "v:k"]]
        assert lock is not None
    remaining = await threads.deferToThread(delete_keys, live.prefix)
    assert remaining == 0


@pytest_twisted.ensureDeferred
async def test_unreachable_redis_raises_live_unavailable() -> None:
    require_redis()
    live = RedisLiveState(reactor, f"redis://{HOST}:1/0", connect_timeout=1, threads=1)
    await live.startService()
    try:
        with pytest.raises(LiveUnavailable):
            await live.get("k")
        with pytest.raises(LiveUnavailable):
            await live.acquire_lock("l", ttl=1)
    finally:
        await live.stopService()
    with pytest.raises(LiveUnavailable, match="not started"):
        await live.get("k")


@pytest_twisted.ensureDeferred
async def test_live_from_url_and_stop_waits_for_calls_in_flight() -> None:
    require_redis()
    prefix = f"wltest:{uuid.uuid4().hex[:12]}:"
    live = live_from_url(URL, reactor, prefix=prefix)
    await live.startService()
    try:
        writes = [Deferred.fromCoroutine(live.set(f"k{n}", n)) for n in range(20)]
        stopping = live.stopService()
        assert not stopping.called  # waits without blocking the reactor (their results come through it)
        with pytest.raises(LiveUnavailable):
            await live.get("k0")  # no new calls once stopping
        await stopping
        for write in writes:
            await write
        assert await threads.deferToThread(
            lambda: redis.Redis.from_url(URL).get(f"{prefix}v:k19")) == b"19"
    finally:
        await threads.deferToThread(delete_keys, prefix)
