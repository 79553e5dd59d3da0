"""The in-process bus (``memory://``): the embedded default, one process, nothing on disk.

It keeps the delivery contract of ``watchline.mq.base`` with plain Python structures: named queues
(shared by competing consumers, kept while nobody consumes), transient queues for unnamed
consumers, topic bindings, ack after the callback completes, bounded redelivery and a dead-letter
queue. Delivery always happens in a later reactor turn driven by the injected clock, never from
inside ``produce``, so a producer is never re-entered by its own consumers.

Messages live in memory only: what is queued when the process stops is lost (logged). Production
deployments that need more use ``amqp://``.
"""

from __future__ import annotations

import itertools
from collections import deque
from typing import Any

from twisted.application.service import Service
from twisted.internet.defer import Deferred, DeferredList, succeed
from twisted.internet.interfaces import IDelayedCall, IReactorTime
from twisted.logger import Logger
from twisted.python.failure import Failure

from watchline.mq.base import (
    DEAD_LETTER_QUEUE,
    BusUnavailable,
    Callback,
    Message,
    check_filter,
    check_prefetch,
    check_routing_key,
    decode_message,
    encode_message,
    topic_regex,
)
from watchline.mq.delivery import Redelivery, call_consumer

log = Logger()


def check_queue_name(queue: str) -> None:
    if not isinstance(queue, str) or not queue or len(queue.encode()) > 255:
        raise ValueError(f"queue name must be a non-empty string of at most 255 bytes, not {queue!r}")
    if queue.startswith("amq."):
        raise ValueError(f"queue names starting with 'amq.' are reserved: {queue!r}")


class _Envelope:
    __slots__ = ("routing_key", "body", "attempts")

    def __init__(self, routing_key: str, body: bytes) -> None:
        self.routing_key = routing_key
        self.body = body
        self.attempts = 0


class _Queue:
    __slots__ = ("name", "durable", "filters", "patterns", "pending", "consumers", "next_index", "ready")

    def __init__(self, name: str, durable: bool) -> None:
        self.name = name
        self.durable = durable
        self.filters: set[str] = set()
        self.patterns: list[Any] = []
        self.pending: deque[_Envelope] = deque()
        self.consumers: list[MemoryConsumer] = []
        self.next_index = 0
        self.ready = False  # already in the bus's ready deque

    def matches(self, routing_key: str) -> bool:
        return any(pattern.match(routing_key) for pattern in self.patterns)

    def free_consumer(self) -> MemoryConsumer | None:
        """The next consumer with room under its prefetch, round-robin so competitors share work."""
        consumers = self.consumers
        count = len(consumers)
        for offset in range(count):
            index = (self.next_index + offset) % count
            consumer = consumers[index]
            if consumer.in_flight < consumer.prefetch:
                self.next_index = index + 1
                return consumer
        return None


class MemoryConsumer:
    """One ``start_consuming`` registration; ``stop_consuming`` waits for its in-flight callbacks."""

    def __init__(self, bus: MemoryBus, queue: _Queue, callback: Callback, prefetch: int) -> None:
        self._bus = bus
        self._queue = queue
        self._callback = callback
        self.prefetch = prefetch
        self.in_flight = 0  # deliveries not yet acked, including those waiting for a retry
        self._retrying: dict[_Envelope, IDelayedCall] = {}
        self._idle_waiters: list[Deferred[None]] = []
        self.stopped = False

    def deliver(self, envelope: _Envelope) -> None:
        self.in_flight += 1
        envelope.attempts += 1
        try:
            pending = call_consumer(self._callback, envelope.routing_key, decode_message(envelope.body))
        except Exception:
            self._failed(Failure(), envelope)
            return
        if pending is None:
            self._handled(envelope)
        else:
            pending.addCallbacks(self._succeeded, self._failed, callbackArgs=(envelope,), errbackArgs=(envelope,))

    def _succeeded(self, _result: object, envelope: _Envelope) -> None:
        self._handled(envelope)

    def _handled(self, envelope: _Envelope) -> None:
        self.in_flight -= 1
        self._bus._wake(self._queue)
        self._check_idle()

    def _failed(self, failure: Failure, envelope: _Envelope) -> None:
        bus = self._bus
        if bus.redelivery.exhausted(envelope.attempts):
            bus._dead_letter(self._queue, envelope, failure)
            self._handled(envelope)
        elif self.stopped or not bus.running:
            # No waiting while shutting down: the message goes straight back to the head of its queue.
            log.warn("bus: {queue} {key} failed (attempt {attempt}); requeued", queue=self._queue.name,
                     key=envelope.routing_key, attempt=envelope.attempts)
            self._requeue(envelope)
        else:
            delay = bus.redelivery.delay_after(envelope.attempts)
            log.failure("bus: {queue} {key} failed (attempt {attempt}); retry in {delay:.2f}s", failure,
                        queue=self._queue.name, key=envelope.routing_key, attempt=envelope.attempts,
                        delay=delay)
            # Keeping the consumer's slot during the delay keeps the queue's order for prefetch=1.
            self._retrying[envelope] = bus._clock.callLater(delay, self._retry, envelope)

    def _retry(self, envelope: _Envelope) -> None:
        del self._retrying[envelope]
        self._requeue(envelope)

    def _requeue(self, envelope: _Envelope) -> None:
        self._queue.pending.appendleft(envelope)
        self._handled(envelope)

    def requeue_retries(self) -> None:
        """Put messages waiting for a retry back at the head of the queue, oldest first."""
        retrying = list(self._retrying.items())
        self._retrying.clear()
        for envelope, call in reversed(retrying):
            call.cancel()
            self._requeue(envelope)

    def _check_idle(self) -> None:
        if self.in_flight == 0 and self._idle_waiters:
            waiters, self._idle_waiters = self._idle_waiters, []
            for waiter in waiters:
                waiter.callback(None)

    def wait_idle(self) -> Deferred[None]:
        if self.in_flight == 0:
            return succeed(None)
        waiter: Deferred[None] = Deferred()
        self._idle_waiters.append(waiter)
        return waiter

    async def stop_consuming(self) -> None:
        if self.stopped:
            return
        self.stopped = True
        self._queue.consumers.remove(self)
        self._bus._consumers.discard(self)
        self.requeue_retries()
        await self.wait_idle()
        self._bus._consumer_stopped(self._queue)


class MemoryBus(Service):
    """In-process bus; a twisted Service driven by ``clock`` (the reactor, or a Clock in tests)."""

    name = "mq"

    def __init__(self, clock: IReactorTime, redelivery: Redelivery | None = None, batch: int = 2000,
                 route_cache_size: int = 65536) -> None:
        self._clock = clock
        self.redelivery = redelivery or Redelivery()
        self._batch = batch  # deliveries per reactor turn, so a flood cannot starve sockets and timers
        self._route_cache_size = route_cache_size
        self._queues: dict[str, _Queue] = {}
        # routing key -> queues bound to it; cleared whenever a binding changes
        self._routes: dict[str, tuple[_Queue, ...]] = {}
        self._ready: deque[_Queue] = deque()
        self._drain_call: IDelayedCall | None = None
        self._consumers: set[MemoryConsumer] = set()
        self._transient_ids = itertools.count(1)
        self.dead_letter_queue = DEAD_LETTER_QUEUE

    def startService(self) -> Deferred[None]:
        super().startService()
        for queue in self._queues.values():
            if queue.pending:
                self._wake(queue)
        return succeed(None)

    def stopService(self) -> Deferred[None]:
        """Stop delivering and wait for in-flight callbacks; consumers stay registered for a restart."""
        super().stopService()
        if self._drain_call is not None:
            self._drain_call.cancel()
            self._drain_call = None
        consumers = list(self._consumers)
        for consumer in consumers:
            consumer.requeue_retries()
        waiting = DeferredList([consumer.wait_idle() for consumer in consumers])
        waiting.addCallback(lambda _: self._log_left_behind())
        return waiting

    def _log_left_behind(self) -> None:
        left = sum(len(queue.pending) for queue in self._queues.values())
        if left:
            log.warn("bus: in-process bus stopped with {count} undelivered messages", count=left)

    async def produce(self, routing_key: str, message: Message) -> None:
        if not self.running:
            raise BusUnavailable("the in-process bus is not running")
        body = encode_message(message)
        queues = self._routes.get(routing_key)
        if queues is None:
            queues = self._route(routing_key)
        for queue in queues:
            queue.pending.append(_Envelope(routing_key, body))
            if not queue.ready:
                queue.ready = True
                self._ready.append(queue)
        if queues and self._drain_call is None:
            self._drain_call = self._clock.callLater(0, self._drain)

    async def start_consuming(self, callback: Callback, filter: str, queue: str | None = None,
                              prefetch: int = 1) -> MemoryConsumer:
        check_filter(filter)
        check_prefetch(prefetch)
        if queue is None:
            bound = self._declare(f"amq.gen-{next(self._transient_ids)}", durable=False)
            self._bind(bound, filter)
        elif queue == self.dead_letter_queue:
            bound = self._declare(queue, durable=True)  # filled by dead-lettering only, never bound
        else:
            check_queue_name(queue)
            bound = self._declare(queue, durable=True)
            self._bind(bound, filter)
        consumer = MemoryConsumer(self, bound, callback, prefetch)
        bound.consumers.append(consumer)
        self._consumers.add(consumer)
        self._wake(bound)
        return consumer

    def _declare(self, name: str, durable: bool) -> _Queue:
        queue = self._queues.get(name)
        if queue is None:
            queue = self._queues[name] = _Queue(name, durable)
        return queue

    def _bind(self, queue: _Queue, filter: str) -> None:
        if filter not in queue.filters:
            queue.filters.add(filter)
            queue.patterns.append(topic_regex(filter))
            self._routes.clear()

    def _route(self, routing_key: str) -> tuple[_Queue, ...]:
        check_routing_key(routing_key)  # only on a cache miss: cached keys were checked already
        queues = tuple(queue for queue in self._queues.values() if queue.matches(routing_key))
        if len(self._routes) >= self._route_cache_size:
            self._routes.clear()
        self._routes[routing_key] = queues
        return queues

    def _consumer_stopped(self, queue: _Queue) -> None:
        if not queue.durable and not queue.consumers:
            # A transient queue lives as long as its consumer, like an auto-delete AMQP queue.
            del self._queues[queue.name]
            self._routes.clear()
            queue.pending.clear()
        else:
            self._wake(queue)

    def _dead_letter(self, queue: _Queue, envelope: _Envelope, failure: Failure) -> None:
        if queue.name == self.dead_letter_queue:
            log.failure("bus: dropping dead-lettered {key} after {attempts} failed attempts: {body}",
                        failure, key=envelope.routing_key, attempts=envelope.attempts,
                        body=envelope.body.decode("utf-8", "replace"))
            return
        log.failure("bus: {queue} {key} failed {attempts} times; moved to {dead}", failure,
                    queue=queue.name, key=envelope.routing_key, attempts=envelope.attempts,
                    dead=self.dead_letter_queue)
        dead = self._declare(self.dead_letter_queue, durable=True)
        dead.pending.append(_Envelope(envelope.routing_key, envelope.body))
        self._wake(dead)

    def _wake(self, queue: _Queue) -> None:
        if queue.pending and queue.consumers and not queue.ready:
            queue.ready = True
            self._ready.append(queue)
        if self._ready and self._drain_call is None and self.running:
            self._drain_call = self._clock.callLater(0, self._drain)

    def _drain(self) -> None:
        self._drain_call = None
        budget = self._batch
        ready = self._ready
        while ready and budget > 0:
            queue = ready.popleft()
            queue.ready = False
            budget -= self._pump(queue, budget)
        if ready and self._drain_call is None:
            self._drain_call = self._clock.callLater(0, self._drain)

    def _pump(self, queue: _Queue, budget: int) -> int:
        delivered = 0
        pending = queue.pending
        while pending and delivered < budget:
            consumer = queue.free_consumer()
            if consumer is None:
                return delivered  # a completing callback wakes the queue again
            delivered += 1
            consumer.deliver(pending.popleft())
        if pending and not queue.ready:
            queue.ready = True
            self._ready.append(queue)
        return delivered
