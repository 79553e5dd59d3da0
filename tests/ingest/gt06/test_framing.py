"""Framer and CRC: the brief's worked frames, stream reassembly, resync, limits, fuzzing."""

from __future__ import annotations

import random

from hypothesis import given, settings
from hypothesis import strategies as st

from ingest.gt06.framing import Frame, Gt06Framer, build_frame, crc_itu

LOGIN = bytes.fromhex("78780D01012345678901234500018CDD0D0A")
LOCATION = bytes.fromhex("78781F120B081D112E10CC027AC7EB0C46584900148F01CC00287D001FB8000373770D0A")
HEARTBEAT = bytes.fromhex("78780A134004040001000FDCEE0D0A")
ALARM = bytes.fromhex("787825160B051B093523CF027AC8360C4657B30014000901CC00266A001E1740050400020008D7B10D0A")
REPLY_21 = bytes.fromhex(
    "797900262100000000020043006F006D006D0061006E00640020006500720072006F007200210023" "6E850D0A")
# Content holding 0D 0A (a 0x9B pass-through from Traccar's tests): must not be cut there.
INNER_STOP = bytes.fromhex("7979000e9b0332382e33a1e60d0a0289be490d0a")


def _bitwise_crc(data: bytes) -> int:
    crc = 0xFFFF
    for byte in data:
        crc ^= byte
        for _ in range(8):
            crc = (crc >> 1) ^ 0x8408 if crc & 1 else crc >> 1
    return crc ^ 0xFFFF


def test_crc_check_value_and_brief_frames():
    assert crc_itu(b"123456789") == 0x906E
    assert crc_itu(LOGIN[2:-4]) == 0x8CDD
    assert crc_itu(LOCATION[2:-4]) == 0x7377  # the corrected doc sample (gt06.md §8.2)
    assert crc_itu(REPLY_21[2:-4]) == 0x6E85  # 2-byte length included


@given(st.binary(max_size=300))
def test_table_crc_equals_the_bitwise_reference(data):
    assert crc_itu(data) == _bitwise_crc(data)


def test_frame_fields():
    frame = Frame(ALARM)
    assert (frame.protocol, frame.serial, frame.extended) == (0x16, 8, False)
    assert frame.crc_ok and frame.length_ok
    assert len(frame.body) == 32
    long = Frame(REPLY_21)
    assert (long.protocol, long.serial, long.extended, long.crc_ok) == (0x21, 0x23, True, True)


def test_the_uncorrected_doc_sample_fails_crc():
    bad = LOCATION[:-4] + bytes.fromhex("8081") + b"\r\n"
    assert not Frame(bad).crc_ok


def test_build_frame_matches_brief_acks():
    assert build_frame(0x01, b"", 1) == bytes.fromhex("787805010001D9DC0D0A")
    assert build_frame(0x13, b"", 0x0F) == bytes.fromhex("78780513000F008F0D0A")
    assert build_frame(0x21, REPLY_21[5:-6], 0x23, extended=True) == REPLY_21


def test_frames_split_byte_by_byte_and_batched():
    stream = LOGIN + LOCATION + HEARTBEAT + ALARM + REPLY_21 + INNER_STOP
    framer = Gt06Framer()
    out = []
    for i in range(len(stream)):
        out += framer.feed(stream[i:i + 1])
    assert [f.raw for f in out] == [LOGIN, LOCATION, HEARTBEAT, ALARM, REPLY_21, INNER_STOP]
    assert framer.buffered == 0 and framer.resyncs == 0
    assert [f.raw for f in Gt06Framer().feed(stream)] == [f.raw for f in out]


def test_inner_stop_bytes_do_not_cut_a_frame_split_after_them():
    framer = Gt06Framer()
    cut = INNER_STOP.index(b"\r\n") + 2
    assert framer.feed(INNER_STOP[:cut]) == []
    assert [f.raw for f in framer.feed(INNER_STOP[cut:])] == [INNER_STOP]


def test_garbage_is_skipped_and_counted():
    framer = Gt06Framer()
    frames = framer.feed(b"\x00\xffjunk" + LOGIN + b"\x78\x01\x02" + HEARTBEAT)
    assert [f.raw for f in frames] == [LOGIN, HEARTBEAT]
    assert framer.resyncs == 2 and framer.discarded_bytes == 6 + 3


def test_half_start_marker_is_kept_across_reads():
    framer = Gt06Framer()
    assert framer.feed(b"\x00\x78") == []
    assert [f.raw for f in framer.feed(LOGIN[1:])] == [LOGIN]


def test_wrong_length_byte_falls_back_to_the_next_stop():
    # 0x69 WiFi scan: the length byte holds the WiFi count (0), the frame ends at 0D 0A.
    wifi = bytes.fromhex("787800691710231108500200cc080c4e2fa5640c4e2fa66e0d0a")
    frames = Gt06Framer().feed(wifi + LOGIN)
    assert [f.raw for f in frames] == [wifi, LOGIN]
    assert not frames[0].length_ok and frames[1].length_ok


def test_oversize_length_is_garbage_not_a_wait():
    framer = Gt06Framer(max_frame_bytes=64)
    frames = framer.feed(b"\x79\x79\xff\xff\x01" + LOGIN)
    assert [f.raw for f in frames] == [LOGIN]
    assert framer.resyncs >= 1


def test_buffer_stays_bounded_without_stop_bytes():
    framer = Gt06Framer(max_frame_bytes=256, max_buffer_bytes=1024)
    for _ in range(100):
        framer.feed(b"\x78\x78\x00" + b"\x01" * 97)
        assert framer.buffered <= 256 + 100


@settings(max_examples=300, deadline=None)
@given(st.lists(st.one_of(st.binary(max_size=40), st.sampled_from([LOGIN, LOCATION, HEARTBEAT, ALARM])),
                max_size=20),
       st.integers(min_value=1, max_value=50))
def test_fuzzed_streams_never_raise_and_stay_bounded(parts, chunk):
    framer = Gt06Framer(max_frame_bytes=512, max_buffer_bytes=2048)
    stream = b"".join(parts)
    for i in range(0, len(stream), chunk):
        for frame in framer.feed(stream[i:i + chunk]):
            assert frame.raw[:2] in (b"\x78\x78", b"\x79\x79") and frame.raw.endswith(b"\r\n")
            assert len(frame.raw) <= 512
            frame.body, frame.serial, frame.crc_ok, frame.protocol  # noqa: B018 - properties never raise
        assert framer.buffered <= 512 + chunk


@settings(max_examples=200, deadline=None)
@given(st.lists(st.sampled_from([LOGIN, LOCATION, HEARTBEAT, ALARM, REPLY_21]), min_size=1, max_size=12),
       st.binary(max_size=8).filter(lambda g: b"\x78" not in g and b"\x79" not in g),
       st.randoms(use_true_random=False))
def test_good_frames_survive_garbage_and_any_split(frames, garbage, rnd: random.Random):
    stream = b"".join(garbage + f for f in frames)
    framer = Gt06Framer()
    out, pos = [], 0
    while pos < len(stream):
        step = rnd.randint(1, 30)
        out += framer.feed(stream[pos:pos + step])
        pos += step
    assert [f.raw for f in out] == frames
