"""The in-process bus: the shared contract on a task.Clock, plus what only it promises."""

from __future__ import annotations

import itertools

import pytest
from twisted.internet.defer import Deferred
from twisted.internet.task import Clock

from tests.watchline.mq import contract
from tests.watchline.mq.contract import drive
from watchline.mq.base import DEAD_LETTER_QUEUE, BusUnavailable
from watchline.mq.delivery import Redelivery
from watchline.mq.memory import MemoryBus

MAX_ATTEMPTS = 3


def started_bus(clock: Clock, **options) -> MemoryBus:
    bus = MemoryBus(clock, redelivery=Redelivery(max_attempts=MAX_ATTEMPTS, delay=0.05), **options)
    bus.startService()
    return bus


def harness(clock: Clock) -> contract.BusHarness:
    names = itertools.count()

    async def stopped_bus() -> MemoryBus:
        bus = started_bus(clock)
        await bus.stopService()
        return bus

    return contract.BusHarness(
        bus=started_bus(clock), clock=clock, dead_letter_queue=DEAD_LETTER_QUEUE, max_attempts=MAX_ATTEMPTS,
        queue_name=lambda base: f"{base}.{next(names)}", unreachable_bus=stopped_bus)


@pytest.mark.parametrize("check", contract.ALL, ids=lambda check: check.__name__)
def test_contract(check) -> None:
    clock = Clock()
    contract.run_on_clock(clock, check, harness(clock))


def test_delivery_never_happens_inside_produce() -> None:
    clock = Clock()
    bus = started_bus(clock)
    got: list = []
    drive(clock, bus.start_consuming(lambda key, message: got.append(message), "a.#"))
    drive(clock, bus.produce("a.b", {"n": 1}))
    assert got == []  # produce returned before any consumer ran
    clock.advance(0)
    assert got == [{"n": 1}]


def test_stop_service_waits_in_flight_and_restart_resumes_consumers() -> None:
    clock = Clock()
    bus = started_bus(clock)
    gates: list[Deferred] = []

    def hold(key: str, message: dict) -> Deferred:
        gates.append(Deferred())
        return gates[-1]

    drive(clock, bus.start_consuming(hold, "a.#", queue="workers"))
    drive(clock, bus.produce("a.b", {"n": 1}))
    clock.advance(0)
    stopped = bus.stopService()
    assert not stopped.called
    with pytest.raises(BusUnavailable):
        drive(clock, bus.produce("a.b", {"n": 2}))
    gates[0].callback(None)
    assert stopped.called
    bus.startService()
    drive(clock, bus.produce("a.b", {"n": 3}))
    clock.advance(0)
    assert len(gates) == 2  # the same consumer, still registered, got the next message


def test_stop_service_requeues_a_message_waiting_for_retry_without_waiting() -> None:
    clock = Clock()
    bus = MemoryBus(clock, redelivery=Redelivery(max_attempts=5, delay=60))
    bus.startService()
    calls: list = []

    def fail_first(key: str, message: dict) -> None:
        calls.append(message)
        if len(calls) == 1:
            raise RuntimeError("transient")

    drive(clock, bus.start_consuming(fail_first, "a.#", queue="workers"))
    drive(clock, bus.produce("a.b", {"n": 1}))
    clock.advance(0)
    stopped = bus.stopService()
    assert stopped.called  # did not wait the 60 s retry delay
    bus.startService()
    clock.advance(0)
    assert calls == [{"n": 1}, {"n": 1}]


def test_a_binding_added_later_is_routed_to() -> None:
    clock = Clock()
    bus = started_bus(clock)
    first: list = []
    later: list = []
    drive(clock, bus.start_consuming(lambda key, m: first.append(m), "a.*"))
    drive(clock, bus.produce("a.b", {"n": 1}))  # the route for "a.b" is now cached
    drive(clock, bus.start_consuming(lambda key, m: later.append(m), "#.b"))
    drive(clock, bus.produce("a.b", {"n": 2}))
    clock.advance(0)
    assert first == [{"n": 1}, {"n": 2}]
    assert later == [{"n": 2}]


def test_unroutable_messages_are_dropped_and_a_flood_lets_other_timers_run() -> None:
    clock = Clock()
    bus = started_bus(clock, batch=10)
    got: list = []

    def record(key: str, message: dict) -> None:
        if not got:
            clock.callLater(0, got.append, "other timer")
        got.append(message["n"])

    drive(clock, bus.produce("nobody.listens", {"n": 0}))
    drive(clock, bus.start_consuming(record, "flood.*"))
    for n in range(25):
        drive(clock, bus.produce("flood.x", {"n": n}))
    clock.advance(0)
    # One turn delivers at most `batch` messages; a timer due meanwhile runs before the next batch.
    assert got == list(range(10)) + ["other timer"] + list(range(10, 25))


def test_a_failing_dead_letter_consumer_drops_after_max_attempts() -> None:
    clock = Clock()
    bus = started_bus(clock)
    calls: list = []

    def broken(key: str, message: dict) -> None:
        calls.append(key)
        raise RuntimeError("broken")

    drive(clock, bus.start_consuming(broken, "#", queue="workers"))
    drive(clock, bus.start_consuming(broken, "#", queue=DEAD_LETTER_QUEUE))
    drive(clock, bus.produce("a.b", {"n": 1}))
    for _ in range(100):
        clock.advance(0.05)
    assert len(calls) == 2 * MAX_ATTEMPTS  # tried on its queue, then on the dead-letter queue, then gone


def test_coroutine_and_deferred_failures_count_as_failures() -> None:
    clock = Clock()
    bus = started_bus(clock)
    attempts: list = []
    dead: list = []

    async def failing_coroutine(key: str, message: dict) -> None:
        attempts.append(key)
        raise ValueError("bad data")

    drive(clock, bus.start_consuming(failing_coroutine, "x.#", queue="workers"))
    drive(clock, bus.start_consuming(lambda key, m: dead.append(key), "#", queue=DEAD_LETTER_QUEUE))
    drive(clock, bus.produce("x.y", {"n": 1}))
    for _ in range(100):
        clock.advance(0.05)
    assert attempts == ["x.y"] * MAX_ATTEMPTS
    assert dead == ["x.y"]
