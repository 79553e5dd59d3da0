"""Edge detection: turn the alarms present in each report into *raised* and *cleared* events.

A level alarm (held by the terminal while the condition lasts — the JT/T 808 bits not in
``JT808_ACK_CLEARED_BITS``) is raised when it first appears and cleared when a later report from
the same terminal carries the alarm word without it; held across fifty reports it is still one alarm. Every other
alarm (JT/T 808 ack-cleared bits, GT06 and platform alarms) is an event: raised on every report that
carries it — the incident it joins counts the repeats. Reports are never filtered by position
quality: an alarm on a report with an invalid fix or an old time still counts.
"""

from __future__ import annotations

from dataclasses import dataclass

from alarms.names import JT808_ACK_CLEARED_BITS, JT808_ALARM_BITS
from alarms.report import Report

JT808_LEVEL_ALARMS = frozenset(name for bit, name in JT808_ALARM_BITS.items() if bit not in JT808_ACK_CLEARED_BITS)


@dataclass(frozen=True)
class AlarmEdge:
    alarm: str
    raised: bool  # False: cleared


def is_level(protocol: str, alarm: str) -> bool:
    return protocol == "jt808" and alarm in JT808_LEVEL_ALARMS


def edges(report: Report, held: frozenset[str]) -> tuple[list[AlarmEdge], frozenset[str]]:
    """The report's edges given the level alarms ``held`` so far; returns (edges, new held set).

    Only a report carrying the JT/T 808 alarm word (``raw_alarms["jt808_word"]``: 0x0200 and the
    location items of 0x0201/0x0704/0x0210) says which level bits are set now. Other JT/T 808
    reports (0x0900 pass-through, 0x0107, 0x0702, text answers, Jointech locks) carry no word:
    their silence must not clear what the terminal holds, so they leave ``held`` as it is and
    their alarms are events, apart from one already held (raised and still open).
    """
    if report.protocol == "jt808" and "jt808_word" not in report.raw_alarms:
        return [AlarmEdge(alarm, True) for alarm in report.alarms if alarm not in held], held
    found: list[AlarmEdge] = []
    present = set(report.alarms)
    level_now = frozenset(a for a in present if is_level(report.protocol, a))
    for alarm in report.alarms:
        if alarm in level_now:
            if alarm not in held:
                found.append(AlarmEdge(alarm, True))
        else:
            found.append(AlarmEdge(alarm, True))
    if report.protocol == "jt808":  # only the terminal that holds level bits can clear them
        found.extend(AlarmEdge(a, False) for a in sorted(held - level_now))
        return found, level_now
    return found, held
