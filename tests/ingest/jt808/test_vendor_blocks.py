import pytest

from ingest.jt808 import vendor_blocks as blocks
from ingest.jt808.fields import FieldError, Found


def found(model=None) -> Found:
    return Found({}, model)


def h(text: str) -> bytes:
    return bytes.fromhex(text.replace(" ", ""))


def test_concox_blocks():
    f = found()
    value = h("000c 00b2 89882280666134274509 0006 0089 fffffffe 0006 002d 00002db4 0004 002d 0fa5"
              " 0006 00c5 fe7fffef 0003 00a8 4c 0008 0023 303031 2e3437")
    assert blocks.concox_block(value, f)
    assert f.extras == {"iccid": "89882280666134274509", "power": 11.7, "battery": 4.005, "motion": True,
                        "battery_level": 76, "fuel2": 1.47}
    assert f.alarms == ["power_off"]  # bit 0 of 0x0089 cleared; bit 12 set: not removed


def test_concox_cells_and_time_zone():
    f = found()
    assert blocks.concox_block(h("01cc 00 2535 1026 01 0000 0000 00"), f)
    assert f.cells == [{"mcc": 460, "mnc": 0, "lac": 0x2535, "cell_id": 0x1026, "rssi": 1}]  # zero slot dropped
    f = found()
    assert blocks.concox_block(b"UTC+08:00", f) and f.extras == {"timezone": "UTC+08:00"}


def test_concox_block_length_past_the_end_is_an_error():
    with pytest.raises(FieldError):
        blocks.concox_block(h("0010 0001 0000"), found())


def test_jc_camera_status_and_events():
    f = found("JC371")
    assert blocks.jc_camera(h("2005 0e 2001 02 008c 0006 01 04 0007 02 0006"), f)
    assert f.extras == {"power": 14.0, "hdop": 0.6}
    f = found("JC371")
    blocks.jc_camera(h("2003 07 01 05 019f 03 0190"), f)
    assert f.extras == {"charge": True, "battery_level": 83, "battery": 4.15, "rssi": 3, "power": 4.0}
    f = found("JC371")
    blocks.jc_camera(h("0406"), f)
    assert f.alarms == ["vibration"]


def test_aovx_tags_and_obd_values():
    f = found("GL100")
    blocks.tags_or_obd(h("04 aabbcc001122 c4 0ea6"), f)  # mask b2: battery
    assert f.extras == {"tag1_mac": "aabbcc001122", "tag1_rssi": -60, "tag1_battery": 3.75}
    f = found()
    blocks.tags_or_obd(h("0003 02 02f2 000e 01 22 0050 03 4c4650"), f)
    assert f.extras == {"rpm": 754, "throttle": 13, "vin": "LFP"}


def test_sensor_block():
    f = found("GL100")
    blocks.sensor_block(h("02 0f 01cb ff94 0261 006d 0099 0520"), f)
    assert f.extras == {"event": 2, "motion": True, "light_sensor": 459, "temp1": -10.8, "humidity": 60.9,
                        "g_sensor": "[109,153,1312]"}


def test_battery_or_driving_behaviour():
    f = found()
    blocks.battery_or_behaviour(h("7c 01 04 00000011 f1 02 0000"), f)
    assert f.alarms == ["hard_acceleration", "tampering"]
    f = found()
    blocks.battery_or_behaviour(b"\x45", f)
    assert f.extras == {"battery_level": 69}


def test_obd_rt_line_and_ble_temperature_sensors():
    f = found()
    blocks.obd_rt("$OBD-RT,12.3,,20,0.00,0.00,0,10.89,31.15,181.68,181,54.26,565.96,0,0,0\r\n", f)
    assert f.extras["power"] == 12.3 and "rpm" not in f.extras and f.extras["fuel_consumption"] == 31.15
    assert f.extras["fuel_used"] == 565.96 and f.extras["coolant_temp"] == 0
    f = found()
    assert blocks.sensor_or_obd_text(h("03 bc572900ce2e ef18 3200"), f)
    assert f.extras["temp3"] == pytest.approx(-17.0941176) and f.extras["humidity3"] == 50.0


def test_gnss_extras_external_sensors_obd_block_wifi():
    f = found()
    blocks.gnss_extras(h("0044 0018 00fa 0000 0000"), f)
    assert f.extras == {"hdop": 2.4, "temp3": 25.0}
    f = found()
    blocks.external_sensors(h("01 16 02 02ee 15 02 0190"), f)
    assert f.extras == {"external_temp": 25.0, "external_humidity": 40.0}
    f = found()
    blocks.obd_block(h("0082 0bb8 32 ff 80 5a 0000 04b0 0000 00000000 0000 2710"), f)
    assert f.extras["rpm"] == 3000 and f.extras["throttle"] == 100 and f.extras["fuel_used"] == 100.0
    f = found()
    assert blocks.wifi_list(h("30de4bf67368ce"), f) and f.wifi == [{"mac": "30:de:4b:f6:73:68", "rssi": -50}]
    assert not blocks.wifi_list(h("30de4bf673"), found())
