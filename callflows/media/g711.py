"""G.711 µ-law and A-law (ITU-T G.711) as precomputed tables.

Per-packet work is ``bytes.translate`` only: µ-law<->A-law transcoding is one 256-byte table, and
decoding to 16-bit little-endian PCM (for recordings) is two translates (low and high byte) that the
caller interleaves with slice assignment. Encoding linear audio (prompts, once per prompt) goes
through a 65536-entry table.
"""

from __future__ import annotations

from array import array
from functools import cache

_SEG_U = (0x3F, 0x7F, 0xFF, 0x1FF, 0x3FF, 0x7FF, 0xFFF, 0x1FFF)
_SEG_A = (0x1F, 0x3F, 0x7F, 0xFF, 0x1FF, 0x3FF, 0x7FF, 0xFFF)


def ulaw_decode(u: int) -> int:
    u = ~u & 0xFF
    t = (((u & 0x0F) << 3) + 0x84) << ((u & 0x70) >> 4)
    return 0x84 - t if u & 0x80 else t - 0x84


def alaw_decode(a: int) -> int:
    a ^= 0x55
    t = (a & 0x0F) << 4
    seg = (a & 0x70) >> 4
    if seg == 0:
        t += 8
    elif seg == 1:
        t += 0x108
    else:
        t = (t + 0x108) << (seg - 1)
    return t if a & 0x80 else -t


def _segment(value: int, ends: tuple[int, ...]) -> int:
    for i, end in enumerate(ends):
        if value <= end:
            return i
    return len(ends)


def ulaw_encode(sample: int) -> int:
    """16-bit signed linear sample -> µ-law byte."""
    value = sample >> 2
    mask = 0xFF
    if value < 0:
        value, mask = -value, 0x7F
    value = min(value, 8159) + 0x21
    seg = _segment(value, _SEG_U)
    if seg >= 8:
        return 0x7F ^ mask
    return ((seg << 4) | ((value >> (seg + 1)) & 0x0F)) ^ mask


def alaw_encode(sample: int) -> int:
    """16-bit signed linear sample -> A-law byte."""
    value = sample >> 3
    mask = 0xD5
    if value < 0:
        value, mask = -value - 1, 0x55
    seg = _segment(value, _SEG_A)
    if seg >= 8:
        return 0x7F ^ mask
    quant = (value >> 1) & 0x0F if seg < 2 else (value >> seg) & 0x0F
    return ((seg << 4) | quant) ^ mask


_DECODERS = {"PCMU": ulaw_decode, "PCMA": alaw_decode}
_ENCODERS = {"PCMU": ulaw_encode, "PCMA": alaw_encode}

ULAW_TO_ALAW = bytes(alaw_encode(ulaw_decode(u)) for u in range(256))
ALAW_TO_ULAW = bytes(ulaw_encode(alaw_decode(a)) for a in range(256))
SILENCE = {"PCMU": 0xFF, "PCMA": 0xD5}


def transcoder(source: str, target: str) -> bytes | None:
    """A translate table from one codec to the other, or None when they are the same."""
    if source == target:
        return None
    return ULAW_TO_ALAW if source == "PCMU" else ALAW_TO_ULAW


@cache
def pcm_tables(codec: str) -> tuple[bytes, bytes]:
    """(low byte, high byte) translate tables from a G.711 byte to 16-bit little-endian PCM."""
    decode = _DECODERS[codec]
    values = [decode(b) & 0xFFFF for b in range(256)]
    return bytes(v & 0xFF for v in values), bytes(v >> 8 for v in values)


@cache
def _encode_table(codec: str) -> bytes:
    encode = _ENCODERS[codec]
    return bytes(encode(i - 65536 if i >= 32768 else i) for i in range(65536))


def encode_pcm16(pcm: bytes, codec: str) -> bytes:
    """16-bit little-endian mono PCM -> G.711 bytes (one byte per sample)."""
    samples = array("H")
    samples.frombytes(pcm[: len(pcm) // 2 * 2])
    if array("H", [1]).tobytes() != b"\x01\x00":
        samples.byteswap()
    table = _encode_table(codec)
    return bytes(map(table.__getitem__, samples))


def decode_to_pcm16(data: bytes, codec: str) -> bytes:
    """G.711 bytes -> 16-bit little-endian PCM."""
    lo, hi = pcm_tables(codec)
    out = bytearray(2 * len(data))
    out[0::2] = data.translate(lo)
    out[1::2] = data.translate(hi)
    return bytes(out)
