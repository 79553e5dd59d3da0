"""Registration with a trunk (RFC 3261 section 10): REGISTER, answer a digest challenge, and refresh
before the granted expiry; after a failure or timeout, try again after ``retry_after`` seconds.
"""

from __future__ import annotations

from twisted.internet.interfaces import IDelayedCall, IReactorTime
from twisted.logger import Logger

from callflows.sip.address import NameAddr, SipUri, parse_name_addr
from callflows.sip.auth import DigestCredentials, parse_challenge
from callflows.sip.dialog import build_request, new_call_id
from callflows.sip.endpoint import SipEndpoint, new_tag
from callflows.sip.message import SipParseError, SipResponse
from callflows.sip.transaction import Address

log = Logger()


class Registration:
    def __init__(self, endpoint: SipEndpoint, clock: IReactorTime, registrar: Address, user: str,
                 via_host: str, contact: str, credentials: DigestCredentials | None, expires: int = 3600,
                 retry_after: float = 30.0):
        self._endpoint = endpoint
        self._clock = clock
        self._registrar = registrar
        self._aor = NameAddr(SipUri(user, registrar[0], registrar[1]))
        self._via_host = via_host
        self._contact = contact
        self._credentials = credentials
        self.expires = expires
        self.retry_after = retry_after
        self._call_id = new_call_id(via_host.split(":")[0])
        self._from_tag = new_tag()
        self._cseq = 0
        self._timer: IDelayedCall | None = None
        self._challenged = False
        self.registered = False
        self.granted = 0
        self.attempts = 0
        self.last_status: int | None = None
        self.running = False

    def start(self) -> None:
        self.running = True
        self._register()

    def stop(self) -> None:
        self.running = False
        if self._timer is not None and self._timer.active():
            self._timer.cancel()
        self._timer = None

    def _schedule(self, delay: float) -> None:
        if self.running:
            self._timer = self._clock.callLater(delay, self._register)

    def _register(self, authorization: tuple[str, str] | None = None) -> None:
        self._timer = None
        if not authorization:
            self._challenged = False
        self._cseq += 1
        self.attempts += 1
        uri = SipUri("", self._registrar[0], self._registrar[1])
        request = build_request("REGISTER", uri, self._aor.with_tag(self._from_tag), self._aor, self._call_id,
                                self._cseq, self._via_host, self._contact)
        request.headers.add("expires", str(self.expires))
        if authorization:
            request.headers.add(*authorization)
        self._endpoint.send_request(request, self._registrar, self._response, self._timeout)

    def _response(self, response: SipResponse) -> None:
        if response.status < 200:
            return
        self.last_status = response.status
        if response.status in (401, 407) and self._credentials is not None and not self._challenged:
            self._challenged = True
            header = "www-authenticate" if response.status == 401 else "proxy-authenticate"
            try:
                challenge = parse_challenge(response.headers.get(header, ""))
            except SipParseError:
                self._failed(response.status)
                return
            uri = f"sip:{self._registrar[0]}:{self._registrar[1]}"
            value = self._credentials.authorization(challenge, "REGISTER", uri)
            self._register(("authorization" if response.status == 401 else "proxy-authorization", value))
        elif response.status == 423 and (response.headers.get("min-expires") or "").isdigit():
            self.expires = int(response.headers.get("min-expires", "0"))
            self._register()
        elif 200 <= response.status < 300:
            self.registered = True
            self.granted = self._granted(response)
            # Refresh well before expiry: halfway for short grants, a minute early for long ones.
            self._schedule(self.granted / 2 if self.granted < 120 else self.granted - 60)
        else:
            self._failed(response.status)

    def _granted(self, response: SipResponse) -> int:
        for value in response.headers.get_all("contact"):
            try:
                contact = parse_name_addr(value)
            except SipParseError:
                continue
            if contact.params.get("expires", "").isdigit() and str(contact.uri) in self._contact:
                return int(contact.params["expires"])
        header = response.headers.get("expires") or ""
        return int(header) if header.isdigit() else self.expires

    def _failed(self, status: int) -> None:
        self.registered = False
        log.warn("registration with {registrar} failed: {status}", registrar=self._registrar, status=status)
        self._schedule(self.retry_after)

    def _timeout(self) -> None:
        self.last_status = 408
        self._failed(408)
