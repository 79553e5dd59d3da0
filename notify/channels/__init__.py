"""Notification channels: a registry of small classes that each send one rendered ``Message``.

Rendering (jinja2, ``notify.channels.rendering``) is separate from sending: a channel gets the final
recipient, subject and body and only knows its wire — SMPP for ``sms``, SMTP for ``email``, an HTTP POST
for ``webhook``, a phone call read out by TTS for ``voice``. ``Channels`` maps names to instances and
records every send in ``db.deliveries`` (a ``pending`` row first, then ``sent``/``failed``; delivery
receipts later make it ``delivered``), so a notice that went nowhere is visible, never silent. Channels
that hold a connection (the SMPP session) are services under the registry, which is itself a service.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, Protocol, TypeVar

from twisted.application import service
from twisted.internet import task
from twisted.internet.defer import Deferred

from crm.deliveries import Delivery, NewDelivery

log = logging.getLogger(__name__)
T = TypeVar("T")


@dataclass(frozen=True)
class Message:
    """A notice rendered for one recipient on one channel."""

    recipient: str  # E.164 number, e-mail address or URL
    body: str
    template: str  # which notice (incident_notice, work_order_dispatched, ...)
    subject: str | None = None
    language: str = "zh"
    incident_id: int | None = None
    work_order_id: int | None = None
    data: Mapping[str, Any] = field(default_factory=dict)  # the facts behind the text (webhook JSON)

    def to(self, recipient: str) -> Message:
        return Message(recipient, self.body, self.template, self.subject, self.language, self.incident_id,
                       self.work_order_id, self.data)


@dataclass(frozen=True)
class SendResult:
    external_id: str | None = None  # SMSC message id, mail queue id, call id, ...
    attempts: int = 1
    status: str = "sent"  # sent, or delivered when the channel saw it arrive (a call that was answered)


class DeliveryFailed(Exception):
    """The channel could not send. ``permanent``: trying again cannot help (a 4xx, a bad number)."""

    def __init__(self, reason: str, *, permanent: bool = True, attempts: int = 1) -> None:
        super().__init__(reason)
        self.reason = reason
        self.permanent = permanent
        self.attempts = attempts


class Channel(Protocol):
    name: str

    async def send(self, message: Message) -> SendResult: ...


Receipt = Callable[[str, str, str | None], None]  # (external id, delivered | failed, error)


async def with_retries(attempt: Callable[[int], Awaitable[T]], *, retries: int, clock, base_delay: float = 1.0,
                       max_delay: float = 300.0) -> tuple[T, int]:
    """Run ``attempt(n)`` until it succeeds; a transient ``DeliveryFailed`` is retried ``retries`` times
    after base_delay, 2×, 4×, … seconds (capped). Returns (result, attempts made); the failure that
    ends it carries the attempt count."""
    n = 0
    while True:
        n += 1
        try:
            return await attempt(n), n
        except DeliveryFailed as e:
            e.attempts = n
            if e.permanent or n > retries:
                raise
            delay = min(max_delay, base_delay * 2 ** (n - 1))
            log.info("attempt %d failed (%s); again in %g s", n, e.reason, delay)
            await task.deferLater(clock, delay, lambda: None)


class Channels(service.MultiService):
    """The registry: channel name → channel. ``send`` records the delivery and never raises for a
    failed send — the returned ``Delivery`` says what happened."""

    name = "channels"

    def __init__(self, deliveries, clock) -> None:
        super().__init__()
        self.deliveries = deliveries
        self.clock = clock
        self._channels: dict[str, Channel] = {}

    def register(self, channel: Channel) -> Channel:
        if channel.name in self._channels:
            raise ValueError(f"a {channel.name} channel is already registered")
        self._channels[channel.name] = channel
        if service.IService.providedBy(channel):
            channel.setServiceParent(self)
        if hasattr(channel, "on_receipt"):
            channel.on_receipt = self._receipt_for(channel.name)
        return channel

    def __contains__(self, name: str) -> bool:
        return name in self._channels

    def __getitem__(self, name: str) -> Channel:
        return self._channels[name]

    @property
    def names(self) -> list[str]:
        return sorted(self._channels)

    def now(self) -> datetime:
        return datetime.fromtimestamp(self.clock.seconds(), timezone.utc)

    async def send(self, channel_name: str, message: Message) -> Delivery:
        channel = self._channels.get(channel_name)
        if channel is None:
            raise LookupError(f"no {channel_name} channel configured (have: {', '.join(self.names) or 'none'})")
        row = await self.deliveries.add(NewDelivery(
            channel_name, message.recipient, message.template, message.body, message.subject, message.incident_id,
            message.work_order_id), self.now())
        try:
            result = await channel.send(message)
        except DeliveryFailed as e:
            log.warning("%s %s to %s failed after %d attempt(s): %s", channel_name, message.template,
                        message.recipient, e.attempts, e.reason)
            return await self.deliveries.finish(row.id, "failed", self.now(), attempts=e.attempts, error=e.reason)
        except Exception as e:  # a bug in a channel must not lose the record of the notice
            log.exception("%s channel crashed sending delivery %s", channel_name, row.id)
            return await self.deliveries.finish(row.id, "failed", self.now(), attempts=1,
                                                error=f"{type(e).__name__}: {e}")
        return await self.deliveries.finish(row.id, result.status, self.now(), attempts=result.attempts,
                                            external_id=result.external_id)

    def _receipt_for(self, channel_name: str) -> Receipt:
        def receipt(external_id: str, status: str, error: str | None) -> None:
            d = Deferred.fromCoroutine(self.deliveries.receipt(channel_name, external_id, status, self.now(), error))
            d.addErrback(lambda f: log.error("%s receipt for %s not recorded: %s", channel_name, external_id,
                                             f.getErrorMessage()))

        return receipt


def channels_from_config(notify, reactor, deliveries, *, telephony=None, lines=None) -> Channels:
    """The registry for ``[notify]``: SMS when ``smpp_url`` is set, e-mail when ``smtp_host`` is,
    webhook when ``webhook_urls`` are, voice when a telephony service with trunk lines is given."""
    from notify.channels.email import EmailChannel
    from notify.channels.sms import SmsChannel
    from notify.channels.webhook import WebhookChannel

    channels = Channels(deliveries, reactor)
    if notify.smpp_url:
        channels.register(SmsChannel(reactor, notify.smpp_url, notify.smpp_source))
    if notify.smtp_host:
        channels.register(EmailChannel(reactor, notify.smtp_host, notify.smtp_port, notify.smtp_from,
                                       username=notify.smtp_username, password=notify.smtp_password,
                                       starttls=notify.smtp_starttls))
    if notify.webhook_urls:
        channels.register(WebhookChannel(reactor, notify.webhook_urls, retries=notify.webhook_retries))
    if telephony is not None and lines is not None:
        from notify.channels.voice import VoiceChannel

        channels.register(VoiceChannel(telephony, lines, reactor))
    return channels


__all__ = ["Channel", "Channels", "DeliveryFailed", "Message", "SendResult", "channels_from_config", "with_retries"]
