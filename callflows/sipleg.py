"""The adapter between one SIP dialog (plus its RTP stream) and its ``LegMachine``.

It turns responses, in-dialog requests and timers into machine inputs, and implements the machine's
outputs with transactions: INVITE (with one digest-authenticated retry), CANCEL, ACK, BYE, the
provisional and final responses of an inbound INVITE, and re-INVITE answers for hold.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from automat import NoTransition
from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IDelayedCall
from twisted.logger import Logger

from callflows.leg import LegMachine
from callflows.media.dtmf import parse_info_body
from callflows.media.stream import MediaStream
from callflows.outcomes import CallOutcome, outcome_for_status
from callflows.sdp import LocalSession, MediaParams, SdpError, accept_answer, answer_offer
from callflows.sip.address import NameAddr, SipUri, parse_name_addr, parse_uri
from callflows.sip.auth import parse_challenge
from callflows.sip.dialog import Dialog, build_request, cancel_for, new_call_id
from callflows.sip.endpoint import new_branch, new_tag, response_for
from callflows.sip.message import SipParseError, SipRequest, SipResponse
from callflows.sip.transaction import Address, ServerInviteTransaction, ServerTransaction

if TYPE_CHECKING:
    from callflows.useragent import UserAgent

log = Logger()
SDP = "application/sdp"


class SipLeg:
    def __init__(self, agent: UserAgent, direction: str, local_number: str, remote_number: str,
                 call_id: str, peer: Address):
        self.agent = agent
        self.direction = direction
        self.local_number = local_number
        self.remote_number = remote_number
        self.call_id = call_id
        self.peer = peer
        self.machine = LegMachine(self)
        self.stream = MediaStream(agent.media_clock, self._digit)
        self.rtp_port = agent.rtp_ports.listen(self.stream).getHost().port
        self.local_session = LocalSession(agent.media_host, self.rtp_port)
        self.media: MediaParams | None = None
        self.dialog: Dialog | None = None
        self.ring_timeout = 0.0
        self._ring_timer: IDelayedCall | None = None
        self._cancel_guard: IDelayedCall | None = None
        self._invite: SipRequest | None = None
        self._authenticated = False
        self._ack: bytes | None = None
        self._ist: ServerInviteTransaction | None = None
        self._reinvite: ServerInviteTransaction | None = None
        self._bye_tx: ServerTransaction | None = None
        self._answer_body = b""
        self.on_connected: Callable[[], None] = lambda: None
        self.on_ended: Callable[[CallOutcome], None] = lambda outcome: None
        self.on_digit: Callable[[str], None] = lambda digit: None
        self.outcome: CallOutcome | None = None

    # -- construction -----------------------------------------------------------------------------
    @classmethod
    def outbound(cls, agent: UserAgent, number: str, caller_id: str, peer: Address,
                 ring_timeout: float) -> SipLeg:
        leg = cls(agent, "outbound", caller_id, number, new_call_id(agent.host), peer)
        leg.ring_timeout = ring_timeout
        return leg

    @classmethod
    def inbound(cls, agent: UserAgent, invite: SipRequest, tx: ServerInviteTransaction,
                peer: Address) -> SipLeg:
        """Raises SdpError when the offer has nothing we can use (the caller answers 488)."""
        # Everything that can fail to parse is read before the leg takes an RTP port.
        from_number = parse_name_addr(invite.headers.get("from", "")).uri.user
        to_number = called_number(invite)
        dialog = Dialog.from_uas(invite, new_tag(), agent.contact, agent.via_host, peer)
        leg = cls(agent, "inbound", to_number, from_number, invite.call_id, peer)
        leg._ist = tx
        leg.dialog = dialog
        try:
            if invite.body:
                leg.media, leg._answer_body = answer_offer(invite.body, leg.local_session)
                leg.stream.configure(leg.media)
            else:  # late offer: we offer in the 200, the ACK carries the answer
                leg._answer_body = leg.local_session.offer()
        except SdpError:
            leg.release()
            raise
        tx.on_timeout = leg._ack_timeout
        return leg

    def release(self) -> None:
        """Give the RTP port back (the stream stops listening)."""
        self.stream.stop()
        self.agent.rtp_ports.release(self.rtp_port)

    # -- feeding the machine ----------------------------------------------------------------------
    def _feed(self, name: str, *args: object) -> None:
        try:
            getattr(self.machine, name)(*args)
        except NoTransition:
            log.debug("leg {call_id}: {input} ignored in {state}", call_id=self.call_id, input=name,
                      state=self.machine.state())

    @property
    def state(self) -> str:
        return self.machine.state()

    # -- outbound ---------------------------------------------------------------------------------
    def send_invite(self) -> None:
        agent = self.agent
        target = SipUri(self.remote_number, self.peer[0], self.peer[1])
        local = NameAddr(SipUri(self.local_number, agent.host, agent.port), params={"tag": new_tag()})
        self._invite = build_request("INVITE", target, local, NameAddr(target), self.call_id, 1,
                                     agent.via_host, agent.contact, self.local_session.offer(), SDP)
        self._send_invite(self._invite)

    def _send_invite(self, invite: SipRequest) -> None:
        self.agent.endpoint.send_request(invite, self.peer, self._invite_response, self._invite_timeout)

    def _invite_response(self, response: SipResponse) -> None:
        status = response.status
        if status < 200:
            if status in (180, 183):
                self._feed("provisional")
        elif status < 300:
            self._invite_answered(response)
        elif status in (401, 407) and not self._authenticated and self._retry_with_auth(response):
            return
        else:
            self._feed("failed", outcome_for_status(status))

    def _retry_with_auth(self, response: SipResponse) -> bool:
        credentials = self.agent.credentials
        header = "www-authenticate" if response.status == 401 else "proxy-authenticate"
        if credentials is None or self._invite is None or self.state not in ("calling", "early"):
            return False
        try:
            challenge = parse_challenge(response.headers.get(header, ""))
        except SipParseError:
            return False
        self._authenticated = True
        invite = self._invite
        headers = invite.headers.copy()
        headers.set("via", f"SIP/2.0/UDP {self.agent.via_host};branch={new_branch()};rport")
        headers.set("cseq", f"{invite.cseq[0] + 1} INVITE")
        headers.set("authorization" if response.status == 401 else "proxy-authorization",
                    credentials.authorization(challenge, "INVITE", invite.uri))
        self._invite = SipRequest("INVITE", invite.uri, headers, invite.body)
        self._send_invite(self._invite)
        return True

    def _invite_answered(self, response: SipResponse) -> None:
        if self.dialog is not None:
            self.resend_ack()  # a retransmitted 2xx: our ACK was lost
            return
        assert self._invite is not None
        self.dialog = Dialog.from_uac(self._invite, response, self.agent.via_host, self.peer)
        self.agent.add_dialog(self)
        try:
            self.media = accept_answer(response.body)
            self.stream.configure(self.media)
        except SdpError:
            log.warn("call {call_id}: unusable SDP answer; no media", call_id=self.call_id)
        self._feed("answered")

    def _invite_timeout(self) -> None:
        self._feed("failed", CallOutcome.FAILED)

    def start_ring_timer(self) -> None:
        self._ring_timer = self.agent.clock.callLater(self.ring_timeout, self._feed, "ring_timeout")

    def stop_ring_timer(self) -> None:
        if self._ring_timer is not None and self._ring_timer.active():
            self._ring_timer.cancel()
        self._ring_timer = None

    def send_cancel(self) -> None:
        assert self._invite is not None
        self.agent.endpoint.send_request(cancel_for(self._invite), self.peer, lambda r: None, lambda: None)
        # RFC 3261 9.1: give up on the INVITE if no final response comes within 64*T1 of the CANCEL.
        self._cancel_guard = self.agent.clock.callLater(64 * self.agent.timers.t1, self._feed, "failed",
                                                        CallOutcome.FAILED)

    def send_ack(self) -> None:
        assert self.dialog is not None and self._invite is not None
        self._ack = self.dialog.ack(self._invite.cseq[0]).to_bytes()
        self.agent.endpoint.send(self._ack, self.dialog.peer)

    def resend_ack(self) -> None:
        if self._ack is not None and self.dialog is not None:
            self.agent.endpoint.send(self._ack, self.dialog.peer)

    # -- inbound ----------------------------------------------------------------------------------
    def _final_or_provisional(self, status: int, reason: str, body: bytes = b"") -> SipResponse:
        assert self._ist is not None and self.dialog is not None
        response = response_for(self._ist.request, status, reason, self.dialog.local.tag)
        if 100 < status < 300:
            response.headers.add("contact", self.agent.contact)
        if body:
            response.headers.add("content-type", SDP)
            response.body = body
        return response

    def send_ringing(self) -> None:
        assert self._ist is not None
        self.agent.add_dialog(self)
        self._ist.respond(self._final_or_provisional(180, "Ringing"))

    def send_answer(self) -> None:
        assert self._ist is not None
        response = self._final_or_provisional(200, "OK", self._answer_body)
        response.headers.add("allow", "INVITE, ACK, BYE, CANCEL, OPTIONS, INFO")
        self._ist.respond(response)

    def send_final(self, status: int) -> None:
        if self._ist is not None and self.dialog is not None:
            self._ist.respond(self._final_or_provisional(status, _REASONS.get(status, "Rejected")))

    def _ack_timeout(self) -> None:
        self._feed("ack_timeout")

    def ack_received(self, request: SipRequest) -> None:
        for tx in (self._ist, self._reinvite):
            if tx is not None and tx.state == "accepted" and tx.request.cseq[0] == request.cseq[0]:
                tx.ack_received()
        if self.media is None and request.body:  # the answer to our offer in a late-offer 200
            try:
                self.media = accept_answer(request.body)
                self.stream.configure(self.media)
            except SdpError:
                log.warn("call {call_id}: unusable SDP in ACK", call_id=self.call_id)

    def remote_cancel(self) -> None:
        self._feed("remote_cancel")

    # -- both directions --------------------------------------------------------------------------
    def send_bye(self) -> None:
        if self.dialog is None:
            self._feed("bye_finished")
            return
        self._send_in_dialog(self.dialog.request("BYE"), lambda r: self._feed("bye_finished"))

    def _send_in_dialog(self, request: SipRequest, done: Callable[[SipResponse], None],
                        retried: bool = False) -> None:
        assert self.dialog is not None

        def on_response(response: SipResponse) -> None:
            if response.status < 200:
                return
            if response.status in (401, 407) and not retried and self.agent.credentials is not None:
                header = "www-authenticate" if response.status == 401 else "proxy-authenticate"
                try:
                    challenge = parse_challenge(response.headers.get(header, ""))
                except SipParseError:
                    done(response)
                    return
                assert self.dialog is not None
                again = self.dialog.request(request.method, request.body,
                                            request.headers.get("content-type"))
                again.headers.add("authorization" if response.status == 401 else "proxy-authorization",
                                  self.agent.credentials.authorization(challenge, request.method, again.uri))
                self._send_in_dialog(again, done, retried=True)
                return
            done(response)

        self.agent.endpoint.send_request(request, self.dialog.peer, on_response,
                                         lambda: done(SipResponse(408, "Request Timeout")))

    async def send_info_digit(self, digit: str) -> None:
        """DTMF by SIP INFO (application/dtmf-relay), for peers without telephone-event."""
        if self.dialog is None or self.state != "connected":
            return
        done: Deferred[SipResponse] = Deferred()
        body = f"Signal={digit}\r\nDuration=160\r\n".encode()
        self._send_in_dialog(self.dialog.request("INFO", body, "application/dtmf-relay"), done.callback)
        await done

    def accept_bye(self) -> None:
        if self._bye_tx is not None:
            self._bye_tx.respond(response_for(self._bye_tx.request, 200, "OK"))

    def start_media(self) -> None:
        self.stream.start()

    def stop_media(self) -> None:
        self.stream.stop()

    def connected(self) -> None:
        self.on_connected()

    def ended(self, outcome: CallOutcome) -> None:
        self.outcome = outcome
        self.stop_ring_timer()
        if self._cancel_guard is not None and self._cancel_guard.active():
            self._cancel_guard.cancel()
        self.release()
        self.agent.leg_ended(self)
        self.on_ended(outcome)

    def hangup(self) -> None:
        self._feed("hangup")

    def _digit(self, digit: str) -> None:
        self.on_digit(digit)

    def in_dialog_request(self, request: SipRequest, tx: ServerTransaction) -> None:
        assert self.dialog is not None
        if not self.dialog.accepts(request):
            tx.respond(response_for(request, 500, "Server Internal Error (CSeq out of order)"))
            return
        method = request.method
        if method == "BYE":
            self._bye_tx = tx
            self._feed("remote_bye")
            if not tx.answered:
                tx.respond(response_for(request, 200, "OK"))
        elif method == "INVITE":
            self._reinvited(request, tx)
        elif method == "INFO":
            digit = parse_info_body(request.headers.get("content-type", ""), request.body)
            tx.respond(response_for(request, 200, "OK"))
            if digit is not None and self.state == "connected":
                self.on_digit(digit)
        elif method == "OPTIONS":
            tx.respond(self.agent.options_response(request))
        else:
            tx.respond(response_for(request, 405, "Method Not Allowed"))

    def _reinvited(self, request: SipRequest, tx: ServerTransaction) -> None:
        """Hold, unhold or a new media address: accept and answer with our current description."""
        assert isinstance(tx, ServerInviteTransaction)
        if self.state != "connected":
            tx.respond(response_for(request, 491, "Request Pending"))
            return
        try:
            if request.body:
                media, body = answer_offer(request.body, self.local_session)
                self.media = media
                self.stream.configure(media)
            else:
                body = self.local_session.offer()
        except SdpError:
            tx.respond(response_for(request, 488, "Not Acceptable Here"))
            return
        self._reinvite = tx
        tx.on_timeout = lambda: None
        response = response_for(request, 200, "OK")
        response.headers.add("contact", self.agent.contact)
        response.headers.add("content-type", SDP)
        response.body = body
        tx.respond(response)


def called_number(invite: SipRequest) -> str:
    """The called number: the Request-URI's user part, else the To header's."""
    try:
        user = parse_uri(invite.uri).user
    except SipParseError:
        user = ""
    return user or parse_name_addr(invite.headers.get("to", "")).uri.user


_REASONS = {400: "Bad Request", 403: "Forbidden", 404: "Not Found", 480: "Temporarily Unavailable",
            486: "Busy Here", 487: "Request Terminated", 488: "Not Acceptable Here", 500: "Server Internal Error",
            503: "Service Unavailable", 603: "Decline"}
