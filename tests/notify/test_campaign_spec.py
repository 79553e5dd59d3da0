"""Campaign windows, days, retry rules, templates and the field checks the API and CLI share."""

from datetime import datetime, timezone

import pytest

from crm.campaign_records import NewNumber
from notify.campaign_spec import (
    DEFAULT_RETRY,
    CampaignSpecError,
    Schedule,
    campaign_from_fields,
    parse_days,
    parse_retry,
    render_notice,
)


def utc(*args) -> datetime:
    return datetime(*args, tzinfo=timezone.utc)


# 2026-06-01 is a Monday; Asia/Shanghai is UTC+8 (no DST).
@pytest.mark.parametrize("when, open_", [
    (utc(2026, 6, 1, 0, 59), False),  # Mon 08:59 local
    (utc(2026, 6, 1, 1, 0), True),  # Mon 09:00
    (utc(2026, 6, 1, 9, 59), True),  # Mon 17:59
    (utc(2026, 6, 1, 10, 0), False),  # Mon 18:00
    (utc(2026, 6, 6, 3, 0), False),  # Sat 11:00
    (utc(2026, 6, 5, 16, 30), False),  # Sat 00:30 local (Fri in UTC)
])
def test_window_and_days_in_the_campaign_time_zone(when, open_):
    assert Schedule.parse("09:00-18:00", "mon-fri").is_open(when) is open_


def test_next_open_skips_to_the_next_allowed_day():
    s = Schedule.parse("09:00-18:00", "mon-fri")
    assert s.next_open(utc(2026, 6, 5, 10, 0)) == utc(2026, 6, 8, 1, 0)  # Fri 18:00 -> Mon 09:00 local
    assert s.next_open(utc(2026, 6, 1, 2, 0)) == utc(2026, 6, 1, 2, 0)  # open now
    assert s.next_open(utc(2026, 6, 1, 0, 0)) == utc(2026, 6, 1, 1, 0)


def test_window_past_midnight_belongs_to_its_first_day():
    s = Schedule.parse("22:00-02:00", "fri", "UTC")
    assert s.is_open(utc(2026, 6, 5, 23)) and s.is_open(utc(2026, 6, 6, 1, 59))
    assert not s.is_open(utc(2026, 6, 6, 2)) and not s.is_open(utc(2026, 6, 6, 23))
    assert Schedule.from_json(s.to_json()) == s
    assert s.to_json() == {"start": "22:00", "end": "02:00", "days": ["fri"], "timezone": "UTC"}


def test_all_day_window():
    s = Schedule.parse("00:00-24:00", "daily")
    assert s.is_open(utc(2026, 6, 6, 15, 59)) and s.days == tuple(range(7))


@pytest.mark.parametrize("text, days", [("mon-fri", (0, 1, 2, 3, 4)), ("sat,sun", (5, 6)), ("fri-mon", (0, 4, 5, 6)),
                                        ("Monday", (0,)), ("daily", tuple(range(7)))])
def test_days(text, days):
    assert parse_days(text) == days


@pytest.mark.parametrize("kwargs, field", [
    ({"window": "9-18"}, "window"), ({"window": "18:00-18:00"}, "window"), ({"window": "08:00-25:00"}, "window"),
    ({"days": "funday"}, "days"), ({"timezone": "Mars/Olympus"}, "timezone"),
])
def test_bad_schedules_name_the_field(kwargs, field):
    with pytest.raises(CampaignSpecError) as e:
        Schedule.parse(**kwargs)
    assert e.value.field == field


def test_retry_rules():
    assert parse_retry("busy=600x3, no_answer=30mx2") == {"busy": {"after_s": 600, "max": 3},
                                                           "no_answer": {"after_s": 1800, "max": 2}}
    assert parse_retry({"failed": {"after_s": 60, "max": 1}}) == {"failed": {"after_s": 60.0, "max": 1}}
    assert parse_retry(None) == DEFAULT_RETRY and parse_retry("") == {}
    for bad in ("busy=600", "answered=1x1", "busy=1x99", {"busy": {"after": 1}}, {"busy": {"after_s": "1", "max": 1}}):
        with pytest.raises(CampaignSpecError) as e:
            parse_retry(bad)
        assert e.value.field.startswith("retry")


def test_templates_render_in_a_sandbox_with_every_variable_required():
    n = NewNumber("+8613800138000", plate="粤B12345", name="Zhang", variables={"due": "June 30"})
    assert render_notice("{{ name }}, {{ plate_spoken }} is due on {{ due }}", n) == \
        "Zhang, 粤 B 1 2 3 4 5 is due on June 30"
    with pytest.raises(CampaignSpecError, match="'fee' is undefined for \\+8613800138000"):
        render_notice("{{ fee }}", n)
    with pytest.raises(CampaignSpecError):
        render_notice("{{ name.__class__.__mro__ }}", n)


def test_campaign_fields():
    c = campaign_from_fields({"name": " Inspection ", "template": "Hello {{ name }}", "lines": 5, "confirm": True,
                              "window": "08:00-20:00", "days": "mon-sat", "retry": "busy=60x1"})
    assert (c.name, c.lines, c.confirm, c.language) == ("Inspection", 5, True, "zh")
    assert c.schedule == {"start": "08:00", "end": "20:00", "days": ["mon", "tue", "wed", "thu", "fri", "sat"],
                          "timezone": "Asia/Shanghai"}
    assert c.retry == {"busy": {"after_s": 60.0, "max": 1}}
    nested = campaign_from_fields({"name": "x", "template": "t", "schedule": {"window": "10:00-11:00", "days": ["sun"]}})
    assert nested.schedule["start"] == "10:00" and nested.schedule["days"] == ["sun"]
    for fields, field in (({"template": "t"}, "name"), ({"name": "x"}, "template"),
                          ({"name": "x", "template": "{% if %}"}, "template"),
                          ({"name": "x", "template": "t", "lines": 0}, "lines"),
                          ({"name": "x", "template": "t", "lines": True}, "lines"),
                          ({"name": "x", "template": "t", "language": "fr"}, "language"),
                          ({"name": "x", "template": "t", "confirm": "yes"}, "confirm"),
                          ({"name": "x", "template": "t", "caller_id": "abc"}, "caller_id"),
                          ({"name": "x", "template": "t", "window": 9}, "window")):
        with pytest.raises(CampaignSpecError) as e:
            campaign_from_fields(fields)
        assert e.value.field == field, fields
