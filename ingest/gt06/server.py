"""The GT06 terminal server: one ``Gt06Protocol`` per TCP connection, built by ``Gt06ServerFactory``.

Owns the connection rules (gt06.md §2, §3, §6): a terminal logs in first (unknown IMEIs are cut
off unless ``limits.accept_unknown``); frames before the login are dropped; a bad CRC drops the
frame unless the terminal is known to be ``lenient_checksum``; each Report is handed to
``sink.submit`` and only once that succeeds is the terminal acked (no ack if it fails, so the
terminal resends; the connection stays). Frames of one connection are processed strictly in
order, one at a time. Idle connections and connections that keep sending bad frames are closed.
Nothing raised while handling bytes escapes ``dataReceived``.
"""

from __future__ import annotations

from collections import deque
from datetime import datetime, timedelta, timezone

from twisted.internet import protocol
from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IDelayedCall, IReactorTime
from twisted.logger import Logger
from twisted.python.failure import Failure

from ingest.gt06 import replies
from ingest.gt06.decoder import DecodeError, TerminalContext, decode, decode_login
from ingest.gt06.framing import Frame, Gt06Framer
from ingest.gt06.sessions import Gt06Sessions
from ingest.limits import ConnectionLimits
from ingest.sink import IngestSink, TerminalInfo

log = Logger()

PROTOCOL = "gt06"
MAX_PENDING_FRAMES = 256  # beyond this the socket is paused until the backlog drains


class Gt06ServerFactory(protocol.Factory):
    def __init__(self, sink: IngestSink, clock: IReactorTime, limits: ConnectionLimits | None = None, *,
                 sessions: Gt06Sessions | None = None, utc_offset: timedelta = timedelta(0),
                 ack_locations: bool = False):
        self.sink = sink
        self.clock = clock
        self.limits = limits or ConnectionLimits()
        self.sessions = sessions if sessions is not None else Gt06Sessions(clock)
        self.utc_offset = utc_offset  # time zone of classic packets when the login carries none
        self.ack_locations = ack_locations  # gt06.md §6: optional 5-byte echo of 0x12/0x22
        self.connections: set[Gt06Protocol] = set()

    def buildProtocol(self, addr) -> Gt06Protocol:
        proto = Gt06Protocol(self)
        proto.factory = self
        return proto


class Gt06Protocol(protocol.Protocol):
    def __init__(self, factory: Gt06ServerFactory):
        self.factory = factory
        limits = factory.limits
        self.framer = Gt06Framer(limits.max_frame_bytes, limits.max_buffer_bytes)
        self.terminal: TerminalInfo | None = None
        self.context: TerminalContext | None = None
        self.bad_frames = 0
        self.reports = 0
        self._queue: deque[Frame] = deque()
        self._busy = False
        self._paused = False
        self._closed = False
        self._idle: IDelayedCall | None = None
        self._serial = 0
        self._resyncs = 0

    # -- Twisted callbacks -------------------------------------------------------------------

    def connectionMade(self) -> None:
        self.factory.connections.add(self)
        self._idle = self.factory.clock.callLater(self.factory.limits.idle_timeout, self._idle_timeout)

    def dataReceived(self, data: bytes) -> None:
        try:
            if self._closed:
                return
            if self._idle is not None and self._idle.active():
                self._idle.reset(self.factory.limits.idle_timeout)
            frames = self.framer.feed(data)
            for _ in range(self.framer.resyncs - self._resyncs):
                self._bad("garbage between frames")
            self._resyncs = self.framer.resyncs
            self.frames_received(frames)
        except Exception:
            log.failure("GT06 {peer}: unexpected error on incoming bytes", peer=self._peer())

    def connectionLost(self, reason: Failure = protocol.connectionDone) -> None:
        self._closed = True
        self._queue.clear()
        if self._idle is not None and self._idle.active():
            self._idle.cancel()
        self.factory.connections.discard(self)
        if self.context is not None:
            self.factory.sessions.unregister(self.context.imei, self)

    # -- CommandLink (ingest.gt06.sessions) --------------------------------------------------

    def send(self, data: bytes) -> None:
        if not self._closed and self.transport is not None:
            self.transport.write(data)

    def next_serial(self) -> int:
        self._serial = (self._serial + 1) & 0xFFFF
        return self._serial

    # -- frame processing --------------------------------------------------------------------

    def frames_received(self, frames: list[Frame]) -> None:
        """Queue frames; they are handled one at a time, in order (also the entry point for tests)."""
        self._queue.extend(frames)
        if len(self._queue) > MAX_PENDING_FRAMES and not self._paused and self.transport is not None:
            self._paused = True
            self.transport.pauseProducing()
        if not self._busy and self._queue:
            self._busy = True
            Deferred.fromCoroutine(self._drain()).addErrback(
                lambda f: log.failure("GT06 {peer}: frame loop failed", f, peer=self._peer()))

    async def _drain(self) -> None:
        try:
            while self._queue and not self._closed:
                frame = self._queue.popleft()
                try:
                    await self._handle(frame)
                except Exception:
                    log.failure("GT06 {peer}: error handling frame {raw}", peer=self._peer(),
                                raw=frame.raw.hex())
                if self._paused and len(self._queue) <= MAX_PENDING_FRAMES // 2 and not self._closed:
                    self._paused = False
                    self.transport.resumeProducing()
        finally:
            self._busy = False

    async def _handle(self, frame: Frame) -> None:
        if frame.protocol == replies.LOGIN:
            await self._login(frame)
            return
        if self.context is None:
            self._bad(f"protocol 0x{frame.protocol:02X} before login")
            return
        if not frame.crc_ok and not (self.terminal and self.terminal.lenient_checksum):
            self._bad(f"bad CRC on protocol 0x{frame.protocol:02X}")
            return
        try:
            decoded = decode(frame, self.context, self._now())
        except DecodeError as exc:
            self._bad(str(exc))
            return
        if decoded.command_reply is not None:
            self.factory.sessions.command_reply(self.context.imei, decoded.command_reply)
        if decoded.report is not None:
            try:
                await self.factory.sink.submit([decoded.report])
            except Exception:
                # No ack: the terminal resends. The connection stays up.
                log.failure("GT06 {imei}: report not accepted, no ack sent", imei=self.context.imei)
                return
            self.reports += 1
        reply = decoded.reply
        if reply is None and decoded.kind == "location" and self.factory.ack_locations and frame.has_trailer:
            reply = replies.ack(frame.protocol, frame.serial, extended=frame.extended)
        if reply is not None:
            self.send(reply)

    async def _login(self, frame: Frame) -> None:
        try:
            login = decode_login(frame)
        except DecodeError as exc:
            self._bad(str(exc))
            return
        try:
            info = await self.factory.sink.lookup_terminal(PROTOCOL, login.imei)
        except Exception:
            log.failure("GT06 {imei}: terminal lookup failed, login not acked", imei=login.imei)
            return
        if self._closed:
            return
        if info is None:
            if not self.factory.limits.accept_unknown:
                log.warn("GT06 {peer}: unknown IMEI {imei}, closing", peer=self._peer(), imei=login.imei)
                self._close()
                return
            info = TerminalInfo(PROTOCOL, login.imei, None)
        if not frame.crc_ok and not info.lenient_checksum:
            self._bad(f"bad CRC on login of {login.imei}")
            return
        if self.context is not None and self.context.imei != login.imei:
            self.factory.sessions.unregister(self.context.imei, self)
        utc_offset = login.utc_offset if login.utc_offset is not None else self.factory.utc_offset
        self.terminal = info
        self.context = TerminalContext(login.imei, utc_offset)
        self.factory.sessions.register(login.imei, self)
        self.send(replies.ack(replies.LOGIN, frame.serial))

    # -- helpers -----------------------------------------------------------------------------

    def _bad(self, why: str) -> None:
        self.bad_frames += 1
        imei = self.context.imei if self.context else "-"
        log.warn("GT06 {peer} ({imei}): dropped frame: {why}", peer=self._peer(), imei=imei, why=why)
        if self.bad_frames >= self.factory.limits.max_bad_frames and not self._closed:
            log.warn("GT06 {peer} ({imei}): {n} bad frames, closing", peer=self._peer(), imei=imei,
                     n=self.bad_frames)
            self._close()

    def _idle_timeout(self) -> None:
        log.info("GT06 {peer}: idle for {s:g} s, closing", peer=self._peer(),
                 s=self.factory.limits.idle_timeout)
        self._close()

    def _close(self) -> None:
        self._closed = True
        self._queue.clear()
        if self.transport is not None:
            self.transport.loseConnection()

    def _now(self) -> datetime:
        return datetime.fromtimestamp(self.factory.clock.seconds(), timezone.utc)

    def _peer(self) -> str:
        try:
            peer = self.transport.getPeer()
            return f"{getattr(peer, 'host', peer)}:{getattr(peer, 'port', '')}"
        except Exception:
            return "?"
