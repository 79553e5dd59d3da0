"""SIP dialogs (RFC 3261 section 12): identity, CSeq numbering, remote target, route set, and the
requests built inside one (BYE, re-INVITE, INFO, ACK of a 2xx), plus the initial out-of-dialog request.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field

from callflows.sip.address import NameAddr, SipUri, parse_name_addr
from callflows.sip.endpoint import USER_AGENT, new_branch
from callflows.sip.message import Headers, SipParseError, SipRequest, SipResponse
from callflows.sip.transaction import Address


def new_call_id(host: str) -> str:
    return f"{secrets.token_hex(10)}@{host}"


def build_request(method: str, uri: SipUri | str, from_: NameAddr, to: NameAddr, call_id: str, cseq: int,
                  via_host: str, contact: str | None = None, body: bytes = b"",
                  content_type: str | None = None, routes: list[str] | None = None,
                  branch: str | None = None) -> SipRequest:
    headers = Headers()
    headers.add("via", f"SIP/2.0/UDP {via_host};branch={branch or new_branch()};rport")
    for route in routes or ():
        headers.add("route", route)
    headers.add("max-forwards", "70")
    headers.add("from", str(from_))
    headers.add("to", str(to))
    headers.add("call-id", call_id)
    headers.add("cseq", f"{cseq} {method}")
    if contact:
        headers.add("contact", contact)
    headers.add("user-agent", USER_AGENT)
    if method in ("INVITE", "OPTIONS"):
        headers.add("allow", "INVITE, ACK, BYE, CANCEL, OPTIONS, INFO")
    if content_type and body:
        headers.add("content-type", content_type)
    return SipRequest(method, str(uri), headers, body)


def cancel_for(invite: SipRequest) -> SipRequest:
    """RFC 3261 9.1: same Request-URI, top Via (branch), From, To, Call-ID, CSeq number and Route."""
    headers = Headers()
    headers.add("via", invite.headers.get("via", ""))
    for route in invite.headers.get_all("route"):
        headers.add("route", route)
    headers.add("max-forwards", "70")
    headers.add("from", invite.headers.get("from", ""))
    headers.add("to", invite.headers.get("to", ""))
    headers.add("call-id", invite.call_id)
    headers.add("cseq", f"{invite.cseq[0]} CANCEL")
    headers.add("user-agent", USER_AGENT)
    return SipRequest("CANCEL", invite.uri, headers)


@dataclass
class Dialog:
    call_id: str
    local: NameAddr
    remote: NameAddr
    remote_target: SipUri
    local_contact: str
    via_host: str
    fallback_peer: Address
    local_cseq: int = 1
    remote_cseq: int = 0
    route_set: list[str] = field(default_factory=list)

    @property
    def key(self) -> tuple[str, str, str]:
        return self.call_id, self.local.tag, self.remote.tag

    @classmethod
    def from_uac(cls, invite: SipRequest, response: SipResponse, via_host: str, peer: Address) -> Dialog:
        """The dialog a 2xx to our INVITE creates (RFC 3261 12.1.2)."""
        contact = response.headers.get("contact")
        remote = parse_name_addr(response.headers.get("to", ""))
        target = parse_name_addr(contact).uri if contact else remote.uri
        routes = list(reversed(response.headers.get_all("record-route")))
        return cls(invite.call_id, parse_name_addr(invite.headers.get("from", "")), remote, target,
                   invite.headers.get("contact", ""), via_host, peer, local_cseq=invite.cseq[0],
                   route_set=routes)

    @classmethod
    def from_uas(cls, invite: SipRequest, local_tag: str, local_contact: str, via_host: str,
                 peer: Address) -> Dialog:
        """The dialog our answer to an INVITE creates (RFC 3261 12.1.1)."""
        contact = invite.headers.get("contact")
        remote = parse_name_addr(invite.headers.get("from", ""))
        target = parse_name_addr(contact).uri if contact else remote.uri
        local = parse_name_addr(invite.headers.get("to", "")).with_tag(local_tag)
        return cls(invite.call_id, local, remote, target, local_contact, via_host, peer,
                   local_cseq=secrets.randbelow(10000) + 1, remote_cseq=invite.cseq[0],
                   route_set=list(invite.headers.get_all("record-route")))

    @property
    def peer(self) -> Address:
        """Where in-dialog requests go: the first route, else the remote target if it is an IP
        literal, else where the dialog came from (we do no DNS on the signalling path)."""
        if self.route_set:
            try:
                uri = parse_name_addr(self.route_set[0]).uri
                if uri.is_ip:
                    return uri.address
            except SipParseError:
                pass
        if self.remote_target.is_ip:
            return self.remote_target.address
        return self.fallback_peer

    def request(self, method: str, body: bytes = b"", content_type: str | None = None) -> SipRequest:
        self.local_cseq += 1
        return build_request(method, self.remote_target, self.local, self.remote, self.call_id,
                             self.local_cseq, self.via_host, self.local_contact if method == "INVITE" else None,
                             body, content_type, self.route_set)

    def ack(self, invite_cseq: int, body: bytes = b"", content_type: str | None = None) -> SipRequest:
        """The ACK of a 2xx: a new transaction, same CSeq number as the INVITE (13.2.2.4)."""
        ack = build_request("ACK", self.remote_target, self.local, self.remote, self.call_id, invite_cseq,
                            self.via_host, None, body, content_type, self.route_set)
        return ack

    def accepts(self, request: SipRequest) -> bool:
        """Checks the CSeq of an in-dialog request; an old or repeated one is not for the core."""
        number = request.cseq[0]
        if request.method in ("ACK", "CANCEL"):
            return True
        if number <= self.remote_cseq:
            return False
        self.remote_cseq = number
        return True
