import json
from datetime import datetime, timezone

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ingest.jt808 import messages as m
from ingest.jt808.report_messages import REPORT_MESSAGES, decode_report_message
from ingest.jt808.terminal import location_body

NOW = datetime(2024, 3, 15, 6, 31, tzinfo=timezone.utc)


def decode(msg_id: int, body: bytes, **options):
    return decode_report_message(msg_id, body, terminal_id="1", serial=3, received_at=NOW, **options)


def test_text_messages_become_reports_without_a_fix():
    for msg_id, body, text in (
        (m.WAYBILL, b"\x00\x00\x00\x11MD,SET CONFIG OK!", "MD,SET CONFIG OK!"),
        (m.TEXT_REPORT, b"\x00<VER:SDK>", "<VER:SDK>"),
        (m.TEXT_ANSWER, b"\x00\x00" + "Set OK!\r".encode("utf-16-be"), "Set OK!"),
    ):
        (report,) = decode(msg_id, body)
        assert report.extras == {"result": text}
        assert report.fix is None and report.time == NOW and report.raw_alarms == {"jt808_serial": 3}


def test_driver_identity_is_timed_by_the_card_event():
    body = b"\x01" + bytes.fromhex("251009150751") + b"\x00\x00" + b"0029b885".ljust(20, b"\x00") + b"\x00" + b"\x00" * 4
    (report,) = decode(m.DRIVER_IDENTITY, body)
    assert report.extras["card_code"] == "0029b885" and report.extras["card_status"] == 1
    assert report.time == datetime(2025, 10, 9, 7, 7, 51, tzinfo=timezone.utc)  # 15:07:51 Beijing


def test_terminal_attributes():
    body = (b"\x00\x00" + b"XC\x00\x00\x00" + b"C5L".ljust(20, b"\x00") + b"9887125"
            + bytes.fromhex("89883030000131882455") + b"\x00\x04V2.6\x03\x01")
    (report,) = decode(m.TERMINAL_ATTRIBUTES, body)
    assert report.extras["iccid"] == "89883030000131882455" and report.extras["version_fw"] == "V2.6"
    assert report.extras["device_model"] == "C5L"


def test_acceleration_samples():
    sample = bytes.fromhex("210927151009") + bytes.fromhex("000e 002d 80ac")
    (report,) = decode(m.ACCELERATION, sample + sample)
    assert report.extras == {"g_sensor": "[[14,45,-172],[14,45,-172]]"}
    with pytest.raises(m.BodyError):
        decode(m.ACCELERATION, sample[:-1])


def test_short_batch_and_battery_report():
    item = location_body(lat=22.5, lon=114.0, time=NOW)
    reports = decode(m.BATCH_LOCATION_SHORT, bytes((len(item),)) + item + bytes((len(item),)) + item)
    assert [r.fix.lat for r in reports] == [22.5, 22.5] and reports[0].time == NOW
    (report,) = decode(m.BATCH_LOCATION_SHORT, b"\x4f" + bytes.fromhex("260618022957"))
    assert report.extras == {"battery_level": 79} and report.fix is None
    assert report.time == datetime(2026, 6, 17, 18, 29, 57, tzinfo=timezone.utc)


def test_pass_through_is_routed():
    (report,) = decode(m.PASS_THROUGH, b"\x40hello")
    assert report.extras["data"] == "hello"


def test_ids_without_reports():
    assert m.LOCATION not in REPORT_MESSAGES and m.HEARTBEAT not in REPORT_MESSAGES
    with pytest.raises(m.BodyError):
        decode(m.HEARTBEAT, b"")


@settings(max_examples=300)
@given(st.sampled_from(sorted(REPORT_MESSAGES)), st.binary(max_size=120), st.booleans())
def test_any_body_decodes_or_is_a_body_error(msg_id, body, is_2019):
    try:
        reports = decode(msg_id, body, is_2019=is_2019)
    except m.BodyError:
        return
    for report in reports:
        json.dumps(report.to_message())
