"""GT06 byte-stream framing: ``78 78``/``79 79`` frames, CRC-16/X-25, resync on garbage.

Owns turning the bytes of one TCP connection into ``Frame`` values (gt06.md §1). A frame is
emitted when its declared length is buffered and ends in ``0D 0A``. When the stop bytes are not
where the length says (firmware with a wrong length byte, e.g. the WiFi packets 0x17/0x69 that
carry a count there), the frame runs to the next ``0D 0A`` instead, as traccar does. Content can
legitimately contain ``0D 0A``, so a frame whose declared length is not yet buffered is waited
for, never cut at the first ``0D 0A``. Anything before a start marker is discarded and counted.
Memory stays bounded: at most one incomplete frame (``max_frame_bytes``) is kept.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

SHORT_START = b"\x78\x78"  # 1-byte length field
LONG_START = b"\x79\x79"  # 2-byte length field
STOP = b"\r\n"

_START = re.compile(b"\x78\x78|\x79\x79")


def _crc_table() -> tuple[int, ...]:
    table = []
    for byte in range(256):
        crc = byte
        for _ in range(8):
            crc = (crc >> 1) ^ 0x8408 if crc & 1 else crc >> 1
        table.append(crc)
    return tuple(table)


_CRC_TABLE = _crc_table()


def crc_itu(data: bytes | bytearray | memoryview) -> int:
    """CRC-16/X-25 (gt06.md §1.1): reflected 0x1021, init 0xFFFF, final XOR 0xFFFF."""
    crc = 0xFFFF
    table = _CRC_TABLE
    for byte in data:
        crc = (crc >> 8) ^ table[(crc ^ byte) & 0xFF]
    return crc ^ 0xFFFF


def build_frame(protocol: int, content: bytes, serial: int, *, extended: bool = False) -> bytes:
    """One complete frame with length, serial, CRC and stop bytes (used for every reply)."""
    length = len(content) + 5
    if extended:
        head = length.to_bytes(2, "big")
    else:
        if length > 0xFF:
            raise ValueError(f"content of {len(content)} bytes does not fit a 78 78 frame")
        head = bytes((length,))
    checked = head + bytes((protocol,)) + content + (serial & 0xFFFF).to_bytes(2, "big")
    return (LONG_START if extended else SHORT_START) + checked + crc_itu(checked).to_bytes(2, "big") + STOP


@dataclass(frozen=True, slots=True)
class Frame:
    raw: bytes  # the whole frame, start to stop bytes

    @property
    def extended(self) -> bool:
        return self.raw[0] == 0x79

    @property
    def _head(self) -> int:
        return 4 if self.raw[0] == 0x79 else 3

    @property
    def protocol(self) -> int:
        raw = self.raw
        return raw[self._head] if len(raw) > self._head + 2 else -1

    @property
    def declared_length(self) -> int:
        raw = self.raw
        return int.from_bytes(raw[2:4], "big") if raw[0] == 0x79 else raw[2]

    @property
    def length_ok(self) -> bool:
        """The length field matches the frame (false for frames ended by the 0D 0A fallback)."""
        return len(self.raw) == self._head + self.declared_length + 2

    @property
    def has_trailer(self) -> bool:
        """Room for a serial and a CRC after the protocol number."""
        return len(self.raw) >= self._head + 1 + 2 + 2 + 2

    @property
    def body(self) -> bytes:
        """Information content: after the protocol number, before the serial."""
        if not self.has_trailer:
            return self.raw[self._head + 1:-2]
        return self.raw[self._head + 1:-6]

    @property
    def payload(self) -> bytes:
        """Everything after the protocol number up to the stop bytes (for frames without a trailer)."""
        return self.raw[self._head + 1:-2]

    @property
    def serial(self) -> int:
        return int.from_bytes(self.raw[-6:-4], "big") if self.has_trailer else 0

    @property
    def crc_ok(self) -> bool:
        raw = self.raw
        if not self.has_trailer:
            return False
        return crc_itu(raw[2:-4]) == int.from_bytes(raw[-4:-2], "big")


class Gt06Framer:
    """Incremental framer for one connection. ``feed`` returns the frames completed so far."""

    def __init__(self, max_frame_bytes: int = 4096, max_buffer_bytes: int = 65536):
        self.max_frame_bytes = max(16, max_frame_bytes)
        self.max_buffer_bytes = max(self.max_frame_bytes, max_buffer_bytes)
        self._buf = bytearray()
        self.discarded_bytes = 0  # garbage skipped while resyncing
        self.resyncs = 0  # runs of garbage skipped (each counts as one bad frame upstream)
        self._skipping = False  # inside a garbage run, possibly across reads

    @property
    def buffered(self) -> int:
        return len(self._buf)

    def feed(self, data: bytes) -> list[Frame]:
        buf = self._buf
        buf += data
        frames: list[Frame] = []
        pos = 0
        end = len(buf)
        max_frame = self.max_frame_bytes
        while pos < end:
            match = _START.search(buf, pos)
            if match is None:
                # Keep a trailing half start marker; everything else is garbage.
                keep = 1 if buf[-1] in (0x78, 0x79) else 0
                self._skip(end - keep - pos)
                pos = end - keep
                break
            start = match.start()
            if start > pos:
                self._skip(start - pos)
                pos = start
            long = buf[pos] == 0x79
            head = 4 if long else 3
            if end - pos < head + 1:
                break
            length = int.from_bytes(buf[pos + 2:pos + 4], "big") if long else buf[pos + 2]
            total = head + length + 2
            if total > max_frame:
                self._skip(1)  # a length no terminal sends: this start marker was garbage
                pos += 1
                continue
            complete = end - pos >= total
            if length >= 5 and complete and buf[pos + total - 2] == 0x0D and buf[pos + total - 1] == 0x0A:
                self._emit(frames, buf[pos:pos + total])
                pos += total
                continue
            if length >= 5 and not complete:
                break  # wait for the declared length; never cut at an inner 0D 0A
            # The length field is wrong: the frame runs to the next 0D 0A (traccar's fallback).
            stop = buf.find(STOP, pos + head + 1, min(end, pos + max_frame))
            if stop >= 0:
                self._emit(frames, buf[pos:stop + 2])
                pos = stop + 2
                continue
            if end - pos >= max_frame:
                self._skip(1)
                pos += 1
                continue
            break
        if pos:
            del buf[:pos]
        if len(buf) > self.max_buffer_bytes:  # cannot happen with the rules above; belt and braces
            self._skip(len(buf))
            buf.clear()
        return frames

    def _skip(self, count: int) -> None:
        if count > 0:
            self.discarded_bytes += count
            if not self._skipping:
                self.resyncs += 1
                self._skipping = True

    def _emit(self, frames: list[Frame], raw: bytearray) -> None:
        frames.append(Frame(bytes(raw)))
        self._skipping = False
