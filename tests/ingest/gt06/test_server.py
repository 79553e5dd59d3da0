"""End-to-end over StringTransport: login, acks after submit, ordering, CRC policy, limits."""

from __future__ import annotations

import inspect
from datetime import datetime, timedelta, timezone

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from twisted.internet.task import Clock
from twisted.internet.testing import StringTransport

from ingest.gt06 import server as server_module
from ingest.gt06.decoder import HANDLERS
from ingest.gt06.framing import build_frame
from ingest.gt06.server import Gt06ServerFactory
from ingest.limits import ConnectionLimits
from ingest.sink import IngestSink

from .fakes import FakeSink

IMEI = "123456789012345"
LOGIN = bytes.fromhex("78780D01012345678901234500018CDD0D0A")
LOGIN_ACK = bytes.fromhex("787805010001D9DC0D0A")
LOCATION = bytes.fromhex("78781F120B081D112E10CC027AC7EB0C46584900148F01CC00287D001FB8000373770D0A")
HEARTBEAT = bytes.fromhex("78780A134004040001000FDCEE0D0A")
HEARTBEAT_ACK = bytes.fromhex("78780513000F008F0D0A")
ALARM = bytes.fromhex("787825160B051B093523CF027AC8360C4657B30014000901CC00266A001E1740050400020008D7B10D0A")
ALARM_ACK = bytes.fromhex("7878051600084D8D0D0A")
SOS = bytes.fromhex("787825160B051B093523CF027AC8360C4657B30014000901CC00266A001E17620504010200098EBB0D0A")
SOS_ACK = bytes.fromhex("7878051600095C040D0A")
BAD_CRC = HEARTBEAT[:-4] + b"\x00\x00\r\n"


def _connect(sink: FakeSink, limits: ConnectionLimits | None = None, **kw):
    clock = Clock()
    clock.advance(1_700_000_000)
    factory = Gt06ServerFactory(sink, clock, limits or ConnectionLimits(), **kw)
    proto = factory.buildProtocol(None)
    transport = StringTransport()
    proto.makeConnection(transport)
    return proto, transport, clock, factory


def _written(transport: StringTransport) -> bytes:
    data = transport.value()
    transport.clear()
    return data


def test_fake_sink_matches_the_real_interface():
    for name in ("lookup_terminal", "set_auth_code", "submit"):
        real, fake = getattr(IngestSink, name), getattr(FakeSink, name)
        assert inspect.signature(real).parameters.keys() == inspect.signature(fake).parameters.keys()
        assert inspect.iscoroutinefunction(fake)


def test_split_batched_garbage_and_bad_crc_stream():
    sink = FakeSink()
    proto, transport, _, _ = _connect(sink)
    stream = LOGIN + LOCATION + b"\x00garbage\xff" + HEARTBEAT + BAD_CRC + ALARM + SOS
    for i in range(0, len(stream), 7):  # 7-byte segments: every frame is split somewhere
        proto.dataReceived(stream[i:i + 7])
    assert _written(transport) == LOGIN_ACK + HEARTBEAT_ACK + ALARM_ACK + SOS_ACK
    assert [r.raw_alarms["gt06_protocol"] for r in sink.reports] == [0x12, 0x13, 0x16, 0x16]
    assert sink.reports[-1].alarms == ("sos",) and all(r.terminal_id == IMEI for r in sink.reports)
    assert proto.bad_frames == 2  # the garbage run and the bad CRC
    assert not transport.disconnecting


def test_several_frames_in_one_segment():
    sink = FakeSink()
    proto, transport, _, _ = _connect(sink)
    proto.dataReceived(LOGIN + HEARTBEAT + ALARM + SOS)
    assert _written(transport) == LOGIN_ACK + HEARTBEAT_ACK + ALARM_ACK + SOS_ACK
    assert len(sink.reports) == 3


def test_frames_before_login_are_dropped():
    sink = FakeSink()
    proto, transport, _, _ = _connect(sink)
    proto.dataReceived(HEARTBEAT + ALARM)
    assert _written(transport) == b"" and sink.reports == []
    proto.dataReceived(LOGIN + HEARTBEAT)
    assert _written(transport) == LOGIN_ACK + HEARTBEAT_ACK


def test_unknown_imei_is_closed_unless_accepted():
    proto, transport, _, _ = _connect(FakeSink(known=()))
    proto.dataReceived(LOGIN)
    assert transport.value() == b"" and transport.disconnecting
    sink = FakeSink(known=())
    proto, transport, _, _ = _connect(sink, ConnectionLimits(accept_unknown=True))
    proto.dataReceived(LOGIN + HEARTBEAT)
    assert transport.value() == LOGIN_ACK + HEARTBEAT_ACK and len(sink.reports) == 1


def test_lenient_terminal_accepts_bad_crc():
    sink = FakeSink(lenient=(IMEI,))
    proto, transport, _, _ = _connect(sink)
    proto.dataReceived(LOGIN[:-4] + b"\xbe\xef\r\n" + BAD_CRC)
    assert _written(transport) == LOGIN_ACK + HEARTBEAT_ACK
    assert len(sink.reports) == 1 and proto.bad_frames == 0


def test_bad_crc_login_of_a_strict_terminal_is_not_acked():
    sink = FakeSink()
    proto, transport, _, _ = _connect(sink)
    proto.dataReceived(LOGIN[:-4] + b"\xbe\xef\r\n" + HEARTBEAT)
    assert transport.value() == b"" and proto.bad_frames == 2


def test_ack_only_after_submit_and_frames_stay_in_order():
    sink = FakeSink()
    proto, transport, _, _ = _connect(sink)
    proto.dataReceived(LOGIN)
    _written(transport)
    sink.hold = True
    proto.dataReceived(HEARTBEAT + ALARM)
    assert transport.value() == b"" and len(sink.gates) == 1  # the alarm waits behind the heartbeat
    sink.gates[0].callback(None)
    assert _written(transport) == HEARTBEAT_ACK and len(sink.gates) == 2
    sink.gates[1].callback(None)
    assert _written(transport) == ALARM_ACK
    assert [r.raw_alarms["gt06_protocol"] for r in sink.reports] == [0x13, 0x16]


def test_failed_submit_sends_no_ack_and_keeps_the_connection():
    sink = FakeSink()
    proto, transport, _, _ = _connect(sink)
    proto.dataReceived(LOGIN)
    _written(transport)
    sink.fail_submit = True
    proto.dataReceived(ALARM)
    assert transport.value() == b"" and not transport.disconnecting
    sink.fail_submit = False
    proto.dataReceived(ALARM)  # the terminal resends
    assert _written(transport) == ALARM_ACK and len(sink.reports) == 1


def test_failed_lookup_sends_no_login_ack():
    sink = FakeSink()
    sink.fail_lookup = True
    proto, transport, _, _ = _connect(sink)
    proto.dataReceived(LOGIN)
    assert transport.value() == b"" and not transport.disconnecting


def test_idle_timeout_uses_the_injected_clock():
    proto, transport, clock, _ = _connect(FakeSink(), ConnectionLimits(idle_timeout=60))
    proto.dataReceived(LOGIN)
    clock.advance(59)
    proto.dataReceived(HEARTBEAT)  # activity resets the timer
    clock.advance(59)
    assert not transport.disconnecting
    clock.advance(2)
    assert transport.disconnecting


def test_too_many_bad_frames_close_the_connection():
    proto, transport, _, _ = _connect(FakeSink(), ConnectionLimits(max_bad_frames=3))
    proto.dataReceived(LOGIN + BAD_CRC + BAD_CRC)
    assert not transport.disconnecting
    proto.dataReceived(BAD_CRC)
    assert transport.disconnecting


def test_one_bad_connection_does_not_affect_another():
    sink = FakeSink()
    clock = Clock()
    factory = Gt06ServerFactory(sink, clock, ConnectionLimits(max_bad_frames=2))
    good, bad = factory.buildProtocol(None), factory.buildProtocol(None)
    good_t, bad_t = StringTransport(), StringTransport()
    good.makeConnection(good_t)
    bad.makeConnection(bad_t)
    bad.dataReceived(b"\x78\x78\x05" + b"\xff" * 200)
    good.dataReceived(LOGIN + HEARTBEAT)
    bad.dataReceived(BAD_CRC * 3)
    assert bad_t.disconnecting and not good_t.disconnecting
    assert good_t.value() == LOGIN_ACK + HEARTBEAT_ACK


def test_unexpected_errors_never_escape_data_received(monkeypatch):
    sink = FakeSink()
    proto, transport, _, _ = _connect(sink)
    proto.dataReceived(LOGIN)
    _written(transport)

    def explode(*args, **kwargs):
        raise RuntimeError("decoder bug")

    monkeypatch.setattr(server_module, "decode", explode)
    proto.dataReceived(HEARTBEAT)  # logged, not raised
    monkeypatch.undo()
    proto.dataReceived(HEARTBEAT)
    assert _written(transport) == HEARTBEAT_ACK


def test_location_echo_is_optional():
    sink = FakeSink()
    proto, transport, _, _ = _connect(sink, ack_locations=True)
    proto.dataReceived(LOGIN + LOCATION)
    assert transport.value() == LOGIN_ACK + bytes.fromhex("78780512000390 3F0D0A".replace(" ", ""))


@pytest.mark.parametrize("tz_word, server_offset, expected_hour", [
    (None, timedelta(0), 17),  # classic login, UTC default
    (None, timedelta(hours=2), 15),  # classic login, server default +02:00
    (0x3200, timedelta(hours=2), 9),  # the login's +08:00 wins
])
def test_time_zone_of_classic_packets(tz_word, server_offset, expected_hour):
    sink = FakeSink()
    proto, transport, _, _ = _connect(sink, utc_offset=server_offset)
    body = bytes.fromhex("0123456789012345")
    if tz_word is not None:
        body += b"\x70\x00" + tz_word.to_bytes(2, "big")
    proto.dataReceived(build_frame(0x01, body, 1) + LOCATION)
    assert sink.reports[0].time == datetime(2011, 8, 29, expected_hour, 46, 16, tzinfo=timezone.utc)


def test_reports_carry_the_clock_time_as_received_at():
    sink = FakeSink()
    proto, _, clock, _ = _connect(sink)
    proto.dataReceived(LOGIN + HEARTBEAT)
    assert sink.reports[0].received_at == datetime.fromtimestamp(clock.seconds(), timezone.utc)
    assert sink.reports[0].time == sink.reports[0].received_at


def test_backlog_pauses_the_socket():
    sink = FakeSink()
    proto, transport, _, _ = _connect(sink)
    proto.dataReceived(LOGIN)
    sink.hold = True
    proto.dataReceived(HEARTBEAT * (server_module.MAX_PENDING_FRAMES + 2))
    assert transport.producerState == "paused"
    sink.hold = False
    for gate in list(sink.gates):
        gate.callback(None)
    assert transport.producerState == "producing"
    assert len(sink.reports) == server_module.MAX_PENDING_FRAMES + 2


_random_frames = st.builds(lambda proto, body, ext: build_frame(proto, body, 1, extended=ext),
                           st.sampled_from(sorted(HANDLERS)), st.binary(max_size=80), st.booleans())


@settings(max_examples=300, deadline=None)
@given(st.lists(st.one_of(st.binary(max_size=60), _random_frames, st.sampled_from([HEARTBEAT, SOS])),
                max_size=25),
       st.integers(min_value=1, max_value=64), st.booleans())
def test_fuzzed_traffic_never_escapes_or_grows(parts, chunk, lenient):
    sink = FakeSink(lenient=(IMEI,) if lenient else ())
    limits = ConnectionLimits(max_bad_frames=10_000, max_frame_bytes=512, max_buffer_bytes=2048)
    proto, transport, _, _ = _connect(sink, limits)
    proto.dataReceived(LOGIN)
    stream = b"".join(parts)
    for i in range(0, len(stream), chunk):
        proto.dataReceived(stream[i:i + chunk])  # must not raise
        assert proto.framer.buffered <= 512 + chunk
    assert not proto._queue and not proto._busy  # everything handled, nothing left hanging
    assert all(r.terminal_id == IMEI for r in sink.reports)
