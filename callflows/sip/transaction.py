"""SIP transactions over UDP (RFC 3261 section 17, with RFC 6026's Accepted state for 2xx).

Four kinds: client INVITE (timers A, B, D), client non-INVITE (E, F, K), server INVITE (G, H, I and
the 2xx retransmission until the ACK), server non-INVITE (J). Timers run on an injected clock
(``IReactorTime``) so tests step them with ``task.Clock``. A transaction sends through a ``send``
callable and reports to its transaction user through callbacks; it never knows about dialogs.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from twisted.internet.interfaces import IDelayedCall, IReactorTime

from callflows.sip.message import Headers, SipRequest, SipResponse, parse_via

Address = tuple[str, int]
Send = Callable[[bytes, Address], None]


@dataclass(frozen=True)
class SipTimers:
    """RFC 3261 timer base values (seconds). Tests and benches may shorten them."""

    t1: float = 0.5
    t2: float = 4.0
    t4: float = 5.0


class _Timed:
    """Named one-shot timers on the injected clock, all cancelled when the transaction ends."""

    def __init__(self, clock: IReactorTime):
        self._clock = clock
        self._timers: dict[str, IDelayedCall] = {}

    def _start(self, name: str, delay: float, fn: Callable[..., Any], *args: Any) -> None:
        self._stop(name)
        self._timers[name] = self._clock.callLater(delay, self._fire, name, fn, *args)

    def _fire(self, name: str, fn: Callable[..., Any], *args: Any) -> None:
        self._timers.pop(name, None)
        fn(*args)

    def _stop(self, name: str) -> None:
        timer = self._timers.pop(name, None)
        if timer is not None and timer.active():
            timer.cancel()

    def _stop_all(self) -> None:
        for name in list(self._timers):
            self._stop(name)


def client_key(branch: str, method: str) -> tuple[str, str]:
    return branch, method


def server_key(request: SipRequest) -> tuple[str, str, str]:
    _, sent_by, params = parse_via(request.headers.get("via", ""))
    # The ACK of a non-2xx final shares the INVITE's branch and belongs to its transaction (17.2.3).
    method = "INVITE" if request.method == "ACK" else request.method
    return params.get("branch", ""), sent_by.lower(), method


class ClientTransaction(_Timed):
    """Base of the two client transactions: sends ``request`` to ``peer`` and relays responses."""

    def __init__(self, request: SipRequest, peer: Address, send: Send, clock: IReactorTime,
                 timers: SipTimers, on_response: Callable[[SipResponse], None],
                 on_timeout: Callable[[], None], on_terminated: Callable[[ClientTransaction], None]):
        super().__init__(clock)
        self.request = request
        self.peer = peer
        self.key = client_key(request.branch, request.method)
        self.state = "init"
        self._bytes = request.to_bytes()
        self._send = send
        self._timers_cfg = timers
        self._on_response = on_response
        self._on_timeout = on_timeout
        self._on_terminated = on_terminated

    def _transmit(self) -> None:
        self._send(self._bytes, self.peer)

    def _terminate(self) -> None:
        if self.state != "terminated":
            self.state = "terminated"
            self._stop_all()
            self._on_terminated(self)

    def _timeout(self) -> None:
        if self.state in ("calling", "trying", "proceeding"):
            self._terminate()
            self._on_timeout()


class ClientInviteTransaction(ClientTransaction):
    """Calling -> Proceeding -> Completed (non-2xx, ACK sent here) -> Terminated (RFC 3261 17.1.1)."""

    def start(self) -> None:
        self.state = "calling"
        self._transmit()
        self._start("A", self._timers_cfg.t1, self._timer_a, self._timers_cfg.t1)
        self._start("B", 64 * self._timers_cfg.t1, self._timeout)

    def _timer_a(self, interval: float) -> None:
        if self.state == "calling":
            self._transmit()
            self._start("A", 2 * interval, self._timer_a, 2 * interval)

    def receive(self, response: SipResponse) -> None:
        if self.state in ("calling", "proceeding"):
            if response.status < 200:
                self.state = "proceeding"
                self._stop("A")
                self._stop("B")
                self._on_response(response)
            elif response.status < 300:
                # The TU ACKs a 2xx itself (a new transaction); retransmitted 2xx reach it via the dialog.
                self._terminate()
                self._on_response(response)
            else:
                self.state = "completed"
                self._stop("A")
                self._stop("B")
                self._ack = self._build_ack(response).to_bytes()
                self._send(self._ack, self.peer)
                self._start("D", 32.0, self._terminate)
                self._on_response(response)
        elif self.state == "completed" and response.status >= 300:
            self._send(self._ack, self.peer)  # our ACK was lost: the server retransmitted its final

    def _build_ack(self, response: SipResponse) -> SipRequest:
        """RFC 3261 17.1.1.3: same Request-URI, top Via, From, Call-ID, CSeq number; To from the response."""
        req = self.request
        headers = Headers()
        headers.add("via", req.headers.get("via", ""))
        for name in ("route",):
            for value in req.headers.get_all(name):
                headers.add(name, value)
        headers.add("max-forwards", "70")
        headers.add("from", req.headers.get("from", ""))
        headers.add("to", response.headers.get("to", ""))
        headers.add("call-id", req.call_id)
        headers.add("cseq", f"{req.cseq[0]} ACK")
        return SipRequest("ACK", req.uri, headers)


class ClientNonInviteTransaction(ClientTransaction):
    """Trying -> Proceeding -> Completed -> Terminated (RFC 3261 17.1.2)."""

    def start(self) -> None:
        self.state = "trying"
        self._transmit()
        self._start("E", self._timers_cfg.t1, self._timer_e, self._timers_cfg.t1)
        self._start("F", 64 * self._timers_cfg.t1, self._timeout)

    def _timer_e(self, interval: float) -> None:
        if self.state in ("trying", "proceeding"):
            self._transmit()
            nxt = self._timers_cfg.t2 if self.state == "proceeding" else min(2 * interval, self._timers_cfg.t2)
            self._start("E", nxt, self._timer_e, nxt)

    def receive(self, response: SipResponse) -> None:
        if self.state not in ("trying", "proceeding"):
            return
        if response.status < 200:
            self.state = "proceeding"
            self._on_response(response)
            return
        self.state = "completed"
        self._stop("E")
        self._stop("F")
        self._start("K", self._timers_cfg.t4, self._terminate)
        self._on_response(response)


class ServerTransaction(_Timed):
    """Base of the server transactions: absorbs request retransmissions by resending the last response."""

    def __init__(self, request: SipRequest, peer: Address, send: Send, clock: IReactorTime,
                 timers: SipTimers, on_terminated: Callable[[ServerTransaction], None],
                 on_timeout: Callable[[], None] = lambda: None):
        super().__init__(clock)
        self.request = request
        self.peer = peer
        self.key = server_key(request)
        self.state = "trying"
        self.last_response: SipResponse | None = None
        self._last_bytes: bytes | None = None
        self._send = send
        self._timers_cfg = timers
        self._on_terminated = on_terminated
        self.on_timeout = on_timeout

    def _transmit(self, response: SipResponse) -> None:
        self.last_response = response
        self._last_bytes = response.to_bytes()
        self._send(self._last_bytes, self.peer)

    def _retransmit(self) -> None:
        if self._last_bytes is not None:
            self._send(self._last_bytes, self.peer)

    def _terminate(self) -> None:
        if self.state != "terminated":
            self.state = "terminated"
            self._stop_all()
            self._on_terminated(self)

    @property
    def answered(self) -> bool:
        return self.last_response is not None and self.last_response.status >= 200


class ServerNonInviteTransaction(ServerTransaction):
    """Trying -> Proceeding -> Completed (timer J) -> Terminated (RFC 3261 17.2.2)."""

    def respond(self, response: SipResponse) -> None:
        if self.state not in ("trying", "proceeding"):
            return
        self._transmit(response)
        if response.status < 200:
            self.state = "proceeding"
        else:
            self.state = "completed"
            self._start("J", 64 * self._timers_cfg.t1, self._terminate)

    def receive_request(self, request: SipRequest) -> None:
        if self.state in ("proceeding", "completed"):
            self._retransmit()


class ServerInviteTransaction(ServerTransaction):
    """Proceeding -> Accepted (2xx, resent until the ACK) | Completed (G, H) -> Confirmed (I)."""

    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.state = "proceeding"
        self.cancelled = False

    def respond(self, response: SipResponse) -> None:
        if self.state != "proceeding":
            return
        self._transmit(response)
        if response.status < 200:
            return
        t1 = self._timers_cfg.t1
        self.state = "accepted" if response.status < 300 else "completed"
        self._start("G", t1, self._timer_g, t1)
        self._start("H", 64 * t1, self._timer_h)

    def _timer_g(self, interval: float) -> None:
        if self.state in ("accepted", "completed"):
            self._retransmit()
            nxt = min(2 * interval, self._timers_cfg.t2)
            self._start("G", nxt, self._timer_g, nxt)

    def _timer_h(self) -> None:
        if self.state in ("accepted", "completed"):
            accepted = self.state == "accepted"
            self._terminate()
            if accepted:
                self.on_timeout()  # 2xx never ACKed: the TU must tear the dialog down (RFC 3261 13.3.1.4)

    def receive_request(self, request: SipRequest) -> None:
        if request.method == "ACK":
            self.ack_received()
        elif self.state in ("proceeding", "accepted", "completed"):
            self._retransmit()

    def ack_received(self) -> None:
        if self.state == "completed":
            self.state = "confirmed"
            self._stop("G")
            self._stop("H")
            self._start("I", self._timers_cfg.t4, self._terminate)
        elif self.state == "accepted":
            self._terminate()
