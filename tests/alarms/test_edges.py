"""Edge detection: level alarms raise once and clear; event alarms raise every time."""

from datetime import datetime, timezone

from alarms.edges import AlarmEdge, edges
from alarms.report import Report

T = datetime(2026, 1, 1, tzinfo=timezone.utc)


def r(*alarms, protocol="jt808"):
    # A JT/T 808 location report: it carries the alarm word (test_edges_word.py: reports without it).
    raw = {"jt808_word": 0} if protocol == "jt808" else {}
    return Report(protocol, "1", T, raw_alarms=raw, alarms=alarms)


def test_level_alarm_held_for_fifty_reports_is_one_raise_then_cleared():
    held = frozenset()
    raised = []
    for _ in range(50):
        found, held = edges(r("overspeed"), held)
        raised += found
    assert raised == [AlarmEdge("overspeed", True)] and held == {"overspeed"}
    found, held = edges(r(), held)
    assert found == [AlarmEdge("overspeed", False)] and held == frozenset()
    found, held = edges(r("overspeed"), held)
    assert found == [AlarmEdge("overspeed", True)]


def test_ack_cleared_and_platform_alarms_raise_every_time():
    assert edges(r("sos"), frozenset())[0] == [AlarmEdge("sos", True)]
    assert edges(r("sos"), frozenset())[0] == [AlarmEdge("sos", True)]
    assert edges(r("illegal_door_open"), frozenset())[1] == frozenset()  # ack-cleared bit 31: not held
    assert edges(r("overspeed", protocol="gt06"), frozenset())[1] == frozenset()


def test_only_jt808_reports_clear_jt808_level_alarms():
    held = frozenset({"power_cut"})
    assert edges(r(protocol="traccar"), held) == ([], held)
