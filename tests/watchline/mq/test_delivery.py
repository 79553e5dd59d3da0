"""Running consumer callbacks of every shape, and the redelivery schedule."""

from __future__ import annotations

import pytest
from twisted.internet.defer import Deferred, succeed
from twisted.internet.task import Clock, deferLater

from tests.watchline.mq.contract import drive
from watchline.mq.delivery import Redelivery, call_consumer


def test_plain_callback_finishes_synchronously() -> None:
    calls: list = []
    assert call_consumer(lambda key, message: calls.append((key, message)), "a.b", {"n": 1}) is None
    assert calls == [("a.b", {"n": 1})]


def test_synchronous_exception_propagates() -> None:
    def broken(key: str, message: dict) -> None:
        raise KeyError("x")

    with pytest.raises(KeyError):
        call_consumer(broken, "a", {})


def test_coroutine_that_never_waits_needs_no_deferred() -> None:
    async def quick(key: str, message: dict) -> None:
        await succeed(None)

    assert call_consumer(quick, "a", {}) is None


def test_coroutine_that_waits_completes_through_its_deferred() -> None:
    clock = Clock()
    steps: list = []
    gate: Deferred = Deferred()

    async def slow(key: str, message: dict) -> str:
        steps.append("start")
        await deferLater(clock, 1)
        steps.append(await gate)
        try:
            await deferLater(clock, 1, lambda: 1 / 0)
        except ZeroDivisionError:
            steps.append("caught")
        return "done"

    pending = call_consumer(slow, "a", {})
    assert isinstance(pending, Deferred) and steps == ["start"]
    clock.advance(1)
    gate.callback("gate")
    clock.advance(1)
    assert steps == ["start", "gate", "caught"]
    assert drive(clock, pending) == "done"


def test_coroutine_failure_after_waiting_fails_the_deferred() -> None:
    clock = Clock()

    async def fails_later(key: str, message: dict) -> None:
        await deferLater(clock, 1)
        raise ValueError("bad")

    pending = call_consumer(fails_later, "a", {})
    with pytest.raises(ValueError):
        drive(clock, pending)


def test_deferred_callback_is_returned_as_is() -> None:
    gate: Deferred = Deferred()
    assert call_consumer(lambda key, message: gate, "a", {}) is gate


def test_redelivery_doubles_its_delay_up_to_the_limit() -> None:
    policy = Redelivery(max_attempts=4, delay=0.5, max_delay=1.5)
    assert [policy.delay_after(n) for n in (1, 2, 3, 4)] == [0.5, 1.0, 1.5, 1.5]
    assert not policy.exhausted(3) and policy.exhausted(4)


@pytest.mark.parametrize("options", [{"max_attempts": 0}, {"delay": -1}, {"max_attempts": 1.5}])
def test_bad_redelivery_settings_are_refused(options) -> None:
    with pytest.raises(ValueError):
        Redelivery(**options)
