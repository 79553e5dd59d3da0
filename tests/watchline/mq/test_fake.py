"""The recording fake: the routing half of the bus contract, plus its test helpers."""

from __future__ import annotations

import itertools

import pytest
from twisted.internet.task import Clock

from tests.watchline.mq import contract
from watchline.mq.base import DEAD_LETTER_QUEUE, BusUnavailable
from watchline.mq.fake import FakeBus


def harness(clock: Clock) -> contract.BusHarness:
    bus = FakeBus()
    names = itertools.count()

    async def unavailable_bus() -> FakeBus:
        down = FakeBus()
        down.unavailable = True
        return down

    return contract.BusHarness(
        bus=bus, clock=clock, dead_letter_queue=DEAD_LETTER_QUEUE, max_attempts=1,
        queue_name=lambda base: f"{base}.{next(names)}", pump=bus.deliver_produced,
        unreachable_bus=unavailable_bus)


@pytest.mark.parametrize("check", contract.COMMON, ids=lambda check: check.__name__)
def test_contract(check) -> None:
    clock = Clock()
    contract.run_on_clock(clock, check, harness(clock))


def run(coroutine):
    return contract.drive(Clock(), coroutine)


def test_records_productions_and_asserts_on_them() -> None:
    bus = FakeBus()
    run(bus.produce("incident.opened", {"id": 7, "plate": "粤B12345", "severity": "emergency"}))
    run(bus.produce("report.jt808.1", {"n": 1}))
    assert bus.assert_produced("incident.opened", severity="emergency")["id"] == 7
    bus.assert_produced("incident.*", {"id": 7, "plate": "粤B12345", "severity": "emergency"})
    bus.assert_produced("report.#")
    with pytest.raises(AssertionError, match="no production"):
        bus.assert_produced("incident.opened", severity="routine")
    with pytest.raises(AssertionError, match="no production"):
        bus.assert_produced("incident.resolved")
    bus.assert_not_produced("incident.resolved")
    with pytest.raises(AssertionError, match="unexpected"):
        bus.assert_not_produced("report.#")
    assert bus.produced("report.#") == [("report.jt808.1", {"n": 1})]
    bus.clear()
    bus.assert_not_produced()


def test_unavailable_refuses_and_records_nothing() -> None:
    bus = FakeBus()
    bus.unavailable = True
    with pytest.raises(BusUnavailable):
        run(bus.produce("a.b", {"n": 1}))
    assert bus.productions == []


def test_deliver_by_hand_reaches_matching_consumers_and_raises_their_errors() -> None:
    bus = FakeBus()
    got: list = []

    async def failing(key: str, message: dict) -> None:
        raise RuntimeError("consumer bug")

    run(bus.start_consuming(lambda key, message: got.append((key, message)), "report.*"))
    assert run(bus.deliver("report.x", {"n": 1})) == 1
    assert run(bus.deliver("other.x", {"n": 2})) == 0
    assert got == [("report.x", {"n": 1})]
    run(bus.start_consuming(failing, "report.*", queue="workers"))
    with pytest.raises(RuntimeError, match="consumer bug"):
        run(bus.deliver("report.x", {"n": 3}))
    assert bus.consumers[0].delivered == [("report.x", {"n": 1}), ("report.x", {"n": 3})]
