"""Only a JT/T 808 report carrying the alarm word may clear the terminal's held level alarms."""

from datetime import datetime, timezone

from alarms.edges import AlarmEdge, edges
from alarms.names import JT808_ALARM_BITS
from alarms.report import Report
from ingest.jt808 import messages as m
from ingest.jt808.location import decode_location
from ingest.jt808.report_messages import decode_report_message
from ingest.jt808.terminal import location_body

T = datetime(2026, 1, 1, tzinfo=timezone.utc)
POWER_CUT = 1 << next(bit for bit, name in JT808_ALARM_BITS.items() if name == "power_cut")


def located(word: int) -> Report:
    return decode_location(location_body(time=T, alarm=word, lat=22.5, lon=114.0), terminal_id="1", serial=1)


def test_a_report_without_the_word_leaves_held_alarms_alone():
    held = frozenset({"power_cut"})
    waybill = decode_report_message(m.WAYBILL, b"\x00\x00\x00\x02OK", terminal_id="1", serial=2)[0]
    assert "jt808_word" not in waybill.raw_alarms
    assert edges(waybill, held) == ([], held)


def test_a_report_with_the_word_lacking_the_bit_clears_it():
    held = frozenset({"power_cut"})
    found, now_held = edges(located(POWER_CUT), held)
    assert (found, now_held) == ([], held)
    found, now_held = edges(located(0), held)
    assert found == [AlarmEdge("power_cut", False)] and now_held == frozenset()


def test_alarms_of_a_wordless_report_are_events_unless_already_held():
    held = frozenset({"overspeed"})
    lock = Report("jt808", "1", T, raw_alarms={"jt808_serial": 3}, alarms=("overspeed", "vibration"))
    assert edges(lock, held) == ([AlarmEdge("vibration", True)], held)
    assert edges(lock, frozenset()) == ([AlarmEdge("overspeed", True), AlarmEdge("vibration", True)], frozenset())
