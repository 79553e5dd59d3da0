import pytest
from twisted.internet.defer import Deferred

from alarms.report import Report
from ingest.jt808 import messages as m
from ingest.jt808.sessions import (
    TerminalDisconnected,
    TerminalNotConnected,
    TerminalRefused,
    TerminalTimeout,
)
from ingest.jt808.terminal import TerminalIdentity, location_body
from tests.ingest.jt808.fakes import FakeSink, known
from tests.ingest.jt808.rig import WHEN, ServerRig, ack_of

PHONE = "13912345678"


def connected(is_2019: bool = False):
    rig = ServerRig(FakeSink({PHONE: known(PHONE)}))
    conn = rig.connect()
    terminal = TerminalIdentity(PHONE, is_2019=is_2019)
    conn.login(terminal)
    return rig, conn, terminal


def start(coroutine) -> list:
    outcome: list = []
    Deferred.fromCoroutine(coroutine).addBoth(outcome.append)
    return outcome


def test_confirm_alarm_sends_8203_and_returns_the_terminal_result():
    rig, conn, terminal = connected(is_2019=True)
    outcome = start(rig.registry.confirm_alarm("0" + PHONE, 0x23, 1 << 20))
    command = conn.reply()
    assert command.header.msg_id == m.ALARM_CONFIRMATION and command.header.is_2019
    assert command.body == bytes.fromhex("002300100000")
    assert outcome == []
    conn.send(terminal.response(command.header.serial, m.ALARM_CONFIRMATION, m.RESULT_OK))
    assert outcome == [0]
    assert conn.replies() == []  # a terminal response is not answered


def test_confirm_alarm_rejects_bits_8203_cannot_confirm():
    rig, _conn, _terminal = connected()
    for bits in (0, 1 << 1, (1 << 0) | (1 << 31)):
        (failure,) = start(rig.registry.confirm_alarm(PHONE, 1, bits))
        assert failure.check(ValueError)


def test_send_text_flag_follows_the_terminal_version():
    for is_2019, body in ((False, b"\x0c" + "请回电".encode("gbk")), (True, b"\x0f\x01" + "请回电".encode("gbk"))):
        rig, conn, terminal = connected(is_2019)
        outcome = start(rig.registry.send_text(PHONE, "请回电", tts=True))
        command = conn.reply()
        assert command.header.msg_id == m.TEXT_MESSAGE and command.body == body
        conn.send(terminal.response(command.header.serial, m.TEXT_MESSAGE, m.RESULT_UNSUPPORTED))
        assert outcome == [m.RESULT_UNSUPPORTED]


def test_query_position_returns_the_report_of_the_0201_answer():
    rig, conn, terminal = connected()
    outcome = start(rig.registry.query_position(PHONE))
    command = conn.reply()
    assert command.header.msg_id == m.POSITION_QUERY and command.body == b""
    answer = command.header.serial.to_bytes(2, "big") + location_body(lat=-1.5, lon=36.8, time=WHEN)
    conn.send(terminal.packet(m.POSITION_ANSWER, answer, serial=90))
    (report,) = outcome
    assert isinstance(report, Report) and report.fix.lat == -1.5 and report.time == WHEN
    assert ack_of(conn.reply()) == m.TerminalResponse(90, m.POSITION_ANSWER, m.RESULT_OK)
    assert rig.sink.reports == [report]  # also submitted like any position


def test_query_position_refused_by_the_terminal():
    rig, conn, terminal = connected()
    outcome = start(rig.registry.query_position(PHONE))
    conn.send(terminal.response(conn.reply().header.serial, m.POSITION_QUERY, m.RESULT_UNSUPPORTED))
    (failure,) = outcome
    assert failure.check(TerminalRefused) and failure.value.result == m.RESULT_UNSUPPORTED


def test_not_connected_is_a_clear_error():
    rig, _conn, _terminal = connected()
    (failure,) = start(rig.registry.send_text("13900000000", "hello"))
    assert failure.check(TerminalNotConnected) and "13900000000" in str(failure.value)


def test_no_answer_times_out_on_the_clock_and_is_forgotten():
    rig, conn, terminal = connected()
    outcome = start(rig.registry.confirm_alarm(PHONE, 0, 1))
    serial = conn.reply().header.serial
    rig.clock.advance(29)
    assert outcome == []
    rig.clock.advance(2)
    (failure,) = outcome
    assert failure.check(TerminalTimeout)
    assert conn.protocol._pending == {}
    conn.send(terminal.response(serial, m.ALARM_CONFIRMATION, 0))  # late answer: ignored quietly
    assert not conn.closed


def test_disconnect_fails_pending_commands_and_unregisters():
    rig, conn, _terminal = connected()
    outcome = start(rig.registry.query_position(PHONE))
    conn.protocol.connectionLost(None)
    (failure,) = outcome
    assert failure.check(TerminalDisconnected)
    assert not rig.registry.is_connected(PHONE) and rig.registry.connected() == []


def test_reconnect_replaces_the_session_and_the_old_one_does_not_unregister_it():
    rig, old, _terminal = connected()
    new = rig.connect()
    new.login(TerminalIdentity(PHONE))
    old.protocol.connectionLost(None)
    assert rig.registry.is_connected(PHONE) and len(rig.registry) == 1
    start(rig.registry.send_text(PHONE, "x"))
    assert new.reply().header.msg_id == m.TEXT_MESSAGE


def test_text_that_gbk_cannot_carry_fails_before_sending():
    rig, conn, _terminal = connected()
    (failure,) = start(rig.registry.send_text(PHONE, "emoji \U0001f600"))
    assert failure.check(UnicodeEncodeError) and conn.replies() == []


@pytest.mark.parametrize("serial", [-1, 0x10000])
def test_alarm_serial_must_be_a_word(serial):
    rig, _conn, _terminal = connected()
    (failure,) = start(rig.registry.confirm_alarm(PHONE, serial, 1))
    assert failure.check(ValueError)
