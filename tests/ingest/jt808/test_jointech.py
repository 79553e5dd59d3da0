import json
import struct
from datetime import datetime, timezone

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ingest.jt808 import jointech
from ingest.jt808.codec import MalformedPacket, PacketError, parse_packet
from ingest.jt808.framing import Jt808Framer, xor_check
from ingest.jt808.messages import BodyError

NOW = datetime(2024, 3, 15, 6, 31, tzinfo=timezone.utc)
POSITION = bytes.fromhex(
    "060521 175940"  # day, month, year, time (UTC)
    "22348474"  # 22° 34.8474'
    "11355050 27"  # 113° 55.0502', then flags 7: valid, north, east
    "05 98"  # 5 knots, course 0x98 * 2
)
BODY = (POSITION + bytes((0x1E, 4)) + struct.pack(">IBIHBHH", 2, 55, 0x0AC3050C, 0x2866, 3, 0x0020, 0x0004)
        + bytes.fromhex("0202 0014  0c06 ff98 ffa8 007e  0b02 03 65"))


def frame(msg_id: int = jointech.LOCATION, body: bytes = BODY, attrs: int = 0x8000) -> bytes:
    head = struct.pack(">HH", msg_id, attrs | len(body)) + bytes.fromhex("858012030003") + b"\x2a"
    return head + body + bytes((xor_check(head + body),))


def test_location():
    packet = jointech.parse_frame(frame())
    assert (packet.phone, packet.serial, packet.wants_answer) == ("858012030003", 0x2A, True)
    (report,) = jointech.decode_jointech(packet, terminal_id="858012030003", received_at=NOW)
    fix = report.fix
    assert report.time == datetime(2021, 5, 6, 17, 59, 40, tzinfo=timezone.utc)
    assert fix.lat == pytest.approx(22 + 34.8474 / 60) and fix.lon == pytest.approx(113 + 55.0502 / 60)
    assert fix.valid and fix.speed_kmh == pytest.approx(5 * 1.852) and fix.course == 304 and fix.altitude == 20
    assert fix.satellites == 4
    extras = report.extras
    assert extras["battery_level"] == 55 and extras["odometer"] == 2000 and extras["blocked"] is True
    assert extras["tilt"] == "[-104,-88,126]" and extras["unlock_result"] == 0x65
    assert extras["cells"] == [{"lac": 0x2866, "cell_id": 0x0AC3050C}]
    assert report.alarms == ("vibration",)


def test_blind_area_report_is_not_a_valid_fix():
    (report,) = jointech.decode_jointech(jointech.parse_frame(frame(jointech.BLIND_LOCATION)), terminal_id="1")
    assert report.fix.valid is False


def test_southern_western_hemisphere_and_charging():
    body = bytearray(BODY)
    body[14] = 0x21  # valid only: south, west
    body[23] = 0xAA
    (report,) = jointech.decode_jointech(jointech.parse_frame(frame(body=bytes(body))), terminal_id="1")
    assert report.fix.lat < 0 and report.fix.lon < 0 and report.extras["charge"] is True


def test_the_standard_codec_rejects_it_and_the_framer_carries_it():
    wire = b"\x7e" + frame().replace(b"\x7d", b"\x7d\x01").replace(b"\x7e", b"\x7d\x02") + b"\x7e"
    (raw,) = Jt808Framer().feed(wire)
    assert jointech.is_jointech(raw)
    with pytest.raises(PacketError):
        parse_packet(raw)


def test_answer_only_when_asked():
    answer = jointech.answer(jointech.parse_frame(frame()))
    (raw,) = Jt808Framer().feed(answer)
    assert raw[:4] == bytes.fromhex("4401 0003") and raw[10] == 1 and raw[11:14] == bytes.fromhex("5501 00")
    assert jointech.answer(jointech.parse_frame(frame(attrs=0))) is None


def test_bad_frames():
    with pytest.raises(MalformedPacket):
        jointech.parse_frame(frame()[:-2])
    bad = frame()[:-1] + bytes((frame()[-1] ^ 1,))
    with pytest.raises(jointech.JointechCheckCode):
        jointech.parse_frame(bad)
    assert jointech.parse_frame(bad, verify_checksum=False).serial == 0x2A
    with pytest.raises(BodyError):
        jointech.decode_jointech(jointech.parse_frame(frame(body=BODY[:20])), terminal_id="1")


@settings(max_examples=300)
@given(st.binary(max_size=80))
def test_any_body_decodes_or_is_a_body_error(body):
    packet = jointech.parse_frame(frame(body=body))
    try:
        (report,) = jointech.decode_jointech(packet, terminal_id="1")
    except BodyError:
        return
    json.dumps(report.to_message())
