"""G.711 tables against ITU-T G.711 reference values."""

from __future__ import annotations

from array import array

from callflows.media.g711 import (
    ALAW_TO_ULAW,
    ULAW_TO_ALAW,
    alaw_decode,
    alaw_encode,
    decode_to_pcm16,
    encode_pcm16,
    transcoder,
    ulaw_decode,
    ulaw_encode,
)


def test_reference_values():
    assert ulaw_decode(0xFF) == 0 and ulaw_decode(0x7F) == 0
    assert ulaw_decode(0x00) == -32124 and ulaw_decode(0x80) == 32124
    assert alaw_decode(0xD5) == 8 and alaw_decode(0x55) == -8
    assert alaw_decode(0xAA) == 32256 and alaw_decode(0x2A) == -32256
    assert ulaw_encode(0) == 0xFF and alaw_encode(0) == 0xD5
    assert ulaw_encode(32767) == 0x80 and ulaw_encode(-32768) == 0x00


def test_encode_decode_round_trip_is_close_and_monotonic():
    for decode, encode in ((ulaw_decode, ulaw_encode), (alaw_decode, alaw_encode)):
        for byte in range(256):
            value = decode(byte)
            assert decode(encode(value)) == value  # decoded values are fixed points
        values = [decode(encode(v)) for v in range(-32768, 32768, 97)]
        assert values == sorted(values)
        assert all(abs(decode(encode(v)) - v) <= max(16, abs(v) // 16) for v in range(-32000, 32000, 101))


def test_transcoding_tables_preserve_values_closely():
    assert transcoder("PCMU", "PCMU") is None
    assert transcoder("PCMU", "PCMA") is ULAW_TO_ALAW and transcoder("PCMA", "PCMU") is ALAW_TO_ULAW
    for byte in range(256):
        value = ulaw_decode(byte)
        assert abs(alaw_decode(ULAW_TO_ALAW[byte]) - value) <= max(16, abs(value) // 16)


def test_pcm16_helpers():
    samples = array("h", [0, 1000, -1000, 32000, -32000])
    encoded = encode_pcm16(samples.tobytes(), "PCMU")
    assert list(encoded) == [ulaw_encode(s) for s in samples]
    decoded = array("h", decode_to_pcm16(encoded, "PCMU"))
    assert list(decoded) == [ulaw_decode(b) for b in encoded]
    assert encode_pcm16(b"\x00\x00\x01", "PCMA") == bytes([0xD5])  # a trailing odd byte is ignored
