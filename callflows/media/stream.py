"""One call leg's RTP stream: a UDP socket from the RTP range, ticked every 20 ms by the media clock.

Each tick sends one packet (the next 160 bytes of the playing prompt, a queued RFC 4733 event, or
silence), advances the RTP timestamp by 160, and feeds the recording one frame per channel. Received
audio is buffered for the recording; received telephone events become digits. While bridged, received
packets are relayed at once to the other leg's stream, which rewrites SSRC, sequence and timestamp.
Packets are accepted from any source address: the peer's SDP address is often not where its RTP comes
from behind NAT, and a wrong packet can only add noise to one call.
"""

from __future__ import annotations

import os
import random
from collections import deque
from collections.abc import Callable

from twisted.internet.defer import Deferred, succeed
from twisted.internet.protocol import DatagramProtocol

from callflows.media.clock import MediaClock
from callflows.media.dtmf import DtmfReceiver, event_payloads
from callflows.media.g711 import SILENCE, transcoder
from callflows.media.rtp import HEADER, build_rtp, parse_rtp
from callflows.recording import CallRecording
from callflows.sdp import MediaParams

FRAME = 160
_MAX_BUFFER = 8 * FRAME  # 160 ms of received audio kept for the recording before the oldest is dropped
_STATIC = {0: "PCMU", 8: "PCMA"}


class MediaStream(DatagramProtocol):
    def __init__(self, media_clock: MediaClock, on_digit: Callable[[str], None] = lambda d: None):
        self._media_clock = media_clock
        self.on_digit = on_digit
        self.ssrc = int.from_bytes(os.urandom(4), "big")
        self.seq = random.randrange(0x10000)
        self.ts = random.randrange(0x100000000)
        self.remote: tuple[str, int] | None = None
        self.codec = "PCMU"
        self.payload_type = 0
        self.te_payload_type: int | None = None
        self.muted = False
        self.recording: CallRecording | None = None
        self.relay_to: MediaStream | None = None
        self.bridged = False
        self.sent_packets = 0
        self.send_errors = 0
        self.received_packets = 0
        self._sendto: Callable[[bytes, tuple[str, int]], object] | None = None
        self._silence = bytes([SILENCE["PCMU"]]) * FRAME
        self._rx_tables: dict[int, bytes | None] = {}
        self._rx = bytearray()
        self._relayed = bytearray()
        self._relay_offset: tuple[int, int] | None = None  # (incoming SSRC, timestamp offset)
        self._dtmf_in = DtmfReceiver()
        self._playing: bytes | None = None
        self._pos = 0
        self._play_done: Deferred[bool] | None = None
        self._events: deque[tuple[bool, bytes]] = deque()  # (first packet of an event, payload)
        self._events_done: Deferred[None] | None = None
        self._event_ts = 0
        self._marker = True
        self.running = False
        self._closed = False

    # -- set-up -----------------------------------------------------------------------------------
    def configure(self, params: MediaParams) -> None:
        self.remote = (params.remote_host, params.remote_port)
        self.codec = params.codec
        self.payload_type = params.payload_type
        self.te_payload_type = params.te_payload_type
        self.muted = params.on_hold
        self._silence = bytes([SILENCE[self.codec]]) * FRAME
        self._rx_tables = {pt: transcoder(name, self.codec) for pt, name in _STATIC.items()}
        self._rx_tables[self.payload_type] = None
        if self.recording is not None:
            self.recording.set_codecs(self.codec, self.codec)

    def start(self) -> None:
        if not self.running:
            self.running = True
            self._media_clock.add(self)

    def stop(self) -> None:
        """Stop sending and close the socket. Pending ``play``/``send_digits`` Deferreds stay pending
        until ``release_waiters``: whoever owns the call decides how a stopped stream reads to a flow."""
        self.running = False
        self._media_clock.remove(self)
        self.relay_to = None
        if self.transport is not None and not self._closed:
            self._closed = True
            self.transport.stopListening()

    # -- outgoing ---------------------------------------------------------------------------------
    def play(self, audio: bytes) -> Deferred[bool]:
        """Queue ``audio`` (in this stream's codec) for sending; fires True when sent, False if stopped."""
        self.stop_playback()
        if not audio:
            return succeed(True)
        self._playing, self._pos = audio, 0
        self._play_done = Deferred()
        return self._play_done

    def release_waiters(self) -> None:
        self.stop_playback()
        self._finish_events()

    def stop_playback(self) -> None:
        if self._playing is not None:
            self._end_playback(False)

    def _end_playback(self, completed: bool) -> None:
        done, self._play_done, self._playing = self._play_done, None, None
        if done is not None:
            done.callback(completed)

    @property
    def playing(self) -> bool:
        return self._playing is not None

    def send_digits(self, digits: str, duration_ms: int = 160, gap_ms: int = 100) -> Deferred[None]:
        """Send RFC 4733 events (needs a negotiated telephone-event); fires when the last end packet went."""
        if self.te_payload_type is None:
            raise ValueError("the peer did not offer telephone-event")
        for digit in digits:
            if self._events:  # a pause between key presses, none after the last
                self._events.extend((False, b"") for _ in range(max(1, gap_ms // 20)))
            for i, payload in enumerate(event_payloads(digit, duration_ms)):
                self._events.append((i == 0, payload))
        if self._events_done is None:
            self._events_done = Deferred()
        return self._events_done

    def _finish_events(self) -> None:
        self._events.clear()
        done, self._events_done = self._events_done, None
        if done is not None:
            done.callback(None)

    def tick(self) -> None:
        self.ts = ts = (self.ts + FRAME) & 0xFFFFFFFF
        if self.bridged:
            frame: bytes | None = None
            if len(self._relayed) >= FRAME:
                frame = bytes(self._relayed[:FRAME])
                del self._relayed[:FRAME]
        else:
            data = self._playing
            if data is None:
                frame = self._silence
            else:
                pos = self._pos
                frame = data[pos:pos + FRAME]
                self._pos = pos + FRAME
                if len(frame) < FRAME:
                    frame += self._silence[len(frame):]
                if self._pos >= len(data):
                    self._end_playback(True)
            if self._events:
                self._send_event(ts)
            elif not self.muted and self.remote is not None:
                self._send(self.payload_type, frame)
        recording = self.recording
        if recording is not None:
            remote = None
            if len(self._rx) >= FRAME:
                remote = bytes(self._rx[:FRAME])
                del self._rx[:FRAME]
            recording.write(remote, frame)

    def _send_event(self, ts: int) -> None:
        first, payload = self._events.popleft()
        if first:
            self._event_ts = ts
        if payload and self.remote is not None and not self.muted:
            self._send(self.te_payload_type or 101, payload, marker=first, ts=self._event_ts)
        if not self._events:
            self._finish_events()

    def _send(self, pt: int, payload: bytes, marker: bool = False, ts: int | None = None) -> None:
        self.seq = (self.seq + 1) & 0xFFFF
        if self._marker:
            marker, self._marker = True, False
        packet = HEADER.pack(0x80, pt | 0x80 if marker else pt, self.seq, self.ts if ts is None else ts,
                             self.ssrc) + payload
        self._write(packet)

    def _write(self, packet: bytes) -> None:
        # The socket's own sendto: Twisted's Port.write re-validates the address on every packet,
        # which was the biggest cost per tick in the profile (bench/sip.py --profile).
        sendto = self._sendto
        if sendto is None:
            socket = getattr(self.transport, "socket", None)
            sendto = self._sendto = socket.sendto if socket is not None else self.transport.write
        self.sent_packets += 1
        try:
            sendto(packet, self.remote)
        except OSError:
            self.send_errors += 1  # a full buffer or an ICMP error reported late: drop, never stall

    # -- incoming ---------------------------------------------------------------------------------
    def datagramReceived(self, data: bytes, addr: tuple[str, int]) -> None:  # noqa: N802
        if len(data) < 12:
            return
        if data[0] == 0x80:
            pt = data[1] & 0x7F
            payload = data[12:]
        else:
            packet = parse_rtp(data)
            if packet is None:
                return
            pt, payload = packet.payload_type, packet.payload
        self.received_packets += 1
        if pt in self._rx_tables:
            table = self._rx_tables[pt]
            if table is not None:
                payload = payload.translate(table)
            rx = self._rx
            rx += payload
            if len(rx) > _MAX_BUFFER:
                del rx[:len(rx) - _MAX_BUFFER // 2]
            if self.relay_to is not None:
                _, _, _, ts, ssrc = HEADER.unpack_from(data)
                self.relay_to.relay_in(False, data[1] & 0x80 != 0, ts, ssrc, payload, self.codec)
        elif pt == self.te_payload_type:
            _, _, _, ts, ssrc = HEADER.unpack_from(data)
            digit = self._dtmf_in.feed(ssrc, ts, payload)
            if digit is not None:
                self.on_digit(digit)
            if self.relay_to is not None:
                self.relay_to.relay_in(True, data[1] & 0x80 != 0, ts, ssrc, payload, self.codec)

    def relay_in(self, event: bool, marker: bool, ts: int, ssrc: int, payload: bytes, codec: str) -> None:
        """A packet from the bridged leg, sent on as ours: our SSRC and sequence, its timestamps moved
        by a fixed offset (kept per incoming SSRC) so event timestamps and gaps survive."""
        if self.remote is None or self.muted:
            return
        if event:
            if self.te_payload_type is None:
                return
            pt = self.te_payload_type
        else:
            table = transcoder(codec, self.codec)
            if table is not None:
                payload = payload.translate(table)
            pt = self.payload_type
            self._relayed += payload
            if len(self._relayed) > _MAX_BUFFER:
                del self._relayed[:len(self._relayed) - _MAX_BUFFER // 2]
        if self._relay_offset is None or self._relay_offset[0] != ssrc:
            self._relay_offset = (ssrc, (self.ts - ts) & 0xFFFFFFFF)
            marker = True
        self.seq = (self.seq + 1) & 0xFFFF
        self._write(build_rtp(pt, marker, self.seq, ts + self._relay_offset[1], self.ssrc, payload))

    def set_bridged(self, bridged: bool) -> None:
        self.bridged = bridged
        self._relayed.clear()
        self._relay_offset = None
        if not bridged:
            self._marker = True
