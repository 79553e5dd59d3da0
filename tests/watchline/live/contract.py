"""The live-state contract (watchline/live/base.py) as backend-independent checks.

test_memory.py runs every ``contract_*`` coroutine on the in-memory backend with a task.Clock;
tests/integration/test_live_redis.py runs the same functions on Redis with real time.
"""

from __future__ import annotations

import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import pytest
from twisted.internet.defer import Deferred, gatherResults
from twisted.internet.task import deferLater

from watchline.live.base import Lock


@dataclass
class LiveHarness:
    live: Any  # a started LiveState
    other: Any  # a second handle on the same state, as another process would hold
    clock: Any

    async def elapse(self, seconds: float) -> None:
        await deferLater(self.clock, seconds)


def concurrently(*calls: Awaitable[Any]) -> Deferred:
    return gatherResults([Deferred.fromCoroutine(call) for call in calls])


async def contract_values_round_trip(h: LiveHarness) -> None:
    assert await h.live.get("missing") is None
    for value in [{"agent": "a7", "state": "ready", "skills": ["zh", "en"]}, [1, 2.5, None], "text", 0, False]:
        await h.live.set("k", value)
        assert await h.other.get("k") == value
    stored = {"queue": ["i1", "i2"]}
    await h.live.set("q", stored)
    stored["queue"].append("changed after set")
    fetched = await h.live.get("q")
    fetched["queue"].append("changed after get")
    assert await h.live.get("q") == {"queue": ["i1", "i2"]}
    await h.other.delete("q")
    assert await h.live.get("q") is None
    await h.live.delete("never-set")  # deleting a missing key is fine


async def contract_values_expire_after_their_ttl(h: LiveHarness) -> None:
    await h.live.set("short", "v", ttl=0.25)
    await h.live.set("kept", "v")
    await h.live.set("cleared", "v", ttl=0.25)
    await h.live.set("cleared", "v2")  # a set without ttl makes the key permanent again
    assert await h.other.get("short") == "v"
    await h.elapse(0.5)
    assert await h.other.get("short") is None
    assert await h.live.get("kept") == "v"
    assert await h.live.get("cleared") == "v2"


async def contract_set_if_absent_is_atomic(h: LiveHarness) -> None:
    assert await h.live.set_if_absent("once", {"by": "first"}, ttl=0.25) is True
    assert await h.other.set_if_absent("once", {"by": "second"}) is False
    assert await h.live.get("once") == {"by": "first"}
    await h.elapse(0.5)
    assert await h.other.set_if_absent("once", {"by": "after expiry"}) is True
    results = await concurrently(*[store.set_if_absent("race", n) for n, store in enumerate([h.live, h.other] * 5)])
    assert results.count(True) == 1
    assert await h.live.get("race") == results.index(True)


async def contract_lock_has_one_holder(h: LiveHarness) -> None:
    first = await h.live.acquire_lock("incident:42", ttl=5)
    assert isinstance(first, Lock) and first.name == "incident:42" and first.token
    assert await h.other.acquire_lock("incident:42", ttl=5) is None
    assert await h.other.acquire_lock("incident:43", ttl=5) is not None  # other names are independent
    assert await h.other.release_lock(Lock("incident:42", "forged-token")) is False
    assert await h.other.extend_lock(Lock("incident:42", "forged-token"), ttl=60) is False
    assert await h.other.acquire_lock("incident:42", ttl=5) is None  # still held by the first
    assert await h.live.release_lock(first) is True
    assert await h.live.release_lock(first) is False  # already released
    second = await h.other.acquire_lock("incident:42", ttl=5)
    assert second is not None and second.token != first.token
    results = await concurrently(*[store.acquire_lock("truck:7", ttl=5) for store in [h.live, h.other] * 5])
    assert sum(result is not None for result in results) == 1


async def contract_lock_expires_and_the_old_token_is_refused(h: LiveHarness) -> None:
    old = await h.live.acquire_lock("dispatch", ttl=0.25)
    assert old is not None
    await h.elapse(0.5)
    new = await h.other.acquire_lock("dispatch", ttl=5)
    assert new is not None
    assert await h.live.release_lock(old) is False  # expired and taken: must not free the new holder
    assert await h.live.extend_lock(old, ttl=5) is False
    assert await h.live.acquire_lock("dispatch", ttl=5) is None
    assert await h.other.release_lock(new) is True


async def contract_extend_lock_keeps_it(h: LiveHarness) -> None:
    lock = await h.live.acquire_lock("campaign", ttl=0.4)
    assert lock is not None
    await h.elapse(0.2)
    assert await h.live.extend_lock(lock, ttl=0.8) is True
    await h.elapse(0.4)  # past the first ttl, within the extension
    assert await h.other.acquire_lock("campaign", ttl=5) is None
    await h.elapse(0.6)
    assert await h.other.acquire_lock("campaign", ttl=5) is not None


def position(time: str, lat: float = 22.5) -> dict:
    return {"time": time, "lat": lat, "lon": 114.05, "speed_kmh": 30.0, "valid": True, "alarms": []}


async def contract_newer_position_wins(h: LiveHarness) -> None:
    assert await h.live.get_position("粤B12345") is None
    await h.live.set_position("粤B12345", position("2024-05-01T10:00:00Z", lat=1))
    await h.other.set_position("粤B12345", position("2024-05-01T09:59:59.999Z", lat=2))  # late report
    assert (await h.live.get_position("粤B12345"))["lat"] == 1
    # The same instant written another way is not older; a later one wins whatever its format.
    await h.other.set_position("粤B12345", position("2024-05-01T12:00:00+02:00", lat=3))
    assert (await h.live.get_position("粤B12345"))["lat"] == 3
    await h.live.set_position("粤B12345", position("2024-05-01T10:00:00.5+00:00", lat=4))
    assert await h.other.get_position("粤B12345") == position("2024-05-01T10:00:00.5+00:00", lat=4)
    # "...00.5Z" sorts before "...00Z" as text; ordering must be by instant.
    await h.live.set_position("粤B12345", position("2024-05-01T10:00:00Z", lat=5))
    assert (await h.live.get_position("粤B12345"))["lat"] == 4


async def contract_concurrent_positions_keep_the_newest(h: LiveHarness) -> None:
    times = [f"2024-05-01T10:{minute:02d}:00Z" for minute in range(30)]
    random.Random(3).shuffle(times)
    writes = [store.set_position("truck-1", position(time)) for time, store in zip(times, [h.live, h.other] * 15, strict=True)]
    await concurrently(*writes)
    assert (await h.live.get_position("truck-1"))["time"] == "2024-05-01T10:29:00Z"


async def contract_positions_of_many_vehicles(h: LiveHarness) -> None:
    await h.live.set_position("a", position("2024-05-01T10:00:00Z", lat=1))
    await h.other.set_position("b", position("2024-05-01T10:00:00Z", lat=2))
    found = await h.live.get_positions(["a", "missing", "b"])
    assert {vehicle: p["lat"] for vehicle, p in found.items()} == {"a": 1, "b": 2}
    assert await h.live.get_positions([]) == {}


async def contract_rejects_bad_input(h: LiveHarness) -> None:
    for bad in [{"lat": 1}, {"time": "yesterday"}, {"time": 1714557600}, {"time": None}]:
        with pytest.raises(ValueError):
            await h.live.set_position("v", bad)
    with pytest.raises(TypeError):
        await h.live.set_position("v", ["2024-05-01T10:00:00Z"])
    with pytest.raises(ValueError):
        await h.live.set_position("", position("2024-05-01T10:00:00Z"))
    for ttl in [0, -1, float("nan"), float("inf"), "5"]:
        with pytest.raises(ValueError):
            await h.live.set("k", 1, ttl=ttl)
        with pytest.raises(ValueError):
            await h.live.acquire_lock("l", ttl=ttl)
    with pytest.raises(ValueError):
        await h.live.acquire_lock("l", ttl=None)
    with pytest.raises(ValueError):
        await h.live.set("", 1)
    with pytest.raises(TypeError):
        await h.live.set("k", {"when": object()})
    with pytest.raises(TypeError):
        await h.live.set_if_absent("k", float("nan"))
    assert await h.live.get("k") is None  # nothing was written by the refused calls
    await h.live.set("k", "still working")
    assert await h.other.get("k") == "still working"


ALL: list[Callable[[LiveHarness], Awaitable[None]]] = [
    contract_values_round_trip,
    contract_values_expire_after_their_ttl,
    contract_set_if_absent_is_atomic,
    contract_lock_has_one_holder,
    contract_lock_expires_and_the_old_token_is_refused,
    contract_extend_lock_keeps_it,
    contract_newer_position_wins,
    contract_concurrent_positions_keep_the_newest,
    contract_positions_of_many_vehicles,
    contract_rejects_bad_input,
]
