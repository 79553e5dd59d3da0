"""The SIP user agent core: routes what the endpoint receives to call legs, and guards the door.

Inbound INVITEs are accepted only from the trunk and configured peers (403 otherwise), within the
concurrent-call cap (503), for a number some flow serves (404), with an SDP offer we can answer (488).
Outbound legs must go to the trunk (or an allowed peer's URI) and their number must pass the dial plan.
In-dialog requests, ACKs, CANCELs and retransmitted 2xx find their leg by dialog or transaction key.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable
from typing import Any

from twisted.internet.interfaces import IReactorTime
from twisted.logger import Logger

from callflows.media.clock import MediaClock
from callflows.media.ports import PortsExhausted, RtpPortRange
from callflows.outcomes import NotAllowed
from callflows.sdp import SdpError
from callflows.settings import TelephonySettings
from callflows.sip.address import parse_name_addr, parse_uri
from callflows.sip.auth import DigestCredentials
from callflows.sip.endpoint import ALLOW, SipEndpoint, new_tag, response_for
from callflows.sip.message import SipParseError, SipRequest, SipResponse
from callflows.sip.transaction import Address, ServerInviteTransaction, ServerTransaction, SipTimers
from callflows.sipleg import SipLeg, called_number

log = Logger()


class UserAgent:
    def __init__(self, settings: TelephonySettings, clock: IReactorTime, media_clock: MediaClock,
                 rtp_ports: RtpPortRange, host: str, port: int,
                 inbound: Callable[[SipLeg], bool], has_flow: Callable[[str], bool],
                 trunk: Address | None = None):
        self.settings = settings
        self.clock = clock
        self.media_clock = media_clock
        self.rtp_ports = rtp_ports
        self.timers = SipTimers(settings.t1, settings.t2, settings.t4)
        self.endpoint = SipEndpoint(self, clock, self.timers)
        self.host = host
        self.port = port
        self.media_host = host
        self.trunk = trunk
        self._inbound = inbound
        self._has_flow = has_flow
        self.credentials = (DigestCredentials(settings.username, settings.password or "")
                            if settings.username else None)
        self._dial_plan = re.compile(settings.dial_plan)
        self._peers = [ipaddress.ip_network(p, strict=False) for p in settings.allowed_peers]
        self._dialogs: dict[tuple[str, str, str], SipLeg] = {}
        self._offered: dict[Any, SipLeg] = {}
        self.legs: set[SipLeg] = set()
        self.refused: dict[int, int] = {}

    @property
    def via_host(self) -> str:
        return f"{self.host}:{self.port}"

    @property
    def contact(self) -> str:
        return f"<sip:watchline@{self.host}:{self.port}>"

    # -- the door ---------------------------------------------------------------------------------
    def peer_allowed(self, host: str) -> bool:
        if self.trunk is not None and host == self.trunk[0]:
            return True
        try:
            address = ipaddress.ip_address(host)
        except ValueError:
            return False
        return any(address in network for network in self._peers)

    def new_outbound(self, target: str, caller_id: str, ring_timeout: float) -> SipLeg:
        """A leg for ``target``: a number (to the trunk, through the dial plan) or a ``sip:`` URI of an
        allowed peer. Raises NotAllowed."""
        if len(self.legs) >= self.settings.max_calls:
            raise NotAllowed(f"at the concurrent-call cap ({self.settings.max_calls})")
        if target.startswith("sip:"):
            try:
                uri = parse_uri(target)
            except SipParseError as exc:
                raise NotAllowed(f"bad SIP URI {target!r}") from exc
            if not uri.is_ip or not self.peer_allowed(uri.address[0]):
                raise NotAllowed(f"{uri.host} is not an allowed peer")
            number, peer = uri.user, uri.address
        else:
            if not self._dial_plan.fullmatch(target):
                raise NotAllowed(f"{target!r} does not pass the dial plan")
            if self.trunk is None:
                raise NotAllowed("no trunk configured for outbound calls")
            number, peer = target, self.trunk
        try:
            leg = SipLeg.outbound(self, number, caller_id, peer, ring_timeout)
        except PortsExhausted as exc:
            raise NotAllowed(str(exc)) from exc
        self.legs.add(leg)
        return leg

    # -- SipCore ----------------------------------------------------------------------------------
    def request_received(self, request: SipRequest, tx: ServerTransaction, peer: Address) -> None:
        to_tag = parse_name_addr(request.headers.get("to", "")).tag
        if to_tag:
            from_tag = parse_name_addr(request.headers.get("from", "")).tag
            leg = self._dialogs.get((request.call_id, to_tag, from_tag))
            if leg is None:
                tx.respond(response_for(request, 481, "Call/Transaction Does Not Exist"))
            else:
                leg.in_dialog_request(request, tx)
        elif request.method == "INVITE":
            assert isinstance(tx, ServerInviteTransaction)
            self._invited(request, tx, peer)
        elif request.method == "OPTIONS":
            tx.respond(self.options_response(request))
        elif request.method in ("BYE", "INFO"):
            tx.respond(response_for(request, 481, "Call/Transaction Does Not Exist", new_tag()))
        else:
            tx.respond(response_for(request, 405, "Method Not Allowed", new_tag()))

    def _refuse(self, tx: ServerTransaction, status: int, reason: str) -> None:
        self.refused[status] = self.refused.get(status, 0) + 1
        tx.respond(response_for(tx.request, status, reason, new_tag()))

    def _invited(self, request: SipRequest, tx: ServerInviteTransaction, peer: Address) -> None:
        if not self.peer_allowed(peer[0]):
            self._refuse(tx, 403, "Forbidden")
            return
        if len(self.legs) >= self.settings.max_calls:
            self._refuse(tx, 503, "Service Unavailable")
            return
        if not self._has_flow(called_number(request)):
            self._refuse(tx, 404, "Not Found")
            return
        try:
            leg = SipLeg.inbound(self, request, tx, peer)
        except SdpError:
            self._refuse(tx, 488, "Not Acceptable Here")
            return
        except PortsExhausted:
            self._refuse(tx, 503, "Service Unavailable")
            return
        self.legs.add(leg)
        self._offered[tx.key] = leg
        if not self._inbound(leg):
            leg.machine.reject(404)

    def ack_received(self, request: SipRequest, peer: Address) -> None:
        try:
            to_tag = parse_name_addr(request.headers.get("to", "")).tag
            from_tag = parse_name_addr(request.headers.get("from", "")).tag
        except SipParseError:
            return
        leg = self._dialogs.get((request.call_id, to_tag, from_tag))
        if leg is not None:
            leg.ack_received(request)

    def cancel_received(self, invite_tx: ServerInviteTransaction) -> None:
        leg = self._offered.get(invite_tx.key)
        if leg is not None:
            leg.remote_cancel()
        else:
            invite_tx.respond(response_for(invite_tx.request, 487, "Request Terminated", new_tag()))

    def stray_response(self, response: SipResponse, peer: Address) -> None:
        if 200 <= response.status < 300 and response.cseq[1] == "INVITE":
            from_tag = parse_name_addr(response.headers.get("from", "")).tag
            to_tag = parse_name_addr(response.headers.get("to", "")).tag
            leg = self._dialogs.get((response.call_id, from_tag, to_tag))
            if leg is not None:
                leg.resend_ack()

    def options_response(self, request: SipRequest) -> SipResponse:
        response = response_for(request, 200, "OK", new_tag())
        response.headers.add("allow", ALLOW)
        response.headers.add("accept", "application/sdp")
        return response

    # -- bookkeeping ------------------------------------------------------------------------------
    def add_dialog(self, leg: SipLeg) -> None:
        assert leg.dialog is not None
        self._dialogs[leg.dialog.key] = leg

    def leg_ended(self, leg: SipLeg) -> None:
        self.legs.discard(leg)
        if leg.dialog is not None and self._dialogs.get(leg.dialog.key) is leg:
            # Keep routing in-dialog retransmissions for a while (a lost 200 to BYE, a late ACK).
            self.clock.callLater(64 * self.timers.t1, self._forget, leg)
        for key, offered in list(self._offered.items()):
            if offered is leg:
                del self._offered[key]

    def _forget(self, leg: SipLeg) -> None:
        if leg.dialog is not None and self._dialogs.get(leg.dialog.key) is leg:
            del self._dialogs[leg.dialog.key]
