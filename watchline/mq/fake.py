"""A recording bus for unit tests of the parts that produce or consume messages.

``FakeBus`` checks its input like the real backends (routing keys, filters, JSON bodies), records
every production, and delivers nothing by itself: a test calls ``deliver`` (one message, now) or
``deliver_produced`` (everything produced so far, in order) and awaits the consumers' callbacks,
whose exceptions reach the test. Named queues still compete (round-robin) and each unnamed
consumer gets its own copy, so the bus contract suite can run on it. It does not retry, prefetch or
dead-letter. Set ``unavailable`` to make ``produce`` raise ``BusUnavailable``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from twisted.application.service import Service
from twisted.internet.defer import Deferred, succeed

from watchline.mq.base import (
    BusUnavailable,
    Callback,
    Message,
    check_filter,
    check_prefetch,
    check_routing_key,
    decode_message,
    encode_message,
    topic_matches,
)
from watchline.mq.delivery import call_consumer
from watchline.mq.memory import check_queue_name


@dataclass
class FakeConsumer:
    bus: FakeBus
    callback: Callback
    filter: str
    queue: str | None
    prefetch: int
    delivered: list[tuple[str, Message]] = field(default_factory=list)
    stopped: bool = False

    async def stop_consuming(self) -> None:
        self.stopped = True
        if self in self.bus.consumers:
            self.bus.consumers.remove(self)


class FakeBus(Service):
    name = "mq"

    def __init__(self) -> None:
        self.productions: list[tuple[str, Message]] = []
        self.consumers: list[FakeConsumer] = []
        self.unavailable = False
        self._undelivered = 0  # productions not yet passed to deliver_produced
        self._turns: dict[str, int] = {}  # named queue -> round-robin position

    def startService(self) -> Deferred[None]:
        super().startService()
        return succeed(None)

    def stopService(self) -> Deferred[None]:
        super().stopService()
        return succeed(None)

    async def produce(self, routing_key: str, message: Message) -> None:
        check_routing_key(routing_key)
        body = encode_message(message)
        if self.unavailable:
            raise BusUnavailable("FakeBus.unavailable is set")
        self.productions.append((routing_key, decode_message(body)))  # a copy, as a broker would hold

    async def start_consuming(self, callback: Callback, filter: str, queue: str | None = None,
                              prefetch: int = 1) -> FakeConsumer:
        check_filter(filter)
        check_prefetch(prefetch)
        if queue is not None:
            check_queue_name(queue)
        consumer = FakeConsumer(self, callback, filter, queue, prefetch)
        self.consumers.append(consumer)
        return consumer

    # -- driving deliveries by hand -------------------------------------------------------------

    async def deliver(self, routing_key: str, message: Message) -> int:
        """Hand one message to the consumers whose filter matches it (one per named queue, every
        unnamed one) and await their callbacks; returns how many callbacks ran."""
        check_routing_key(routing_key)
        body = encode_message(message)
        chosen: list[FakeConsumer] = []
        by_queue: dict[str, list[FakeConsumer]] = {}
        for consumer in self.consumers:
            if not topic_matches(consumer.filter, routing_key):
                continue
            if consumer.queue is None:
                chosen.append(consumer)
            else:
                by_queue.setdefault(consumer.queue, []).append(consumer)
        for queue, competitors in by_queue.items():
            turn = self._turns.get(queue, 0)
            self._turns[queue] = turn + 1
            chosen.append(competitors[turn % len(competitors)])
        for consumer in chosen:
            copy = decode_message(body)
            consumer.delivered.append((routing_key, copy))
            pending = call_consumer(consumer.callback, routing_key, copy)
            if pending is not None:
                await pending
        return len(chosen)

    async def deliver_produced(self) -> int:
        """Deliver every production not delivered yet, in order, including those produced by the
        callbacks meanwhile; returns how many productions were delivered."""
        count = 0
        while self._undelivered < len(self.productions):
            routing_key, message = self.productions[self._undelivered]
            self._undelivered += 1
            await self.deliver(routing_key, message)
            count += 1
        return count

    # -- assertions ---------------------------------------------------------------------------

    def produced(self, filter: str = "#") -> list[tuple[str, Message]]:
        return [(key, message) for key, message in self.productions if topic_matches(filter, key)]

    def assert_produced(self, routing_key: str, message: Message | None = None, **fields: Any) -> Message:
        """Assert a message was produced with ``routing_key`` (a filter may be given) and, when
        asked, equal to ``message`` or containing ``fields``; returns the first such message."""
        candidates = self.produced(routing_key)
        for _key, produced in candidates:
            if message is not None and produced != message:
                continue
            if any(name not in produced or produced[name] != value for name, value in fields.items()):
                continue
            return produced
        wanted = message if message is not None else fields or "any message"
        raise AssertionError(f"no production on {routing_key!r} matching {wanted!r}; "
                             f"produced: {self.productions!r}")

    def assert_not_produced(self, routing_key: str = "#") -> None:
        found = self.produced(routing_key)
        if found:
            raise AssertionError(f"unexpected productions on {routing_key!r}: {found!r}")

    def clear(self) -> None:
        self.productions.clear()
        self._undelivered = 0
