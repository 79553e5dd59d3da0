"""The ``sms`` channel: SMPP 3.4 to the operator's SMSC (smpp.twisted3 speaks the protocol).

One session, kept bound by a ``ClientService``: lost sessions reconnect and re-bind with backoff, and
enquire_link keeps an idle one alive. A notice is submitted as one submit_sm per part (UCS2 and a
concatenation header for Chinese or long text, ``sms_parts``), each asking for a delivery receipt. The
first part's SMSC message id is the delivery's external id; bound as a transceiver, the session takes
the SMSC's receipts (deliver_sm) and reports ``delivered`` once every part arrived, ``failed`` as soon as
one did not. A refused submit (bad number, bad text) fails at once; throttling and a lost session are
tried again after a pause.
"""

from __future__ import annotations

import itertools
import logging
import random
import re
from urllib.parse import unquote, urlsplit

from twisted.application import service
from twisted.application.internet import ClientService, backoffPolicy
from twisted.internet import protocol
from twisted.internet.defer import Deferred
from twisted.internet.endpoints import HostnameEndpoint

from notify.channels import DeliveryFailed, Message, SendResult, with_retries
from notify.channels.sms_parts import Coded, Receipt, code_text, parse_receipt

log = logging.getLogger(__name__)

# SMSC answers that mean "not now" rather than "never": try the part again after a pause.
_TRANSIENT = {"ESME_RTHROTTLED", "ESME_RMSGQFUL", "ESME_RSYSERR", "ESME_RX_T_APPN", "ESME_RSUBMITFAIL"}
_REMEMBERED = 10_000  # multi-part messages awaiting receipts; the oldest are forgotten past this


def _described(status: str) -> str:
    from smpp.pdu.constants import command_status_name_map, command_status_value_map

    return command_status_value_map.get(command_status_name_map.get(status), {}).get("description", "?")


def parse_smpp_url(url: str) -> tuple[str, int, str, str]:
    """``smpp://system_id:password@host:port`` → (host, port, system_id, password); port 2775 by default."""
    parts = urlsplit(url)
    if parts.scheme != "smpp" or not parts.hostname or not parts.username:
        raise ValueError(f"expected smpp://system_id:password@host[:port], got {url!r}")
    try:
        port = parts.port or 2775
    except ValueError:
        raise ValueError(f"bad port in {url!r}") from None
    return parts.hostname, port, unquote(parts.username), unquote(parts.password or "")


class _EsmeFactory(protocol.Factory):
    """Builds smpp.twisted3 client protocols that run their timers on our reactor, not the global one."""

    def __init__(self, channel: SmsChannel, config) -> None:
        from smpp.twisted.protocol import SMPPClientProtocol

        self.protocol = SMPPClientProtocol
        self.channel = channel
        self.config = config

    def getConfig(self):  # noqa: N802 (smpp.twisted3's name)
        return self.config

    def buildProtocol(self, addr):  # noqa: N802
        p = super().buildProtocol(addr)
        p.callLater = self.channel.reactor.callLater
        return p


class SmsChannel(service.Service):
    name = "sms"

    def __init__(self, reactor, url: str, source: str = "", *, transceiver: bool = True, retries: int = 2,
                 connect_timeout: float = 10.0, response_timeout: float = 30.0, enquire_link: float = 30.0,
                 reconnect_delay: float = 1.0, retry_delay: float = 2.0, clock=None) -> None:
        from smpp.twisted.config import SMPPClientConfig

        host, port, system_id, password = parse_smpp_url(url)
        self.reactor = reactor
        self.clock = clock or reactor
        self.address = f"{host}:{port}"
        self.source = source
        self.transceiver = transceiver
        self.retries = retries
        self.connect_timeout = connect_timeout
        self.retry_delay = retry_delay
        self.on_receipt = None  # set by the registry: (external id, status, error) -> None
        self.session = None  # the last bound smpp protocol
        self._refs = itertools.count(random.randrange(256))
        self._first_part: dict[str, str] = {}  # a part's message id -> the first part's
        self._waiting: dict[str, set[str]] = {}  # first part's id -> parts not yet delivered
        config = SMPPClientConfig(host=host, port=port, username=system_id, password=password,
                                  enquireLinkTimerSecs=enquire_link, responseTimerSecs=response_timeout,
                                  sessionInitTimerSecs=connect_timeout, inactivityTimerSecs=max(120, 4 * enquire_link))
        self._client = ClientService(
            HostnameEndpoint(reactor, host, port, timeout=connect_timeout), _EsmeFactory(self, config),
            retryPolicy=backoffPolicy(initialDelay=reconnect_delay, maxDelay=60.0), clock=reactor,
            prepareConnection=self._bind)

    # -- session ------------------------------------------------------------------------------------
    def startService(self) -> None:  # noqa: N802
        super().startService()
        self._client.startService()

    def stopService(self) -> Deferred:  # noqa: N802
        super().stopService()
        return Deferred.fromCoroutine(self._stop())

    async def _stop(self) -> None:
        session = self.session
        if session is not None and session.isBound():
            try:  # a polite unbind lets the SMSC finish; it must not hold up shutdown
                await session.unbind().addTimeout(2.0, self.reactor)
            except Exception as e:
                log.info("SMPP unbind at shutdown: %s", e)
        await self._client.stopService()

    def _bind(self, smpp) -> Deferred:
        d = smpp.bindAsTransceiver(self._inbound) if self.transceiver else smpp.bindAsTransmitter()

        def bound(result):
            self.session = smpp
            log.info("SMPP session bound to %s as %s", self.address, "transceiver" if self.transceiver
                     else "transmitter")
            return result

        return d.addCallback(bound)

    async def _bound_session(self):
        try:
            smpp = await self._client.whenConnected().addTimeout(self.connect_timeout, self.reactor)
        except Exception as e:
            raise DeliveryFailed(f"no SMPP session with {self.address} within {self.connect_timeout:g} s ({e!r})",
                                 permanent=False) from None
        return smpp

    # -- sending ------------------------------------------------------------------------------------
    async def send(self, message: Message) -> SendResult:
        number = message.recipient.strip()
        if not re.fullmatch(r"\+?\d{3,20}", number):
            raise DeliveryFailed(f"not a phone number: {message.recipient!r}")
        try:
            coded = code_text(message.body, next(self._refs))
        except ValueError as e:
            raise DeliveryFailed(str(e)) from None
        ids, attempts = await with_retries(lambda n: self._submit(number, coded), retries=self.retries,
                                           clock=self.clock, base_delay=self.retry_delay)
        first = ids[0]
        if len(ids) > 1:
            self._remember(first, ids)
        return SendResult(first, attempts)

    async def _submit(self, number: str, coded: Coded) -> list[str]:
        from smpp.pdu.error import SMPPError, SMPPTransactionError

        smpp = await self._bound_session()
        ids = []
        for n, part in enumerate(coded.parts, start=1):
            try:
                result = await smpp.sendDataRequest(self._submit_sm(number, part, coded))
            except SMPPTransactionError as e:
                status = e.response.status.name
                raise DeliveryFailed(f"SMSC refused part {n}/{len(coded.parts)}: {status} ({_described(status)})",
                                     permanent=status not in _TRANSIENT) from None
            except (SMPPError, ConnectionError) as e:
                raise DeliveryFailed(f"SMPP session failed at part {n}: {e!r}", permanent=False) from None
            ids.append(result.response.params["message_id"].decode(errors="replace"))
        return ids

    def _submit_sm(self, number: str, part: bytes, coded: Coded):
        from smpp.pdu import pdu_types as t
        from smpp.pdu.operations import SubmitSM

        alphanumeric = bool(self.source) and not self.source.lstrip("+").isdigit()
        return SubmitSM(
            source_addr=self.source.lstrip("+"), destination_addr=number.lstrip("+"),
            source_addr_ton=t.AddrTon.ALPHANUMERIC if alphanumeric else t.AddrTon.INTERNATIONAL,
            source_addr_npi=t.AddrNpi.UNKNOWN if alphanumeric else t.AddrNpi.ISDN,
            dest_addr_ton=t.AddrTon.INTERNATIONAL if number.startswith("+") else t.AddrTon.UNKNOWN,
            dest_addr_npi=t.AddrNpi.ISDN,
            esm_class=t.EsmClass(t.EsmClassMode.DEFAULT, t.EsmClassType.DEFAULT,
                                 [t.EsmClassGsmFeatures.UDHI_INDICATOR_SET] if coded.concatenated else []),
            registered_delivery=t.RegisteredDelivery(t.RegisteredDeliveryReceipt.SMSC_DELIVERY_RECEIPT_REQUESTED),
            data_coding=t.DataCoding(schemeData=t.DataCodingDefault.UCS2 if coded.ucs2
                                     else t.DataCodingDefault.SMSC_DEFAULT_ALPHABET),
            short_message=part)

    # -- receipts -----------------------------------------------------------------------------------
    def _inbound(self, smpp, pdu):
        """deliver_sm from the SMSC: a delivery receipt, or a message from a phone (logged, acknowledged)."""
        receipt = parse_receipt(pdu.params) if pdu.id.name == "deliver_sm" else None
        if receipt is not None:
            self._receipt(receipt)
        else:
            log.info("SMPP %s from %s acknowledged and ignored", pdu.id.name, pdu.params.get("source_addr"))
        return None  # ESME_ROK

    def _remember(self, first: str, ids: list[str]) -> None:
        self._waiting[first] = set(ids)
        for part in ids[1:]:
            self._first_part[part] = first
        while len(self._waiting) > _REMEMBERED:
            oldest = next(iter(self._waiting))
            for part in self._waiting.pop(oldest):
                self._first_part.pop(part, None)

    def _receipt(self, receipt: Receipt) -> None:
        first = self._first_part.pop(receipt.message_id, receipt.message_id)
        waiting = self._waiting.get(first)
        if receipt.status == "delivered" and waiting is not None:
            waiting.discard(receipt.message_id)
            if waiting:
                return  # more parts to come
        if waiting is not None:
            for part in self._waiting.pop(first):
                self._first_part.pop(part, None)
        if self.on_receipt is not None:
            self.on_receipt(first, receipt.status, receipt.error)
