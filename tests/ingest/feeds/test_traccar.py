"""Traccar forward JSON → Reports: knots, alarm names, events, ids, and errors with field paths."""

from datetime import datetime, timezone

import pytest

from ingest.feeds.fields import FeedError
from ingest.feeds.traccar import reports_from_traccar

NOW = datetime(2026, 5, 1, 12, tzinfo=timezone.utc)
DEVICE = {"id": 7, "name": "Truck 7", "uniqueId": "860000000000007", "status": "online"}
POSITION = {"id": 991, "deviceId": 7, "protocol": "gt06", "serverTime": "2026-05-01T08:00:03.000+00:00",
            "deviceTime": "2026-05-01T08:00:01.000+00:00", "fixTime": "2026-05-01T08:00:00.000+00:00",
            "valid": True, "latitude": 31.2304, "longitude": 121.4737, "altitude": 12.0, "speed": 10.0,
            "course": 90.0, "address": "Nanjing Rd", "attributes": {
                "alarm": "lowBattery,removing", "sat": 9, "ignition": True, "batteryLevel": 41}}


def test_position_forward():
    (r,) = reports_from_traccar({"position": POSITION, "device": DEVICE}, NOW)
    assert (r.protocol, r.terminal_id, r.report_id) == ("traccar", "860000000000007", "traccar-p991")
    assert r.time == datetime(2026, 5, 1, 8, tzinfo=timezone.utc)
    assert (r.fix.lat, r.fix.lon, r.fix.speed_kmh, r.fix.satellites) == (31.2304, 121.4737, 18.52, 9)
    assert r.alarms == ("low_battery", "removing")
    assert r.status == {"acc": True} and r.extras["batteryLevel"] == 41 and r.extras["address"] == "Nanjing Rd"


def test_event_forward_alarm_and_geofence():
    event = {"id": 55, "type": "alarm", "eventTime": "2026-05-01T08:00:02Z", "deviceId": 7, "positionId": 991,
             "attributes": {"alarm": "sos"}}
    (r,) = reports_from_traccar({"event": event, "position": POSITION, "device": DEVICE}, NOW)
    assert r.report_id == "traccar-e55" and r.alarms == ("low_battery", "removing", "sos")
    fence = dict(event, type="geofenceExit", geofenceId=3, attributes={})
    (r,) = reports_from_traccar({"event": fence, "device": DEVICE}, NOW)
    assert r.alarms == ("geofence_exit",) and r.fix is None and r.extras["fence_id"] == 3
    (r,) = reports_from_traccar({"event": dict(event, type="deviceOnline", attributes={}), "device": DEVICE}, NOW)
    assert r.alarms == () and r.extras["traccar_event"] == "deviceOnline"


def test_resent_forward_without_ids_gets_the_same_id():
    body = {"position": {k: v for k, v in POSITION.items() if k != "id"}, "device": DEVICE}
    assert reports_from_traccar(body, NOW)[0].report_id == reports_from_traccar(body, NOW)[0].report_id


@pytest.mark.parametrize("body, path", [
    ([], "body"),
    ({"position": POSITION}, "device"),
    ({"position": POSITION, "device": {"id": 1}}, "device.uniqueId"),
    ({"device": DEVICE}, "position"),
    ({"position": dict(POSITION, latitude=91), "device": DEVICE}, "position.latitude"),
    ({"position": dict(POSITION, longitude="east"), "device": DEVICE}, "position.longitude"),
    ({"position": dict(POSITION, fixTime="yesterday"), "device": DEVICE}, "position.fixTime"),
    ({"position": dict(POSITION, fixTime="2026-05-03T08:00:00Z"), "device": DEVICE}, "position.fixTime"),
    ({"position": dict(POSITION, attributes={"alarm": 5}), "device": DEVICE}, "position.attributes.alarm"),
    ({"event": {"type": "alarm", "eventTime": "2026-05-01T08:00:00Z", "attributes": {}}, "device": DEVICE},
     "event.attributes.alarm"),
    ({"position": POSITION, "device": DEVICE, "extra": 1}, "extra"),
])
def test_errors_name_the_field(body, path):
    with pytest.raises(FeedError) as err:
        reports_from_traccar(body, NOW)
    assert err.value.path == path
