"""The Call API and CallMachine, on a fake leg and a task.Clock."""

from __future__ import annotations

from pathlib import Path

import pytest
from twisted.internet.defer import Deferred, succeed
from twisted.internet.task import Clock

from callflows.call import Call, CallContext
from callflows.calllog import InMemoryCallLog
from callflows.outcomes import CallEnded, CallOutcome
from callflows.prompts import Prompt


class FakeStream:
    def __init__(self):
        self.codec = "PCMU"
        self.te_payload_type = 101
        self.recording = None
        self.relay_to = None
        self.bridged = False
        self.playing: Deferred | None = None
        self.sent_digits = []

    def play(self, audio):
        self.playing = Deferred()
        return self.playing

    def stop_playback(self):
        if self.playing is not None and not self.playing.called:
            self.playing.callback(False)

    def release_waiters(self):
        self.stop_playback()

    def set_bridged(self, bridged):
        self.bridged = bridged

    def send_digits(self, digits):
        self.sent_digits.append(digits)
        return succeed(None)


class FakeLeg:
    def __init__(self, call_id="c1", direction="inbound"):
        self.call_id = call_id
        self.direction = direction
        self.local_number = "4000"
        self.remote_number = "5551234"
        self.stream = FakeStream()
        self.fed = []

    def _feed(self, name, *args):
        self.fed.append(name)

    def hangup(self):
        self.fed.append("hangup")


@pytest.fixture
def ctx(tmp_path):
    return CallContext(Clock(), InMemoryCallLog(), tmp_path / "rec", None)


def run(coro) -> Deferred:
    return Deferred.fromCoroutine(coro)


def failure_of(d: Deferred) -> BaseException:
    assert d.called, "not finished"
    failure = d.result
    d.addErrback(lambda f: None)
    return failure.value


def connected(ctx, call_id="c1"):
    call = Call(FakeLeg(call_id), ctx)
    call.leg_connected()
    return call


def test_answer_feeds_the_leg_and_waits_for_connected(ctx):
    call = Call(FakeLeg(), ctx)
    answered = run(call.answer())
    assert call.leg.fed == ["answer"] and not answered.called
    ctx.clock.advance(2)
    call.leg_connected()
    assert answered.called and call.state() == "connected"
    record = ctx.call_log.calls["c1"]
    assert (record.direction, record.from_number, record.to_number) == ("inbound", "5551234", "4000")
    assert record.answered_at.timestamp() == 2 and record.recording_path == str(call.recording.path)
    assert call.leg.stream.recording is call.recording
    assert Path(record.recording_path).parent == ctx.recordings_dir / "1970" / "01" / "01"


def test_collect_terminator_max_digits_and_typeahead(ctx):
    call = connected(ctx)
    for digit in "12#34567":
        call._digit(digit)
    assert run(call.collect(5, timeout=3)).result == "12"
    assert run(call.collect(3, timeout=3)).result == "345"
    assert run(call.collect(2, timeout=3, terminators="")).result == "67"


def test_collect_inter_digit_and_first_digit_timeouts(ctx):
    call = connected(ctx)
    got = run(call.collect(4, timeout=2, first_digit_timeout=5))
    ctx.clock.advance(4.9)
    call._digit("7")
    ctx.clock.advance(1.9)
    call._digit("8")
    ctx.clock.advance(1.9)
    assert not got.called
    ctx.clock.advance(0.2)
    assert got.result == "78"
    nothing = run(call.collect(4, timeout=2))
    ctx.clock.advance(2)
    assert nothing.result == ""
    assert ctx.clock.getDelayedCalls() == []


def test_interruptible_play_stops_on_a_digit_and_keeps_it(ctx):
    call = connected(ctx)
    played = run(call.play(Prompt.tone(400, 1), interruptible=True))
    call._digit("5")
    assert played.result is False
    assert run(call.collect(1, timeout=1)).result == "5"
    done = run(call.play(Prompt.tone(400, 1)))
    call._digit("6")  # not interruptible: keeps playing
    assert not done.called
    call.leg.stream.playing.callback(True)
    assert done.result is True


def test_ending_fails_pending_waits_and_logs(ctx):
    call = connected(ctx)
    collecting = run(call.collect(4, timeout=10))
    ended = call.wait_ended()
    ctx.clock.advance(3)
    call.leg_ended(CallOutcome.ANSWERED)
    assert isinstance(failure_of(collecting), CallEnded)
    assert ended.result == CallOutcome.ANSWERED and call.recording.closed
    record = ctx.call_log.calls["c1"]
    assert record.outcome == "answered" and record.ended_at.timestamp() == 3
    assert isinstance(failure_of(run(call.play(Prompt.silence(1)))), CallEnded)
    assert run(call.hangup()).result == CallOutcome.ANSWERED  # already over: no BYE
    assert "hangup" not in call.leg.fed


def test_unanswered_end_gives_outcome_and_no_recording(ctx):
    call = Call(FakeLeg(direction="outbound"), ctx)
    connecting = call.wait_connected()
    call.leg_ended(CallOutcome.BUSY)
    assert isinstance(failure_of(connecting), CallEnded)
    assert call.recording is None and ctx.call_log.calls["c1"].outcome == "busy"
    assert ctx.call_log.calls["c1"].from_number == "4000"  # outbound: we are the caller


def test_bridge_relays_until_one_side_ends(ctx):
    a, b = connected(ctx, "a"), connected(ctx, "b")
    bridging = run(a.bridge(b))
    assert a.state() == b.state() == "bridged"
    assert a.leg.stream.relay_to is b.leg.stream and b.leg.stream.relay_to is a.leg.stream
    assert a.leg.stream.bridged and b.leg.stream.bridged
    assert isinstance(failure_of(run(a.play(Prompt.silence(1)))), RuntimeError)
    b.leg_ended(CallOutcome.ANSWERED)
    assert bridging.called and a.state() == "connected" and a.bridged_with is None
    assert a.leg.stream.relay_to is None and not a.leg.stream.bridged


def test_bridge_refuses_a_bridged_call(ctx):
    a, b, c = connected(ctx, "a"), connected(ctx, "b"), connected(ctx, "c")
    run(a.bridge(b))
    assert isinstance(failure_of(run(c.bridge(a))), RuntimeError) and c.state() == "connected"


def test_send_digits_uses_rfc4733_when_negotiated(ctx):
    call = connected(ctx)
    assert run(call.send_digits("12")).called
    assert call.leg.stream.sent_digits == ["12"]


def test_call_log_protocol_and_in_memory_implementation():
    from callflows.calllog import CallLog

    log = InMemoryCallLog()
    assert isinstance(log, CallLog)
    assert isinstance(failure_of(run(log.update_call("nope", outcome="busy"))), KeyError)
