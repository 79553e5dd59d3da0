import pytest
from hypothesis import given
from hypothesis import strategies as st

from ingest.jt808.codec import (
    BadCheckCode,
    MalformedPacket,
    ack_head,
    build_ack,
    build_packet,
    build_reply,
    decode_phone,
    encode_phone,
    luhn_digit,
    parse_packet,
)
from ingest.jt808.framing import Jt808Framer


def frame_of(wire_hex: str) -> bytes:
    (frame,) = Jt808Framer().feed(bytes.fromhex(wire_hex.replace(" ", "")))
    return frame


EXAMPLE_B = (
    "7E 02 00 40 30 01 00 00 00 00 01 39 12 34 56 78 00 23 00 10 00 00 00 0C 00 03 01 57 FA F8"
    "06 CC 62 89 00 19 02 0B 00 5A 24 03 15 14 30 45 01 04 00 01 E2 40 12 06 01 00 00 00 07 00"
    "30 01 1A 31 01 0C B0 7E"
)
HEARTBEAT_2013 = "7e0002000004304832546500b7ca7e"


def test_2013_header():
    packet = parse_packet(frame_of(HEARTBEAT_2013))
    header = packet.header
    assert (header.msg_id, header.version, header.phone, header.serial) == (0x0002, None, "043048325465", 0xB7)
    assert packet.body == b"" and not header.is_subpackage and not header.encrypted


def test_2019_header():
    header = parse_packet(frame_of(EXAMPLE_B)).header
    assert header.is_2019 and header.version == 1
    assert header.phone == "00000000013912345678"
    assert (header.msg_id, header.serial, header.body_length) == (0x0200, 0x23, 48)


def test_bit_14_with_a_2013_layout_falls_back_by_length():
    frame = frame_of(HEARTBEAT_2013)
    lying = bytearray(frame)
    lying[2] |= 0x40  # claims 2019, carries a 2013 header
    lying[-1] ^= 0x40  # keep the check code right
    header = parse_packet(bytes(lying)).header
    assert not header.is_2019 and header.phone == "043048325465" and header.serial == 0xB7


def test_length_that_fits_no_layout_is_malformed():
    frame = bytearray(frame_of(HEARTBEAT_2013))
    frame[3] = 5
    with pytest.raises(MalformedPacket):
        parse_packet(bytes(frame))
    with pytest.raises(MalformedPacket):
        parse_packet(b"\x00" * 12)


def test_bad_check_code_carries_the_header_for_the_answer():
    frame = bytearray(frame_of(HEARTBEAT_2013))
    frame[-1] ^= 0xFF
    with pytest.raises(BadCheckCode) as caught:
        parse_packet(bytes(frame))
    assert caught.value.packet.header.serial == 0xB7
    lenient = parse_packet(bytes(frame), verify_checksum=False)
    assert not lenient.checksum_ok and lenient.header.msg_id == 0x0002


def test_platform_ack_copies_the_2019_flavour():
    header = parse_packet(frame_of(EXAMPLE_B)).header
    ack = build_reply(header, 0x8001, bytes.fromhex("0023020000"), serial=5)
    assert ack == bytes.fromhex("7E 80 01 40 05 01 00 00 00 00 01 39 12 34 56 78 00 05 00 23 02 00 00 D1 7E".replace(" ", ""))


def test_example_d_registration_response_bytes():
    built = build_packet(0x8100, bytes.fromhex("000A00") + b"AUTH0001",
                         phone_bcd=encode_phone("000123456789", False), serial=2)
    assert built.hex() == "7e8100000b000123456789000200" + "0a00" + b"AUTH0001".hex() + "027e"


def test_subpackage_header_round_trip():
    wire = build_packet(0x0801, b"abc", phone_bcd=encode_phone("13912345678", True), serial=9,
                        version=1, total=3, index=2)
    header = parse_packet(frame_of(wire.hex())).header
    assert header.is_subpackage and (header.total, header.index, header.serial) == (3, 2, 9)


def test_binary_imei_phone_reads_as_imei_with_luhn_digit():
    raw = bytes.fromhex("4eb6fb4ad628")
    imei = int.from_bytes(raw, "big")
    assert decode_phone(raw) == f"{imei}{luhn_digit(imei)}"
    assert luhn_digit(49015420323751) == 8  # the textbook IMEI 490154203237518


def test_encode_phone_rejects_what_does_not_fit():
    with pytest.raises(ValueError):
        encode_phone("1" * 13, False)
    with pytest.raises(ValueError):
        encode_phone("12ab", True)


def test_serial_wraps_and_body_limit():
    wire = build_packet(0x0002, b"", phone_bcd=encode_phone("1", False), serial=0x10000)
    assert parse_packet(frame_of(wire.hex())).header.serial == 0
    with pytest.raises(ValueError):
        build_packet(0x0200, bytes(1024), phone_bcd=encode_phone("1", False), serial=0)


@given(st.binary(max_size=120))
def test_parse_never_raises_anything_but_packet_errors(frame):
    try:
        packet = parse_packet(frame)
    except (MalformedPacket, BadCheckCode):
        return
    assert len(packet.body) == packet.header.body_length


@given(st.integers(0, 0xFFFF), st.binary(max_size=200), st.booleans(), st.integers(0, 0xFFFF),
       st.text("0123456789", min_size=1, max_size=12))
def test_build_then_parse_round_trip(msg_id, body, is_2019, serial, phone):
    wire = build_packet(msg_id, body, phone_bcd=encode_phone(phone, is_2019), serial=serial,
                        version=3 if is_2019 else None)
    packet = parse_packet(frame_of(wire.hex()))
    assert (packet.header.msg_id, packet.header.serial, packet.body) == (msg_id, serial, body)
    assert packet.header.phone.lstrip("0") == phone.lstrip("0")
    assert packet.header.version == (3 if is_2019 else None)


@given(st.integers(0, 0xFFFF), st.binary(max_size=100), st.booleans(), st.integers(0, 0x1FFFF),
       st.text("0123456789", min_size=1, max_size=12))
def test_build_reply_is_build_packet_in_the_request_flavour(msg_id, body, is_2019, serial, phone):
    request = parse_packet(frame_of(build_packet(2, b"", phone_bcd=encode_phone(phone, is_2019), serial=1,
                                                 version=7 if is_2019 else None).hex())).header
    assert build_reply(request, msg_id, body, serial) == build_packet(
        msg_id, body, phone_bcd=request.phone_bcd, serial=serial, version=request.version)


@given(st.integers(0, 0xFFFF), st.integers(0, 0xFFFF), st.sampled_from([0, 1, 2, 3, 4, 0x7D, 0x7E]), st.booleans(),
       st.integers(0, 0x1FFFF), st.text("0123456789", min_size=1, max_size=12))
def test_build_ack_is_the_platform_response_built_by_build_reply(msg_id, request_serial, result, is_2019, serial,
                                                                  phone):
    # Serials, ids and results holding 0x7D/0x7E bytes (and check codes that are) need escaping.
    request = parse_packet(frame_of(build_packet(msg_id, b"", phone_bcd=encode_phone(phone, is_2019),
                                                 serial=request_serial, version=7 if is_2019 else None).hex())).header
    body = request_serial.to_bytes(2, "big") + msg_id.to_bytes(2, "big") + bytes((result,))
    expected = build_reply(request, 0x8001, body, serial)
    assert build_ack(request, serial, result) == expected
    assert build_ack(request, serial, result, ack_head(request.version, request.phone_bcd)) == expected
