"""Reports from the JT/T 808 messages other than 0x0200/0x0201/0x0704 that carry something an
operator may need: 0x0900 pass-through, 0x0107 terminal attributes, 0x0701 waybill text, 0x0702
driver identity, and the vendor ids 0x0210 (short batch), 0x1300/0x6006 (text answers) and
0x2070 (accelerometer samples).

``decode_report_message`` is what the terminal server calls for an id in ``REPORT_MESSAGES``:
it returns the Reports to submit (possibly none) and raises ``BodyError`` for a body that does
not fit. A message without a position gives a Report without a fix, timed by the device when
the message says when, else at reception; what it carries is in ``extras`` under snake_case
Traccar attribute names (``result``, ``iccid``, ``card_code``, ``g_sensor``, ...).
"""

from __future__ import annotations

from datetime import datetime

from alarms.report import Report
from ingest.jt808 import messages as m
from ingest.jt808.fields import bcd_time, report
from ingest.jt808.location import LocationError, decode_location
from ingest.jt808.passthrough import decode_passthrough

REPORT_MESSAGES = frozenset({
    m.PASS_THROUGH, m.TERMINAL_ATTRIBUTES, m.WAYBILL, m.DRIVER_IDENTITY,
    m.BATCH_LOCATION_SHORT, m.TEXT_ANSWER, m.TEXT_REPORT, m.ACCELERATION,
})


def decode_report_message(
    msg_id: int,
    body: bytes,
    *,
    terminal_id: str,
    serial: int,
    is_2019: bool = False,
    received_at: datetime | None = None,
    model: str | None = None,
) -> list[Report]:
    """One message body of an id in ``REPORT_MESSAGES`` -> Reports. Raises ``BodyError``."""
    common = dict(terminal_id=terminal_id, serial=serial, received_at=received_at)
    if msg_id == m.PASS_THROUGH:
        return decode_passthrough(body, **common)
    if msg_id == m.BATCH_LOCATION_SHORT:
        return _short_batch(body, is_2019=is_2019, model=model, **common)
    return [report(extras=_message_extras(msg_id, body, is_2019), time=_device_time(msg_id, body), **common)]


def _message_extras(msg_id: int, body: bytes, is_2019: bool) -> dict:
    if msg_id == m.TERMINAL_ATTRIBUTES:
        attributes = m.decode_terminal_attributes(body, is_2019)
        return {"iccid": attributes.iccid, "manufacturer": attributes.manufacturer,
                "device_model": attributes.model, "terminal_code": attributes.terminal_code,
                "version_hw": attributes.hardware_version, "version_fw": attributes.firmware_version}
    if msg_id == m.WAYBILL:
        return {"result": m.decode_waybill(body)}
    if msg_id == m.DRIVER_IDENTITY:
        card = m.decode_driver_identity(body, is_2019)
        extras: dict = {"card_status": card.status}
        if card.read_result is not None:
            extras["card_result"] = card.read_result
        if card.read_result == 0:
            extras.update(driver=card.name, card_code=card.certificate, card_agency=card.agency,
                          card_validity=card.validity_bcd.hex())
            if card.id_number:
                extras["driver_unique_id"] = card.id_number
        return extras
    if msg_id == m.TEXT_REPORT:
        return {"result": m.decode_text_report(body)}
    if msg_id == m.TEXT_ANSWER:
        return {"result": m.decode_text_answer(body)[1]}
    if msg_id == m.ACCELERATION:
        return {"g_sensor": _acceleration(body)}
    raise m.BodyError(f"msg 0x{msg_id:04X} carries no report")


def _device_time(msg_id: int, body: bytes) -> datetime | None:
    if msg_id == m.DRIVER_IDENTITY and len(body) >= 7:
        return bcd_time(body[1:7])
    return None


def _acceleration(body: bytes) -> str:
    """12-byte samples (BCD time, then x, y, z as sign-and-magnitude WORDs) -> "[[x,y,z],...]"."""
    if len(body) % 12:
        raise m.BodyError(f"0x2070 body of {len(body)} bytes is not whole 12-byte samples")
    samples = []
    for pos in range(0, len(body), 12):
        axes = []
        for axis in range(3):
            raw = int.from_bytes(body[pos + 6 + 2 * axis:pos + 8 + 2 * axis], "big")
            axes.append(str(-(raw & 0x7FFF) if raw & 0x8000 else raw))
        samples.append(f"[{','.join(axes)}]")
    return f"[{','.join(samples)}]"


def _short_batch(body: bytes, *, terminal_id: str, serial: int, received_at: datetime | None,
                 is_2019: bool, model: str | None) -> list[Report]:
    """0x0210: a 7-byte body is battery % + BCD time; otherwise 0x0200 bodies with 1-byte lengths."""
    if len(body) == 7:
        return [report(terminal_id=terminal_id, serial=serial, received_at=received_at,
                       time=bcd_time(body[1:7]), extras={"battery_level": body[0]})]
    items, problems = m.split_short_batch(body)
    reports = []
    for n, item in enumerate(items):
        try:
            reports.append(decode_location(item, terminal_id=terminal_id, serial=serial, is_2019=is_2019,
                                           received_at=received_at, model=model))
        except LocationError as exc:
            problems.append(f"item {n + 1}: {exc}")
    if problems and not reports:
        raise m.BodyError(f"0x0210: {'; '.join(problems)}")
    if problems:
        reports[0].extras["batch_problems"] = problems
    return reports
