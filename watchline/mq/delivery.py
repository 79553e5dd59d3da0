"""How a consumer callback is run and how often a failing message is tried again.

Shared by the in-process and RabbitMQ backends so both keep the same delivery contract: the
callback may return a plain value, a Deferred or a coroutine; the message counts as handled only
when that completes; a failing message is retried with a growing delay and, after
``max_attempts`` tries, dead-lettered.
"""

from __future__ import annotations

from collections.abc import Coroutine, Generator
from dataclasses import dataclass
from types import CoroutineType
from typing import Any

from twisted.internet.defer import Deferred

from watchline.mq.base import DEFAULT_MAX_ATTEMPTS, Callback, Message


def call_consumer(callback: Callback, routing_key: str, message: Message) -> Deferred | None:
    """Call ``callback``; None when it finished synchronously, else a Deferred of its completion.

    A synchronous exception propagates to the caller, which treats it like a failed Deferred.
    """
    result = callback(routing_key, message)
    if type(result) is CoroutineType:
        return _start(result)
    if isinstance(result, Deferred):
        return result
    if isinstance(result, Coroutine):
        return Deferred.fromCoroutine(result)
    return None


def _start(coroutine: CoroutineType) -> Deferred | None:
    """Run a coroutine's first step right away. Many callbacks finish there, and then the cost of
    Twisted's coroutine driver (a large part of a delivery's cost) is saved; the others continue
    under ``Deferred.fromCoroutine`` from where they stopped."""
    try:
        awaited = coroutine.send(None)
    except StopIteration:
        return None
    return Deferred.fromCoroutine(_resume(coroutine, awaited))


def _resume(coroutine: CoroutineType, awaited: Any) -> Generator[Any, Any, Any]:
    # Twisted's driver sends what the yielded Deferred produced, or throws its failure, into this
    # generator; both are passed on to the coroutine until it finishes.
    while True:
        try:
            try:
                result = yield awaited
            except GeneratorExit:
                coroutine.close()
                raise
            except BaseException as error:
                awaited = coroutine.throw(error)
            else:
                awaited = coroutine.send(result)
        except StopIteration as finished:
            return finished.value


@dataclass(frozen=True)
class Redelivery:
    """Bounded redelivery: ``max_attempts`` tries in all, spaced ``delay``, doubling up to ``max_delay``."""

    max_attempts: int = DEFAULT_MAX_ATTEMPTS
    delay: float = 0.5
    max_delay: float = 30.0

    def __post_init__(self) -> None:
        if not isinstance(self.max_attempts, int) or self.max_attempts < 1:
            raise ValueError(f"max_attempts must be an integer >= 1, not {self.max_attempts!r}")
        if self.delay < 0 or self.max_delay < 0:
            raise ValueError("redelivery delays must not be negative")

    def delay_after(self, attempts: int) -> float:
        """Seconds to wait before the next try, ``attempts`` tries having failed."""
        return min(self.delay * 2 ** max(attempts - 1, 0), self.max_delay)

    def exhausted(self, attempts: int) -> bool:
        return attempts >= self.max_attempts
