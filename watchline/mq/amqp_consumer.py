"""One consumer of the RabbitMQ bus: its channel, queue, deliveries, acks, retries, dead-lettering.

A consumer outlives connections: after a reconnect the bus attaches it again (new channel, queue
declared and bound again, ``basic.consume`` again). Deliveries are acked only after the callback
completed; a delivery whose callback is still running when its connection dies is not acked, so
the broker delivers it again (at least once). A failing callback is retried here, holding the
delivery (which keeps the queue's order with prefetch 1), and after ``max_attempts`` the message
is published to the dead-letter queue, with confirm, before the original is acked.
"""

from __future__ import annotations

import uuid
from typing import TYPE_CHECKING, Any

from twisted.internet.defer import CancelledError, Deferred, succeed
from twisted.internet.task import deferLater
from twisted.logger import Logger
from txamqp.client import Closed

from watchline.mq.base import BusUnavailable, Callback, decode_message
from watchline.mq.delivery import call_consumer

if TYPE_CHECKING:
    from txamqp.protocol import AMQChannel

    from watchline.mq.amqp import AmqpBus, Link

log = Logger()

ORIGINAL_ROUTING_KEY = "x-watchline-routing-key"  # header on dead-lettered messages


class AmqpConsumer:
    def __init__(self, bus: AmqpBus, callback: Callback, filter: str, queue: str | None, prefetch: int) -> None:
        self._bus = bus
        self._callback = callback
        self.filter = filter
        self.queue = queue
        self.prefetch = prefetch
        self.tag = f"watchline.{uuid.uuid4().hex[:16]}"
        self._link: Link | None = None
        self._channel: AMQChannel | None = None
        self.in_flight = 0
        self._idle_waiters: list[Deferred[None]] = []
        self._sleeping: set[Deferred[None]] = set()
        self.stopped = False

    @property
    def is_dead_letter_consumer(self) -> bool:
        return self.queue == self._bus.dead_letter_queue

    async def attach(self, link: Link) -> None:
        """Subscribe on ``link``: a channel with our prefetch, the queue declared and bound."""
        channel = await link.open_channel(expect_failure=True)
        try:
            await channel.basic_qos(prefetch_count=self.prefetch)
            name = await self._declare(channel)
            self._link, self._channel = link, channel
            link.consumers[self.tag] = self
            await channel.basic_consume(queue=name.encode(), consumer_tag=self.tag)
        except BaseException:
            link.consumers.pop(self.tag, None)
            self._link = self._channel = None
            raise
        finally:
            link.expect_failure(channel, False)

    async def _declare(self, channel: AMQChannel) -> str:
        bus = self._bus
        if self.queue is None:
            # Server-named, exclusive, auto-delete: gone with the connection or the consumer.
            declared = await channel.queue_declare(queue="", durable=False, exclusive=True, auto_delete=True)
            name = declared.queue
        else:
            # Names as bytes: txAMQP writes a str's length in characters, wrong for non-ASCII names.
            await channel.queue_declare(queue=self.queue.encode(), durable=True)
            name = self.queue
            if self.is_dead_letter_consumer:
                return name  # filled by dead-lettering only, never bound to the exchange
        await channel.queue_bind(queue=name.encode(), exchange=bus.exchange.encode(),
                                 routing_key=self.filter.encode())
        return name

    def detach(self, link: Link) -> None:
        """``link`` is gone: forget its channel; unacked deliveries return to the queue by themselves."""
        if self._link is link:
            self._link = self._channel = None
        self._cancel_sleeps()

    def delivered(self, channel: AMQChannel, msg: Any) -> None:
        if self.stopped or not self._bus.running:
            _reject(channel, msg)  # sent before our basic.cancel reached the broker
            return
        self.in_flight += 1
        handling = Deferred.fromCoroutine(self._handle(channel, msg))
        handling.addErrback(lambda failure: log.failure("bus: delivery handling crashed", failure))
        handling.addBoth(self._handled)

    def _handled(self, _: object) -> None:
        self.in_flight -= 1
        if self.in_flight == 0 and self._idle_waiters:
            waiters, self._idle_waiters = self._idle_waiters, []
            for waiter in waiters:
                waiter.callback(None)

    async def _handle(self, channel: AMQChannel, msg: Any) -> None:
        bus = self._bus
        body = msg.content.body
        routing_key = msg.routing_key
        if self.is_dead_letter_consumer:
            headers = msg.content.properties.get("headers") or {}
            routing_key = headers.get(ORIGINAL_ROUTING_KEY, routing_key)
        attempts = 0
        while True:
            try:
                message = decode_message(body)
            except ValueError as e:
                # Retrying cannot fix a bad body; a foreign producer must not poison the queue.
                log.error("bus: {queue} {key}: undecodable body ({error}), dead-lettering",
                          queue=self.queue, key=routing_key, error=e)
                await self._dead_letter(channel, msg, routing_key)
                return
            attempts += 1
            try:
                pending = call_consumer(self._callback, routing_key, message)
                if pending is not None:
                    await pending
            except Exception:
                if self.stopped or not bus.running:
                    log.warn("bus: {key} failed while stopping; returned to its queue", key=routing_key)
                    _reject(channel, msg)
                    return
                if bus.redelivery.exhausted(attempts):
                    log.failure("bus: {queue} {key} failed {attempts} times; dead-lettering",
                                queue=self.queue, key=routing_key, attempts=attempts)
                    await self._dead_letter(channel, msg, routing_key)
                    return
                delay = bus.redelivery.delay_after(attempts)
                log.failure("bus: {queue} {key} failed (attempt {attempt}); retry in {delay:.2f}s",
                            queue=self.queue, key=routing_key, attempt=attempts, delay=delay)
                try:
                    await self._sleep(delay)
                except CancelledError:
                    _reject(channel, msg)
                    return
                continue
            _ack(channel, msg)
            return

    async def _dead_letter(self, channel: AMQChannel, msg: Any, routing_key: str) -> None:
        if self.is_dead_letter_consumer:
            log.error("bus: dropping dead-lettered {key}: {body!r}", key=routing_key, body=msg.content.body)
            _ack(channel, msg)
            return
        try:
            await self._bus.publish_dead_letter(routing_key, msg.content.body)
        except BusUnavailable as e:
            log.warn("bus: could not dead-letter {key} ({error}); returned to its queue", key=routing_key, error=e)
            _reject(channel, msg)
            return
        _ack(channel, msg)

    async def _sleep(self, seconds: float) -> None:
        sleeping = deferLater(self._bus.clock, seconds)
        self._sleeping.add(sleeping)
        try:
            await sleeping
        finally:
            self._sleeping.discard(sleeping)

    def _cancel_sleeps(self) -> None:
        for sleeping in list(self._sleeping):
            sleeping.cancel()

    def wait_idle(self) -> Deferred[None]:
        """Fires once no delivery is being handled (messages waiting for a retry are given back)."""
        self._cancel_sleeps()
        if self.in_flight == 0:
            return succeed(None)
        waiter: Deferred[None] = Deferred()
        self._idle_waiters.append(waiter)
        return waiter

    async def pause(self) -> None:
        """Ask the broker to stop sending; deliveries already on their way are still handled."""
        channel = self._channel
        if channel is None or channel.closed:
            return
        try:
            await channel.basic_cancel(consumer_tag=self.tag).addTimeout(5, self._bus.clock)
        except Exception as e:  # the connection died meanwhile: nothing left to cancel
            log.debug("bus: basic.cancel failed: {error}", error=e)

    async def stop_consuming(self) -> None:
        if self.stopped:
            return
        self.stopped = True
        self._bus.forget(self)
        link, channel = self._link, self._channel
        await self.pause()
        await self.wait_idle()
        if link is not None and channel is not None:
            link.consumers.pop(self.tag, None)
            await link.close_channel(channel)
        self._link = self._channel = None


def _ack(channel: AMQChannel, msg: Any) -> None:
    # On a dead channel there is nothing to ack: the broker has requeued the message already.
    try:
        channel.send("basic", "ack", msg.delivery_tag, False)
    except Closed:
        pass


def _reject(channel: AMQChannel, msg: Any) -> None:
    try:
        channel.send("basic", "reject", msg.delivery_tag, True)
    except Closed:
        pass
