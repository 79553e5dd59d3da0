"""The AMQP 0-9-1 wire layer under the RabbitMQ bus: txAMQP's client with what it lacks.

txAMQP ships the standard 0-9-1 spec, which has no publisher confirms: ``confirm.select`` and
``basic.nack`` are RabbitMQ extensions. ``load_spec`` adds their definitions (class 85 and method
60/120, as RabbitMQ documents them) to the shipped file. The delegate routes broker-initiated
methods (deliveries, confirms) straight to our objects instead of through txAMQP's queues, and
``PublisherConfirms`` turns confirms into one Deferred per published message.
"""

from __future__ import annotations

import functools
import os
from typing import TYPE_CHECKING, Any

from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IDelayedCall, IReactorTime
from twisted.logger import Logger
from txamqp import spec as txamqp_spec
from txamqp.client import Closed, TwistedDelegate
from txamqp.connection import Body, Frame, Header, Method
from txamqp.content import Content
from txamqp.message import Message
from txamqp.protocol import AMQChannel, AMQClient, FrameReceiver

from watchline.mq.base import BusUnavailable

if TYPE_CHECKING:
    from watchline.mq.amqp import Link

log = Logger()

SPEC_FILE = "specs/standard/amqp0-9-1.stripped.xml"

_NACK = """
    <method name="nack" index="120">
      A broker tells a confirm-mode publisher it did not take messages.
      <field name="delivery-tag" domain="delivery-tag"/>
      <field name="multiple" domain="bit"/>
      <field name="requeue" domain="bit"/>
    </method>
  </class>
  <class name="tx\""""

_CONFIRM = """
  <class name="confirm" handler="channel" index="85">
    RabbitMQ publisher confirms.
    <method name="select" synchronous="1" index="10">
      Put the channel in confirm mode.
      <response name="select-ok"/>
      <field name="nowait" domain="bit"/>
    </method>
    <method name="select-ok" synchronous="1" index="11">
      The channel is in confirm mode.
    </method>
  </class>
</amqp>"""


@functools.cache
def load_spec() -> Any:
    """The 0-9-1 spec shipped in txAMQP, extended with ``confirm.select`` and ``basic.nack``."""
    path = os.path.join(os.path.dirname(txamqp_spec.__file__), SPEC_FILE)
    with open(path, encoding="utf-8") as f:
        text = f.read()
    basic_end = '</class>\n  <class name="tx"'
    if basic_end not in text or "</amqp>" not in text:
        raise RuntimeError(f"unexpected layout of {path}; cannot add publisher confirms")
    text = text.replace(basic_end, _NACK, 1).replace("</amqp>", _CONFIRM, 1)
    return txamqp_spec.load_string(text.encode(), specfilename=path)


class Delegate(TwistedDelegate):
    """Handles what the broker sends on its own initiative, for one connection (``link``)."""

    def __init__(self, link: Link, connection_name: str) -> None:
        super().__init__()
        self.link = link
        self.connection_name = connection_name

    def connection_start(self, ch: AMQChannel, msg: Any) -> None:
        # As txAMQP does, plus a name that shows in RabbitMQ's connection list.
        ch.connection_start_ok(client_properties={"product": "watchline", "connection_name": self.connection_name},
                               mechanism=self.client.mechanism, response=self.client.response,
                               locale=self.client.locale)

    def basic_deliver(self, ch: AMQChannel, msg: Any) -> None:
        self.link.delivered(ch, msg)

    def basic_ack(self, ch: AMQChannel, msg: Any) -> None:
        self.link.confirmed(ch, msg.delivery_tag, msg.multiple, accepted=True)

    def basic_nack(self, ch: AMQChannel, msg: Any) -> None:
        self.link.confirmed(ch, msg.delivery_tag, msg.multiple, accepted=False)


class Channel(AMQChannel):
    """txAMQP's channel with two shortcuts on the hot paths.

    Incoming: txAMQP queues every broker-initiated method and reads its content frames through a
    chain of coroutines; this channel assembles the content as frames arrive and calls the
    delegate as soon as the last one is in (same order, same thread, far less work per delivery).
    Outgoing: ``send`` writes methods that expect no reply (publish, ack, reject) directly.
    Replies to our own calls still go through txAMQP's response queue.
    """

    def __init__(self, id: int, outgoing: Any, client: Any) -> None:
        super().__init__(id, outgoing, client)
        self._content_is_response = False
        self._assembling: list[Any] | None = None  # [method payload, header, chunks, bytes so far]

    def dispatch(self, frame: Frame, work: Any) -> None:
        payload = frame.payload
        if isinstance(payload, Method):
            if payload.method.response:
                self._content_is_response = True
                self.responses.put(frame)
            elif payload.method.content:
                self._content_is_response = False
                self._assembling = [payload, None, [], 0]
            else:
                self._content_is_response = False
                self._to_delegate(Message(payload.method, payload.args))
            return
        if self._content_is_response:
            self.responses.put(frame)
            return
        assembling = self._assembling
        if assembling is None:
            log.warn("bus: AMQP content frame without a method on channel {id}", id=self.id)
            return
        if isinstance(payload, Header):
            assembling[1] = payload
        elif isinstance(payload, Body):
            chunk = payload.content
            assembling[2].append(chunk.encode() if isinstance(chunk, str) else chunk)
            assembling[3] += len(assembling[2][-1])
        header = assembling[1]
        if header is not None and assembling[3] >= header.size:
            self._assembling = None
            content = Content(b"".join(assembling[2]), [], dict(header.properties))
            self._to_delegate(Message(assembling[0].method, assembling[0].args, content))

    def _to_delegate(self, message: Message) -> None:
        try:
            self.client.delegate.dispatch(self, message)
        except Exception:
            log.failure("bus: handling {method} failed; dropping the connection", method=message.method)
            self.client.transport.abortConnection()

    def send(self, klass: str, method: str, *args: Any, content: Content | None = None) -> None:
        """Write a method that expects no reply; raises txAMQP's Closed when the channel is closed."""
        if self.closed:
            self._raise_closed(self.reason)
        spec_method = self.client.spec_method(klass, method)
        self._write(Frame(self.id, Method(spec_method, *args)))
        if content is not None:
            body = content.body
            self._write(Frame(self.id, Header(spec_method.klass, 0, len(body), **content.properties)))
            chunk = self.client.MAX_LENGTH - 8
            for start in range(0, len(body), chunk):
                self._write(Frame(self.id, Body(body[start:start + chunk])))

    def _write(self, frame: Frame) -> None:
        outgoing = self.outgoing
        if outgoing.waiting and not outgoing.pending:
            self.client.send_frame(frame)  # txAMQP's writer is idle: nothing queued to overtake
        else:
            outgoing.put(frame)


class Client(AMQClient):
    """txAMQP's client: frames are handled synchronously, heartbeats are cheap, and the link hears
    when the broker closes a channel on its own."""

    channelClass = Channel
    link: Link

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._last_received = self.clock.seconds()
        self._spec_methods: dict[tuple[str, str], Any] = {}

    def spec_method(self, klass: str, method: str) -> Any:
        key = (klass, method)
        found = self._spec_methods.get(key)
        if found is None:
            found = self._spec_methods[key] = self.spec.classes.byname[klass].methods.byname[method]
        return found

    def process_frame(self, frame: Frame) -> None:
        # txAMQP takes a DeferredLock for every frame to look its channel up; creating the channel
        # here, synchronously, gives the same result.
        channel = self.channels.get(frame.channel)
        if channel is None:
            channel = self.channels[frame.channel] = self.channelFactory(frame.channel, self.outgoing, self)
        if frame.payload.type != Frame.HEARTBEAT:
            channel.dispatch(frame, self.work)
        self._last_received = self.clock.seconds()

    def send_frame(self, frame: Frame) -> None:
        # txAMQP restarts its heartbeat timer for every frame sent. Heartbeats may be sent whatever
        # the traffic, so the timer started once the connection is tuned just keeps running.
        FrameReceiver.send_frame(self, frame)

    def check_heartbeat(self) -> None:
        # Instead of re-arming the check for every frame received, re-arm it here for the time
        # left since the last frame; abort only after MAX_UNSEEN_HEARTBEAT silent intervals.
        limit = self.heartbeatInterval * self.MAX_UNSEEN_HEARTBEAT
        silent = self.clock.seconds() - self._last_received
        if silent < limit:
            self.checkHB = self.clock.callLater(limit - silent, self.check_heartbeat)
        elif self.transport is not None:
            log.warn("bus: no frame from RabbitMQ for {silent:.0f}s; dropping the connection", silent=silent)
            self.transport.abortConnection()

    def channel_failed(self, channel: AMQChannel, reason: Any) -> None:
        self.link.channel_failed(channel, reason)


class PublisherConfirms:
    """Publishes on a confirm-mode channel; each message's Deferred fires on the broker's
    basic.ack and fails with BusUnavailable on basic.nack, timeout or a lost channel."""

    def __init__(self, channel: AMQChannel, clock: IReactorTime, timeout: float) -> None:
        self.channel = channel
        self._clock = clock
        self._timeout = timeout
        self._next_tag = 1  # the broker numbers a confirm channel's publications from 1
        # tag -> (Deferred, deadline); insertion order is tag order, so the oldest comes first
        self._pending: dict[int, tuple[Deferred[None], float]] = {}
        self._sweep_call: IDelayedCall | None = None
        self._failure: BusUnavailable | None = None

    def publish(self, exchange: str, routing_key: str, body: bytes,
                headers: dict[str, str] | None = None) -> Deferred[None]:
        if self._failure is not None:
            raise self._failure
        properties: dict[str, Any] = {"delivery-mode": 2, "content-type": "application/json"}
        if headers:
            # bytes: txAMQP writes a str's length in characters, not bytes
            properties["headers"] = {name: value.encode() for name, value in headers.items()}
        try:
            self.channel.send("basic", "publish", 0, exchange.encode(), routing_key.encode(), False, False,
                              content=Content(body, properties=properties))
        except Closed:
            raise BusUnavailable("RabbitMQ channel closed") from None  # nothing sent, so no tag used
        confirmed: Deferred[None] = Deferred()
        self._pending[self._next_tag] = (confirmed, self._clock.seconds() + self._timeout)
        self._next_tag += 1
        if self._sweep_call is None:
            self._sweep_call = self._clock.callLater(self._timeout, self._sweep)
        return confirmed

    def confirmed(self, tag: int, multiple: bool, accepted: bool) -> None:
        if multiple:
            tags = []
            for pending_tag in self._pending:
                if pending_tag > tag:
                    break
                tags.append(pending_tag)
        else:
            tags = [tag]
        for done in tags:
            entry = self._pending.pop(done, None)
            if entry is None:
                continue  # already timed out
            if accepted:
                entry[0].callback(None)
            else:
                entry[0].errback(BusUnavailable("RabbitMQ refused the message (basic.nack)"))
        if not self._pending and self._sweep_call is not None:
            self._sweep_call.cancel()
            self._sweep_call = None

    def fail_all(self, reason: str) -> None:
        """The channel is gone: nothing pending will be confirmed any more."""
        self._failure = BusUnavailable(reason)
        if self._sweep_call is not None and self._sweep_call.active():
            self._sweep_call.cancel()
        self._sweep_call = None
        pending, self._pending = self._pending, {}
        for confirmed, _deadline in pending.values():
            confirmed.errback(BusUnavailable(reason))

    @property
    def in_flight(self) -> int:
        return len(self._pending)

    def _sweep(self) -> None:
        # One timer for all pending confirms instead of one per message.
        self._sweep_call = None
        now = self._clock.seconds()
        while self._pending:
            tag, (confirmed, deadline) = next(iter(self._pending.items()))
            if deadline > now:
                self._sweep_call = self._clock.callLater(deadline - now, self._sweep)
                return
            del self._pending[tag]
            confirmed.errback(BusUnavailable(f"RabbitMQ did not confirm within {self._timeout}s"))
