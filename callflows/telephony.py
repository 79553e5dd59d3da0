"""The ``Telephony`` service: Watchline's SIP phone, started from the ``[sip]`` settings.

It listens on the configured UDP endpoint, runs the flow registered for each inbound call's number,
places outbound calls (``dial``), keeps the trunk registration fresh, and sweeps old recordings.
Usage::

    telephony = Telephony(settings, reactor, call_log=db_calls)
    telephony.register_flow("4000", hotline_flow)           # or re.compile(r"40\\d\\d")
    call = await telephony.dial("13800138000", caller_id="4000", ring_timeout=30)
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from twisted.application.service import Service
from twisted.internet.defer import Deferred, DeferredList
from twisted.internet.interfaces import IListeningPort
from twisted.internet.task import LoopingCall
from twisted.internet.threads import deferToThreadPool
from twisted.logger import Logger

from callflows.call import Call, CallContext
from callflows.calllog import CallLog, InMemoryCallLog
from callflows.media.clock import MediaClock
from callflows.media.ports import RtpPortRange
from callflows.outcomes import CallEnded, CallNotConnected, CallOutcome, NotAllowed
from callflows.prompts import PromptLibrary, ReactorProcessRunner
from callflows.recording import sweep_recordings
from callflows.settings import TelephonySettings
from callflows.sip.register import Registration
from callflows.sipleg import SipLeg
from callflows.useragent import UserAgent

log = Logger()
Flow = Callable[[Call], Awaitable[Any]]


class Telephony(Service):
    name = "telephony"

    def __init__(self, settings: TelephonySettings, reactor: Any, call_log: CallLog | None = None,
                 prompts: PromptLibrary | None = None):
        self.settings = settings
        self._reactor = reactor
        self.call_log: CallLog = call_log if call_log is not None else InMemoryCallLog()
        self.prompts = prompts or PromptLibrary(settings.prompt_cache_dir, ReactorProcessRunner(reactor),
                                                settings.prompt_templates_dir)
        self.media_clock = MediaClock(reactor)
        self.agent: UserAgent | None = None
        self.registration: Registration | None = None
        self.calls: set[Call] = set()
        self._flows: list[tuple[str | re.Pattern[str], Flow]] = []
        self._port: IListeningPort | None = None
        self._sweeper: LoopingCall | None = None
        self._context = CallContext(reactor, self.call_log, Path(settings.recordings_dir), self.dial)

    # -- flows ------------------------------------------------------------------------------------
    def register_flow(self, number_or_pattern: str | re.Pattern[str], flow: Flow) -> None:
        """Inbound calls to this number (exact string) or pattern (``re.Pattern``, full match) run
        ``flow(call)``; the first registration that matches wins."""
        self._flows.append((number_or_pattern, flow))

    def flow_for(self, number: str) -> Flow | None:
        for key, flow in self._flows:
            if (key.fullmatch(number) if isinstance(key, re.Pattern) else key == number):
                return flow
        return None

    # -- service ----------------------------------------------------------------------------------
    def startService(self) -> None:  # noqa: N802 (Twisted's name)
        super().startService()
        settings = self.settings
        interface = settings.interface
        host = settings.public_host or (interface if interface not in ("0.0.0.0", "::") else "127.0.0.1")
        trunk = settings.trunk_address
        if trunk is not None:
            try:
                ipaddress.ip_address(trunk[0])
            except ValueError:
                # No DNS on the call path: name a trunk by address (or resolve it in the config layer).
                raise ValueError(f"trunk host must be an IP address: {trunk[0]!r}") from None
        rtp = RtpPortRange(self._reactor, interface, *settings.rtp_ports)
        self.agent = UserAgent(settings, self._reactor, self.media_clock, rtp, host, settings.listen_port,
                               self._inbound, lambda number: self.flow_for(number) is not None, trunk)
        self._port = self._reactor.listenUDP(settings.listen_port, self.agent.endpoint, interface=interface)
        self.agent.port = self._port.getHost().port
        if settings.register and trunk is not None:
            self.registration = Registration(self.agent.endpoint, self._reactor, trunk,
                                             settings.username or "watchline", self.agent.via_host,
                                             self.agent.contact, self.agent.credentials,
                                             settings.register_expires)
            self.registration.start()
        if settings.recording_retention_days is not None:
            self._sweeper = LoopingCall(self.sweep_recordings)
            self._sweeper.clock = self._reactor
            self._sweeper.start(6 * 3600, now=True).addErrback(lambda f: log.failure("sweeper stopped", f))

    def stopService(self) -> Deferred[None]:  # noqa: N802
        super().stopService()
        if self.registration is not None:
            self.registration.stop()
        if self._sweeper is not None and self._sweeper.running:
            self._sweeper.stop()
        hangups = [Deferred.fromCoroutine(call.hangup()) for call in list(self.calls)]
        done: Deferred[Any] = DeferredList(hangups, consumeErrors=True)
        # BYEs wait at most one transaction timeout; never hold shutdown for longer than that.
        timeout = self._reactor.callLater(64 * self.settings.t1 + 1, done.cancel)
        done.addBoth(lambda _: timeout.cancel() if timeout.active() else None)
        done.addBoth(lambda _: self._port.stopListening() if self._port is not None else None)
        return done

    @property
    def port(self) -> int:
        assert self.agent is not None, "Telephony is not running"
        return self.agent.port

    def sweep_recordings(self) -> Deferred[list[Path]]:
        days = self.settings.recording_retention_days
        if days is None:
            return Deferred.fromCoroutine(_nothing())
        return deferToThreadPool(self._reactor, self._reactor.getThreadPool(), sweep_recordings,
                                 Path(self.settings.recordings_dir), days)

    # -- calls ------------------------------------------------------------------------------------
    async def dial(self, number: str, caller_id: str | None = None, ring_timeout: float | None = None) -> Call:
        """Call ``number`` through the trunk (or a ``sip:`` URI of an allowed peer) and return the
        answered call. Raises ``CallNotConnected`` with the outcome otherwise (``NotAllowed``, a
        subclass, when the dial plan, the call cap or the port range refuses it)."""
        if self.agent is None:
            raise NotAllowed("telephony is not running")
        leg = self.agent.new_outbound(number, caller_id or "watchline",
                                      ring_timeout if ring_timeout is not None else self.settings.ring_timeout)
        call = self._track(Call(leg, self._context))
        leg.machine.place_call()
        try:
            await call.wait_connected()
        except CallEnded:
            raise CallNotConnected(call.outcome or CallOutcome.FAILED) from None
        return call

    def _track(self, call: Call) -> Call:
        self.calls.add(call)
        call.wait_ended().addCallback(lambda _: self.calls.discard(call))
        return call

    def _inbound(self, leg: SipLeg) -> bool:
        flow = self.flow_for(leg.local_number)
        if flow is None:
            return False
        call = self._track(Call(leg, self._context))
        leg.machine.offer()
        Deferred.fromCoroutine(self._run_flow(flow, call))
        return True

    async def _run_flow(self, flow: Flow, call: Call) -> None:
        try:
            await flow(call)
        except CallEnded:
            pass
        except Exception:
            log.failure("flow for {number} failed on call {call_id}", number=call.to_number, call_id=call.call_id)
        # Not in a ``finally``: a coroutine being closed (GeneratorExit) must not await.
        if not call.is_ended:
            await call.hangup()


async def _nothing() -> list[Path]:
    return []
