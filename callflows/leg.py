"""The signalling state of one call leg (one SIP dialog), as an automat state machine.

Pure: inputs are SIP and timer events already interpreted by the adapter (``callflows.sipleg``), and
every side effect is an output calling one method of ``LegEffects``. Outbound legs go
idle -> calling -> early -> connected; inbound legs idle -> offered -> connected; both end in ended,
through cancelling (our CANCEL outstanding) or hanging_up (our BYE outstanding) when we end them.
"""

from __future__ import annotations

from typing import Protocol

from automat import MethodicalMachine

from callflows.outcomes import CallOutcome, outcome_for_status


class LegEffects(Protocol):
    def send_invite(self) -> None: ...
    def start_ring_timer(self) -> None: ...
    def stop_ring_timer(self) -> None: ...
    def send_cancel(self) -> None: ...
    def send_ack(self) -> None: ...
    def send_bye(self) -> None: ...
    def accept_bye(self) -> None: ...
    def send_ringing(self) -> None: ...
    def send_answer(self) -> None: ...
    def send_final(self, status: int) -> None: ...
    def start_media(self) -> None: ...
    def stop_media(self) -> None: ...
    def connected(self) -> None: ...
    def ended(self, outcome: CallOutcome) -> None: ...


class LegMachine:
    _machine = MethodicalMachine()

    def __init__(self, effects: LegEffects):
        self._effects = effects
        self._outcome = CallOutcome.ANSWERED

    @_machine.serializer()
    def state(self, state: str) -> str:
        return state

    # -- states -----------------------------------------------------------------------------------
    @_machine.state(initial=True, serialized="idle")
    def idle(self) -> None:
        "Not started."

    @_machine.state(serialized="calling")
    def calling(self) -> None:
        "Our INVITE is out, nothing heard but 100 Trying."

    @_machine.state(serialized="early")
    def early(self) -> None:
        "The callee is ringing (180/183)."

    @_machine.state(serialized="cancelling")
    def cancelling(self) -> None:
        "Our CANCEL is out; waiting for the INVITE's final response."

    @_machine.state(serialized="offered")
    def offered(self) -> None:
        "An inbound INVITE we have not answered yet."

    @_machine.state(serialized="connected")
    def connected(self) -> None:
        "Answered; media flowing."

    @_machine.state(serialized="hanging_up")
    def hanging_up(self) -> None:
        "Our BYE is out."

    @_machine.state(serialized="ended")
    def ended(self) -> None:
        "Over; every further event is ignored."

    # -- inputs -----------------------------------------------------------------------------------
    @_machine.input()
    def place_call(self) -> None:
        "The flow dials."

    @_machine.input()
    def provisional(self) -> None:
        "180 Ringing or 183 Session Progress to our INVITE."

    @_machine.input()
    def answered(self) -> None:
        "A 2xx to our INVITE."

    @_machine.input()
    def failed(self, outcome: CallOutcome) -> None:
        "A final failure to our INVITE, or its transaction timed out."

    @_machine.input()
    def ring_timeout(self) -> None:
        "Rang too long."

    @_machine.input()
    def hangup(self) -> None:
        "The flow (or shutdown) ends the leg."

    @_machine.input()
    def offer(self) -> None:
        "An inbound INVITE was accepted for a flow."

    @_machine.input()
    def answer(self) -> None:
        "The flow answers the inbound call."

    @_machine.input()
    def reject(self, status: int) -> None:
        "The inbound call is refused with this final status."

    @_machine.input()
    def remote_cancel(self) -> None:
        "The caller cancelled before we answered."

    @_machine.input()
    def remote_bye(self) -> None:
        "The peer sent BYE."

    @_machine.input()
    def bye_finished(self) -> None:
        "Our BYE got its final response or timed out."

    @_machine.input()
    def ack_timeout(self) -> None:
        "Our 2xx was never ACKed."

    # -- outputs ----------------------------------------------------------------------------------
    @_machine.output()
    def _send_invite(self) -> None:
        self._effects.send_invite()

    @_machine.output()
    def _start_ring_timer(self) -> None:
        self._effects.start_ring_timer()

    @_machine.output()
    def _stop_ring_timer(self) -> None:
        self._effects.stop_ring_timer()

    @_machine.output()
    def _send_cancel(self) -> None:
        self._effects.send_cancel()

    @_machine.output()
    def _send_ack(self) -> None:
        self._effects.send_ack()

    @_machine.output()
    def _send_bye(self) -> None:
        self._effects.send_bye()

    @_machine.output()
    def _accept_bye(self) -> None:
        self._effects.accept_bye()

    @_machine.output()
    def _send_ringing(self) -> None:
        self._effects.send_ringing()

    @_machine.output()
    def _send_answer(self) -> None:
        self._effects.send_answer()

    @_machine.output()
    def _send_final(self, status: int) -> None:
        self._effects.send_final(status)

    @_machine.output()
    def _send_unavailable(self) -> None:
        self._effects.send_final(480)

    @_machine.output()
    def _send_terminated(self) -> None:
        self._effects.send_final(487)

    @_machine.output()
    def _start_media(self) -> None:
        self._effects.start_media()

    @_machine.output()
    def _stop_media(self) -> None:
        self._effects.stop_media()

    @_machine.output()
    def _report_connected(self) -> None:
        self._effects.connected()

    @_machine.output()
    def _remember_no_answer(self) -> None:
        self._outcome = CallOutcome.NO_ANSWER

    @_machine.output()
    def _remember_cancelled(self) -> None:
        self._outcome = CallOutcome.CANCELLED

    @_machine.output()
    def _remember_failed(self) -> None:
        self._outcome = CallOutcome.FAILED

    @_machine.output()
    def _report_failed(self, outcome: CallOutcome) -> None:
        self._effects.ended(outcome)

    @_machine.output()
    def _report_rejected(self, status: int) -> None:
        self._effects.ended(outcome_for_status(status))

    @_machine.output()
    def _report_cancelled(self) -> None:
        self._effects.ended(CallOutcome.CANCELLED)

    @_machine.output()
    def _report_remembered(self) -> None:
        self._effects.ended(self._outcome)

    # -- transitions (the whole table) ------------------------------------------------------------
    idle.upon(place_call, enter=calling, outputs=[_send_invite, _start_ring_timer])
    idle.upon(offer, enter=offered, outputs=[_send_ringing])
    idle.upon(reject, enter=ended, outputs=[_send_final, _report_rejected])
    idle.upon(hangup, enter=ended, outputs=[_report_cancelled])

    for _waiting in (calling, early):
        _waiting.upon(provisional, enter=early, outputs=[])
        _waiting.upon(answered, enter=connected,
                      outputs=[_stop_ring_timer, _send_ack, _start_media, _report_connected])
        _waiting.upon(failed, enter=ended, outputs=[_stop_ring_timer, _report_failed])
        _waiting.upon(ring_timeout, enter=cancelling, outputs=[_remember_no_answer, _send_cancel])
        _waiting.upon(hangup, enter=cancelling, outputs=[_stop_ring_timer, _remember_cancelled, _send_cancel])

    cancelling.upon(provisional, enter=cancelling, outputs=[])
    cancelling.upon(ring_timeout, enter=cancelling, outputs=[])
    cancelling.upon(hangup, enter=cancelling, outputs=[])
    # The 2xx crossed our CANCEL: the call is up, so confirm and end it at once.
    cancelling.upon(answered, enter=hanging_up, outputs=[_send_ack, _send_bye])
    cancelling.upon(failed, enter=ended, outputs=[_report_remembered])

    offered.upon(answer, enter=connected, outputs=[_send_answer, _start_media, _report_connected])
    offered.upon(reject, enter=ended, outputs=[_send_final, _report_rejected])
    offered.upon(remote_cancel, enter=ended, outputs=[_send_terminated, _report_cancelled])
    offered.upon(hangup, enter=ended, outputs=[_send_unavailable, _report_cancelled])

    connected.upon(provisional, enter=connected, outputs=[])
    connected.upon(answered, enter=connected, outputs=[])
    connected.upon(answer, enter=connected, outputs=[])
    connected.upon(remote_bye, enter=ended, outputs=[_accept_bye, _stop_media, _report_remembered])
    connected.upon(hangup, enter=hanging_up, outputs=[_stop_media, _send_bye])
    connected.upon(ack_timeout, enter=hanging_up, outputs=[_remember_failed, _stop_media, _send_bye])
    connected.upon(remote_cancel, enter=connected, outputs=[])

    hanging_up.upon(bye_finished, enter=ended, outputs=[_report_remembered])
    hanging_up.upon(remote_bye, enter=ended, outputs=[_accept_bye, _report_remembered])
    for _ignored in (hangup, answered, provisional, ring_timeout, ack_timeout, remote_cancel, failed):
        hanging_up.upon(_ignored, enter=hanging_up, outputs=[])

    for _ignored in (hangup, answered, provisional, ring_timeout, ack_timeout, remote_cancel, failed,
                     bye_finished, remote_bye, answer):
        ended.upon(_ignored, enter=ended, outputs=[])
    del _waiting, _ignored
