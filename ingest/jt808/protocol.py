"""The JT/T 808 terminal server: one ``Jt808Protocol`` per TCP connection, built by
``Jt808ServerFactory(sink, clock, limits, registry)``.

Per connection: frames are handled strictly one after another, in arrival order (a queue drained
by one coroutine, with the socket paused while the backlog is over ``max_buffer_bytes``).
Registration and authentication come first; a report is acknowledged (0x8001 result 0) only
after ``sink.submit`` has durably accepted it, and never if it raised, so the terminal resends.
Bad frames are answered when their header is readable, counted, and close the connection only
past ``max_bad_frames``. Besides locations, the messages in ``report_messages.REPORT_MESSAGES``
(0x0900 pass-through, 0x0107, 0x0701, 0x0702, vendor 0x0210/0x1300/0x6006/0x2070) and Jointech
locks' 0x5501/0x5502 frames (their own header, answered with 0x4401) are decoded and submitted;
a body that does not fit is answered with a failure result and counted as a bad frame. Vendor
conventions follow the device model of the authenticated terminal (``TerminalInfo.model``).
Nothing that arrives on one connection can raise out of ``dataReceived`` or disturb another
connection.
"""

from __future__ import annotations

import hmac
import secrets
from collections import deque
from dataclasses import dataclass
from datetime import datetime, timezone

from twisted.internet.defer import Deferred
from twisted.internet.protocol import Factory, Protocol
from twisted.logger import Logger
from twisted.python.failure import Failure

from alarms.report import Report
from ingest.jt808 import jointech
from ingest.jt808 import messages as m
from ingest.jt808.codec import (
    ATTR_ENCRYPTION_MASK,
    ATTR_SUBPACKAGE,
    BadCheckCode,
    Header,
    PacketError,
    ack_head,
    build_ack,
    build_packet,
    build_reply,
    decode_phone,
    parse_packet,
)
from ingest.jt808.framing import FramingError, Jt808Framer
from ingest.jt808.location import decode_batch, decode_location
from ingest.jt808.reassembly import Assembled, Incomplete, SubpackageAssembler
from ingest.jt808.report_messages import REPORT_MESSAGES, decode_report_message
from ingest.jt808.sessions import Jt808Sessions, TerminalDisconnected
from ingest.limits import ConnectionLimits
from ingest.sink import IngestSink, TerminalInfo, normalise_terminal_id
from ingest.write_through import immediate_writer

log = Logger()

PROTOCOL = "jt808"
_OTHER_LOCATION_MESSAGES = frozenset({m.BATCH_LOCATION, m.POSITION_ANSWER})  # 0x0200 is served in _handle
_LOCATION = m.LOCATION
_RARE_ATTRS = ATTR_ENCRYPTION_MASK | ATTR_SUBPACKAGE  # one test on the hot path for both


@dataclass
class ServerStats:
    connections: int = 0
    frames: int = 0
    reports: int = 0
    bad_frames: int = 0
    submit_failures: int = 0


class Jt808Protocol(Protocol):
    def __init__(self, factory: Jt808ServerFactory) -> None:
        self.factory = factory
        limits = factory.limits
        self._clock = factory.clock
        self._framer = Jt808Framer(limits.max_frame_bytes)
        self._assembler: SubpackageAssembler | None = None  # made at the first sub-package: few terminals split
        self._queue: deque[bytes | FramingError] = deque()
        self._queued_bytes = 0
        self._busy = False
        self._paused = False
        self._connected = False
        self._serial = 0
        self._last_seen = 0.0
        self._idle_call = None
        self.bad_frames = 0
        self.terminal_id: str | None = None  # set once authenticated
        self.info: TerminalInfo | None = None
        self._model: str | None = None  # self.info's device model, read for every location report
        self._reply_header: Header | None = None  # header flavour for commands we originate
        self._pending: dict[int, Deferred] = {}
        self._ack_key: tuple[int | None, bytes] | None = None
        self._ack_head: tuple[bytes, int] | None = None

    @property
    def held_subpackage_bytes(self) -> int:
        return self._assembler.held_bytes if self._assembler is not None else 0

    @property
    def is_2019(self) -> bool:
        return self._reply_header is not None and self._reply_header.is_2019

    # --- connection life cycle ----------------------------------------------------------

    def connectionMade(self) -> None:
        self._connected = True
        no_delay = getattr(self.transport, "setTcpNoDelay", None)
        if no_delay is not None:
            no_delay(True)  # acks are tiny and awaited one by one: do not let Nagle hold them
        self.factory.stats.connections += 1
        self.factory.connections.add(self)
        self._write = immediate_writer(self.transport)  # answers leave now, not on the next reactor turn
        self._last_seen = self._clock.seconds()
        self._idle_call = self._clock.callLater(self.factory.limits.idle_timeout, self._check_idle)

    def connectionLost(self, reason=None) -> None:
        self._connected = False
        self.factory.connections.discard(self)
        self._queue.clear()
        self._queued_bytes = 0
        if self._idle_call is not None and self._idle_call.active():
            self._idle_call.cancel()
        if self.terminal_id is not None:
            self.factory.registry.unregister(self.terminal_id, self)
        pending, self._pending = self._pending, {}
        for waiting in pending.values():
            waiting.errback(TerminalDisconnected(f"terminal {self.terminal_id} disconnected"))

    def _check_idle(self) -> None:
        idle_timeout = self.factory.limits.idle_timeout
        idle_for = self._clock.seconds() - self._last_seen
        if idle_for >= idle_timeout:
            self._idle_call = None
            log.info("jt808 {peer}: idle for {idle:.0f} s, closing", peer=self._peer(), idle=idle_for)
            self.transport.loseConnection()
        else:
            self._idle_call = self._clock.callLater(idle_timeout - idle_for, self._check_idle)

    def _peer(self) -> str:
        return self.terminal_id or str(self.transport.getPeer() if self.transport else "?")

    # --- bytes in ------------------------------------------------------------------------

    def dataReceived(self, data: bytes) -> None:
        try:
            self._last_seen = self._clock.seconds()
            items = self._framer.feed(data)
            if not items:
                return
            self._queue.extend(items)
            for item in items:
                if isinstance(item, bytes):
                    self._queued_bytes += len(item)
            if self._queued_bytes > self.factory.limits.max_buffer_bytes and not self._paused:
                self._paused = True
                self.transport.pauseProducing()
            if not self._busy:
                self._busy = True
                self._step(self._drain())
        except Exception:
            log.failure("jt808 {peer}: unexpected error on received data", peer=self._peer())

    # The drain coroutine is driven here rather than by Deferred.fromCoroutine: when the sink
    # answers at once (the in-process bus) the whole drain runs synchronously, and this spares
    # the Deferred and context copy fromCoroutine costs per read on the hottest path (measured:
    # 19k -> 43k frames/s). The protocol is the one Twisted's inlineCallbacks uses: an awaited
    # Deferred without a result suspends the coroutine; when it fires, a result is sent in and a
    # Failure is thrown in at the ``await``.
    def _step(self, coroutine, result=None) -> None:
        try:
            if isinstance(result, Failure):
                waiting = result.throwExceptionIntoGenerator(coroutine)
            else:
                waiting = coroutine.send(result)
        except StopIteration:
            return
        except Exception:
            log.failure("jt808 {peer}: frame processing stopped unexpectedly", peer=self._peer())
            return
        if not isinstance(waiting, Deferred):
            self._step(coroutine, Failure(TypeError(f"awaited {waiting!r}; only Deferreds are supported")))
            return
        waiting.addBoth(self._resume, coroutine)

    def _resume(self, result, coroutine) -> None:
        self._step(coroutine, result)
        return None  # the coroutine consumed the result (or the failure)

    async def _drain(self) -> None:
        try:
            queue = self._queue
            while queue and self._connected:
                item = queue.popleft()
                if isinstance(item, bytes):
                    self._queued_bytes -= len(item)
                try:
                    await self._handle(item)
                except Exception:
                    log.failure("jt808 {peer}: frame handling failed", peer=self._peer())
                if self._paused and self._queued_bytes <= self.factory.limits.max_buffer_bytes // 2:
                    self._paused = False
                    self.transport.resumeProducing()
        finally:
            self._busy = False

    async def _handle(self, item: bytes | FramingError) -> None:
        if isinstance(item, FramingError):
            self._bad_frame(str(item))
            return
        self.factory.stats.frames += 1
        try:
            packet = parse_packet(item)
        except BadCheckCode as exc:
            packet = exc.packet
            if not await self._tolerates_bad_checksum(packet.header):
                self._ack(packet.header, m.RESULT_MESSAGE_ERROR)
                self._bad_frame(str(exc))
                return
        except PacketError as exc:
            # A Jointech frame never fits parse_packet (an 11-byte header where JT/T 808 has 12 or 17,
            # so its length is always off): testing for one here costs the 0x7E packets nothing.
            if jointech.is_jointech(item):
                await self._jointech(item)
            else:
                self._bad_frame(str(exc))
            return
        header, body = packet.header, packet.body
        if header.attrs & _RARE_ATTRS:
            if header.encrypted:  # RSA bodies are not supported
                self._ack(header, m.RESULT_UNSUPPORTED)
                return
            # Not encrypted, so a sub-package.
            if header.msg_id not in (m.REGISTER, m.AUTHENTICATE) and not self._speaks_for_session(header):
                self._ack(header, m.RESULT_FAIL)  # collect nothing for unauthenticated peers
                return
            if self._assembler is None:
                self._assembler = SubpackageAssembler(self._clock, timeout=self.factory.reassembly_timeout)
            assembled = self._assembler.add(header, body)
            if isinstance(assembled, Assembled):
                header, body = assembled.header, assembled.body
            else:
                if isinstance(assembled, Incomplete):
                    self._reply(header, m.RESEND_REQUEST,
                                m.resend_request(assembled.first_serial, assembled.missing, header.is_2019))
                else:
                    self._ack(header, m.RESULT_OK)
                return
        try:
            if header.msg_id == _LOCATION and self._speaks_for_session(header):
                # Most frames: decoded, submitted and acked right here, two coroutines fewer than
                # _dispatch -> _location (which does the same for the other location messages).
                received_at = datetime.fromtimestamp(self._clock.seconds(), timezone.utc)
                report = decode_location(body, terminal_id=self.terminal_id, serial=header.serial,
                                         is_2019=header.version is not None, received_at=received_at,
                                         model=self._model)
                try:
                    await self.factory.sink.submit([report])
                except Exception:
                    self.factory.stats.submit_failures += 1
                    log.failure("jt808 {peer}: submit failed, report not acknowledged", peer=self._peer())
                    return
                self.factory.stats.reports += 1
                self._ack(header, m.RESULT_OK)
            else:
                await self._dispatch(header, body)
        except m.BodyError as exc:
            self._ack(header, m.RESULT_MESSAGE_ERROR)
            self._bad_frame(f"msg 0x{header.msg_id:04X}: {exc}")

    async def _tolerates_bad_checksum(self, header: Header) -> bool:
        """Firmware known to send bad check codes (``TerminalInfo.lenient_checksum``) is served."""
        terminal_id = normalise_terminal_id(PROTOCOL, header.phone)
        if self.info is not None and terminal_id == self.terminal_id:
            return self.info.lenient_checksum
        if header.msg_id in (m.REGISTER, m.AUTHENTICATE):
            info = await self.factory.sink.lookup_terminal(PROTOCOL, terminal_id)
            return info is not None and info.lenient_checksum
        return False

    def _bad_frame(self, reason: str) -> None:
        self.bad_frames += 1
        self.factory.stats.bad_frames += 1
        log.warn("jt808 {peer}: bad frame ({reason})", peer=self._peer(), reason=reason)
        if self.bad_frames >= self.factory.limits.max_bad_frames and self._connected:
            log.warn("jt808 {peer}: {n} bad frames, closing", peer=self._peer(), n=self.bad_frames)
            self._connected = False
            self.transport.loseConnection()

    # --- messages ------------------------------------------------------------------------

    async def _dispatch(self, header: Header, body: bytes) -> None:
        msg_id = header.msg_id
        if msg_id == m.REGISTER:
            await self._register(header, body)
            return
        if msg_id == m.AUTHENTICATE:
            await self._authenticate(header, body)
            return
        if not self._speaks_for_session(header):
            self._ack(header, m.RESULT_FAIL)  # not authenticated (as this terminal)
            return
        if msg_id in _OTHER_LOCATION_MESSAGES:
            await self._location(header, body)
        elif msg_id in REPORT_MESSAGES:
            await self._report_message(header, body)
        elif msg_id == m.HEARTBEAT:
            self._ack(header, m.RESULT_OK)
        elif msg_id == m.TERMINAL_RESPONSE:
            answer = m.decode_terminal_response(body)
            waiting = self._pending.pop(answer.reply_serial, None)
            if waiting is not None:
                waiting.callback(answer)
        elif msg_id == m.LOGOUT:
            self._ack(header, m.RESULT_OK)
            self.factory.registry.unregister(self.terminal_id, self)
            self.terminal_id = self.info = self._model = None
        else:
            self._ack(header, m.RESULT_UNSUPPORTED)

    def _speaks_for_session(self, header: Header) -> bool:
        """Authenticated, and as the terminal this header names."""
        if self.terminal_id is None:
            return False
        if header.phone_bcd == self._reply_header.phone_bcd:  # fast path: the same bytes as at login
            return True
        return normalise_terminal_id(PROTOCOL, header.phone) == self.terminal_id

    async def _register(self, header: Header, body: bytes) -> None:
        registration = m.decode_registration(body, header.is_2019)
        terminal_id = normalise_terminal_id(PROTOCOL, header.phone)
        info = await self.factory.sink.lookup_terminal(PROTOCOL, terminal_id)
        if info is None and not self.factory.limits.accept_unknown:
            log.info("jt808: registration from unknown terminal {tid} (plate {plate!r}) refused",
                     tid=terminal_id, plate=registration.plate)
            self._reply(header, m.REGISTER_RESPONSE,
                        m.register_response(header.serial, m.REGISTER_TERMINAL_UNKNOWN))
            return
        auth_code = secrets.token_hex(8).upper()
        if info is not None:
            await self.factory.sink.set_auth_code(PROTOCOL, terminal_id, auth_code)
        self._reply(header, m.REGISTER_RESPONSE, m.register_response(header.serial, m.REGISTER_OK, auth_code))

    async def _authenticate(self, header: Header, body: bytes) -> None:
        auth = m.decode_authentication(body, header.is_2019)
        terminal_id = normalise_terminal_id(PROTOCOL, header.phone)
        info = await self.factory.sink.lookup_terminal(PROTOCOL, terminal_id)
        if self.factory.limits.accept_unknown:
            accepted = True
        else:
            expected = info.auth_code if info is not None else None
            accepted = bool(expected) and hmac.compare_digest(
                expected.encode("utf-8"), auth.auth_code.encode("utf-8")
            )
        if not accepted:
            self._ack(header, m.RESULT_FAIL)
            return
        if self.terminal_id is not None and self.terminal_id != terminal_id:
            self.factory.registry.unregister(self.terminal_id, self)
        self.terminal_id, self.info, self._reply_header = terminal_id, info, header
        self._model = info.model if info is not None else None
        self.factory.registry.register(terminal_id, self)
        self._ack(header, m.RESULT_OK)

    async def _location(self, header: Header, body: bytes) -> None:
        """0x0704 batches and 0x0201 position answers (0x0200 is decoded and acked in ``_handle``)."""
        received_at = datetime.fromtimestamp(self._clock.seconds(), timezone.utc)
        terminal_id = self.terminal_id
        answered = None
        if header.msg_id == m.BATCH_LOCATION:
            reports, problems = decode_batch(body, terminal_id=terminal_id, serial=header.serial,
                                             is_2019=header.is_2019, received_at=received_at, model=self._model)
            if problems:
                log.warn("jt808 {peer}: batch 0x0704 serial {serial}: {problems}",
                         peer=self._peer(), serial=header.serial, problems="; ".join(problems))
        else:
            answered, body = m.split_position_answer(body)
            reports = [decode_location(body, terminal_id=terminal_id, serial=header.serial,
                                       is_2019=header.is_2019, received_at=received_at, model=self._model)]
        if reports and not await self._submit(reports):
            return
        self._ack(header, m.RESULT_OK)
        if answered is not None:
            waiting = self._pending.pop(answered, None)
            if waiting is not None:
                waiting.callback(reports[0])

    async def _report_message(self, header: Header, body: bytes) -> None:
        """An id in REPORT_MESSAGES: its Reports (maybe none) submitted, then 0x8001 OK. A body
        that does not fit raises BodyError, answered by ``_handle`` like a bad location body."""
        received_at = datetime.fromtimestamp(self._clock.seconds(), timezone.utc)
        reports = decode_report_message(header.msg_id, body, terminal_id=self.terminal_id, serial=header.serial,
                                        is_2019=header.is_2019, received_at=received_at, model=self._model)
        if reports and not await self._submit(reports):
            return
        self._ack(header, m.RESULT_OK)

    async def _jointech(self, frame: bytes) -> None:
        """A Jointech lock's 0x5501/0x5502: served like a 0x0200 of the authenticated terminal, and
        answered with 0x4401 when the lock asks (attribute bit 15) instead of 0x8001."""
        try:
            packet = jointech.parse_frame(frame)
        except jointech.JointechCheckCode as exc:
            packet = exc.packet
            if not (self._speaks_for_jointech(packet) and self.info is not None and self.info.lenient_checksum):
                self._answer_jointech(packet, m.RESULT_MESSAGE_ERROR)
                self._bad_frame(str(exc))
                return
        except PacketError as exc:
            self._bad_frame(str(exc))
            return
        if not self._speaks_for_jointech(packet):
            self._answer_jointech(packet, m.RESULT_FAIL)  # not authenticated (as this terminal)
            return
        received_at = datetime.fromtimestamp(self._clock.seconds(), timezone.utc)
        try:
            reports = jointech.decode_jointech(packet, terminal_id=self.terminal_id, received_at=received_at)
        except m.BodyError as exc:
            self._answer_jointech(packet, m.RESULT_MESSAGE_ERROR)
            self._bad_frame(f"Jointech msg 0x{packet.msg_id:04X}: {exc}")
            return
        if await self._submit(reports):
            self._answer_jointech(packet, m.RESULT_OK)

    def _speaks_for_jointech(self, packet: jointech.JointechPacket) -> bool:
        return self.terminal_id is not None and (
            normalise_terminal_id(PROTOCOL, decode_phone(packet.phone_bcd)) == self.terminal_id)

    async def _submit(self, reports: list[Report]) -> bool:
        """Hand reports to the sink; False (logged, nothing to ack: the terminal resends) if it failed.
        The 0x0200 path in ``_handle`` inlines the same steps, sparing a coroutine per frame."""
        try:
            await self.factory.sink.submit(reports)
        except Exception:
            self.factory.stats.submit_failures += 1
            log.failure("jt808 {peer}: submit failed, report not acknowledged", peer=self._peer())
            return False
        self.factory.stats.reports += len(reports)
        return True

    # --- bytes out -----------------------------------------------------------------------

    def _next_serial(self) -> int:
        serial = self._serial
        self._serial = (serial + 1) & 0xFFFF
        return serial

    def _reply(self, request: Header, msg_id: int, body: bytes) -> None:
        if self._connected:
            self._write(build_reply(request, msg_id, body, self._next_serial()))

    def _ack(self, request: Header, result: int) -> None:
        if self._connected:
            key = (request.version, request.phone_bcd)
            if key != self._ack_key:  # the ack's constant head, kept for this connection's terminal
                self._ack_key, self._ack_head = key, ack_head(*key)
            self._write(build_ack(request, self._next_serial(), result, self._ack_head))

    def _answer_jointech(self, packet: jointech.JointechPacket, result: int) -> None:
        answer = jointech.answer(packet, result)
        if answer is not None and self._connected:
            self._write(answer)

    def request(self, msg_id: int, body: bytes) -> Deferred:
        """Send a platform command on this connection (see ``sessions.TerminalSession``)."""
        header = self._reply_header
        if header is None or not self._connected:
            raise TerminalDisconnected(f"terminal {self.terminal_id} has no live session")
        serial = self._next_serial()

        def forget(_waiting: Deferred) -> None:
            self._pending.pop(serial, None)

        waiting = Deferred(forget)
        self._pending[serial] = waiting
        self._write(build_packet(msg_id, body, phone_bcd=header.phone_bcd, serial=serial, version=header.version))
        return waiting


class Jt808ServerFactory(Factory):
    protocol = Jt808Protocol

    def __init__(
        self,
        sink: IngestSink,
        clock,
        limits: ConnectionLimits | None = None,
        registry: Jt808Sessions | None = None,
        *,
        reassembly_timeout: float = 60.0,
    ) -> None:
        self.sink = sink
        self.clock = clock
        self.limits = limits or ConnectionLimits()
        self.registry = registry if registry is not None else Jt808Sessions(clock)
        self.reassembly_timeout = reassembly_timeout
        self.stats = ServerStats()
        self.connections: set[Jt808Protocol] = set()  # open ones (closed when the server stops)

    def buildProtocol(self, addr) -> Jt808Protocol:
        return Jt808Protocol(self)
