"""Conformance with Traccar's JT/T 808 test vectors (shared/conformance/traccar_samples.json).

Every jt808 sample is replayed, in file order per Traccar test method and with the device model
the test set (``setup.model``), through the production path: framer -> packet codec (or the
Jointech 0x5501/0x5502 header) -> the message decoders (location, batch, pass-through and the
other report-carrying messages). Its Report is judged against what Traccar asserts: standard
alarm bits through TRACCAR_EQUIVALENT (Traccar's word for the same bit), vendor alarms and
attributes by name (our extras use snake_case of Traccar's attribute names; speed is in knots).

Fed directly: Traccar's decoder tests hand the frame to the decoder as it is, bypassing its own
framer (no 0x7D un-escaping, a raw 0x7E inside the frame kept). When the framer path does not
decode a decoder-test sample (a raw 0x7E splits it, a 0x7D the device never escaped makes it
corrupt or its length wrong), the replay does the same: the bytes between the outer 0x7E go to
the packet codec as they are. Framing itself is tested by the frame-decoder samples here and in
test_framing.py; the samples fed directly are counted as agreeing and listed in the output.

Outcomes counted as agreeing: agree; agree when fed directly; documented deliberate difference,
which is only (a) a strict server rejects a frame whose check code is wrong (decoding it without
the check agrees), or (b) we name alarm bits 18/26/29/30/31 by the standard (design.md) where
Traccar folds them into other names. Any other disagreement must be listed in DISAGREEMENTS
with its reason, and the list must be exact: a listed sample that starts agreeing, or a new
disagreement, fails the test. At least 90 % of all samples must agree.

The test is skipped only when ../shared (the reference folder beside the repository) is absent.
"""

from __future__ import annotations

import json
import math
from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from alarms.names import JT808_ALARM_BITS, from_traccar, snake_case
from ingest.jt808 import jointech
from ingest.jt808.codec import PacketError, parse_packet
from ingest.jt808.framing import FramingError, Jt808Framer
from ingest.jt808.location import decode_batch, decode_location
from ingest.jt808.messages import BATCH_LOCATION, LOCATION, POSITION_ANSWER, BodyError, split_position_answer
from ingest.jt808.report_messages import REPORT_MESSAGES, decode_report_message
from ingest.sink import normalise_terminal_id

SAMPLES = Path(__file__).resolve().parents[3].parent / "shared" / "conformance" / "traccar_samples.json"
REQUIRED_AGREEMENT = 0.90

# Traccar's generic JT/T 808 alarm name for the same bit as our canonical name (its decodeAlarm
# with no device model). Same bit, same meaning, Traccar's word for it.
TRACCAR_EQUIVALENT = {
    "sos": "sos",
    "overspeed": "overspeed",
    "fatigue_driving": "fatigueDriving",
    "gnss_fault": "fault",
    "display_fault": "fault",
    "tts_fault": "fault",
    "camera_fault": "fault",
    "gnss_antenna_cut": "gpsAntennaCut",
    "gnss_antenna_short": "gpsAntennaCut",
    "low_voltage": "lowBattery",  # bit 7, main power under-voltage
    "power_cut": "powerOff",  # bit 8, main power cut
    "parking_timeout": "parking",
    "geofence": "geofence",
    "illegal_movement": "movement",
}
# Bits we name by the standard where Traccar folds them away (design.md): documented.
DOCUMENTED_ALARM_BITS = {
    "daily_driving_limit": "lowBattery",  # bit 18
    "vehicle_stolen": "general",  # bit 26
    "collision": "accident",  # bit 29
    "rollover": "accident",  # bit 30
    "illegal_door_open": None,  # bit 31, Traccar drops it
}
STANDARD_NAMES = frozenset(JT808_ALARM_BITS.values())

_LENGTH = "declared body length does not match the frame, fed through the framer or directly: rejected as malformed"
DISAGREEMENTS: dict[str, str] = {
    "Jt808FrameDecoderTest.java:13": "a Jointech '(...)' text sentence is not a JT/T 808 frame; the framer skips it",
    "Jt808ProtocolDecoderTest.java:244": (
        "alarm bit 17 on a 2013 header is reserved by JT/T 808-2013; Traccar's 'tampering' is a vendor convention"
    ),
    "Jt808ProtocolDecoderTest.java:263": "a Jointech '(...)' text sentence is not a JT/T 808 frame; the framer skips it",
    "Jt808ProtocolDecoderTest.java:328": f"{_LENGTH} (a hand-edited vector: 50 declared, 40 sent; check code wrong too)",
    "Jt808ProtocolDecoderTest.java:425": f"{_LENGTH} (a hand-made GL100 vector: 122 declared, 107 sent)",
}


@dataclass
class Decoded:
    reports: list
    errors: list[str]
    frames: list[bytes]


def _frames(raw: bytes, direct: bool) -> tuple[list[bytes], list[str]]:
    if direct:
        return [raw[1:-1] if raw[:1] == raw[-1:] == b"\x7e" else raw], []
    frames, errors = [], []
    for item in Jt808Framer().feed(raw):
        if isinstance(item, FramingError):
            errors.append(f"framing: {item}")
        else:
            frames.append(item)
    return frames, errors


def decode(raw: bytes, *, verify_checksum: bool, direct: bool = False, model: str | None = None) -> Decoded:
    """The production decoders on ``raw`` (one sample), through the framer or fed directly."""
    frames, errors = _frames(raw, direct)
    out = Decoded([], errors, frames)
    for frame in frames:
        try:
            if jointech.is_jointech(frame):
                packet = jointech.parse_frame(frame, verify_checksum=verify_checksum)
                terminal_id = normalise_terminal_id("jt808", packet.phone)
                out.reports.extend(jointech.decode_jointech(packet, terminal_id=terminal_id))
                continue
            packet = parse_packet(frame, verify_checksum=verify_checksum)
        except PacketError as exc:
            out.errors.append(f"packet: {exc}")
            continue
        except ValueError as exc:
            out.errors.append(f"body: {exc}")
            continue
        header, body = packet.header, packet.body
        terminal_id = normalise_terminal_id("jt808", header.phone)
        options = dict(terminal_id=terminal_id, serial=header.serial, is_2019=header.is_2019, model=model)
        try:
            if header.msg_id == LOCATION:
                out.reports.append(decode_location(body, **options))
            elif header.msg_id == POSITION_ANSWER:
                out.reports.append(decode_location(split_position_answer(body)[1], **options))
            elif header.msg_id == BATCH_LOCATION:
                reports, problems = decode_batch(body, **options)
                out.reports.extend(reports)
                out.errors.extend(problems)
            elif header.msg_id in REPORT_MESSAGES:
                out.reports.extend(decode_report_message(header.msg_id, body, **options))
        except BodyError as exc:
            out.errors.append(f"body: {exc}")
    return out


def _sane(report, now: datetime) -> bool:
    """Traccar's position sanity checks (conformance README)."""
    fix = report.fix
    return (
        fix is not None
        and datetime(2000, 1, 1, tzinfo=timezone.utc) <= report.time <= now + timedelta(hours=25)
        and -90 <= fix.lat <= 90
        and -180 <= fix.lon <= 180
        and -12262 <= fix.altitude <= 18000
        and 0 <= fix.speed_kmh / 1.852 <= 869
        and 0 <= fix.course <= 360
    )


def _alarm_verdict(report, expected: str) -> str:
    """'agree', 'documented' or a reason for disagreeing. Compared as snake_case names: standard
    bits through TRACCAR_EQUIVALENT, vendor alarms (already Traccar's words) as they are."""
    wanted = set(from_traccar(expected))
    ours = set()
    for name in report.alarms:
        if name not in STANDARD_NAMES:
            ours.add(name)
        elif name in TRACCAR_EQUIVALENT:
            ours.add(snake_case(TRACCAR_EQUIVALENT[name]))
    if ours == wanted:
        return "agree"
    documented = {snake_case(DOCUMENTED_ALARM_BITS[a]) for a in report.alarms if DOCUMENTED_ALARM_BITS.get(a)}
    if ours | documented >= wanted and ours <= wanted:
        return "documented"
    return f"alarms {sorted(report.alarms)} vs Traccar {sorted(wanted)}"


_MISSING = object()


def _attribute(report, key: str):
    fix = report.fix
    standard = {
        "sat": lambda: fix.satellites,
        "speed": lambda: fix.speed_kmh / 1.852,  # Traccar asserts knots
        "course": lambda: fix.course,
        "altitude": lambda: fix.altitude,
    }
    if key in standard:
        return standard[key]() if fix is not None else _MISSING
    if key == "door":  # Traccar's MV710G door is status bit 16: the standard's door 4
        return report.status.get("door_driver_open", _MISSING)
    return report.extras.get(snake_case(key), _MISSING)


def _same(ours, value) -> bool:
    if isinstance(value, bool) or isinstance(ours, bool):
        return ours is value
    if isinstance(value, float):
        return isinstance(ours, (int, float)) and math.isclose(ours, value, abs_tol=1e-6)
    return ours == value


def judge(sample: dict, decoded: Decoded, now: datetime) -> str:
    check = sample["assert"]
    kind = check["check"]
    reports = decoded.reports
    if kind == "frame":
        return "agree" if decoded.frames == [bytes.fromhex(check["expected"])[1:-1]] else "frame differs"
    if kind == "null":
        return "agree" if not reports else "we decode a report"
    if kind == "notNull":
        return "agree" if reports else f"nothing decoded {decoded.errors}"
    if kind == "attributes":
        return "agree" if reports and reports[0].extras else "no report with attributes"
    if kind == "positions":
        if not reports:
            return f"nothing decoded {decoded.errors}"
        if check.get("checkLocation", True) and not all(_sane(r, now) for r in reports):
            return "a position fails the sanity checks"
        return "agree"
    if not reports:
        return f"nothing decoded {decoded.errors}"
    report = reports[0]
    if kind == "position":
        if len(reports) != 1 or not _sane(report, now):
            return "not one sane position"
        expected = check.get("expected")
        if expected:
            time = datetime.strptime(expected["time"], "%Y-%m-%d %H:%M:%S.%f").replace(tzinfo=timezone.utc)
            if report.time != time or report.fix.valid != expected["valid"]:
                return "time or validity differs"
            if abs(report.fix.lat - expected["latitude"]) > 1e-5 or abs(report.fix.lon - expected["longitude"]) > 1e-5:
                return "coordinates differ"
        return "agree"
    key, value = check["key"], check["value"]
    if key == "alarm":
        return _alarm_verdict(report, value)
    ours = _attribute(report, key)
    if ours is _MISSING:
        return f"{key!r} not decoded"
    return "agree" if _same(ours, value) else f"{key} {ours!r} vs {value!r}"


def sample_id(sample: dict) -> str:
    return sample["source"].rsplit("/", 1)[-1]


def classify(samples: list[dict], now: datetime) -> dict[str, tuple[str, str]]:
    """sample id -> (outcome, detail), outcome in agree / direct / documented / disagree."""
    by_test: dict[str, list[dict]] = defaultdict(list)
    for sample in samples:
        by_test[sample["test"]].append(sample)
    outcomes = {}
    for test in by_test.values():  # file order within each Traccar test method
        model = None
        for sample in test:
            model = (sample.get("setup") or {}).get("model", model)  # stays set for the rest of the test
            raw = bytes.fromhex(sample["data"]) if sample["kind"] == "hex" else sample["data"].encode("latin-1")
            framer_only = sample["decoder"].endswith("FrameDecoder")
            attempts = [("agree", True, False), ("direct", True, True),
                        ("documented", False, False), ("documented", False, True)]
            verdicts = []
            for outcome, strict, direct in attempts:
                if direct and framer_only:
                    continue
                verdict = judge(sample, decode(raw, verify_checksum=strict, direct=direct, model=model), now)
                if verdict == "documented":  # alarm bits named by the standard
                    outcome = "documented"
                if verdict in ("agree", "documented"):
                    detail = "" if strict else "strict check code"
                    outcomes[sample_id(sample)] = (outcome, detail)
                    break
                verdicts.append(verdict)
            else:
                outcomes[sample_id(sample)] = ("disagree", verdicts[0])
    return outcomes


def _load() -> list[dict]:
    if not SAMPLES.parent.parent.exists():
        pytest.skip("../shared is absent")
    return [s for s in json.loads(SAMPLES.read_text()) if s["protocol"] == "jt808"]


def test_traccar_samples_agree():
    samples = _load()
    outcomes = classify(samples, datetime.now(timezone.utc))
    assert len(outcomes) == len(samples), "sample ids are not unique"
    count = defaultdict(int)
    for outcome, _ in outcomes.values():
        count[outcome] += 1
    total = len(outcomes)
    rate = (count["agree"] + count["direct"] + count["documented"]) / total
    print(
        f"\njt808 conformance: {count['agree']} agree + {count['direct']} agree fed directly"
        f" + {count['documented']} documented deliberate differences of {total} samples: {rate:.1%};"
        f" {count['disagree']} disagree"
    )
    direct = sorted(sid for sid, (outcome, _) in outcomes.items() if outcome == "direct")
    print(f"  fed directly (bypassing the framer, as Traccar's decoder tests do): {', '.join(direct)}")
    for sid, (outcome, detail) in sorted(outcomes.items()):
        if outcome == "documented":
            print(f"  {sid} documented: {detail or 'alarm bits named by the standard'}")
    disagree = {sid: detail for sid, (outcome, detail) in outcomes.items() if outcome == "disagree"}
    for sid, detail in sorted(disagree.items()):
        print(f"  {sid} disagrees ({detail}): {DISAGREEMENTS.get(sid, 'NOT LISTED')}")
    unlisted = sorted(set(disagree) - set(DISAGREEMENTS))
    now_agreeing = sorted(set(DISAGREEMENTS) - set(disagree))
    assert not unlisted, f"new disagreements, list them with a reason: {unlisted}"
    assert not now_agreeing, f"listed disagreements that now agree, unlist them: {now_agreeing}"
    assert rate >= REQUIRED_AGREEMENT
