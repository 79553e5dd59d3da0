"""LegMachine: inputs in, exact outputs out (no SIP, no sockets)."""

from __future__ import annotations

import pytest

from callflows.leg import LegMachine
from callflows.outcomes import CallOutcome


class Effects:
    """Records every output the machine asks for."""

    def __init__(self):
        self.calls = []

    def __getattr__(self, name):
        if name.startswith("_"):
            raise AttributeError(name)
        return lambda *args: self.calls.append((name, *args))


def machine(*inputs):
    effects = Effects()
    leg = LegMachine(effects)
    for name, *args in inputs:
        getattr(leg, name)(*args)
    effects.calls.clear()
    return leg, effects


def test_outbound_answered_then_hung_up_by_us():
    leg, fx = machine()
    leg.place_call()
    assert fx.calls == [("send_invite",), ("start_ring_timer",)]
    leg.provisional()
    leg.answered()
    assert fx.calls[2:] == [("stop_ring_timer",), ("send_ack",), ("start_media",), ("connected",)]
    fx.calls.clear()
    leg.hangup()
    assert fx.calls == [("stop_media",), ("send_bye",)] and leg.state() == "hanging_up"
    leg.hangup()  # twice: nothing more
    leg.bye_finished()
    assert fx.calls[2:] == [("ended", CallOutcome.ANSWERED)] and leg.state() == "ended"


@pytest.mark.parametrize("outcome", list(CallOutcome))
def test_outbound_failure_reports_its_outcome(outcome):
    leg, fx = machine(("place_call",), ("provisional",))
    leg.failed(outcome)
    assert fx.calls == [("stop_ring_timer",), ("ended", outcome)]


def test_ring_timeout_cancels_then_487_gives_no_answer():
    leg, fx = machine(("place_call",), ("provisional",))
    leg.ring_timeout()
    assert fx.calls == [("send_cancel",)] and leg.state() == "cancelling"
    leg.failed(CallOutcome.FAILED)  # the 487 (any final failure) after our CANCEL
    assert fx.calls[-1] == ("ended", CallOutcome.NO_ANSWER)


def test_flow_hangs_up_while_ringing_gives_cancelled():
    leg, fx = machine(("place_call",))
    leg.hangup()
    assert fx.calls == [("stop_ring_timer",), ("send_cancel",)]
    leg.failed(CallOutcome.FAILED)
    assert fx.calls[-1] == ("ended", CallOutcome.CANCELLED)


def test_answer_crossing_our_cancel_is_acked_and_byed():
    leg, fx = machine(("place_call",), ("ring_timeout",))
    leg.answered()
    assert fx.calls == [("send_ack",), ("send_bye",)]
    leg.bye_finished()
    assert fx.calls[-1] == ("ended", CallOutcome.NO_ANSWER)


def test_inbound_answer_and_remote_bye():
    leg, fx = machine()
    leg.offer()
    assert fx.calls == [("send_ringing",)]
    leg.answer()
    assert fx.calls[1:] == [("send_answer",), ("start_media",), ("connected",)]
    fx.calls.clear()
    leg.remote_bye()
    assert fx.calls == [("accept_bye",), ("stop_media",), ("ended", CallOutcome.ANSWERED)]


@pytest.mark.parametrize("status,outcome", [(486, CallOutcome.BUSY), (404, CallOutcome.INVALID_NUMBER),
                                            (603, CallOutcome.REJECTED), (500, CallOutcome.FAILED)])
def test_inbound_reject(status, outcome):
    leg, fx = machine(("offer",))
    leg.reject(status)
    assert fx.calls == [("send_final", status), ("ended", outcome)]


def test_inbound_cancel_and_unanswered_hangup():
    leg, fx = machine(("offer",))
    leg.remote_cancel()
    assert fx.calls == [("send_final", 487), ("ended", CallOutcome.CANCELLED)]
    leg, fx = machine(("offer",))
    leg.hangup()
    assert fx.calls == [("send_final", 480), ("ended", CallOutcome.CANCELLED)]


def test_ack_timeout_hangs_up_as_failed_and_bye_glare():
    leg, fx = machine(("offer",), ("answer",))
    leg.ack_timeout()
    assert fx.calls == [("stop_media",), ("send_bye",)]
    leg.remote_bye()  # their BYE crossed ours
    assert fx.calls[-2:] == [("accept_bye",), ("ended", CallOutcome.FAILED)]
    for late in ("remote_bye", "bye_finished", "hangup", "answered"):
        getattr(leg, late)()
    assert len(fx.calls) == 4 and leg.state() == "ended"
