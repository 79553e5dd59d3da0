from hypothesis import given, settings
from hypothesis import strategies as st

from ingest.jt808.framing import CorruptEscape, Jt808Framer, OversizeFrame, escape, unescape, wrap, xor_check

# jt808.md §9 example A, as on the wire and un-escaped between the delimiters.
EXAMPLE_A = bytes.fromhex(
    "7E0200002612345678901200 7D02 00000001000000020 0BA7F0E07E4F11C0028003C0000181015101010"
    "0104000000640202007D01137E".replace(" ", "")
)
EXAMPLE_A_FRAME = bytes.fromhex(
    "02000026123456789012007E00000001000000020 0BA7F0E07E4F11C0028003C00001810151010100104"
    "00000064020200 7D13".replace(" ", "")
)


def test_example_a_unescapes_and_checks():
    frames = Jt808Framer().feed(EXAMPLE_A)
    assert frames == [EXAMPLE_A_FRAME]
    assert xor_check(EXAMPLE_A_FRAME[:-1]) == 0x13 == EXAMPLE_A_FRAME[-1]


def test_wrap_is_the_inverse_of_the_framer():
    payload = EXAMPLE_A_FRAME[:-1]
    assert wrap(payload) == EXAMPLE_A


def test_escape_handles_7d_before_7e():
    assert escape(b"\x7d\x7e") == b"\x7d\x01\x7d\x02"
    assert unescape(b"\x7d\x01\x7d\x02") == b"\x7d\x7e"
    assert unescape(b"\x7d\x01\x02") == b"\x7d\x02"  # an escaped 7D followed by a plain 02


def test_7d_followed_by_anything_else_is_corrupt():
    for bad in (b"\x01\x7d\x03\x02", b"\x01\x7d", b"\x7d\x7d\x01"):
        try:
            unescape(bad)
        except CorruptEscape:
            continue
        raise AssertionError(f"{bad.hex()} accepted")


def test_leading_junk_is_skipped_and_frames_split_across_segments():
    framer = Jt808Framer()
    stream = b"\x24\x24garbage" + EXAMPLE_A + EXAMPLE_A
    out = []
    for n in range(0, len(stream), 7):
        out.extend(framer.feed(stream[n:n + 7]))
    assert out == [EXAMPLE_A_FRAME, EXAMPLE_A_FRAME]
    assert framer.stats.junk_bytes == 9
    assert framer.pending_bytes == 0


def test_shared_delimiter_between_frames_still_yields_both():
    shared = EXAMPLE_A[:-1] + EXAMPLE_A  # 7E A 7E A 7E (non-standard but seen)
    assert Jt808Framer().feed(shared) == [EXAMPLE_A_FRAME, EXAMPLE_A_FRAME]


def test_corrupt_piece_does_not_hide_its_neighbours():
    out = Jt808Framer().feed(EXAMPLE_A + b"\x7e\x01\x7d\x05\x7e" + EXAMPLE_A)
    assert out[0] == EXAMPLE_A_FRAME and out[-1] == EXAMPLE_A_FRAME
    assert isinstance(out[1], CorruptEscape)


def test_unterminated_frame_is_dropped_at_the_limit_and_the_framer_resyncs():
    framer = Jt808Framer(max_frame_bytes=64)
    out = framer.feed(b"\x7e" + b"\x11" * 100)
    assert len(out) == 1 and isinstance(out[0], OversizeFrame)
    assert framer.pending_bytes == 0
    # The tail of the dropped frame and its end delimiter, then a good frame.
    assert framer.feed(b"\x11" * 10 + b"\x7e" + EXAMPLE_A) == [EXAMPLE_A_FRAME]


def test_complete_oversize_piece_is_reported():
    out = Jt808Framer(max_frame_bytes=16).feed(b"\x7e" + b"\x01" * 17 + b"\x7e")
    assert len(out) == 1 and isinstance(out[0], OversizeFrame)


@given(st.binary(max_size=300))
def test_escape_round_trip(payload):
    escaped = escape(payload)
    assert b"\x7e" not in escaped
    assert unescape(escaped) == payload


@settings(max_examples=300)
@given(st.lists(st.binary(max_size=200), max_size=20), st.integers(1, 64))
def test_any_stream_never_raises_and_memory_stays_bounded(chunks, limit):
    framer = Jt808Framer(max_frame_bytes=limit)
    for chunk in chunks:
        for item in framer.feed(chunk):
            assert isinstance(item, (bytes, CorruptEscape, OversizeFrame))
            if isinstance(item, bytes):
                assert item and len(item) <= limit
        assert framer.pending_bytes <= limit


@given(st.lists(st.binary(min_size=1, max_size=80), min_size=1, max_size=8), st.data())
def test_wrapped_payloads_come_back_whatever_the_segmentation(payloads, data):
    stream = b"".join(wrap(p) for p in payloads)
    cuts = sorted(data.draw(st.lists(st.integers(0, len(stream)), max_size=10)))
    framer = Jt808Framer()
    out, start = [], 0
    for cut in [*cuts, len(stream)]:
        out.extend(framer.feed(stream[start:cut]))
        start = cut
    assert [frame[:-1] for frame in out] == payloads
    assert all(xor_check(frame[:-1]) == frame[-1] for frame in out)


@settings(max_examples=300)
@given(st.binary(max_size=2100))
def test_xor_check_is_the_xor_of_every_byte(data):
    # Long inputs are folded as one integer, short ones looped: both must be the plain XOR.
    expected = 0
    for byte in data:
        expected ^= byte
    assert xor_check(data) == expected


def test_xor_check_at_the_fold_boundaries():
    for size in (0, 1, 23, 24, 25, 63, 64, 65, 127, 128, 129, 1045, 4096):
        data = bytes((n * 37 + 11) & 0xFF for n in range(size))
        expected = 0
        for byte in data:
            expected ^= byte
        assert xor_check(data) == expected, size
        assert xor_check(data + bytes((expected,))) == 0, size
