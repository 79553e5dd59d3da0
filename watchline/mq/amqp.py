"""The RabbitMQ bus (``amqp://user:pass@host:port/vhost``), on txAMQP.

Topology: one durable topic exchange (default ``watchline``); a durable queue per queue name,
bound with the consumers' filters; a server-named exclusive auto-delete queue per unnamed consumer;
a durable dead-letter queue ``<exchange>.dead``. Messages are JSON, persistent (delivery mode 2),
published on a confirm-mode channel: ``produce`` returns only after the broker's basic.ack.

Connection: one connection per bus, a channel for publishing and one per consumer (so each has its
own prefetch and a consumer's trouble cannot close the publisher). When the connection drops, every
unconfirmed ``produce`` fails with ``BusUnavailable`` and new ones fail at once until a reconnect,
tried with exponential backoff, has declared the topology again and re-subscribed the consumers.
"""

from __future__ import annotations

import itertools
import random
from typing import Any
from urllib.parse import parse_qsl, unquote, urlsplit

from twisted.application.service import Service
from twisted.internet.defer import Deferred, DeferredList, succeed
from twisted.internet.endpoints import TCP4ClientEndpoint
from twisted.internet.interfaces import IDelayedCall
from twisted.internet.protocol import Factory
from twisted.internet.task import deferLater
from twisted.logger import Logger
from txamqp.client import Closed
from txamqp.protocol import AMQChannel

from watchline.mq.amqp_consumer import ORIGINAL_ROUTING_KEY, AmqpConsumer
from watchline.mq.amqp_protocol import Client, Delegate, PublisherConfirms, load_spec
from watchline.mq.base import (
    BusUnavailable,
    Callback,
    Message,
    check_filter,
    check_prefetch,
    check_routing_key,
    encode_message,
)
from watchline.mq.delivery import Redelivery
from watchline.mq.memory import check_queue_name

log = Logger()


class Backoff:
    """Delays between reconnect attempts: ``initial`` doubling up to ``maximum``, with jitter so
    that many processes do not all hit a restarted broker at the same instant."""

    def __init__(self, initial: float = 0.5, maximum: float = 30.0, jitter: float = 0.2,
                 rng: random.Random | None = None) -> None:
        self.initial, self.maximum, self.jitter = initial, maximum, jitter
        self._rng = rng or random.Random()
        self.failures = 0

    def next_delay(self) -> float:
        delay = min(self.initial * 2**self.failures, self.maximum)
        self.failures += 1
        return delay * (1 + self.jitter * (2 * self._rng.random() - 1))

    def reset(self) -> None:
        self.failures = 0


class Link:
    """One open AMQP connection and what depends on it; discarded as a whole when it drops."""

    def __init__(self, bus: AmqpBus) -> None:
        self.bus = bus
        self.client: Client | None = None
        self.confirms: PublisherConfirms | None = None
        self.consumers: dict[str, AmqpConsumer] = {}  # by consumer tag
        self._channel_ids = itertools.count(1)
        self._expected_failures: set[int] = set()  # channels whose opener handles a broker close
        self.lost = False

    async def open_channel(self, expect_failure: bool = False) -> AMQChannel:
        assert self.client is not None
        if self.lost or self.client.closed:
            # txAMQP would send channel.open on a dead transport and wait for ever.
            raise Closed("the RabbitMQ connection is closed")
        channel = await self.client.channel(next(self._channel_ids))
        self.expect_failure(channel, expect_failure)
        await channel.channel_open()
        return channel

    def expect_failure(self, channel: AMQChannel, expected: bool) -> None:
        if expected:
            self._expected_failures.add(channel.id)
        else:
            self._expected_failures.discard(channel.id)

    async def close_channel(self, channel: AMQChannel) -> None:
        assert self.client is not None
        if not channel.closed and not self.lost:
            try:
                await channel.channel_close(reply_code=200, reply_text="consumer stopped", class_id=0, method_id=0)
            except Exception as e:
                log.debug("bus: channel.close failed: {error}", error=e)
            channel.close(None)
        self.client.channels.pop(channel.id, None)

    def delivered(self, channel: AMQChannel, msg: Any) -> None:
        consumer = self.consumers.get(msg.consumer_tag)
        if consumer is None:  # a late delivery to a consumer that just stopped
            try:
                channel.send("basic", "reject", msg.delivery_tag, True)
            except Closed:
                pass
        else:
            consumer.delivered(channel, msg)

    def confirmed(self, channel: AMQChannel, tag: int, multiple: bool, accepted: bool) -> None:
        if self.confirms is not None and channel is self.confirms.channel:
            self.confirms.confirmed(tag, multiple, accepted)

    def channel_failed(self, channel: AMQChannel, reason: Any) -> None:
        if channel.id in self._expected_failures:
            return  # the call that opened it gets the error
        # Rebuilding everything on a fresh connection is simpler and safer than repairing one channel.
        log.error("bus: RabbitMQ closed channel {id} ({reason}); reconnecting", id=channel.id, reason=reason)
        self.abort()

    def abort(self) -> None:
        if self.client is not None and self.client.transport is not None:
            self.client.transport.abortConnection()


class _ClientFactory(Factory):
    def __init__(self, bus: AmqpBus) -> None:
        self.bus = bus

    def buildProtocol(self, addr: Any) -> Client:
        bus = self.bus
        link = Link(bus)
        client = Client(Delegate(link, bus.connection_name), vhost=bus.vhost, spec=load_spec(),
                        heartbeat=bus.heartbeat, clock=bus.clock)
        client.link = link
        link.client = client
        return client


class AmqpBus(Service):
    name = "mq"

    def __init__(self, reactor: Any, host: str = "127.0.0.1", port: int = 5672, username: str = "guest",
                 password: str = "guest", vhost: str = "/", exchange: str = "watchline",
                 redelivery: Redelivery | None = None, confirm_timeout: float = 10.0,
                 connect_timeout: float = 5.0, heartbeat: int = 30, backoff: Backoff | None = None,
                 connection_name: str = "watchline") -> None:
        self.clock = reactor
        self.host, self.port, self.vhost = host, port, vhost
        self._username, self._password = username, password
        self.exchange = exchange
        self.dead_letter_queue = f"{exchange}.dead"
        self.redelivery = redelivery or Redelivery()
        self.confirm_timeout = confirm_timeout
        self.connect_timeout = connect_timeout
        self.heartbeat = heartbeat
        self.backoff = backoff or Backoff()
        self.connection_name = connection_name
        self._factory = _ClientFactory(self)
        self._link: Link | None = None
        self._consumers: list[AmqpConsumer] = []
        self._reconnect_call: IDelayedCall | None = None
        self._connecting: Deferred[bool] | None = None
        self._connected_waiters: list[Deferred[None]] = []

    @property
    def connected(self) -> bool:
        return self._link is not None

    @property
    def link(self) -> Link | None:
        return self._link

    # -- service life ---------------------------------------------------------------------------

    def startService(self) -> Deferred[bool]:
        """Start connecting; fires with whether the first attempt succeeded (it keeps trying)."""
        super().startService()
        return self._connect_now()

    def stopService(self) -> Deferred[None]:
        """Stop reconnecting, wait for in-flight callbacks and confirms, close the connection.
        Consumers stay registered and subscribe again if the service is started again."""
        super().stopService()
        if self._reconnect_call is not None and self._reconnect_call.active():
            self._reconnect_call.cancel()
        self._reconnect_call = None
        return Deferred.fromCoroutine(self._stop())

    async def _stop(self) -> None:
        if self._connecting is not None:
            self._connecting.cancel()
        consumers = list(self._consumers)
        await DeferredList([Deferred.fromCoroutine(consumer.pause()) for consumer in consumers])
        await DeferredList([consumer.wait_idle() for consumer in consumers])
        link, self._link = self._link, None
        if link is None or link.client is None:
            return
        if link.confirms is not None and link.confirms.in_flight:
            await self._confirms_settled(link)
        link.lost = True
        await link.client.close(within=2)
        self._link_lost(link, "bus stopped")

    async def _confirms_settled(self, link: Link) -> None:
        # Each pending confirm ends by ack, nack, timeout or loss, so this loop is bounded.
        while link.confirms is not None and link.confirms.in_flight and not link.lost:
            await deferLater(self.clock, 0.01)

    def _connect_now(self) -> Deferred[bool]:
        self._reconnect_call = None
        connecting = Deferred.fromCoroutine(self._connect())
        self._connecting = connecting

        def done(result: Any) -> Any:
            if self._connecting is connecting:
                self._connecting = None
            return result

        return connecting.addBoth(done)

    async def _connect(self) -> bool:
        try:
            opening = Deferred.fromCoroutine(self._open_link())
            link = await opening.addTimeout(self.connect_timeout, self.clock)
        except Exception as e:
            if self.running:
                delay = self.backoff.next_delay()
                log.warn("bus: cannot connect to RabbitMQ at {host}:{port} ({error}); retry in {delay:.1f}s",
                         host=self.host, port=self.port, error=e, delay=delay)
                self._reconnect_call = self.clock.callLater(delay, self._connect_now)
            return False
        if not self.running:
            link.abort()
            return False
        self._link = link
        assert link.client is not None
        link.client.disconnected.wait().addCallback(lambda _: self._link_lost(link, "connection lost"))
        self.backoff.reset()
        log.info("bus: connected to RabbitMQ at {host}:{port}", host=self.host, port=self.port)
        for consumer in list(self._consumers):
            try:
                await consumer.attach(link)
            except Exception:
                log.failure("bus: could not subscribe a consumer on {queue}; reconnecting", queue=consumer.queue)
                link.abort()
                return False
        waiters, self._connected_waiters = self._connected_waiters, []
        for waiter in waiters:
            waiter.callback(None)
        return True

    async def _open_link(self) -> Link:
        endpoint = TCP4ClientEndpoint(self.clock, self.host, self.port, timeout=max(1, int(self.connect_timeout)))
        client = await endpoint.connect(self._factory)
        link = client.link
        try:
            await client.authenticate(self._username, self._password, mechanism="PLAIN")
            publisher = await link.open_channel()
            await publisher.confirm_select()
            await publisher.exchange_declare(exchange=self.exchange.encode(), type="topic", durable=True)
            await publisher.queue_declare(queue=self.dead_letter_queue.encode(), durable=True)
            link.confirms = PublisherConfirms(publisher, self.clock, self.confirm_timeout)
        except BaseException:
            link.abort()
            raise
        return link

    def _link_lost(self, link: Link, reason: str) -> None:
        link.lost = True
        if link.confirms is not None:
            link.confirms.fail_all(f"RabbitMQ connection lost ({reason}) before the confirm")
        for consumer in self._consumers:
            consumer.detach(link)
        if self._link is not link:
            return
        self._link = None
        if self.running and self._reconnect_call is None:
            delay = self.backoff.next_delay()
            log.warn("bus: RabbitMQ connection lost; reconnecting in {delay:.1f}s", delay=delay)
            self._reconnect_call = self.clock.callLater(delay, self._connect_now)

    def wait_connected(self, timeout: float) -> Deferred[None]:
        """Fires once connected (and consumers subscribed); fails with a TimeoutError after ``timeout``."""
        if self._link is not None and self._connecting is None:
            return succeed(None)
        waiter: Deferred[None] = Deferred()
        self._connected_waiters.append(waiter)
        return waiter.addTimeout(timeout, self.clock)

    # -- the bus interface ------------------------------------------------------------------------

    async def produce(self, routing_key: str, message: Message) -> None:
        check_routing_key(routing_key)
        body = encode_message(message)
        link = self._link
        if not self.running or link is None or link.confirms is None:
            raise BusUnavailable(f"not connected to RabbitMQ at {self.host}:{self.port}")
        await link.confirms.publish(self.exchange, routing_key, body)

    async def publish_dead_letter(self, routing_key: str, body: bytes) -> None:
        """Put a message in the dead-letter queue (through the default exchange), confirmed."""
        link = self._link
        if link is None or link.confirms is None:
            raise BusUnavailable("not connected to RabbitMQ")
        await link.confirms.publish("", self.dead_letter_queue, body, headers={ORIGINAL_ROUTING_KEY: routing_key})

    async def start_consuming(self, callback: Callback, filter: str, queue: str | None = None,
                              prefetch: int = 1) -> AmqpConsumer:
        """Subscribe now if connected (else at the next connection). Raises ValueError when RabbitMQ
        refuses the queue, e.g. it exists with other arguments."""
        check_filter(filter)
        check_prefetch(prefetch)
        if queue is not None and queue != self.dead_letter_queue:
            check_queue_name(queue)
        consumer = AmqpConsumer(self, callback, filter, queue, prefetch)
        self._consumers.append(consumer)
        link = self._link
        if link is not None:
            try:
                await consumer.attach(link)
            except Closed as e:
                if link.lost:
                    return consumer  # the connection dropped meanwhile; it subscribes after the reconnect
                self._consumers.remove(consumer)
                raise ValueError(f"RabbitMQ refused queue {queue!r} / filter {filter!r}: {e}") from None
        return consumer

    def forget(self, consumer: AmqpConsumer) -> None:
        if consumer in self._consumers:
            self._consumers.remove(consumer)

    @classmethod
    def from_url(cls, url: str, reactor: Any, **options: Any) -> AmqpBus:
        return cls(reactor, **{**parse_amqp_url(url), **options})


_QUERY_OPTIONS = {"exchange": str, "heartbeat": int, "connection_name": str,
                  "confirm_timeout": float, "connect_timeout": float}


def parse_amqp_url(url: str) -> dict[str, Any]:
    """``amqp://user:pass@host:port/vhost?exchange=…`` → AmqpBus keyword arguments (RabbitMQ's URI
    spec: an empty path means vhost ``/``, ``%2F`` is ``/``)."""
    parts = urlsplit(url)
    if parts.scheme != "amqp":
        raise ValueError(f"not an amqp:// URL: {url!r}")
    if not parts.hostname:
        raise ValueError(f"amqp URL without a host: {url!r}")
    try:
        port = parts.port or 5672
    except ValueError:
        raise ValueError(f"bad port in amqp URL {url!r}") from None
    options: dict[str, Any] = {"host": parts.hostname, "port": port,
                               "username": unquote(parts.username) if parts.username else "guest",
                               "password": unquote(parts.password) if parts.password else "guest",
                               "vhost": unquote(parts.path[1:]) if len(parts.path) > 1 else "/"}
    for key, value in parse_qsl(parts.query, keep_blank_values=True):
        if key not in _QUERY_OPTIONS:
            raise ValueError(f"unknown amqp URL option {key!r} (known: {', '.join(sorted(_QUERY_OPTIONS))})")
        try:
            options[key] = _QUERY_OPTIONS[key](value)
        except ValueError:
            raise ValueError(f"bad value for amqp URL option {key}: {value!r}") from None
    return options
