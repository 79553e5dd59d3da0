"""Notices: which message goes to whom over which channel, for the incident, dispatch and campaign flows.

``Notices`` renders a notice (``NoticeRenderer``) and hands it to the channel registry, which records
each send as a delivery. It is the hook other flows call: the quiet-hours SMS of a routine incident,
``work_order_dispatched`` when a rescue truck sets off (SMS to the customer's phone, and a POST to each
configured customer webhook; the text and what became of it — or why nothing went — on the order's
incident), ``campaign_notice`` for a campaign told by SMS. A notice that cannot go (SMS off, a bad number)
comes back as a failed or missing delivery — a notice never fails the flow that sent it.
"""

from __future__ import annotations

import logging

from twisted.internet.defer import Deferred, DeferredList

from crm.deliveries import Delivery
from crm.fleet import masked_phone as masked
from crm.fleet import parse_phone
from notify.channels import Channels, Message
from notify.channels.rendering import NoticeRenderer

log = logging.getLogger(__name__)


def e164(number: str, region: str = "CN") -> str | None:
    """``13800138000`` → ``+8613800138000``; None when it is not a valid number."""
    parsed = parse_phone(number, region)
    return parsed.e164 if parsed is not None else None


_SENT = ("sent", "delivered")  # delivery statuses that mean the notice went out


def _outcome(delivery: Delivery) -> str:
    return f"{delivery.channel} {delivery.status}" + (f" ({delivery.error})" if delivery.error else "")


class Notices:
    def __init__(self, channels: Channels, renderer: NoticeRenderer | None = None, vehicles=None,
                 region: str = "CN", desk=None) -> None:
        self.channels = channels
        self.desk = desk  # to put a work order's notices on its incident's timeline
        self.renderer = renderer or NoticeRenderer()
        self.vehicles = vehicles  # to speak a customer's language when the notice names their plate
        self.region = region
        self._sending: set[Deferred] = set()  # e-mail copies going out in the background

    @property
    def can_sms(self) -> bool:
        return "sms" in self.channels

    async def incident_notice(self, incident, phone: str, language: str | None,
                              place: str | None = None) -> Delivery | None:
        """The routine alarm told by SMS (quiet hours), with a copy to the owner's e-mail addresses when
        e-mail is configured; returns the SMS's delivery, None when SMS is off (an e-mail alone is not
        relied on to reach someone at night: the caller phones instead)."""
        if not self.can_sms:
            return None
        message = self.renderer.incident_notice(incident, phone, language, place)
        delivery = await self._sms(message)
        self._in_background(self._emails_to_owner(message, incident.plate), f"incident {incident.id}: e-mail copy")
        return delivery

    def _in_background(self, coro, what: str) -> None:
        """A copy that must not hold up what waits for the SMS (a mail server retrying for a minute
        would eat the policy step's deadline); its deliveries are recorded as usual."""
        sending = Deferred.fromCoroutine(coro)
        sending.addErrback(lambda f: log.error("%s failed: %s", what, f.getErrorMessage()))
        if not sending.called:
            self._sending.add(sending)
            sending.addBoth(lambda _: self._sending.discard(sending))

    def sent(self) -> Deferred:
        """Fires once the copies under way have gone (shutdown and tests wait on it)."""
        return DeferredList(list(self._sending), consumeErrors=True)

    async def work_order_dispatched(self, order, truck_plate: str, eta_s: float | None,
                                    phone: str | None) -> list[Delivery]:
        """The dispatch hook: tell the customer which truck is coming and when. The order's incident
        always gets the text and what became of it (sent, failed, or not sent and why), so the desk
        knows what the customer was told even where no channel is configured."""
        owner = await self._owner_of(getattr(order, "customer_plate", None))
        language = "en" if owner is not None and owner.language == "en" else "zh"
        message = self.renderer.work_order_dispatched(order, truck_plate, eta_s, phone or "", language)
        sent, unsent = [], []  # unsent: why no SMS was tried (listed where the SMS would be)
        if phone and self.can_sms:
            sent.append(await self._sms(message))
        else:
            unsent.append("SMS not sent (" + ("no SMS channel" if phone else "no phone number") + ")")
            log.warning("work order %s: %s for %s", order.id, unsent[0], masked(phone) if phone else "the customer")
        sent.extend(await self._emails(message, owner))
        sent.extend(await self._webhooks(message))
        outcome = ", ".join([*unsent, *(_outcome(d) for d in sent)])
        if self.desk is not None and message.incident_id is not None:
            await self._on_timeline(order.id, message, phone, outcome, sent, truck_plate, eta_s)
        return sent

    async def _on_timeline(self, order_id: int, message: Message, phone: str | None, outcome: str,
                           sent: list[Delivery], truck_plate: str, eta_s: float | None) -> None:
        text = (f"work order {order_id}: notice to the customer {masked(e164(phone, self.region) or phone) if phone else '(no phone number)'}"
                f" — {outcome}: {message.body}")
        try:
            await self.desk.attempt(message.incident_id, text, {
                "work_order_id": order_id, "delivery_ids": [d.id for d in sent], "truck": truck_plate,
                "eta_s": eta_s, "sent": any(d.status in _SENT for d in sent),
                "channels": [[d.channel, d.status] for d in sent]}, kind="message")
        except Exception as e:  # the notice went (or not) regardless; its deliveries are recorded
            log.warning("work order %s: incident %s timeline not updated: %s", order_id, message.incident_id, e)

    async def campaign_notice(self, campaign: str, text: str, phone: str, language: str | None = "zh",
                              ) -> Delivery | None:
        """A campaign's notice by SMS (for a campaign that messages rather than calls); None when SMS is off."""
        if not self.can_sms:
            return None
        return await self._sms(self.renderer.campaign_notice(campaign, text, phone, language))

    async def _sms(self, message: Message) -> Delivery:
        # A number that will not parse still goes to the channel, which refuses it: the failure is recorded.
        return await self.channels.send("sms", message.to(e164(message.recipient, self.region) or message.recipient))

    async def _emails_to_owner(self, message: Message, plate: str) -> list[Delivery]:
        if "email" not in self.channels:
            return []
        return await self._emails(message, await self._owner_of(plate))

    async def _emails(self, message: Message, owner) -> list[Delivery]:
        """The notice to every e-mail address of ``owner`` (the fleet's ``email`` column)."""
        if "email" not in self.channels or owner is None:
            return []
        addresses = [c.value for c in owner.contacts if c.kind == "email"]
        return [await self.channels.send("email", message.to(address)) for address in addresses]

    async def _webhooks(self, message: Message) -> list[Delivery]:
        if "webhook" not in self.channels:
            return []
        return [await self.channels.send("webhook", message.to(url)) for url in self.channels["webhook"].urls]

    async def _owner_of(self, plate: str | None):
        """The plate's owner (language, contacts), looked up once per notice; None when unknown."""
        if not plate or self.vehicles is None:
            return None
        vehicle = await self.vehicles.get_by_plate(plate)
        return vehicle.owner if vehicle is not None else None
