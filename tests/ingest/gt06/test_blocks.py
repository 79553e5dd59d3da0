"""GPS, LBS and status building blocks (gt06.md §4)."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from ingest.gt06.blocks import (
    DecodeError,
    alarm_names,
    make_fix,
    read_bcd_time,
    read_lbs,
    read_time,
    terminal_info,
    voltage_fields,
)


def test_terminal_info_byte():
    state, alarms, bits = terminal_info(0x44)  # the brief's example: GPS on, charging
    assert state == {"oil_cut": False, "gps_tracking": True, "charging": True, "acc": False, "armed": False}
    assert (alarms, bits) == ([], 0)
    state, alarms, bits = terminal_info(0xA3)  # cut, bits 5-3 = 100 (SOS), ACC on, armed
    assert state["oil_cut"] and state["acc"] and state["armed"] and alarms == ["sos"] and bits == 4
    assert terminal_info(0x18)[1] == ["low_battery"]


def test_voltage_level_or_percentage():
    assert voltage_fields(3) == {"voltage_level": 3, "battery_percent": 50}
    assert voltage_fields(93) == {"battery_percent": 93}
    assert voltage_fields(200) == {}


def test_alarm_codes_map_to_canonical_names():
    assert alarm_names(0x01) == ["sos"] and alarm_names(0x2C) == ["accident"]
    assert alarm_names(0x00) == [] and alarm_names(0x7E) == []


def test_course_word_signs_valid_and_acc():
    body = bytes.fromhex("027AC7EB" "0C465849" "28" "D48F")  # lat, lon, 40 km/h, ACC + fix + north, 143
    fix, state = make_fix(body, 0, satellites=7)
    assert (fix.lat, fix.lon, fix.speed_kmh, fix.course, fix.valid) == (23.111668, 114.409285, 40, 143, True)
    assert state == {"acc": True}  # bit 14 set: bit 15 is ACC
    south_west = body[:9] + (0x0800).to_bytes(2, "big")
    fix, state = make_fix(south_west, 0)
    assert fix.lat < 0 and fix.lon < 0 and not fix.valid and state == {}


def test_out_of_range_position_is_a_decode_error():
    with pytest.raises(DecodeError):
        make_fix((200 * 1_800_000).to_bytes(4, "big") + bytes(7), 0)


def test_time_is_shifted_to_utc_and_checked():
    body = bytes((11, 8, 29, 17, 46, 16))
    assert read_time(body, 0, timedelta(hours=8)) == datetime(2011, 8, 29, 9, 46, 16, tzinfo=timezone.utc)
    with pytest.raises(DecodeError):
        read_time(bytes((11, 13, 29, 0, 0, 0)), 0, timedelta(0))
    bcd = read_bcd_time(bytes.fromhex("171023110850"), 0)
    assert bcd == datetime(2017, 10, 23, 11, 8, 50, tzinfo=timezone.utc)


def test_lbs_block_forms():
    assert read_lbs(bytes.fromhex("01CC00287D001FB8"), 0) == (
        {"mcc": 460, "mnc": 0, "lac": 10365, "cell_id": 8120}, 8)
    two_byte_mnc = bytes.fromhex("81360104CB8A00BEF3")
    assert read_lbs(two_byte_mnc, 0)[0] == {"mcc": 310, "mnc": 260, "lac": 0xCB8A, "cell_id": 0xBEF3}
    wide, end = read_lbs(bytes.fromhex("012ED000007EF40000000006428B07"), 0, wide=True)
    assert wide["lac"] == 0x7EF4 and wide["cell_id"] == 0x06428B07 and end == 15
    with pytest.raises(DecodeError):
        read_lbs(b"\x01\xcc\x00", 0)
