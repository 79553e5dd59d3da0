"""Sub-package reassembly for one connection (jt808.md §1.3).

Chunks are keyed by (phone, message id, total) and concatenated in index order once all have
arrived. Memory is bounded twice over: a cap on the bytes held and on the number of messages
being collected (the oldest is dropped to make room), and a message that stays incomplete for
``timeout`` seconds of the injected clock is dropped at the next chunk.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ingest.jt808.codec import Header


@dataclass
class _Partial:
    first_serial: int  # serial of chunk 1 (= original serial for 0x8003), if it came
    started: float
    chunks: dict[int, bytes] = field(default_factory=dict)
    size: int = 0


@dataclass(frozen=True)
class Assembled:
    header: Header  # the header of the chunk that completed the message
    body: bytes
    first_serial: int


@dataclass(frozen=True)
class Incomplete:
    """The last index arrived but chunks are missing: ask for them again with 0x8003."""

    first_serial: int
    missing: tuple[int, ...]


class SubpackageAssembler:
    def __init__(self, clock, *, max_bytes: int = 262144, max_messages: int = 8, timeout: float = 60.0):
        self._clock = clock
        self.max_bytes = max_bytes
        self.max_messages = max_messages
        self.timeout = timeout
        self._partials: dict[tuple[str, int, int], _Partial] = {}
        self._held = 0
        self.dropped = 0

    @property
    def held_bytes(self) -> int:
        return self._held

    def add(self, header: Header, chunk: bytes) -> Assembled | Incomplete | None:
        """Store one chunk. Returns the whole message when complete, Incomplete when the last
        index came with gaps, None while still collecting (or when the chunk was unusable)."""
        total, index = header.total, header.index
        if total < 1 or not 1 <= index <= total:
            self.dropped += 1
            return None
        if total == 1:
            return Assembled(header, chunk, header.serial)
        now = self._clock.seconds()
        self._expire(now)
        key = (header.phone, header.msg_id, total)
        partial = self._partials.get(key)
        if partial is None:
            while len(self._partials) >= self.max_messages:
                self._drop(next(iter(self._partials)))
            # The serials of one split message are consecutive, so chunk 1's serial is known
            # from any chunk: it is what 0x8003 names as the original serial.
            partial = _Partial((header.serial - index + 1) & 0xFFFF, now)
            self._partials[key] = partial
        if index in partial.chunks:
            return None  # a resent chunk we already hold
        while self._held + len(chunk) > self.max_bytes and self._partials:
            oldest = next(iter(self._partials))
            self._drop(oldest)
            if oldest == key:
                return None
        partial.chunks[index] = chunk
        partial.size += len(chunk)
        self._held += len(chunk)
        if len(partial.chunks) == total:
            self._drop(key, counted=False)
            body = b"".join(partial.chunks[i] for i in range(1, total + 1))
            return Assembled(header, body, partial.first_serial)
        if index == total:
            missing = tuple(i for i in range(1, total + 1) if i not in partial.chunks)
            return Incomplete(partial.first_serial, missing)
        return None

    def _expire(self, now: float) -> None:
        stale = [key for key, partial in self._partials.items() if now - partial.started > self.timeout]
        for key in stale:
            self._drop(key)

    def _drop(self, key: tuple[str, int, int], counted: bool = True) -> None:
        partial = self._partials.pop(key)
        self._held -= partial.size
        if counted:
            self.dropped += 1
