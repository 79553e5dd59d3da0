"""Rendering notices from the jinja2 templates: both languages, subjects, strictness."""

from datetime import datetime, timezone
from types import SimpleNamespace

import jinja2
import pytest

from notify.channels.rendering import NoticeRenderer

INCIDENT = SimpleNamespace(id=7, plate="京A12345", alarm="illegal_movement", lat=39.9042, lon=116.4074,
                           opened_at=datetime(2026, 5, 1, 15, 30, tzinfo=timezone.utc))


def test_incident_notice_in_english_and_mandarin():
    r = NoticeRenderer(operator="SafeCar", hotline="400-800-1234")
    en = r.incident_notice(INCIDENT, "+8613800138000", "en")
    assert en.subject == "SafeCar: 京A12345 reported the vehicle moving without authorisation"
    assert en.body == ("SafeCar: your vehicle 京A12345 reported the vehicle moving without authorisation at 23:30 "
                       "on 01 May at 39.90420,116.40740. It is night time, so we send this message instead of "
                       "calling. If this was not you or you need help, call 400-800-1234 (incident 7).")
    zh = r.incident_notice(INCIDENT, "+8613800138000", "fr")  # unknown languages fall back to Mandarin
    assert zh.language == "zh" and zh.body.startswith("【SafeCar】您的车辆京A12345于5月1日23:30在坐标39.90420,116.40740发生非法位移报警")
    assert (zh.incident_id, zh.template, zh.data["plate"]) == (7, "incident_notice", "京A12345")
    named = r.incident_notice(INCIDENT, "+86", "zh", place="朝阳区建国路")
    assert "在朝阳区建国路附近发生" in named.body


def test_without_a_hotline_the_operator_is_named_and_without_eta_none_is_promised():
    r = NoticeRenderer()
    assert "请联系Watchline客服（事件号7）" in r.incident_notice(INCIDENT, "+86", "zh").body
    order = SimpleNamespace(id=3, incident_id=None, customer_plate=None, address=None)
    en = r.work_order_dispatched(order, "京B999", None, "+86", "en")
    assert en.body == "Watchline: rescue truck 京B999 is on its way. Work order 3."
    assert r.work_order_dispatched(order, "京B999", 20, "+86", "en").data["eta_minutes"] == 1  # never "0 min"


def test_a_missing_value_is_an_error_not_a_blank():
    with pytest.raises(jinja2.UndefinedError):
        NoticeRenderer().render("work_order_dispatched", "zh", "+86", work_order_id=1)
