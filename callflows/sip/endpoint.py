"""The SIP UDP endpoint: datagrams in and out, and the table of live transactions.

It parses each datagram, hands retransmissions to their transaction, answers CANCEL for a pending
INVITE (RFC 3261 9.2), and passes new requests, ACKs for 2xx and stray 2xx retransmissions to the
transaction user (``SipCore``). Malformed input is answered with 400 when a reply is possible and
dropped otherwise; an exception from the core is logged, never propagated into the reactor.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from twisted.internet.interfaces import IReactorTime
from twisted.internet.protocol import DatagramProtocol
from twisted.logger import Logger

from callflows.sip.address import parse_name_addr
from callflows.sip.message import (
    Headers,
    SipParseError,
    SipRequest,
    SipResponse,
    parse_message,
)
from callflows.sip.transaction import (
    Address,
    ClientInviteTransaction,
    ClientNonInviteTransaction,
    ClientTransaction,
    ServerInviteTransaction,
    ServerNonInviteTransaction,
    ServerTransaction,
    SipTimers,
    server_key,
)

log = Logger()
USER_AGENT = "Watchline"
ALLOW = "INVITE, ACK, BYE, CANCEL, OPTIONS, INFO"


def new_branch() -> str:
    return "z9hG4bK" + secrets.token_hex(8)


def new_tag() -> str:
    return secrets.token_hex(6)


def response_for(request: SipRequest, status: int, reason: str, to_tag: str = "") -> SipResponse:
    """A response copying Via, From, To (adding our tag if it has none), Call-ID and CSeq (8.2.6.2)."""
    headers = Headers()
    for via in request.headers.get_all("via"):
        headers.add("via", via)
    headers.add("from", request.headers.get("from", ""))
    to = request.headers.get("to", "")
    if to_tag and ";tag=" not in to.replace(" ", "").lower():
        to = f"{to};tag={to_tag}"
    headers.add("to", to)
    headers.add("call-id", request.call_id)
    headers.add("cseq", request.headers.get("cseq", ""))
    headers.add("user-agent", USER_AGENT)
    return SipResponse(status, reason, headers)


class SipCore(Protocol):
    """The transaction user: what the endpoint calls for things no transaction owns."""

    def request_received(self, request: SipRequest, tx: ServerTransaction, peer: Address) -> None: ...

    def ack_received(self, request: SipRequest, peer: Address) -> None: ...

    def cancel_received(self, invite_tx: ServerInviteTransaction) -> None: ...

    def stray_response(self, response: SipResponse, peer: Address) -> None: ...


@dataclass
class EndpointStats:
    received: int = 0
    malformed: int = 0
    rejected_400: int = 0
    core_errors: int = 0


class SipEndpoint(DatagramProtocol):
    def __init__(self, core: SipCore, clock: IReactorTime, timers: SipTimers = SipTimers()):
        self.core = core
        self.clock = clock
        self.timers = timers
        self.stats = EndpointStats()
        self._clients: dict[tuple[str, str], ClientTransaction] = {}
        self._servers: dict[tuple[str, str, str], ServerTransaction] = {}

    # -- outgoing ---------------------------------------------------------------------------------
    def send(self, data: bytes, peer: Address) -> None:
        if self.transport is not None:
            self.transport.write(data, peer)

    def send_request(self, request: SipRequest, peer: Address, on_response: Callable[[SipResponse], None],
                     on_timeout: Callable[[], None]) -> ClientTransaction:
        kind = ClientInviteTransaction if request.method == "INVITE" else ClientNonInviteTransaction
        tx = kind(request, peer, self.send, self.clock, self.timers, on_response, on_timeout,
                  self._client_ended)
        self._clients[tx.key] = tx
        tx.start()
        return tx

    def send_stateless(self, message: SipRequest | SipResponse, peer: Address) -> None:
        self.send(message.to_bytes(), peer)

    def _client_ended(self, tx: ClientTransaction) -> None:
        if self._clients.get(tx.key) is tx:
            del self._clients[tx.key]

    def _server_ended(self, tx: ServerTransaction) -> None:
        if self._servers.get(tx.key) is tx:
            del self._servers[tx.key]

    @property
    def transaction_count(self) -> int:
        return len(self._clients) + len(self._servers)

    # -- incoming ---------------------------------------------------------------------------------
    def datagramReceived(self, data: bytes, addr: Address) -> None:  # noqa: N802 (Twisted's name)
        self.stats.received += 1
        if not data.strip(b"\r\n"):
            return  # RFC 5626 keep-alive
        try:
            message = parse_message(data)
        except SipParseError as exc:
            self.stats.malformed += 1
            if exc.request is not None:
                self.stats.rejected_400 += 1
                self.send_stateless(response_for(exc.request, 400, f"Bad Request ({exc.reason})"[:80]), addr)
            return
        try:
            if isinstance(message, SipResponse):
                self._response_received(message, addr)
            else:
                self._request_received(message, addr)
        except SipParseError:
            self.stats.malformed += 1
        except Exception:
            self.stats.core_errors += 1
            log.failure("SIP message from {peer} could not be handled", peer=addr)

    def _response_received(self, response: SipResponse, addr: Address) -> None:
        tx = self._clients.get((response.branch, response.cseq[1]))
        if tx is not None:
            tx.receive(response)
        else:
            self.core.stray_response(response, addr)

    def _request_received(self, request: SipRequest, addr: Address) -> None:
        key = server_key(request)
        existing = self._servers.get(key)
        if existing is not None:
            existing.receive_request(request)
            return
        if request.method == "ACK":
            self.core.ack_received(request, addr)  # the ACK of a 2xx is its own transaction-less request
            return
        if request.method == "CANCEL":
            self._cancel_received(request, addr)
            return
        tx = self.new_server_transaction(request, addr)
        if isinstance(tx, ServerInviteTransaction):
            tx.respond(response_for(request, 100, "Trying"))
        try:
            self.core.request_received(request, tx, addr)
        except SipParseError as exc:
            # A header only the core reads (From, To, Contact...) was bad: answer, so that the
            # transaction ends instead of waiting for a response forever.
            self.stats.malformed += 1
            if not tx.answered:
                tx.respond(response_for(request, 400, f"Bad Request ({exc.reason})"[:80], new_tag()))
        except Exception:
            if not tx.answered:
                tx.respond(response_for(request, 500, "Server Internal Error", new_tag()))
            raise

    def new_server_transaction(self, request: SipRequest, addr: Address) -> ServerTransaction:
        kind = ServerInviteTransaction if request.method == "INVITE" else ServerNonInviteTransaction
        tx = kind(request, addr, self.send, self.clock, self.timers, self._server_ended)
        self._servers[tx.key] = tx
        return tx

    def _cancel_received(self, request: SipRequest, addr: Address) -> None:
        branch, sent_by, _ = server_key(request)
        cancel_tx = self.new_server_transaction(request, addr)
        invite_tx = self._servers.get((branch, sent_by, "INVITE"))
        if not isinstance(invite_tx, ServerInviteTransaction):
            cancel_tx.respond(response_for(request, 481, "Call/Transaction Does Not Exist", new_tag()))
            return
        to_tag = ""
        if invite_tx.last_response is not None:
            to_tag = _to_tag(invite_tx.last_response)
        cancel_tx.respond(response_for(request, 200, "OK", to_tag))
        if invite_tx.state == "proceeding" and not invite_tx.cancelled:
            invite_tx.cancelled = True
            self.core.cancel_received(invite_tx)


def _to_tag(response: SipResponse) -> str:
    try:
        return parse_name_addr(response.headers.get("to", "")).tag
    except SipParseError:
        return ""
