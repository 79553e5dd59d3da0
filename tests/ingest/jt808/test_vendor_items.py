import json
import struct
from datetime import datetime, timezone

from hypothesis import given, settings
from hypothesis import strategies as st

from ingest.jt808.location import decode_location
from ingest.jt808.terminal import location_body
from ingest.jt808.vendor_items import ITEMS, MODEL_ALARM_BITS, OBD_EXTENSION, decode_vendor_items

NOW = datetime(2024, 3, 15, 6, 31, tzinfo=timezone.utc)
MODELS = [None, "AL300", "GL100", "JC371", "MV710G", "C5L", "DT800", "G-360P"]


def decode(items, *, alarm: int = 0, model: str | None = None):
    body = location_body(lat=22.5, lon=114.0, time=NOW, alarm=alarm, items=items)
    return decode_location(body, terminal_id="1", serial=1, received_at=NOW, model=model)


def test_plain_standard_report_has_no_vendor_keys():
    report = decode([(0x01, struct.pack(">I", 10)), (0x31, b"\x07")])
    assert set(report.extras) == {"status_word", "mileage_km"} and report.fix.satellites == 7


def test_simple_vendor_items():
    extras = decode([
        (0xE1, b"\x00\x72"),  # 2 bytes: power, 1/10 V
        (0xE4, b"\x00\x63"),  # charging, 99 %
        (0x69, b"\x01\x8b"),  # battery 1/100 V
        (0xF1, struct.pack(">I", 12428)),
        (0x51, b"\x80\x17"),  # sign-magnitude temperature
        (0xBC, b"DRIVER NAME\x00\x00"),
        (0xF6, bytes.fromhex("0867567041100769")),  # 8 bytes: IMEI
        (0x06, b"\x3e"),  # 1 byte: battery %, not the 2019 2-byte temperature
    ]).extras
    assert extras["power"] == 12.428  # 0xF1 after 0xE1: the later item wins, as in Traccar
    assert extras["charge"] is True and extras["battery_level"] == 62 and extras["battery"] == 3.95
    assert extras["temp1"] == -2.3 and extras["driver"] == "DRIVER NAME"
    assert extras["imei"] == "867567041100769"
    assert "raw_items" not in extras


def test_tyres_and_obd_extension():
    tyre = bytes.fromhex("01 7e19f1 0038 4d 08".replace(" ", ""))
    extras = decode([(0x77, tyre), (0x80, b"\xaa"), (0x81, b"\x13\x88"), (0x84, b"\xaa"),
                     (0xA0, b"P538f,U029f")]).extras
    assert extras["tire1_pressure"] == 1.4 and extras["tire1_temp"] == 27 and extras["tire1_sensor_id"] == "7e19f1"
    assert extras["rpm"] == 5000 and extras["coolant_temp"] == 130 and extras["dtcs"] == "P538f U029f"


def test_obd_extension_meanings_apply_only_after_0x80():
    assert "raw_items" in decode([(0x81, b"\x13\x88")]).extras  # without 0x80, 0x81 is undocumented


def test_vendor_alarms_follow_the_standard_bits():
    block = bytes.fromhex("0006 0089 ffffefff".replace(" ", ""))  # bit 12 cleared: removed
    report = decode([(0xEB, block)], alarm=1 << 7)
    assert report.alarms == ("low_voltage", "removing")


def test_jc_camera_events_need_the_model():
    sos = (0xE8, bytes.fromhex("0c01"))
    assert decode([sos], model="JC371").alarms == ("sos",)
    report = decode([sos])
    assert report.alarms == () and report.extras["raw_items"] == {"e8": "0c01"}


def test_model_alarm_bits_replace_the_standard_meanings():
    assert decode([], alarm=1 << 16, model="AL300").alarms == ("movement",)
    assert decode([], alarm=1 << 16).alarms == ()  # reserved on a 2013 terminal without the model
    assert decode([], alarm=1 | 1 << 16, model="GL100").alarms == ("movement",)  # bit 0 is not SOS here
    assert decode([], alarm=1, model="G-360P").alarms == ("removing",)
    assert decode([], alarm=1).alarms == ("sos",)
    assert set(MODEL_ALARM_BITS) == {"AL300", "GL100", "G-360P", "G-508P"}


def test_mv_camera_door_alarm():
    flags = bytes.fromhex("0000 0000 00010000".replace(" ", ""))
    assert decode([(0x57, flags)], model="MV710G").alarms == ("door",)
    assert decode([(0x57, flags)]).alarms == ()


def test_a_value_too_short_for_its_layout_stays_raw():
    lock = bytes.fromhex("0002604323279598027753 0030".replace(" ", ""))
    extras = decode([(0xE3, b"\x00"), (0xD5, b"\x02" + lock)]).extras  # 2 locks announced, 1 sent
    assert extras["raw_items"] == {"e3": "00", "d5": "02" + lock.hex()}
    assert "lock1_id" not in extras  # an item is taken whole or not at all
    assert any("0xE3" in problem for problem in extras["item_problems"])


@settings(max_examples=400)
@given(st.sampled_from(sorted(set(ITEMS) | set(OBD_EXTENSION))), st.binary(max_size=40), st.sampled_from(MODELS))
def test_any_value_of_a_known_item_decodes_or_stays_raw(item_id, value, model):
    extras: dict = {}
    alarms = decode_vendor_items({0x80: b"\x00", item_id: value} if item_id in OBD_EXTENSION else {item_id: value},
                                 extras, model)
    assert all(isinstance(name, str) and name == name.lower() for name in alarms)
    for key in extras:
        assert key == key.lower(), key
    json.dumps(extras)
