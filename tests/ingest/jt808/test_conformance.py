"""Conformance with Traccar's JT/T 808 test vectors (shared/conformance/traccar_samples.json).

Every jt808 sample is replayed through the production path (framer -> packet codec -> location
decoder), in file order per Traccar test method, and judged against what Traccar asserts.
Outcomes:

* agree: we decode what Traccar asserts (Traccar's alarm names are compared bit by bit through
  TRACCAR_EQUIVALENT below; speed would be compared in knots).
* documented deliberate difference: we reject a frame only because its check code is wrong
  (a strict server answers 0x8001 result 2; decoding the same frame without the check agrees),
  or we name alarm bits 18/26/29/30/31 by the standard where Traccar does not.
* any other disagreement must be listed in DISAGREEMENTS with its reason, and the list must be
  exact: a listed sample that starts agreeing, or a new disagreement, fails the test.

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

from ingest.jt808.codec import PacketError, parse_packet
from ingest.jt808.framing import FramingError, Jt808Framer
from ingest.jt808.location import LocationError, decode_batch, decode_location
from ingest.jt808.messages import BATCH_LOCATION, LOCATION, POSITION_ANSWER, BodyError, split_position_answer
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

# Every other disagreement, with its reason. VENDOR ones assert data outside JT/T 808 (vendor
# message ids, vendor additional items, Traccar per-model overrides): the decoder keeps such
# items raw in extras["raw_items"] by design, so they are reported but not held against the
# agreement threshold. STANDARD ones are about standard data and do count against it.
VENDOR, STANDARD = "vendor", "standard"
_ITEM = "vendor additional item (kept raw in extras['raw_items'])"
_MSG = "vendor or non-position message id: no Report (the server answers 0x8001 result 3)"
_MODEL = "Traccar per-model override (setModelOverride) on vendor items"
_LENGTH = "declared body length does not match the frame (hand-edited vector): rejected as malformed"
_UNESCAPED_7E = "raw 0x7E inside the frame splits it (Traccar's decoder test bypasses its own framer)"
_BAD_ESCAPE = "0x7D followed by neither 01 nor 02: a corrupt frame (jt808.md §1)"
DISAGREEMENTS: dict[str, tuple[str, str]] = {
    "Jt808FrameDecoderTest.java:13": (VENDOR, "Jointech '(...)' text sentence is not a JT/T 808 frame"),
    "Jt808ProtocolDecoderTest.java:18": (VENDOR, f"power: {_ITEM} 0xEB"),
    "Jt808ProtocolDecoderTest.java:22": (VENDOR, f"power: {_ITEM} 0xE1"),
    "Jt808ProtocolDecoderTest.java:26": (VENDOR, f"batteryLevel: {_ITEM} 0xE4"),
    "Jt808ProtocolDecoderTest.java:37": (VENDOR, f"batteryLevel: {_ITEM} 0xD4"),
    "Jt808ProtocolDecoderTest.java:41": (VENDOR, f"cardCode: 0x0702 driver identity, {_MSG}"),
    "Jt808ProtocolDecoderTest.java:45": (VENDOR, f"battery: {_ITEM} 0xEB"),
    "Jt808ProtocolDecoderTest.java:49": (VENDOR, f"alarm removing: {_ITEM} 0xEB"),
    "Jt808ProtocolDecoderTest.java:53": (VENDOR, f"alarm vibration: {_ITEM} 0xEB"),
    "Jt808ProtocolDecoderTest.java:57": (VENDOR, f"motion: {_ITEM} 0xEB"),
    "Jt808ProtocolDecoderTest.java:61": (VENDOR, f"timezone: {_ITEM} 0xEB"),
    "Jt808ProtocolDecoderTest.java:65": (VENDOR, f"rpm: {_ITEM} 0xE6 ($OBD-RT text)"),
    "Jt808ProtocolDecoderTest.java:69": (VENDOR, f"videoAlarm: JT/T 1078 item 0x14, {_ITEM}"),
    "Jt808ProtocolDecoderTest.java:73": (VENDOR, f"batteryLevel: {_ITEM} 0xE4"),
    "Jt808ProtocolDecoderTest.java:77": (VENDOR, f"motion: {_ITEM} 0xE5"),
    "Jt808ProtocolDecoderTest.java:81": (VENDOR, f"result: 0x0701 text, {_MSG}"),
    "Jt808ProtocolDecoderTest.java:85": (VENDOR, f"tire1Pressure: {_ITEM} 0x77; also {_UNESCAPED_7E}"),
    "Jt808ProtocolDecoderTest.java:89": (VENDOR, f"driverUniqueId: 0x0900 pass-through, {_MSG}"),
    "Jt808ProtocolDecoderTest.java:93": (VENDOR, f"batteryLevel: 1-byte item 0x06 (2019 defines 0x06 as a 2-byte temperature), {_ITEM}"),
    "Jt808ProtocolDecoderTest.java:100": (VENDOR, f"fuelUsed: 0x0900 pass-through, {_MSG}"),
    "Jt808ProtocolDecoderTest.java:104": (VENDOR, f"result: 0x6006, {_MSG}"),
    "Jt808ProtocolDecoderTest.java:114": (VENDOR, f"temp1: {_ITEM}s 0xF0-0xF9"),
    "Jt808ProtocolDecoderTest.java:118": (VENDOR, f"temp1: {_ITEM} 0x51"),
    "Jt808ProtocolDecoderTest.java:122": (VENDOR, f"batteryLevel: {_ITEM} 0xE3"),
    "Jt808ProtocolDecoderTest.java:126": (VENDOR, f"temp1: {_ITEM} 0x51"),
    "Jt808ProtocolDecoderTest.java:130": (VENDOR, f"iccid: {_ITEM} 0xEB"),
    "Jt808ProtocolDecoderTest.java:134": (VENDOR, f"batteryLevel: {_ITEM} 0xEB"),
    "Jt808ProtocolDecoderTest.java:138": (VENDOR, f"unlockResult: Jointech 0x5501, {_MSG}"),
    "Jt808ProtocolDecoderTest.java:142": (VENDOR, f"Jointech 0x5501 (1-byte serial), {_MSG}"),
    "Jt808ProtocolDecoderTest.java:145": (VENDOR, f"Jointech 0x5502 (1-byte serial), {_MSG}"),
    "Jt808ProtocolDecoderTest.java:148": (VENDOR, f"driverUniqueId: {_ITEM} 0x60"),
    "Jt808ProtocolDecoderTest.java:152": (VENDOR, f"lock2Battery: {_ITEM} 0x63"),
    "Jt808ProtocolDecoderTest.java:159": (VENDOR, f"batteryLevel: {_ITEM} 0x56"),
    "Jt808ProtocolDecoderTest.java:163": (VENDOR, f"dtcs: 0x0900 pass-through, {_MSG}"),
    "Jt808ProtocolDecoderTest.java:167": (VENDOR, f"battery: {_ITEM} 0x69"),
    "Jt808ProtocolDecoderTest.java:171": (VENDOR, f"event: {_ITEM} 0x60 (not the standard event id 0x04)"),
    "Jt808ProtocolDecoderTest.java:175": (VENDOR, f"batteryLevel: {_ITEM} 0xE1"),
    "Jt808ProtocolDecoderTest.java:179": (VENDOR, f"driver: {_ITEM} 0xBC"),
    "Jt808ProtocolDecoderTest.java:183": (VENDOR, f"tilt: Jointech 0x5501, {_MSG}"),
    "Jt808ProtocolDecoderTest.java:187": (VENDOR, f"0x0900 pass-through position, {_MSG}; also {_BAD_ESCAPE}"),
    "Jt808ProtocolDecoderTest.java:196": (VENDOR, f"0x0210 vendor batch, {_MSG}"),
    "Jt808ProtocolDecoderTest.java:199": (VENDOR, f"temp3: {_ITEM} 0xE6"),
    "Jt808ProtocolDecoderTest.java:203": (VENDOR, f"alarm hardAcceleration: {_ITEM}; also {_BAD_ESCAPE}"),
    "Jt808ProtocolDecoderTest.java:207": (VENDOR, f"batteryLevel: {_ITEM} 0xEB"),
    "Jt808ProtocolDecoderTest.java:214": (VENDOR, f"lock1Locked: {_ITEM} 0xD5"),
    "Jt808ProtocolDecoderTest.java:218": (VENDOR, f"0x0900 pass-through position, {_MSG}"),
    "Jt808ProtocolDecoderTest.java:224": (VENDOR, f"alarm: bit 7 agrees (low_voltage = lowBattery); 'removing' is {_ITEM} 0xEB"),
    "Jt808ProtocolDecoderTest.java:228": (VENDOR, f"dtcs: {_ITEM} 0x80/0xA0; also {_UNESCAPED_7E}"),
    "Jt808ProtocolDecoderTest.java:238": (VENDOR, f"0x2070 acceleration samples, {_MSG}"),
    "Jt808ProtocolDecoderTest.java:244": (
        STANDARD, "alarm bit 17 on a 2013 header is reserved by JT/T 808-2013; Traccar's 'tampering' is a vendor convention"
    ),
    "Jt808ProtocolDecoderTest.java:248": (VENDOR, f"batteryLevel: {_ITEM} 0xFE"),
    "Jt808ProtocolDecoderTest.java:255": (VENDOR, f"power: {_ITEM} 0xEB"),
    "Jt808ProtocolDecoderTest.java:259": (VENDOR, f"charge: Jointech 0x5501, {_MSG}"),
    "Jt808ProtocolDecoderTest.java:263": (VENDOR, "Jointech '(...)' text sentence is not a JT/T 808 frame"),
    "Jt808ProtocolDecoderTest.java:267": (VENDOR, f"result: 0x1300 UTF-16 text, {_MSG}"),
    "Jt808ProtocolDecoderTest.java:271": (VENDOR, f"Jointech 0x5502, {_MSG}"),
    "Jt808ProtocolDecoderTest.java:274": (VENDOR, f"Jointech 0x5501, {_MSG}"),
    "Jt808ProtocolDecoderTest.java:277": (VENDOR, f"fuel2: {_ITEM} 0xEB"),
    "Jt808ProtocolDecoderTest.java:281": (VENDOR, f"fuel1: {_ITEM} 0xEB"),
    "Jt808ProtocolDecoderTest.java:285": (VENDOR, f"battery: {_ITEM} 0x33"),
    "Jt808ProtocolDecoderTest.java:328": (STANDARD, f"{_LENGTH} (its check code is wrong too)"),
    "Jt808ProtocolDecoderTest.java:346": (VENDOR, f"charge: status bit 26 read as charging, a vendor convention ({_ITEM})"),
    "Jt808ProtocolDecoderTest.java:350": (VENDOR, f"power: {_ITEM} 0xF1"),
    "Jt808ProtocolDecoderTest.java:354": (VENDOR, f"power: {_ITEM} 0x82"),
    "Jt808ProtocolDecoderTest.java:361": (STANDARD, _UNESCAPED_7E),
    "Jt808ProtocolDecoderTest.java:364": (VENDOR, f"imei: {_ITEM} 0xF6"),
    "Jt808ProtocolDecoderTest.java:368": (VENDOR, f"batteryLevel: 0x0210, {_MSG}"),
    "Jt808ProtocolDecoderTest.java:372": (VENDOR, f"iccid: 0x0107 terminal attributes, {_MSG}"),
    "Jt808ProtocolDecoderTest.java:381": (VENDOR, f"door: {_MODEL} (MV710G status bit 16)"),
    "Jt808ProtocolDecoderTest.java:385": (VENDOR, f"alarm door: {_MODEL} (MV710G item 0x57)"),
    "Jt808ProtocolDecoderTest.java:391": (VENDOR, f"alarm movement: {_MODEL} (AL300 bit 16); also {_BAD_ESCAPE}"),
    "Jt808ProtocolDecoderTest.java:397": (VENDOR, f"battery: {_MODEL} (JC371 item 0xE8); also {_LENGTH}"),
    "Jt808ProtocolDecoderTest.java:401": (VENDOR, f"alarm sos: {_MODEL} (JC371 item 0xE8); also {_LENGTH}"),
    "Jt808ProtocolDecoderTest.java:405": (VENDOR, f"alarm vibration: {_MODEL} (JC371 item 0xE8); also {_LENGTH}"),
    "Jt808ProtocolDecoderTest.java:409": (VENDOR, f"alarmLabel: {_MODEL} (JC371 item 0x64); also {_UNESCAPED_7E}"),
    "Jt808ProtocolDecoderTest.java:415": (VENDOR, f"steps: {_MODEL} (C5L); wrong check code too"),
    "Jt808ProtocolDecoderTest.java:421": (VENDOR, f"iccid: {_MODEL} (GL100 items 0xF0-0xF9)"),
    "Jt808ProtocolDecoderTest.java:425": (VENDOR, f"tag1Mac: GL100 0x0900 pass-through, {_MSG}"),
    "Jt808ProtocolDecoderTest.java:429": (VENDOR, f"deviceTemp: GL100 0x0900 pass-through, {_MSG}"),
}


@dataclass
class Decoded:
    reports: list
    errors: list[str]
    frames: list[bytes]


def decode(raw: bytes, *, verify_checksum: bool) -> Decoded:
    """The production path: framer, packet codec, location decoder (0x0200/0x0201/0x0704)."""
    out = Decoded([], [], [])
    for item in Jt808Framer().feed(raw):
        if isinstance(item, FramingError):
            out.errors.append(f"framing: {item}")
            continue
        out.frames.append(item)
        try:
            packet = parse_packet(item, verify_checksum=verify_checksum)
        except PacketError as exc:
            out.errors.append(f"packet: {exc}")
            continue
        header, body = packet.header, packet.body
        terminal_id = normalise_terminal_id("jt808", header.phone)
        options = dict(terminal_id=terminal_id, serial=header.serial, is_2019=header.is_2019)
        try:
            if header.msg_id == LOCATION:
                out.reports.append(decode_location(body, **options))
            elif header.msg_id == POSITION_ANSWER:
                out.reports.append(decode_location(split_position_answer(body)[1], **options))
            elif header.msg_id == BATCH_LOCATION:
                reports, problems = decode_batch(body, **options)
                out.reports.extend(reports)
                out.errors.extend(problems)
        except (BodyError, LocationError) as exc:
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
    """'agree', 'documented' or a reason for disagreeing."""
    wanted = {name for name in expected.split(",") if name}
    ours = {TRACCAR_EQUIVALENT[a] for a in report.alarms if a in TRACCAR_EQUIVALENT}
    if ours == wanted:
        return "agree"
    documented = {DOCUMENTED_ALARM_BITS[a] for a in report.alarms if a in DOCUMENTED_ALARM_BITS} - {None}
    if ours | documented >= wanted and ours <= wanted:
        return "documented"
    return f"alarms {sorted(report.alarms)} vs Traccar {sorted(wanted)}"


def judge(sample: dict, decoded: Decoded, now: datetime) -> str:
    check = sample["assert"]
    kind = check["check"]
    reports = decoded.reports
    if kind == "frame":
        return "agree" if decoded.frames == [bytes.fromhex(check["expected"])[1:-1]] else "frame differs"
    if kind == "null":
        return "agree" if not reports else "we decode a position"
    if kind == "notNull":
        return "agree" if reports else "no position decoded"
    if kind == "attributes":
        return "agree" if reports and reports[0].extras else "no position with attributes"
    if kind == "positions":
        if not reports:
            return "no position decoded"
        if check.get("checkLocation", True) and not all(_sane(r, now) for r in reports):
            return "a position fails the sanity checks"
        return "agree"
    if not reports:
        return "no position decoded"
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
    fix = report.fix
    standard = {
        "sat": lambda: fix.satellites,
        "speed": lambda: fix.speed_kmh / 1.852,  # Traccar asserts knots
        "course": lambda: fix.course,
        "altitude": lambda: fix.altitude,
    }
    if key not in standard:
        return f"vendor attribute {key!r} is not decoded (kept raw)"
    ours = standard[key]()
    if isinstance(value, float):
        return "agree" if ours is not None and math.isclose(ours, value, abs_tol=1e-6) else f"{key} {ours} vs {value}"
    return "agree" if ours == value else f"{key} {ours} vs {value}"


def sample_id(sample: dict) -> str:
    return sample["source"].rsplit("/", 1)[-1]


def classify(samples: list[dict], now: datetime) -> dict[str, tuple[str, str]]:
    """sample id -> (outcome, detail), outcome in agree / documented / disagree."""
    by_test: dict[str, list[dict]] = defaultdict(list)
    for sample in samples:
        by_test[sample["test"]].append(sample)
    outcomes = {}
    for test in by_test.values():  # file order within each Traccar test method
        for sample in test:
            raw = bytes.fromhex(sample["data"]) if sample["kind"] == "hex" else sample["data"].encode("latin-1")
            strict = judge(sample, decode(raw, verify_checksum=True), now)
            if strict in ("agree", "documented"):
                outcomes[sample_id(sample)] = (strict, "")
                continue
            lenient = judge(sample, decode(raw, verify_checksum=False), now)
            if lenient in ("agree", "documented"):
                outcomes[sample_id(sample)] = ("documented", "strict check code")
            else:
                outcomes[sample_id(sample)] = ("disagree", lenient)
    return outcomes


def _load() -> list[dict]:
    if not SAMPLES.parent.parent.exists():
        pytest.skip("../shared is absent")
    return [s for s in json.loads(SAMPLES.read_text()) if s["protocol"] == "jt808"]


def test_traccar_samples_agree():
    samples = _load()
    outcomes = classify(samples, datetime.now(timezone.utc))
    assert len(outcomes) == len(samples), "sample ids are not unique"
    agree = sum(1 for outcome, _ in outcomes.values() if outcome == "agree")
    documented = sum(1 for outcome, _ in outcomes.values() if outcome == "documented")
    disagree = {sid: detail for sid, (outcome, detail) in outcomes.items() if outcome == "disagree"}
    vendor = sum(1 for scope, _ in DISAGREEMENTS.values() if scope == VENDOR)
    total = len(outcomes)
    in_scope = total - vendor
    rate = (agree + documented) / in_scope
    print(
        f"\njt808 conformance: {agree} agree + {documented} documented deliberate differences of {total} samples"
        f" ({(agree + documented) / total:.1%} overall); {vendor} assert vendor data we keep raw;"
        f" agreement on the {in_scope} standard samples {rate:.1%}"
    )
    for sid, detail in sorted(disagree.items()):
        scope, reason = DISAGREEMENTS.get(sid, ("?", "NOT LISTED"))
        print(f"  {sid} [{scope}] {detail}: {reason}")
    unlisted = sorted(set(disagree) - set(DISAGREEMENTS))
    now_agreeing = sorted(set(DISAGREEMENTS) - set(disagree))
    assert not unlisted, f"new disagreements, list them with a reason: {unlisted}"
    assert not now_agreeing, f"listed disagreements that now agree, unlist them: {now_agreeing}"
    assert rate >= REQUIRED_AGREEMENT

