import inspect

from hypothesis import given, settings
from hypothesis import strategies as st
from twisted.logger import globalLogPublisher

from ingest.jt808 import messages as m
from ingest.jt808.codec import build_packet
from ingest.jt808.terminal import (
    TerminalIdentity,
    authentication_body,
    batch_body,
    location_body,
    registration_body,
)
from ingest.limits import ConnectionLimits
from ingest.sink import IngestSink
from tests.ingest.jt808.fakes import FakeSink, known
from tests.ingest.jt808.rig import WHEN, ServerRig, ack_of, location

PHONE = "13912345678"


def fleet_rig(*phones: str, lenient: bool = False, **limits) -> ServerRig:
    sink = FakeSink({phone: known(phone, lenient=lenient) for phone in phones or (PHONE,)})
    return ServerRig(sink, ConnectionLimits(**limits))


def test_register_authenticate_report_2013():
    rig = fleet_rig()
    conn = rig.connect()
    terminal = TerminalIdentity("0" + PHONE)  # leading zeros are not significant
    code = conn.login(terminal)
    assert rig.sink.fleet[PHONE].auth_code == code and len(code) == 16
    assert rig.registry.is_connected(PHONE)
    conn.send(location(terminal, alarm=1, serial=0x7E))
    ack = conn.reply()
    assert ack.header.phone == "013912345678" and not ack.header.is_2019
    assert ack_of(ack) == m.TerminalResponse(0x7E, m.LOCATION, m.RESULT_OK)
    (report,) = rig.sink.reports
    assert report.terminal_id == PHONE and report.alarms == ("sos",) and report.time == WHEN
    assert report.raw_alarms["jt808_serial"] == 0x7E


def test_2019_terminal_gets_2019_replies():
    rig = fleet_rig()
    conn = rig.connect()
    terminal = TerminalIdentity(PHONE, is_2019=True, version=2)
    conn.login(terminal)
    conn.send(location(terminal, alarm=1 << 20, items=[(0x12, b"\x01\x00\x00\x00\x07\x01")]))
    ack = conn.reply()
    assert ack.header.is_2019 and ack.header.version == 2 and ack.header.phone == "00000000013912345678"
    report = rig.sink.reports[0]
    assert report.alarms == ("geofence",) and report.extras["geofence_direction"] == "exit"


def test_platform_serial_counts_per_connection_and_wraps():
    rig = fleet_rig()
    conn = rig.connect()
    terminal = TerminalIdentity(PHONE)
    conn.login(terminal)  # used serials 0 and 1
    conn.send(location(terminal))
    assert conn.reply().header.serial == 2
    conn.protocol._serial = 0xFFFF
    conn.send(terminal.packet(m.HEARTBEAT, b""))
    conn.send(terminal.packet(m.HEARTBEAT, b""))
    assert [p.header.serial for p in conn.replies()] == [0xFFFF, 0]
    assert rig.connect().protocol._serial == 0  # a new connection starts its own counter


def test_unknown_terminal_is_refused_registration():
    rig = ServerRig(FakeSink())
    conn = rig.connect()
    terminal = TerminalIdentity(PHONE)
    conn.send(terminal.packet(m.REGISTER, registration_body(is_2019=False)))
    answer = conn.reply()
    assert answer.header.msg_id == m.REGISTER_RESPONSE and answer.body == bytes.fromhex("0000") + b"\x04"
    conn.send(terminal.packet(m.AUTHENTICATE, b"GUESS"))
    assert ack_of(conn.reply()).result == m.RESULT_FAIL
    assert not conn.closed


def test_accept_unknown_serves_any_terminal_and_any_code():
    rig = ServerRig(FakeSink(), ConnectionLimits(accept_unknown=True))
    conn = rig.connect()
    terminal = TerminalIdentity(PHONE)
    conn.login(terminal)
    conn.send(terminal.packet(m.AUTHENTICATE, b"ANYTHING"))
    assert ack_of(conn.reply()).result == m.RESULT_OK
    conn.send(location(terminal))
    assert ack_of(conn.reply()).result == m.RESULT_OK and len(rig.sink.reports) == 1


def test_wrong_code_and_messages_before_authentication_are_refused():
    rig = fleet_rig()
    rig.sink.fleet[PHONE] = known(PHONE, auth_code="RIGHT")
    conn = rig.connect()
    terminal = TerminalIdentity(PHONE)
    conn.send(terminal.packet(m.AUTHENTICATE, b"WRONG"))
    assert ack_of(conn.reply()).result == m.RESULT_FAIL
    for wire in (location(terminal), terminal.packet(m.HEARTBEAT, b"")):
        conn.send(wire)
        assert ack_of(conn.reply()).result == m.RESULT_FAIL
    assert rig.sink.reports == [] and not rig.registry.is_connected(PHONE)
    conn.send(terminal.packet(m.AUTHENTICATE, b"RIGHT"))
    assert ack_of(conn.reply()).result == m.RESULT_OK


def test_a_connection_only_speaks_for_the_terminal_it_authenticated():
    rig = fleet_rig(PHONE, "13900000001")
    conn = rig.connect()
    conn.login(TerminalIdentity(PHONE))
    conn.send(location(TerminalIdentity("13900000001")))
    assert ack_of(conn.reply()).result == m.RESULT_FAIL and rig.sink.reports == []


def test_no_ack_before_submit_resolves_and_order_is_kept():
    rig = fleet_rig()
    conn = rig.connect()
    terminal = TerminalIdentity(PHONE)
    conn.login(terminal)
    rig.sink.hold_submits = True
    conn.send(location(terminal, serial=10) + location(terminal, serial=11))
    assert conn.replies() == []  # first submit pending, second frame waits behind it
    assert len(rig.sink.held) == 1
    rig.sink.release()
    assert [ack_of(p).reply_serial for p in conn.replies()] == [10]
    rig.sink.release()
    assert [ack_of(p).reply_serial for p in conn.replies()] == [11]
    assert [r.raw_alarms["jt808_serial"] for r in rig.sink.reports] == [10, 11]


def test_failed_submit_is_not_acked_and_the_connection_survives():
    rig = fleet_rig()
    conn = rig.connect()
    terminal = TerminalIdentity(PHONE)
    conn.login(terminal)
    rig.sink.fail_submits = 1
    conn.send(location(terminal, serial=20))
    assert conn.replies() == [] and not conn.closed
    conn.send(location(terminal, serial=20))  # the terminal resends
    assert ack_of(conn.reply()).reply_serial == 20
    assert rig.factory.stats.submit_failures == 1 and len(rig.sink.reports) == 1


def test_submit_that_fails_later_is_not_acked_and_processing_goes_on():
    rig = fleet_rig()
    conn = rig.connect()
    terminal = TerminalIdentity(PHONE)
    conn.login(terminal)
    rig.sink.hold_submits = True
    rig.sink.fail_submits = 1
    conn.send(location(terminal, serial=21) + location(terminal, serial=22))
    rig.sink.release()  # the first submit fails after suspending
    assert conn.replies() == []
    rig.sink.release()
    assert [ack_of(p).reply_serial for p in conn.replies()] == [22]
    assert rig.factory.stats.submit_failures == 1 and not conn.closed


def test_a_sink_awaiting_something_else_than_a_deferred_does_not_stall_the_connection():
    class AsyncioStyleSink(FakeSink):
        async def submit(self, reports):
            class Foreign:
                def __await__(self):
                    yield "not a deferred"

            await Foreign()

    rig = ServerRig(AsyncioStyleSink({PHONE: known(PHONE)}))
    conn = rig.connect()
    terminal = TerminalIdentity(PHONE)
    conn.login(terminal)
    conn.send(location(terminal, serial=23))
    assert conn.replies() == []  # submit raised: no ack
    conn.send(terminal.packet(m.HEARTBEAT, b"", serial=24))
    assert ack_of(conn.reply()).reply_serial == 24


def test_stream_segmentation_escapes_and_a_bad_checksum_between_good_frames():
    for is_2019 in (False, True):
        rig = fleet_rig()
        conn = rig.connect()
        terminal = TerminalIdentity(PHONE, is_2019=is_2019)
        conn.login(terminal)
        good1 = location(terminal, serial=0x7E)  # the serial is escaped on the wire
        bad = bytearray(location(terminal, serial=0x30))
        bad[-2] ^= 0x01  # corrupt the check code
        good2 = location(terminal, serial=0x7D, items=[(0x02, b"\x00\x7d")])
        stream = b"\x00junk" + good1 + bytes(bad) + good2 + good1
        assert b"\x7d\x02" in good1 and b"\x7d\x01" in good2
        for n in range(0, len(stream), 5):  # frames split across segments
            conn.send(stream[n:n + 5])
        acks = [ack_of(p) for p in conn.replies()]
        assert [(a.reply_serial, a.result) for a in acks] == [
            (0x7E, m.RESULT_OK), (0x30, m.RESULT_MESSAGE_ERROR), (0x7D, m.RESULT_OK), (0x7E, m.RESULT_OK)]
        assert [r.raw_alarms["jt808_serial"] for r in rig.sink.reports] == [0x7E, 0x7D, 0x7E]
        assert rig.sink.reports[1].extras["fuel_l"] == 12.5
        # Bad: the junk between two frames (unanswerable) and the bad check code (answered).
        assert not conn.closed and conn.protocol.bad_frames == 2


def test_several_frames_in_one_segment_and_batch_upload():
    rig = fleet_rig()
    conn = rig.connect()
    terminal = TerminalIdentity(PHONE)
    conn.login(terminal)
    good = location_body(lat=1, lon=2, time=WHEN)
    batch = terminal.packet(m.BATCH_LOCATION, batch_body([good, b"bad", good], data_type=1), serial=40)
    conn.send(terminal.packet(m.HEARTBEAT, b"", serial=39) + batch + terminal.packet(m.LOGOUT, b"", serial=41))
    acks = [ack_of(p) for p in conn.replies()]
    assert [(a.reply_id, a.reply_serial, a.result) for a in acks] == [
        (m.HEARTBEAT, 39, 0), (m.BATCH_LOCATION, 40, 0), (m.LOGOUT, 41, 0)]
    assert rig.sink.submitted[0] and len(rig.sink.submitted[0]) == 2
    assert all(r.extras["backfill"] for r in rig.sink.reports)
    assert not rig.registry.is_connected(PHONE)
    conn.send(location(terminal))  # logged out: refused until it authenticates again
    assert ack_of(conn.reply()).result == m.RESULT_FAIL


def test_unsupported_and_malformed_messages():
    rig = fleet_rig()
    conn = rig.connect()
    terminal = TerminalIdentity(PHONE)
    conn.login(terminal)
    conn.send(terminal.packet(0x0800, b"\x01abc", serial=50))  # multimedia event: not served
    assert ack_of(conn.reply()) == m.TerminalResponse(50, 0x0800, m.RESULT_UNSUPPORTED)
    conn.send(terminal.packet(m.LOCATION, b"\x00" * 10, serial=51))
    assert ack_of(conn.reply()) == m.TerminalResponse(51, m.LOCATION, m.RESULT_MESSAGE_ERROR)
    encrypted = bytearray(location(terminal, serial=52))
    encrypted[3] |= 0x04  # attribute bit 10: RSA
    encrypted[-2] ^= 0x04
    conn.send(bytes(encrypted))
    assert ack_of(conn.reply()).result == m.RESULT_UNSUPPORTED
    assert rig.sink.reports == []


def test_split_location_is_reassembled_then_acked():
    rig = fleet_rig()
    conn = rig.connect()
    terminal = TerminalIdentity(PHONE)
    conn.login(terminal)
    body = location_body(lat=3, lon=4, time=WHEN, items=[(0x31, b"\x07")])
    common = dict(phone_bcd=terminal.phone_bcd, version=None, total=2)
    conn.send(build_packet(m.LOCATION, body[:20], serial=60, index=1, **common))
    assert ack_of(conn.reply()) == m.TerminalResponse(60, m.LOCATION, 0)
    assert rig.sink.reports == []
    conn.send(build_packet(m.LOCATION, body[20:], serial=61, index=2, **common))
    assert ack_of(conn.reply()).reply_serial == 61
    assert rig.sink.reports[0].fix.satellites == 7


def test_subpackages_from_an_unauthenticated_peer_are_refused_not_collected():
    rig = fleet_rig()
    conn = rig.connect()
    terminal = TerminalIdentity(PHONE)
    conn.send(build_packet(0x0801, b"x" * 500, phone_bcd=terminal.phone_bcd, serial=1, total=9, index=1))
    assert ack_of(conn.reply()).result == m.RESULT_FAIL
    assert conn.protocol.held_subpackage_bytes == 0


def test_missing_subpackage_is_requested_again():
    rig = fleet_rig()
    conn = rig.connect()
    terminal = TerminalIdentity(PHONE)
    conn.login(terminal)
    common = dict(phone_bcd=terminal.phone_bcd, version=None, total=3)
    conn.send(build_packet(0x0801, b"a", serial=70, index=1, **common))
    conn.replies()
    conn.send(build_packet(0x0801, b"c", serial=72, index=3, **common))
    resend = conn.reply()
    assert resend.header.msg_id == m.RESEND_REQUEST and resend.body == bytes.fromhex("0046010002")


def test_bad_frames_close_the_connection_at_the_limit():
    rig = fleet_rig(max_bad_frames=3)
    conn = rig.connect()
    other = rig.connect()
    other.login(TerminalIdentity(PHONE))
    conn.send(b"\x7e\x01\x02\x7e\x7e\x7d\x05\x7e")
    assert not conn.closed
    conn.send(b"\x7e" + b"\x00" * 20 + b"\x7e")
    assert conn.closed and rig.factory.stats.bad_frames == 3
    other.send(location(TerminalIdentity(PHONE)))  # the other connection is untouched
    assert ack_of(other.reply()).result == m.RESULT_OK and not other.closed


def test_idle_connection_is_closed_on_the_clock():
    rig = fleet_rig(idle_timeout=100)
    conn = rig.connect()
    terminal = TerminalIdentity(PHONE)
    rig.clock.advance(60)
    conn.send(terminal.packet(m.HEARTBEAT, b""))
    rig.clock.advance(60)
    assert not conn.closed  # data at t=60 restarted the idle time
    rig.clock.advance(41)
    assert conn.closed


def test_lenient_checksum_terminal_is_served():
    rig = fleet_rig(lenient=True)
    conn = rig.connect()
    terminal = TerminalIdentity(PHONE)
    register = bytearray(terminal.packet(m.REGISTER, registration_body(is_2019=False)))
    register[-2] ^= 0x10
    conn.send(bytes(register))
    code = conn.reply().body[3:].decode()
    conn.send(terminal.packet(m.AUTHENTICATE, authentication_body(code, is_2019=False)))
    conn.replies()
    bad = bytearray(location(terminal, serial=80))
    bad[-2] ^= 0x10
    conn.send(bytes(bad))
    assert ack_of(conn.reply()).result == m.RESULT_OK and len(rig.sink.reports) == 1


def test_backlog_over_the_buffer_limit_pauses_reading():
    rig = fleet_rig(max_buffer_bytes=200)
    conn = rig.connect()
    terminal = TerminalIdentity(PHONE)
    conn.login(terminal)
    rig.sink.hold_submits = True
    conn.send(b"".join(location(terminal) for _ in range(6)))
    assert conn.transport.producerState == "paused"
    for _ in range(6):
        rig.sink.release()
    assert conn.transport.producerState == "producing" and len(rig.sink.reports) == 6


def test_sink_errors_and_garbage_never_escape_data_received():
    class BrokenSink(FakeSink):
        async def lookup_terminal(self, protocol, terminal_id):
            raise RuntimeError("database down")

    rig = ServerRig(BrokenSink())
    conn = rig.connect()
    terminal = TerminalIdentity(PHONE)
    conn.send(terminal.packet(m.REGISTER, registration_body(is_2019=False)))
    conn.send(bytes(range(256)) * 4)
    assert conn.replies() == [] and not conn.closed


def test_connection_lost_discards_the_backlog_and_unregisters():
    rig = fleet_rig()
    conn = rig.connect()
    terminal = TerminalIdentity(PHONE)
    conn.login(terminal)
    rig.sink.hold_submits = True
    conn.send(location(terminal) + location(terminal))
    conn.protocol.connectionLost(None)
    rig.sink.release()
    assert len(rig.sink.reports) == 1 and conn.replies() == []
    assert not rig.registry.is_connected(PHONE)


def test_the_fake_sink_has_the_real_sink_interface():
    for name in ("lookup_terminal", "set_auth_code", "submit"):
        real, fake = getattr(IngestSink, name), getattr(FakeSink, name)
        assert inspect.iscoroutinefunction(fake)
        assert list(inspect.signature(real).parameters) == list(inspect.signature(fake).parameters)


@settings(max_examples=150, deadline=None)
@given(
    st.lists(st.one_of(st.binary(max_size=120), st.sampled_from(["good", "mutated"])), max_size=12),
    st.randoms(use_true_random=False),
)
def test_fuzzed_streams_never_raise_stay_bounded_and_recover(pieces, rnd):
    failures = []

    def observe(event):
        if "log_failure" in event:
            failures.append(event)

    globalLogPublisher.addObserver(observe)
    try:
        rig = fleet_rig(max_frame_bytes=256, max_buffer_bytes=2048, max_bad_frames=1000)
        conn = rig.connect()
        terminal = TerminalIdentity(PHONE)
        conn.login(terminal)
        for piece in pieces:
            if piece == "good":
                piece = location(terminal)
            elif piece == "mutated":
                frame = bytearray(location(terminal))
                for _ in range(rnd.randint(1, 4)):
                    frame[rnd.randrange(len(frame))] = rnd.randrange(256)
                piece = bytes(frame)
            conn.send(piece)
            protocol = conn.protocol
            assert protocol._framer.pending_bytes <= 256
            assert protocol._queued_bytes <= 2048 + len(piece)
        conn.transport.clear()
        conn.send(b"\x7e\x7e" + location(terminal, serial=999))  # resync, then a good frame is served
        assert any(ack_of(p).reply_serial == 999 for p in conn.replies())
    finally:
        globalLogPublisher.removeObserver(observe)
    assert failures == []
