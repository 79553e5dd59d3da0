"""The terminal server serving the report messages beyond 0x0200 (0x0900, 0x0107, 0x0210, ...),
vendor items that depend on the fleet's device model, and Jointech locks' 0x5501/0x5502, fed
Traccar's sample frames (shared/conformance) through the framer as a terminal sends them.

Skipped only when ../shared (the reference folder beside the repository) is absent.
"""

from __future__ import annotations

import json
import struct
from pathlib import Path

import pytest

from ingest.jt808 import jointech
from ingest.jt808 import messages as m
from ingest.jt808.codec import build_packet, parse_packet
from ingest.jt808.framing import Jt808Framer, escape, wrap, xor_check
from ingest.jt808.terminal import TerminalIdentity
from ingest.limits import ConnectionLimits
from ingest.sink import normalise_terminal_id
from tests.ingest.jt808.fakes import FakeSink, known
from tests.ingest.jt808.rig import Connection, ServerRig, ack_of

SHARED = Path(__file__).resolve().parents[3].parent / "shared"


@pytest.fixture(scope="module")
def sample():
    """Traccar's jt808 decoder-test frames by source line: ``sample("89")`` -> wire bytes."""
    if not SHARED.exists():
        pytest.skip("../shared is absent")
    found = {s["source"].rsplit(":", 1)[-1]: bytes.fromhex(s["data"])
             for s in json.loads((SHARED / "conformance" / "traccar_samples.json").read_text())
             if s["protocol"] == "jt808" and s["decoder"] == "Jt808ProtocolDecoder" and s["kind"] == "hex"}
    return found.__getitem__  # a missing sample is a KeyError: the folder is there, so it must be


def frame_of(wire: bytes) -> bytes:
    (frame,) = Jt808Framer().feed(wire)
    return frame


def phone_of(wire: bytes) -> str:
    frame = frame_of(wire)
    return jointech.parse_frame(frame).phone if jointech.is_jointech(frame) else parse_packet(frame).header.phone


def session(wire: bytes, model: str | None = None, **limits) -> tuple[ServerRig, Connection]:
    """A connection authenticated as the terminal that sent ``wire``, known to the fleet with ``model``."""
    terminal_id = normalise_terminal_id("jt808", phone_of(wire))
    rig = ServerRig(FakeSink({terminal_id: known(terminal_id, model=model)}), ConnectionLimits(**limits))
    conn = rig.connect()
    conn.login(TerminalIdentity(phone_of(wire)))
    return rig, conn


def answered(conn: Connection, wire: bytes) -> m.TerminalResponse:
    conn.send(wire)
    return ack_of(conn.reply())


def test_passthrough_0900_is_submitted_then_acked(sample):
    wire = sample("89")
    rig, conn = session(wire)
    assert answered(conn, wire) == m.TerminalResponse(33561, m.PASS_THROUGH, m.RESULT_OK)
    (report,) = rig.sink.reports
    assert report.terminal_id == normalise_terminal_id("jt808", phone_of(wire))
    assert report.extras["driver_unique_id"] == "10218094" and report.raw_alarms["jt808_serial"] == 33561
    assert "jt808_word" not in report.raw_alarms  # it must not clear held alarms (alarms/edges.py)
    assert rig.factory.stats.reports == 1


def test_0900_sensor_and_0107_attributes_and_1300_text(sample):
    for line, msg_id, key, value in (("429", m.PASS_THROUGH, "device_temp", 24.4),
                                     ("372", m.TERMINAL_ATTRIBUTES, "iccid", "89883030000131882455"),
                                     ("267", m.TEXT_ANSWER, "result", "Set OK!")):
        wire = sample(line)
        rig, conn = session(wire)
        ack = answered(conn, wire)
        assert (ack.reply_id, ack.result) == (msg_id, m.RESULT_OK), line
        (report,) = rig.sink.reports
        assert report.extras[key] == value, line


def test_short_batch_0210_submits_every_position_in_one_batch(sample):
    wire = sample("196")
    rig, conn = session(wire)
    assert answered(conn, wire).result == m.RESULT_OK
    (batch,) = rig.sink.submitted
    assert len(batch) == 8 and all(r.fix is not None for r in batch)


def test_vendor_alarm_bits_follow_the_fleets_device_model(sample):
    wire = sample("385")  # an MV710G sets bit 16 for its door: Traccar's alarm "door"
    rig, conn = session(wire, model="MV710G")
    assert answered(conn, wire).result == m.RESULT_OK
    assert rig.sink.reports[0].alarms == ("door",)
    rig, conn = session(wire)  # no model in the fleet: the standard meaning (reserved in 2013)
    assert answered(conn, wire).result == m.RESULT_OK
    assert rig.sink.reports[0].alarms == ()


def test_malformed_report_body_gets_a_failure_ack_and_the_connection_stays(sample):
    wire = sample("372")
    rig, conn = session(wire)
    terminal = TerminalIdentity(phone_of(wire))
    bad = terminal.packet(m.TERMINAL_ATTRIBUTES, b"\x00\x01\x02", serial=77)
    assert answered(conn, bad) == m.TerminalResponse(77, m.TERMINAL_ATTRIBUTES, m.RESULT_MESSAGE_ERROR)
    assert not conn.closed and conn.protocol.bad_frames == 1 and rig.sink.reports == []
    assert answered(conn, wire).result == m.RESULT_OK  # the next good one is served
    assert len(rig.sink.reports) == 1


def test_report_messages_before_authentication_are_refused(sample):
    wire = sample("89")
    terminal_id = normalise_terminal_id("jt808", phone_of(wire))
    rig = ServerRig(FakeSink({terminal_id: known(terminal_id)}))
    conn = rig.connect()
    assert answered(conn, wire).result == m.RESULT_FAIL and rig.sink.reports == []


def test_failed_submit_of_a_report_message_is_not_acked(sample):
    wire = sample("89")
    rig, conn = session(wire)
    rig.sink.fail_submits = 1
    conn.send(wire)
    assert conn.replies() == [] and not conn.closed and rig.factory.stats.submit_failures == 1
    assert answered(conn, wire).result == m.RESULT_OK  # the terminal's resend is served


# --- Jointech locks ---------------------------------------------------------------------------


def jointech_answer(wire: bytes, result: int) -> bytes:
    """What the lock expects back: 0x4401, its phone, the answered message id and the result."""
    packet = jointech.parse_frame(frame_of(wire))
    body = struct.pack(">HB", packet.msg_id, result)
    return wrap(struct.pack(">HH", jointech.ANSWER, len(body)) + packet.phone_bcd + b"\x01" + body)


def test_jointech_location_is_submitted_then_answered(sample):
    wire = sample("138")  # 0x5501 asking for an answer (attribute bit 15)
    rig, conn = session(wire)
    conn.send(wire)
    assert conn.transport.value() == jointech_answer(wire, 0)
    assert conn.transport.value()[1:5] == bytes.fromhex("4401 0003") and conn.transport.value()[-5:-2] == b"\x55\x01\x00"
    (report,) = rig.sink.reports
    assert report.extras["unlock_result"] == 101 and report.fix.valid and report.raw_alarms["jt808_serial"] == 71
    assert report.terminal_id == normalise_terminal_id("jt808", "856009001017")


def test_jointech_blind_area_and_no_answer_unless_asked(sample):
    blind = sample("145")  # 0x5502: a stored fix, answered
    rig, conn = session(blind)
    conn.send(blind)
    assert conn.transport.value() == jointech_answer(blind, 0)
    assert rig.sink.reports[0].fix.valid is False
    quiet = sample("259")  # 0x5501 without attribute bit 15
    rig, conn = session(quiet)
    conn.send(quiet)
    assert conn.transport.value() == b"" and rig.sink.reports[0].extras["charge"] is True


def test_jointech_from_an_unauthenticated_connection_is_refused(sample):
    wire = sample("138")
    rig = ServerRig(FakeSink({"856009001017": known("856009001017")}))
    conn = rig.connect()
    conn.send(wire)
    assert conn.transport.value() == jointech_answer(wire, m.RESULT_FAIL) and rig.sink.reports == []
    assert not conn.closed


def test_malformed_jointech_body_is_answered_with_an_error_and_the_connection_stays(sample):
    wire = sample("138")
    rig, conn = session(wire)
    packet = jointech.parse_frame(frame_of(wire))
    head = struct.pack(">HH", packet.msg_id, packet.attrs & 0xFC00 | 10) + packet.phone_bcd + bytes((packet.serial,))
    short = head + packet.body[:10]  # well framed, check code right, body too short for a position
    conn.send(b"\x7e" + short + bytes((xor_check(short),)) + b"\x7e")
    assert conn.transport.value() == jointech_answer(wire, m.RESULT_MESSAGE_ERROR)
    assert rig.sink.reports == [] and conn.protocol.bad_frames == 1 and not conn.closed
    conn.transport.clear()
    conn.send(wire)
    assert conn.transport.value() == jointech_answer(wire, 0) and len(rig.sink.reports) == 1


def test_jointech_bad_check_code_is_refused_unless_the_terminal_is_lenient(sample):
    wire = sample("138")
    frame = frame_of(wire)
    corrupt = b"\x7e" + escape(frame[:-1] + bytes((frame[-1] ^ 0x01,))) + b"\x7e"  # wrong check code
    assert frame_of(corrupt)[:-1] == frame[:-1] and frame_of(corrupt)[-1] != frame[-1]
    rig, conn = session(wire)
    conn.send(corrupt)
    assert conn.transport.value() == jointech_answer(wire, m.RESULT_MESSAGE_ERROR) and rig.sink.reports == []
    assert conn.protocol.bad_frames == 1
    terminal_id = normalise_terminal_id("jt808", phone_of(wire))
    rig = ServerRig(FakeSink({terminal_id: known(terminal_id, lenient=True)}))
    conn = rig.connect()
    conn.login(TerminalIdentity(phone_of(wire)))
    conn.send(corrupt)
    assert conn.transport.value() == jointech_answer(wire, 0) and len(rig.sink.reports) == 1


def test_a_garbled_jointech_frame_is_a_bad_frame_and_0x0200_still_served(sample):
    wire = sample("138")
    rig, conn = session(wire)
    conn.send(wrap(frame_of(wire)[:20]))  # a 0x5501 id whose length does not fit: no answer possible
    assert conn.transport.value() == b"" and conn.protocol.bad_frames == 1 and not conn.closed
    location = build_packet(m.LOCATION, bytes(28), phone_bcd=bytes.fromhex(phone_of(wire)), serial=5)
    assert answered(conn, location) == m.TerminalResponse(5, m.LOCATION, m.RESULT_OK)
    assert len(rig.sink.reports) == 1


def test_a_terminal_outside_the_fleet_has_no_model(sample):
    wire = sample("385")
    rig = ServerRig(FakeSink(), ConnectionLimits(accept_unknown=True))
    conn = rig.connect()
    conn.login(TerminalIdentity(phone_of(wire)))
    assert answered(conn, wire).result == m.RESULT_OK and rig.sink.reports[0].alarms == ()
