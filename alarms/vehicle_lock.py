"""Waiting for a live-state lock that another worker holds for a moment (or a dead one until it expires)."""

from __future__ import annotations

from twisted.internet import task


async def wait_for_lock(live, clock, name: str, ttl: float, what: str):
    """The lock ``name``, retried with a growing pause; after ``2 × ttl`` raises (the message is then
    redelivered). ``what`` names the lock in that error."""
    deadline = clock.seconds() + ttl * 2
    delay = 0.005
    while True:
        lock = await live.acquire_lock(name, ttl=ttl)
        if lock is not None:
            return lock
        if clock.seconds() > deadline:
            raise RuntimeError(f"{what} still held after {ttl * 2:g} s")
        await task.deferLater(clock, delay, lambda: None)
        delay = min(delay * 2, 0.25)
