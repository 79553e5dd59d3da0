"""Live state in Redis (``redis://host:port/db``), shared by every Watchline process.

redis-py's synchronous client runs in a small dedicated thread pool, so the reactor never waits
on Redis; each call is one short command or Lua script, and sockets have timeouts, so a stuck
Redis costs a thread for ``socket_timeout`` at most and surfaces as ``LiveUnavailable``.

Atomicity comes from Redis itself: ``SET NX PX`` for ``set_if_absent`` and locks, and Lua
scripts (run atomically by Redis) for compare-and-delete / compare-and-extend of a lock token
and for the newer-time-wins rule of ``set_position``.

Keys, under a prefix (default ``watchline:``): ``v:<key>`` values, ``lock:<name>`` locks, and two
hashes ``positions`` (vehicle → JSON) and ``position_times`` (vehicle → µs since the epoch).
"""

from __future__ import annotations

import secrets
from collections.abc import Callable
from typing import Any, TypeVar

import redis
from twisted.application.service import Service
from twisted.internet.defer import Deferred, DeferredList, succeed
from twisted.internet.threads import deferToThreadPool
from twisted.python.threadpool import ThreadPool

from watchline.live.base import (
    LiveUnavailable,
    Lock,
    check_name,
    check_ttl,
    decode_value,
    encode_value,
    position_time_us,
    ttl_milliseconds,
)

T = TypeVar("T")

# KEYS: positions, position_times. ARGV: vehicle, time in µs, position JSON.
SET_POSITION = """
local stored = redis.call('HGET', KEYS[2], ARGV[1])
if stored and tonumber(stored) > tonumber(ARGV[2]) then
  return 0
end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[3])
redis.call('HSET', KEYS[2], ARGV[1], ARGV[2])
return 1
"""

# KEYS: the lock. ARGV: token.
RELEASE_LOCK = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
"""

# KEYS: the lock. ARGV: token, ttl in ms.
EXTEND_LOCK = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return 0
"""

# What a dead or unreachable Redis looks like to redis-py; anything else is a bug to surface.
_UNAVAILABLE = (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError,
                redis.exceptions.BusyLoadingError)


class RedisLiveState(Service):
    shared = True  # seen by every worker process
    name = "live"

    def __init__(self, reactor: Any, url: str = "redis://127.0.0.1:6379/0", prefix: str = "watchline:",
                 threads: int = 4, socket_timeout: float = 5.0, connect_timeout: float = 2.0) -> None:
        self._reactor = reactor
        self.prefix = prefix
        self._pool = ThreadPool(minthreads=1, maxthreads=threads, name="watchline-live-redis")
        # One connection per thread at most, so redis-py's pool never runs out.
        self._redis = redis.Redis.from_url(url, max_connections=threads, socket_timeout=socket_timeout,
                                           socket_connect_timeout=connect_timeout, health_check_interval=30)
        self._set_position = self._redis.register_script(SET_POSITION)
        self._release_lock = self._redis.register_script(RELEASE_LOCK)
        self._extend_lock = self._redis.register_script(EXTEND_LOCK)
        self._positions_key = f"{prefix}positions"
        self._position_times_key = f"{prefix}position_times"
        self._in_flight: set[Deferred[Any]] = set()

    def startService(self) -> Deferred[None]:
        super().startService()
        self._pool.start()
        return succeed(None)

    def stopService(self) -> Deferred[None]:
        """Refuse new calls, wait for those running, then stop the threads and close connections."""
        super().stopService()
        waiting = DeferredList([call for call in self._in_flight], consumeErrors=True)

        def shut(_: object) -> None:
            self._pool.stop()  # joins idle threads: quick, nothing is running any more
            self._redis.connection_pool.disconnect()

        return waiting.addCallback(shut)

    async def _call(self, operation: Callable[[], T]) -> T:
        if not self.running:
            raise LiveUnavailable("Redis live state is not started")
        call = deferToThreadPool(self._reactor, self._pool, operation)
        self._in_flight.add(call)
        try:
            return await call
        except _UNAVAILABLE as e:
            raise LiveUnavailable(f"Redis: {e}") from e
        finally:
            self._in_flight.discard(call)

    def _value_key(self, key: str) -> str:
        return f"{self.prefix}v:{key}"

    def _lock_key(self, name: str) -> str:
        return f"{self.prefix}lock:{name}"

    async def set_position(self, vehicle: str, position: dict[str, Any]) -> None:
        check_name("vehicle", vehicle)
        moment = position_time_us(position)
        text = encode_value(position)
        keys = [self._positions_key, self._position_times_key]
        await self._call(lambda: self._set_position(keys=keys, args=[vehicle, moment, text]))

    async def get_position(self, vehicle: str) -> dict[str, Any] | None:
        return decode_value(await self._call(lambda: self._redis.hget(self._positions_key, vehicle)))

    async def get_positions(self, vehicles: list[str]) -> dict[str, dict[str, Any]]:
        if not vehicles:
            return {}
        texts = await self._call(lambda: self._redis.hmget(self._positions_key, vehicles))
        return {vehicle: decode_value(text) for vehicle, text in zip(vehicles, texts, strict=True) if text is not None}

    async def set(self, key: str, value: Any, ttl: float | None = None) -> None:
        check_name("key", key)
        check_ttl(ttl)
        text = encode_value(value)
        px = None if ttl is None else ttl_milliseconds(ttl)
        await self._call(lambda: self._redis.set(self._value_key(key), text, px=px))

    async def set_if_absent(self, key: str, value: Any, ttl: float | None = None) -> bool:
        check_name("key", key)
        check_ttl(ttl)
        text = encode_value(value)
        px = None if ttl is None else ttl_milliseconds(ttl)
        return bool(await self._call(lambda: self._redis.set(self._value_key(key), text, px=px, nx=True)))

    async def get(self, key: str) -> Any | None:
        return decode_value(await self._call(lambda: self._redis.get(self._value_key(key))))

    async def delete(self, key: str) -> None:
        await self._call(lambda: self._redis.delete(self._value_key(key)))

    async def acquire_lock(self, name: str, ttl: float) -> Lock | None:
        check_name("lock name", name)
        check_ttl(ttl, optional=False)
        token = secrets.token_hex(16)
        taken = await self._call(lambda: self._redis.set(self._lock_key(name), token, px=ttl_milliseconds(ttl), nx=True))
        return Lock(name, token) if taken else None

    async def extend_lock(self, lock: Lock, ttl: float) -> bool:
        check_ttl(ttl, optional=False)
        key = self._lock_key(lock.name)
        return bool(await self._call(lambda: self._extend_lock(keys=[key], args=[lock.token, ttl_milliseconds(ttl)])))

    async def release_lock(self, lock: Lock) -> bool:
        key = self._lock_key(lock.name)
        return bool(await self._call(lambda: self._release_lock(keys=[key], args=[lock.token])))
