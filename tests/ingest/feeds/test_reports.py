"""Watchline's own report JSON: single and batch, strict validation with JSON paths."""

from datetime import datetime, timezone

import pytest

from ingest.feeds.fields import FeedError
from ingest.feeds.reports import reports_from_json

NOW = datetime(2026, 5, 1, 12, tzinfo=timezone.utc)
ONE = {"report_id": "c-1", "terminal_id": "car-9", "time": "2026-05-01T10:00:00+08:00", "lat": 22.5, "lon": 114.1,
       "speed_kmh": 55.5, "alarms": ["sos", "sos", "collision"], "status": {"acc": True}}


def test_single_and_batch():
    (r,) = reports_from_json(ONE, NOW)
    assert (r.protocol, r.terminal_id, r.report_id) == ("http", "car-9", "c-1")
    assert r.time == datetime(2026, 5, 1, 2, tzinfo=timezone.utc) and r.alarms == ("sos", "collision")
    batch = reports_from_json({"reports": [ONE, dict(ONE, report_id="c-2", protocol="jt808")]}, NOW)
    assert [r.report_id for r in batch] == ["c-1", "c-2"] and batch[1].protocol == "jt808"


@pytest.mark.parametrize("body, path", [
    ({"reports": [ONE, dict(ONE, lat=-91)]}, "reports[1].lat"),
    ({"reports": [ONE, {k: v for k, v in ONE.items() if k != "report_id"}]}, "reports[1].report_id"),
    ({"reports": []}, "reports"),
    ({"reports": [ONE] * 1001}, "reports"),
    ({"reports": [ONE], "x": 1}, "x"),
    (dict(ONE, time="2026-05-01T10:00:00"), "time"),
    (dict(ONE, alarms=["SOS!"]), "alarms[0]"),
    (dict(ONE, alarms="sos"), "alarms"),
    (dict(ONE, lon=float("nan")), "lon"),
    (dict(ONE, speed_kmh=True), "speed_kmh"),
    (dict(ONE, protocol="smoke"), "protocol"),
    (dict(ONE, colour="red"), "colour"),
    (dict(ONE, status=[1]), "status"),
])
def test_errors_name_the_field(body, path):
    with pytest.raises(FeedError) as err:
        reports_from_json(body, NOW)
    assert err.value.path == path
