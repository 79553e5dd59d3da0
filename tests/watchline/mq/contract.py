"""The bus contract (watchline/mq/base.py) as backend-independent checks.

Each ``contract_*`` coroutine takes a ``BusHarness`` around a started bus. test_memory.py and
test_fake.py run them on the in-process bus and the fake (driving a task.Clock);
tests/integration/test_mq_rabbitmq.py runs the very same functions on RabbitMQ.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import pytest
from twisted.internet.defer import Deferred
from twisted.internet.task import Clock, deferLater
from twisted.python.failure import Failure

from watchline.mq.base import BusUnavailable


@dataclass
class BusHarness:
    bus: Any
    clock: Any  # IReactorTime: the reactor for real brokers, a task.Clock otherwise
    dead_letter_queue: str
    max_attempts: int
    queue_name: Callable[[str], str]  # a queue name unique to this test run
    # Delivers what was produced (the fake delivers only by hand); None for real backends.
    pump: Callable[[], Awaitable[Any]] | None = None
    quiet_time: float = 0.3
    timeout: float = 10.0
    unreachable_bus: Callable[[], Awaitable[Any]] | None = None
    # A second bus on the same broker, as another process would have; None when there is no broker.
    second_bus: Callable[[], Awaitable[Any]] | None = None

    async def sleep(self, seconds: float) -> None:
        await deferLater(self.clock, seconds)

    async def eventually(self, predicate: Callable[[], bool], what: str) -> None:
        deadline = self.clock.seconds() + self.timeout
        while True:
            if self.pump is not None:
                await self.pump()
            if predicate():
                return
            if self.clock.seconds() >= deadline:
                raise AssertionError(f"timed out after {self.timeout}s waiting for {what}")
            await self.sleep(0.01)

    async def quiet(self) -> None:
        """Leave time for deliveries that should not happen, so the test can see they did not."""
        if self.pump is not None:
            await self.pump()
        await self.sleep(self.quiet_time)
        if self.pump is not None:
            await self.pump()


def drive(clock: Clock, awaitable: Awaitable[Any], step: float = 0.01, max_steps: int = 100_000) -> Any:
    """Run a coroutine that waits only on ``clock`` to completion, advancing the clock instead of
    sleeping; returns its result or raises its exception."""
    done = Deferred.fromCoroutine(awaitable) if not isinstance(awaitable, Deferred) else awaitable
    outcome: list[Any] = []
    done.addBoth(outcome.append)
    steps = 0
    while not outcome:
        steps += 1
        assert steps <= max_steps, f"not finished after {max_steps * step}s of clock time"
        clock.advance(step)
    if isinstance(outcome[0], Failure):
        outcome[0].raiseException()
    return outcome[0]


def run_on_clock(clock: Clock, contract: Callable[[BusHarness], Awaitable[None]], harness: BusHarness) -> None:
    drive(clock, contract(harness))


def _recorder(into: list, delay: float | None = None, clock: Any = None) -> Callable:
    async def record(routing_key: str, message: dict) -> None:
        into.append((routing_key, message))
        if delay is not None:
            await deferLater(clock, delay)

    return record


# -- routing ---------------------------------------------------------------------------------------

FILTERS = {
    "report.*": ["report.jt808"],
    "report.#": ["report", "report.jt808", "report.jt808.x", "report.gt06.123.sos"],
    "#": ["report", "report.jt808", "report.jt808.x", "report.gt06.123.sos", "incident.opened",
          "incident.opened.sos", "sos"],
    "*.opened": ["incident.opened"],
    "report.*.x": ["report.jt808.x"],
    "#.sos": ["report.gt06.123.sos", "incident.opened.sos", "sos"],
    "incident.#.sos": ["incident.opened.sos"],
}


async def contract_filters_select_by_topic(h: BusHarness) -> None:
    got: dict[str, list] = {filter: [] for filter in FILTERS}
    for filter, into in got.items():
        await h.bus.start_consuming(_recorder(into), filter)
    for key in FILTERS["#"]:
        await h.bus.produce(key, {"key": key})
    await h.eventually(lambda: all(len(got[f]) >= len(keys) for f, keys in FILTERS.items()),
                       "every filter's messages")
    await h.quiet()
    for filter, keys in FILTERS.items():
        assert [key for key, _ in got[filter]] == keys, filter
        assert [message["key"] for _, message in got[filter]] == keys, filter


async def contract_competing_consumers_get_each_message_once(h: BusHarness) -> None:
    queue = h.queue_name("workers")
    first: list = []
    second: list = []
    other = await h.second_bus() if h.second_bus is not None else h.bus
    await h.bus.start_consuming(_recorder(first, 0.002, h.clock), "job.#", queue=queue)
    await other.start_consuming(_recorder(second, 0.002, h.clock), "job.#", queue=queue)
    for n in range(40):
        await h.bus.produce("job.run", {"n": n})
    await h.eventually(lambda: len(first) + len(second) >= 40, "40 deliveries")
    await h.quiet()
    numbers = [message["n"] for _, message in first + second]
    assert sorted(numbers) == list(range(40))  # every message, none twice
    assert first and second, "both competitors should have had work"


async def contract_unnamed_consumers_each_get_all(h: BusHarness) -> None:
    first: list = []
    second: list = []
    await h.bus.start_consuming(_recorder(first), "fleet.#")
    await h.bus.start_consuming(_recorder(second, 0.001, h.clock), "fleet.#")
    for n in range(20):
        await h.bus.produce(f"fleet.truck{n % 3}", {"n": n})
    await h.eventually(lambda: len(first) >= 20 and len(second) >= 20, "20 messages on each consumer")
    await h.quiet()
    assert [m["n"] for _, m in first] == list(range(20))
    assert [m["n"] for _, m in second] == list(range(20))


async def contract_order_kept_per_queue(h: BusHarness) -> None:
    named: list = []
    unnamed: list = []
    await h.bus.start_consuming(_recorder(named, 0, h.clock), "seq.*", queue=h.queue_name("seq"))
    await h.bus.start_consuming(_recorder(unnamed), "seq.*")
    for n in range(100):
        await h.bus.produce(f"seq.v{n % 7}", {"n": n})
    await h.eventually(lambda: len(named) >= 100 and len(unnamed) >= 100, "100 messages on both queues")
    assert [m["n"] for _, m in named] == list(range(100))
    assert [m["n"] for _, m in unnamed] == list(range(100))


async def contract_message_round_trip(h: BusHarness) -> None:
    message = {"plate": "粤B12345", "pos": {"lat": 22.54321, "lon": 114.05, "valid": True},
               "alarms": ["sos", "power_cut"], "speed": 0, "driver": None, "big": 2**53}
    mutated: list = []
    untouched: list = []

    def mutate(routing_key: str, received: dict) -> None:
        received["alarms"].append("mutated")
        mutated.append((routing_key, received))

    def answer_later(routing_key: str, received: dict) -> Deferred:
        untouched.append((routing_key, received))
        return deferLater(h.clock, 0)

    await h.bus.start_consuming(mutate, "report.#")
    await h.bus.start_consuming(answer_later, "report.#")
    await h.bus.produce("report.gt06.粤B12345", message)  # non-ASCII keys are valid UTF-8 routing keys
    message["plate"] = "changed by the producer after produce"
    await h.eventually(lambda: mutated and untouched, "both copies")
    assert untouched[0] == ("report.gt06.粤B12345", {**message, "plate": "粤B12345"})  # snapshot at produce
    assert mutated[0][1]["alarms"] == ["sos", "power_cut", "mutated"]


async def contract_rejects_bad_input_and_keeps_working(h: BusHarness) -> None:
    for key in ["", "a..b", "report.*", "report.#", ".report", 7]:
        with pytest.raises(ValueError):
            await h.bus.produce(key, {"x": 1})
    for message in [["not", "a", "dict"], {"when": object()}, {"n": float("nan")}]:
        with pytest.raises(TypeError):
            await h.bus.produce("report.x", message)
    for filter, queue, prefetch in [("", None, 1), ("a..b", None, 1), ("a.#", None, 0),
                                    ("a.#", "amq.reserved", 1), ("a.#", "", 1)]:
        with pytest.raises(ValueError):
            await h.bus.start_consuming(_recorder([]), filter, queue=queue, prefetch=prefetch)
    got: list = []
    await h.bus.start_consuming(_recorder(got), "report.#")
    await h.bus.produce("report.x", {"still": "working"})
    await h.eventually(lambda: got, "a delivery after the bad input")
    assert got == [("report.x", {"still": "working"})]


async def contract_produce_fails_when_unavailable(h: BusHarness) -> None:
    assert h.unreachable_bus is not None
    bus = await h.unreachable_bus()
    with pytest.raises(BusUnavailable):
        await bus.produce("report.x", {"n": 1})


# -- acknowledgement, redelivery, flow control (not meaningful on the fake) -------------------------

async def contract_ack_only_after_callback_completes(h: BusHarness) -> None:
    got: list = []
    gates: list[Deferred] = []

    def hold(routing_key: str, message: dict) -> Deferred:
        got.append(message["n"])
        gates.append(Deferred())
        return gates[-1]

    await h.bus.start_consuming(hold, "ack.*", queue=h.queue_name("ack"), prefetch=1)
    await h.bus.produce("ack.x", {"n": 0})
    await h.bus.produce("ack.x", {"n": 1})
    await h.eventually(lambda: got, "the first delivery")
    await h.quiet()
    assert got == [0], "the second message must wait until the first callback completed"
    gates[0].callback(None)
    await h.eventually(lambda: len(got) == 2, "the second delivery")
    gates[1].callback(None)
    assert got == [0, 1]


async def contract_prefetch_bounds_in_flight(h: BusHarness) -> None:
    gates: list[Deferred] = []

    def hold(routing_key: str, message: dict) -> Deferred:
        gates.append(Deferred())
        return gates[-1]

    await h.bus.start_consuming(hold, "pf.*", queue=h.queue_name("pf"), prefetch=3)
    for n in range(5):
        await h.bus.produce("pf.x", {"n": n})
    await h.eventually(lambda: len(gates) >= 3, "three deliveries in flight")
    await h.quiet()
    assert len(gates) == 3
    gates[0].callback(None)
    await h.eventually(lambda: len(gates) >= 4, "a fourth delivery once one was acked")
    for gate in gates[1:]:
        gate.callback(None)
    await h.eventually(lambda: len(gates) == 5, "the fifth delivery")
    gates[4].callback(None)


async def contract_failing_callback_is_redelivered_then_dead_lettered(h: BusHarness) -> None:
    attempts: Counter = Counter()
    handled: list[str] = []
    dead: list = []

    async def work(routing_key: str, message: dict) -> None:
        name = message["name"]
        attempts[name] += 1
        await deferLater(h.clock, 0)
        if name == "poison" or (name == "flaky" and attempts[name] == 1):
            raise RuntimeError(f"cannot handle {name}")
        handled.append(name)

    await h.bus.start_consuming(work, "work.*", queue=h.queue_name("work"))
    await h.bus.start_consuming(_recorder(dead), "#", queue=h.dead_letter_queue)
    for name in ["poison", "flaky", "fine"]:
        await h.bus.produce(f"work.{name}", {"name": name})
    await h.eventually(lambda: dead and handled == ["flaky", "fine"], "dead-lettering and the rest handled")
    await h.quiet()
    assert attempts == {"poison": h.max_attempts, "flaky": 2, "fine": 1}
    assert dead == [("work.poison", {"name": "poison"})]  # original key and body
    assert handled == ["flaky", "fine"]  # order kept behind the retried message


async def contract_stop_consuming_waits_for_in_flight(h: BusHarness) -> None:
    queue = h.queue_name("stop")
    got: list = []
    gates: list[Deferred] = []

    def hold(routing_key: str, message: dict) -> Deferred:
        got.append(message["n"])
        gates.append(Deferred())
        return gates[-1]

    consumer = await h.bus.start_consuming(hold, "stop.*", queue=queue)
    await h.bus.produce("stop.x", {"n": 0})
    await h.eventually(lambda: got, "the first delivery")
    stopping = Deferred.fromCoroutine(consumer.stop_consuming())
    await h.quiet()
    assert not stopping.called, "stop_consuming must wait for the callback in flight"
    gates[0].callback(None)
    await h.eventually(lambda: stopping.called, "stop_consuming to finish")
    await stopping
    # The named queue outlives its consumers: what is produced now waits for the next one.
    for n in (1, 2):
        await h.bus.produce("stop.x", {"n": n})
    await h.quiet()
    assert got == [0]
    later: list = []
    await h.bus.start_consuming(_recorder(later), "stop.*", queue=queue)
    await h.eventually(lambda: len(later) >= 2, "the buffered messages")
    assert [m["n"] for _, m in later] == [1, 2]


async def contract_unnamed_queue_ends_with_its_consumer(h: BusHarness) -> None:
    got: list = []
    consumer = await h.bus.start_consuming(_recorder(got), "live.#")
    await h.bus.produce("live.a", {"n": 0})
    await h.eventually(lambda: got, "the first delivery")
    await consumer.stop_consuming()
    await h.bus.produce("live.a", {"n": 1})
    await h.quiet()
    assert [m["n"] for _, m in got] == [0]


COMMON = [
    contract_filters_select_by_topic,
    contract_competing_consumers_get_each_message_once,
    contract_unnamed_consumers_each_get_all,
    contract_order_kept_per_queue,
    contract_message_round_trip,
    contract_rejects_bad_input_and_keeps_working,
    contract_produce_fails_when_unavailable,
    contract_unnamed_queue_ends_with_its_consumer,
]
DELIVERY = [
    contract_ack_only_after_callback_completes,
    contract_prefetch_bounds_in_flight,
    contract_failing_callback_is_redelivered_then_dead_lettered,
    contract_stop_consuming_waits_for_in_flight,
]
ALL = COMMON + DELIVERY
