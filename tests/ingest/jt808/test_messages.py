import struct

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ingest.jt808 import messages as m
from ingest.jt808.codec import parse_packet
from ingest.jt808.framing import Jt808Framer
from ingest.jt808.terminal import authentication_body, registration_body


def packet_of(wire_hex: str):
    (frame,) = Jt808Framer().feed(bytes.fromhex(wire_hex.replace(" ", "")))
    return parse_packet(frame)


REGISTRATION_2013 = (
    "7E 01 00 00 2D 00 01 23 45 67 89 00 0A 00 28 00 32 31 32 33 34 00 73 6D 61 6C 6C 63 68 69"
    "31 32 33 00 00 00 00 00 00 00 00 00 43 48 49 31 32 33 00 01 D4 C1 41 31 32 33 34 35 8A 7E"
)
REGISTRATION_2019 = (
    "7E010040540100000000000123456789000A002800323132333400000000000000736D616C6C6368693132330000"
    "000000000000000000000000000000000043484931323300000000000000000000000000000000000000000000"
    "000001D4C1413132333435B27E"
)


def test_registration_2013_example_d():
    packet = packet_of(REGISTRATION_2013)
    reg = m.decode_registration(packet.body, packet.header.is_2019)
    assert reg == m.Registration(40, 50, "1234", "smallchi123", "CHI123", 1, "粤A12345", 2013)


def test_registration_2019():
    packet = packet_of(REGISTRATION_2019)
    reg = m.decode_registration(packet.body, packet.header.is_2019)
    assert (reg.layout, reg.manufacturer, reg.model, reg.terminal_code, reg.plate) == (
        2019, "1234", "smallchi123", "CHI123", "粤A12345")


def test_registration_2011_layout_by_length():
    body = struct.pack(">HH", 1, 2) + b"MAKER" + b"MODEL\0\0\0" + b"ID12345" + b"\x02" + "京B1".encode("gbk")
    reg = m.decode_registration(body, False)
    assert (reg.layout, reg.manufacturer, reg.model, reg.terminal_code, reg.plate_colour, reg.plate) == (
        2011, "MAKER", "MODEL", "ID12345", 2, "京B1")


def test_registration_body_builder_matches_the_decoder():
    for is_2019 in (False, True):
        body = registration_body(is_2019=is_2019, manufacturer="M1", model="X", terminal_code="T9", plate="粤B1")
        reg = m.decode_registration(body, is_2019)
        assert (reg.manufacturer, reg.model, reg.terminal_code, reg.plate) == ("M1", "X", "T9", "粤B1")


def test_short_registration_is_a_body_error():
    with pytest.raises(m.BodyError):
        m.decode_registration(b"\x00" * 20, True)


def test_authentication_2013_and_2019():
    packet = packet_of("7E 01 02 00 08 00 01 23 45 67 89 00 0B 41 55 54 48 30 30 30 31 80 7E")
    assert m.decode_authentication(packet.body, False).auth_code == "AUTH0001"
    body = authentication_body("AUTH0001", is_2019=True, imei="860000000000001", software="1.2")
    assert m.decode_authentication(body, True) == m.Authentication("AUTH0001", "860000000000001", "1.2")
    # 2019 header over a 2013 body: the whole body is the code.
    assert m.decode_authentication(b"AUTH0001", True).auth_code == "AUTH0001"


def test_terminal_response():
    assert m.decode_terminal_response(bytes.fromhex("0006820300")) == m.TerminalResponse(6, 0x8203, 0)
    with pytest.raises(m.BodyError):
        m.decode_terminal_response(b"\x00\x01")


def test_batch_split_keeps_items_before_a_bad_length():
    body = struct.pack(">HB", 3, 1) + b"\x00\x02ab" + b"\x00\x01c" + b"\x00\x09de"
    data_type, items, problems = m.split_batch(body)
    assert data_type == 1 and items == [b"ab", b"c"] and len(problems) == 1


def test_platform_encoders_example_d_bodies():
    assert m.platform_response(0x0B, 0x0102, 0) == bytes.fromhex("000B010200")
    assert m.register_response(0x0A, 0, "AUTH0001") == bytes.fromhex("000A00") + b"AUTH0001"
    assert m.register_response(0x0A, m.REGISTER_TERMINAL_UNKNOWN, "ignored") == bytes.fromhex("000A04")
    assert m.alarm_confirmation(0x23, 1 << 20) == bytes.fromhex("002300100000")


def test_text_message_flags_2013_and_2019():
    assert m.text_message("hi", is_2019=False, emergency=True, tts=True) == bytes((0x01 | 0x04 | 0x08,)) + b"hi"
    assert m.text_message("hi", is_2019=False, display=False) == b"\x00hi"
    assert m.text_message("你好", is_2019=True) == bytes((0x03 | 0x04, 1)) + "你好".encode("gbk")
    assert m.text_message("x", is_2019=True, emergency=True, display=False)[:1] == b"\x02"
    assert m.text_message("x", is_2019=True, text_type=m.TEXT_SERVICE)[:2] == bytes((0x01 | 0x04, 2))
    with pytest.raises(ValueError):
        m.text_message("x" * 1025, is_2019=False)


def test_resend_request_count_width_by_version():
    assert m.resend_request(7, [2, 3], False) == bytes.fromhex("0007 02 0002 0003".replace(" ", ""))
    assert m.resend_request(7, [2], True) == bytes.fromhex("0007 0001 0002".replace(" ", ""))


def test_position_answer_split():
    assert m.split_position_answer(b"\x00\x05rest") == (5, b"rest")
    with pytest.raises(m.BodyError):
        m.split_position_answer(b"\x00")


def _attributes_body(is_2019: bool) -> bytes:
    model_w, id_w = (30, 30) if is_2019 else (20, 7)
    return (b"\x00\x06" + b"XC\x00\x00\x00" + b"C5L".ljust(model_w, b"\x00") + b"9887125".ljust(id_w, b"\x00")
            + bytes.fromhex("89883030000131882455") + b"\x02H1" + b"\x04V2.6" + b"\x03\x01")


def test_terminal_attributes_2013_and_2019():
    for is_2019 in (False, True):
        attributes = m.decode_terminal_attributes(_attributes_body(is_2019), is_2019)
        assert attributes == m.TerminalAttributes(6, "XC", "C5L", "9887125", "89883030000131882455", "H1", "V2.6", 3, 1)
    with pytest.raises(m.BodyError):
        m.decode_terminal_attributes(_attributes_body(False)[:40], False)


def test_waybill_and_text_answers():
    assert m.decode_waybill(b"\x00\x00\x00\x05hello!") == "hello"
    assert m.decode_text_report(b"\x00<VER:1>") == "<VER:1>"
    assert m.decode_text_answer(b"\x00\x09" + "Set OK!\r".encode("utf-16-be")) == (9, "Set OK!")
    for decoder in (m.decode_waybill, m.decode_text_report, m.decode_text_answer):
        with pytest.raises(m.BodyError):
            decoder(b"")


def test_driver_identity():
    time = bytes.fromhex("251009150751")
    inserted = (b"\x01" + time + b"\x00" + b"\x04\xd5\xc5\xc8\xfd" + b"0029b885".ljust(20, b"\x00")
                + b"\x02AB" + bytes.fromhex("20301231"))
    card = m.decode_driver_identity(inserted, False)
    assert (card.status, card.read_result, card.name, card.certificate, card.agency) == (1, 0, "张三", "0029b885", "AB")
    assert card.validity_bcd.hex() == "20301231" and card.time_bcd == time
    assert m.decode_driver_identity(inserted + b"110101199001011234".ljust(20, b"\x00"), True).id_number == (
        "110101199001011234")
    assert m.decode_driver_identity(b"\x01" + time + b"\x02", False).read_result == 2  # card not read
    assert m.decode_driver_identity(b"\x02" + time, False) == m.DriverIdentity(2, time)  # pulled out
    with pytest.raises(m.BodyError):
        m.decode_driver_identity(b"\x01" + time + b"\x00\x09ab", False)


def test_short_batch_split():
    assert m.split_short_batch(b"\x02ab\x01c") == ([b"ab", b"c"], [])
    items, problems = m.split_short_batch(b"\x02ab\x05c")
    assert items == [b"ab"] and "item 2" in problems[0]


@given(st.binary(max_size=400), st.booleans())
def test_body_decoders_raise_only_body_errors(body, is_2019):
    for decoder in (
        lambda: m.decode_registration(body, is_2019),
        lambda: m.decode_authentication(body, is_2019),
        lambda: m.decode_terminal_response(body),
        lambda: m.split_batch(body),
        lambda: m.split_position_answer(body),
        lambda: m.decode_terminal_attributes(body, is_2019),
        lambda: m.decode_waybill(body),
        lambda: m.decode_driver_identity(body, is_2019),
        lambda: m.decode_text_report(body),
        lambda: m.decode_text_answer(body),
        lambda: m.split_short_batch(body),
    ):
        try:
            decoder()
        except m.BodyError:
            pass
