"""Live state in this process (``memory://``): the embedded default.

Keeps the contract of ``watchline.live.base`` with dicts: values and positions are stored as JSON
text (so callers cannot change stored state through a returned object, and a value that would
not survive Redis fails here too), expiry follows the injected clock, and locks carry random
tokens. Single-threaded: every operation runs whole in the reactor thread, which is what makes
``set_if_absent``, ``acquire_lock`` and ``set_position`` atomic here.
"""

from __future__ import annotations

import heapq
import itertools
import secrets
from typing import Any

from twisted.application.service import Service
from twisted.internet.defer import Deferred, succeed
from twisted.internet.interfaces import IReactorTime

from watchline.live.base import (
    LiveUnavailable,
    Lock,
    check_name,
    check_ttl,
    decode_value,
    encode_value,
    position_time_us,
)


class _Expiring:
    """Entries that may expire: looked up lazily, purged in bulk from a heap of deadlines."""

    def __init__(self, clock: IReactorTime) -> None:
        self._clock = clock
        self._entries: dict[str, tuple[str, float | None]] = {}  # key -> (text, deadline)
        self._deadlines: list[tuple[float, str]] = []

    def get(self, key: str) -> str | None:
        entry = self._entries.get(key)
        if entry is None:
            return None
        if entry[1] is not None and entry[1] <= self._clock.seconds():
            del self._entries[key]
            return None
        return entry[0]

    def put(self, key: str, text: str, ttl: float | None) -> None:
        self._purge()
        deadline = None if ttl is None else self._clock.seconds() + ttl
        self._entries[key] = (text, deadline)
        if deadline is not None:
            heapq.heappush(self._deadlines, (deadline, key))

    def delete(self, key: str) -> None:
        self._entries.pop(key, None)

    def _purge(self) -> None:
        # Without this, keys written once with a TTL and never read again would pile up.
        now = self._clock.seconds()
        deadlines = self._deadlines
        while deadlines and deadlines[0][0] <= now:
            deadline, key = heapq.heappop(deadlines)
            entry = self._entries.get(key)
            if entry is not None and entry[1] == deadline:  # not rewritten since
                del self._entries[key]

    def __len__(self) -> int:
        return len(self._entries)


class MemoryLiveState(Service):
    shared = False  # one process's memory: never seen by another worker
    name = "live"

    def __init__(self, clock: IReactorTime) -> None:
        self._values = _Expiring(clock)
        self._locks = _Expiring(clock)
        self._token_prefix = secrets.token_hex(8)
        self._token_counter = itertools.count()
        self._positions: dict[str, tuple[int, str]] = {}  # vehicle -> (time in µs, JSON)

    def startService(self) -> Deferred[None]:
        super().startService()
        return succeed(None)

    def stopService(self) -> Deferred[None]:
        super().stopService()
        return succeed(None)

    def _check_running(self) -> None:
        # Refused like Redis refuses before start, so a wrong start order shows up in embedded runs too.
        if not self.running:
            raise LiveUnavailable("in-memory live state is not started")

    async def set_position(self, vehicle: str, position: dict[str, Any]) -> None:
        self._check_running()
        check_name("vehicle", vehicle)
        moment = position_time_us(position)
        text = encode_value(position)
        current = self._positions.get(vehicle)
        if current is None or current[0] <= moment:
            self._positions[vehicle] = (moment, text)

    async def get_position(self, vehicle: str) -> dict[str, Any] | None:
        self._check_running()
        current = self._positions.get(vehicle)
        return None if current is None else decode_value(current[1])

    async def get_positions(self, vehicles: list[str]) -> dict[str, dict[str, Any]]:
        self._check_running()
        found = {}
        for vehicle in vehicles:
            current = self._positions.get(vehicle)
            if current is not None:
                found[vehicle] = decode_value(current[1])
        return found

    async def set(self, key: str, value: Any, ttl: float | None = None) -> None:
        self._check_running()
        check_name("key", key)
        check_ttl(ttl)
        self._values.put(key, encode_value(value), ttl)

    async def set_if_absent(self, key: str, value: Any, ttl: float | None = None) -> bool:
        self._check_running()
        check_name("key", key)
        check_ttl(ttl)
        text = encode_value(value)
        if self._values.get(key) is not None:
            return False
        self._values.put(key, text, ttl)
        return True

    async def get(self, key: str) -> Any | None:
        self._check_running()
        return decode_value(self._values.get(key))

    async def delete(self, key: str) -> None:
        self._check_running()
        self._values.delete(key)

    async def acquire_lock(self, name: str, ttl: float) -> Lock | None:
        self._check_running()
        check_name("lock name", name)
        check_ttl(ttl, optional=False)
        if self._locks.get(name) is not None:
            return None
        token = f"{self._token_prefix}{next(self._token_counter):x}"  # unique, and no syscall per lock
        self._locks.put(name, token, ttl)
        return Lock(name, token)

    async def extend_lock(self, lock: Lock, ttl: float) -> bool:
        self._check_running()
        check_ttl(ttl, optional=False)
        if self._locks.get(lock.name) != lock.token:
            return False
        self._locks.put(lock.name, lock.token, ttl)
        return True

    async def release_lock(self, lock: Lock) -> bool:
        self._check_running()
        if self._locks.get(lock.name) != lock.token:
            return False
        self._locks.delete(lock.name)
        return True
