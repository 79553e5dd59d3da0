"""Decoder: the worked frames of gt06.md §8, time zones, and fuzzing (only DecodeError may escape)."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ingest.gt06.decoder import HANDLERS, DecodeError, TerminalContext, decode, decode_login
from ingest.gt06.framing import Frame, build_frame

NOW = datetime(2024, 5, 1, 12, 0, tzinfo=timezone.utc)
CTX = TerminalContext("123456789012345")


def _decode(hexstr: str, ctx: TerminalContext = CTX):
    return decode(Frame(bytes.fromhex(hexstr.replace(" ", ""))), ctx, NOW)


def test_classic_login():
    d = _decode("78 78 0D 01 01 23 45 67 89 01 23 45 00 01 8C DD 0D 0A")
    assert d.kind == "login" and d.login.imei == "123456789012345" and d.login.utc_offset is None
    assert d.reply == bytes.fromhex("787805010001D9DC0D0A")


def test_extended_login_time_zone():
    d = _decode("78 78 11 01 07 52 53 36 78 90 02 42 70 00 32 01 00 05 12 79 0D 0A")
    assert d.login.imei == "752533678900242"
    assert (d.login.type_code, d.login.utc_offset, d.login.language) == (0x7000, timedelta(hours=8), 1)
    assert d.reply == bytes.fromhex("7878050100059FF80D0A")


def test_west_time_zone_word():
    # -12:45 -> 1245 = 0x4DD, west bit: 0x4DD8 (gt06.md §3)
    frame = Frame(build_frame(0x01, bytes.fromhex("0123456789012345") + b"\x00\x00" + b"\x4d\xd8", 1))
    assert decode_login(frame).utc_offset == -timedelta(hours=12, minutes=45)


def test_login_rejects_non_bcd_imei():
    with pytest.raises(DecodeError):
        decode_login(Frame(build_frame(0x01, bytes.fromhex("0a23456789012345"), 1)))


def test_location_0x12_corrected_doc_sample():
    d = _decode("78781F120B081D112E10CC027AC7EB0C46584900148F01CC00287D001FB8000373770D0A")
    r = d.report
    assert d.kind == "location" and d.reply is None  # 0x12 needs no ack (gt06.md §6)
    assert r.protocol == "gt06" and r.terminal_id == CTX.imei
    assert r.time == datetime(2011, 8, 29, 17, 46, 16, tzinfo=timezone.utc)
    assert (r.fix.lat, r.fix.lon, r.fix.course) == (23.111668, 114.409285, 143)
    assert (r.fix.valid, r.fix.satellites) == (True, 12)
    assert r.extras == {"mcc": 460, "mnc": 0, "lac": 10365, "cell_id": 8120}
    assert r.raw_alarms == {"gt06_protocol": 0x12} and r.alarms == ()


def test_location_south_west_signs():
    r = _decode("78781F1218030F0E1E2DC803A23C24079475D048191302DA011A2B00C35F004245680D0A").report
    assert (r.fix.lat, r.fix.lon, r.fix.speed_kmh, r.fix.course) == (-33.86882, -70.65, 72, 275)
    assert r.extras["mcc"] == 730 and r.extras["cell_id"] == 0xC35F


def test_classic_time_follows_the_terminal_time_zone_but_0x22_is_utc():
    plus8 = TerminalContext(CTX.imei, timedelta(hours=8))
    r = _decode("78781F120B081D112E10CC027AC7EB0C46584900148F01CC00287D001FB8000373770D0A", plus8).report
    assert r.time == datetime(2011, 8, 29, 9, 46, 16, tzinfo=timezone.utc)
    r22 = _decode("787822220F0C1D023305C9027AC8180C46586000140001CC00287D001F71000001000820860D0A",
                  plus8).report
    assert r22.time == datetime(2015, 12, 29, 2, 51, 5, tzinfo=timezone.utc)


def test_location_0x22():
    r = _decode("787822220F0C1D023305C9027AC8180C46586000140001CC00287D001F71000001000820860D0A").report
    assert (r.fix.lat, r.fix.lon, r.fix.satellites) == (23.111693, 114.409298, 9)
    assert r.status["acc"] is False
    assert (r.extras["upload_mode"], r.extras["reupload"], r.extras["cell_id"]) == (0, True, 0x1F71)


def test_heartbeat_status_and_ack():
    d = _decode("78780A134004040001000FDCEE0D0A")
    r = d.report
    assert d.kind == "status" and d.reply == bytes.fromhex("78780513000F008F0D0A")
    assert r.fix is None and r.time == NOW
    assert r.status["gps_tracking"] and not r.status["charging"] and not r.status["acc"]
    assert (r.status["voltage_level"], r.status["gsm_signal"], r.extras["language"]) == (4, 4, 1)
    assert r.alarms == ()


def test_heartbeat_power_cut_bits_raise_an_alarm():
    r = decode(Frame(build_frame(0x13, bytes.fromhex("5005030001"), 0x74)), CTX, NOW).report
    assert r.alarms == ("power_cut",) and r.raw_alarms["gt06_info_alarm"] == 2


def test_alarm_0x16_normal_and_sos():
    d = _decode("787825160B051B093523CF027AC8360C4657B30014000901CC00266A001E1740050400020008D7B10D0A")
    assert d.kind == "alarm" and d.reply == bytes.fromhex("7878051600084D8D0D0A")
    assert d.report.alarms == () and d.report.raw_alarms["gt06_code"] == 0
    assert (d.report.extras["lac"], d.report.extras["cell_id"]) == (9834, 7703)
    sos = _decode("787825160B051B093523CF027AC8360C4657B30014000901CC00266A001E1762050401020009 8EBB0D0A")
    assert sos.reply == bytes.fromhex("7878051600095C040D0A")
    assert sos.report.alarms == ("sos",) and sos.report.status["acc"] is True
    assert sos.report.raw_alarms == {"gt06_protocol": 0x16, "gt06_info_alarm": 4, "gt06_code": 1}


def test_alarm_0x26_tamper_not_positioned():
    d = _decode("787825260F0C1D030B26C9027AC8180C46586000040009 01CC00287D001F71 8004041302000C472A0D0A")
    r = d.report
    assert d.reply == bytes.fromhex("78780526000C") + d.reply[6:]
    assert r.fix.valid is False and r.status["oil_cut"] is True and r.alarms == ("tampering",)


def test_alarm_0x27_fence_number():
    d = _decode("7878262710041909 2D07C5027AC91C0C4658000005370900000000000000008002000C01FF00004DF60D0A")
    assert d.report.extras["fence"] == 0xFF and d.report.fix.course == 311
    assert d.report.alarms == ("power_on",) and d.reply[3] == 0x27


def test_time_request_reply_uses_now():
    d = _decode("7878058A000688290D0A")
    assert d.report is None
    assert d.reply == build_frame(0x8A, bytes((24, 5, 1, 12, 0, 0)), 6)


def test_unknown_protocol_is_ignored():
    assert decode(Frame(build_frame(0x71, b"", 1)), CTX, NOW).kind == "ignored"


def test_short_body_is_a_decode_error():
    with pytest.raises(DecodeError):
        decode(Frame(build_frame(0x16, b"\x0b\x05\x1b", 1)), CTX, NOW)


@settings(max_examples=1500, deadline=None)
@given(st.sampled_from(sorted({0x01, *HANDLERS})), st.binary(max_size=120), st.booleans())
def test_fuzzed_bodies_only_raise_decode_error(protocol, body, extended):
    frame = Frame(build_frame(protocol, body, 7, extended=extended))
    try:
        d = decode(frame, CTX, NOW)
    except DecodeError:
        return
    if d.report is not None:
        assert d.report.terminal_id == CTX.imei and d.report.time.tzinfo is not None
        if d.report.fix is not None:
            assert -90 <= d.report.fix.lat <= 90 and -180 <= d.report.fix.lon <= 180
        d.report.to_message()  # serialisable for the bus
