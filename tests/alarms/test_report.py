"""The canonical Report and Fix: hand-written constructors that must stay the dataclasses' own."""

from __future__ import annotations

import dataclasses
import inspect
from datetime import datetime, timezone

import pytest

from alarms.report import Fix, Report


@pytest.mark.parametrize("cls", [Fix, Report])
def test_init_takes_the_fields_in_order_with_their_defaults(cls):
    params = list(inspect.signature(cls.__init__).parameters.values())[1:]
    fields = dataclasses.fields(cls)
    assert [p.name for p in params] == [f.name for f in fields]
    for param, field in zip(params, fields, strict=True):
        if field.default is not dataclasses.MISSING:
            assert param.default == field.default, field.name
        elif field.default_factory is not dataclasses.MISSING:
            assert param.default is None, field.name  # None stands for the factory
        else:
            assert param.default is inspect.Parameter.empty, field.name


def test_defaults_are_fresh_per_instance_and_instances_stay_frozen():
    when = datetime(2026, 5, 1, tzinfo=timezone.utc)
    a, b = Report("jt808", "1", when), Report("jt808", "1", when)
    assert a.status == {} and a.status is not b.status and a.extras is not b.extras
    assert a.report_id != b.report_id and a.received_at.tzinfo is not None
    with pytest.raises(dataclasses.FrozenInstanceError):
        a.plate = "x"  # type: ignore[misc]
    with pytest.raises(dataclasses.FrozenInstanceError):
        Fix(1.0, 2.0).lat = 3.0  # type: ignore[misc]


def test_value_semantics_replace_and_the_message_round_trip():
    when = datetime(2026, 5, 1, 8, 0, 1, 250000, tzinfo=timezone.utc)
    fix = Fix(22.5, 114.0, 12.0, 42.5, 270.0, True, 9)
    report = Report("jt808", "13800000000", when, fix, {"acc": True}, {"jt808_word": 1}, ("sos",),
                    {"signal": 26}, "id-1", when)
    assert report == Report(protocol="jt808", terminal_id="13800000000", time=when, fix=Fix(22.5, 114.0, 12.0, 42.5,
                            270.0, True, 9), status={"acc": True}, raw_alarms={"jt808_word": 1}, alarms=("sos",),
                            extras={"signal": 26}, report_id="id-1", received_at=when)
    assert hash(fix) == hash(Fix(22.5, 114.0, 12.0, 42.5, 270.0, True, 9))
    assert report.with_plate("粤B1").plate == "粤B1" and report.plate is None
    assert Report.from_message(report.to_message()) == report
    assert dataclasses.asdict(fix) == {"lat": 22.5, "lon": 114.0, "altitude": 12.0, "speed_kmh": 42.5,
                                       "course": 270.0, "valid": True, "satellites": 9}
    assert repr(fix).startswith("Fix(lat=22.5, lon=114.0")
