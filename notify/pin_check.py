"""The PIN check of an owner verification call, as an explicit state machine.

The owner gets three attempts. What the owner keys in arrives as inputs — a right PIN, a wrong PIN,
nothing at all, ``9`` (not me / help), ``0`` (operator), or a hang-up — and the machine answers with
outputs only: ask again, or finish with an outcome. The call adapter (``notify.verification``) turns
DTMF and call events into these inputs and plays what the outputs ask for.
"""

from __future__ import annotations

from collections.abc import Callable
from enum import StrEnum

from automat import MethodicalMachine


class VerificationOutcome(StrEnum):
    VERIFIED = "verified"
    DENIED = "denied"  # the owner pressed 9: not me, or I need help
    OPERATOR = "operator"  # the owner pressed 0
    PIN_FAILED = "pin_failed"  # three wrong or missing PINs
    NO_ANSWER = "no_answer"
    BUSY = "busy"
    INVALID_NUMBER = "invalid_number"
    FAILED = "failed"  # anything else: rejected, unavailable, hung up mid-check, network trouble


class PinCheck:
    """Feed inputs; ``ask_again(attempt)`` and ``finish(outcome)`` are the side effects, injected."""

    _machine = MethodicalMachine()

    def __init__(self, ask_again: Callable[[int], None], finish: Callable[[VerificationOutcome], None]) -> None:
        self._ask_again = ask_again
        self._finish = finish

    # -- inputs -------------------------------------------------------------------------------
    @_machine.input()
    def pin_right(self):
        "The owner keyed the vehicle's PIN."

    @_machine.input()
    def pin_wrong(self):
        "The owner keyed something that is not the PIN."

    @_machine.input()
    def no_input(self):
        "Nothing was keyed before the timeout."

    @_machine.input()
    def pressed_nine(self):
        "Not me, or I need help."

    @_machine.input()
    def pressed_zero(self):
        "Put me through to an operator."

    @_machine.input()
    def hung_up(self):
        "The owner hung up before the check finished."

    # -- states -------------------------------------------------------------------------------
    @_machine.state(initial=True)
    def first_attempt(self):
        "Waiting for the first PIN."

    @_machine.state()
    def second_attempt(self):
        "One wrong or missing PIN so far."

    @_machine.state()
    def third_attempt(self):
        "Two wrong or missing PINs so far; the last chance."

    @_machine.state()
    def finished(self):
        "An outcome was given; further inputs are ignored."

    # -- outputs ------------------------------------------------------------------------------
    @_machine.output()
    def _ask_second(self):
        self._ask_again(2)

    @_machine.output()
    def _ask_third(self):
        self._ask_again(3)

    @_machine.output()
    def _verified(self):
        self._finish(VerificationOutcome.VERIFIED)

    @_machine.output()
    def _denied(self):
        self._finish(VerificationOutcome.DENIED)

    @_machine.output()
    def _operator(self):
        self._finish(VerificationOutcome.OPERATOR)

    @_machine.output()
    def _pin_failed(self):
        self._finish(VerificationOutcome.PIN_FAILED)

    @_machine.output()
    def _failed(self):
        self._finish(VerificationOutcome.FAILED)

    # -- transitions --------------------------------------------------------------------------
    for _state, _next, _ask in ((first_attempt, second_attempt, _ask_second),
                                (second_attempt, third_attempt, _ask_third)):
        _state.upon(pin_right, enter=finished, outputs=[_verified])
        _state.upon(pin_wrong, enter=_next, outputs=[_ask])
        _state.upon(no_input, enter=_next, outputs=[_ask])
        _state.upon(pressed_nine, enter=finished, outputs=[_denied])
        _state.upon(pressed_zero, enter=finished, outputs=[_operator])
        _state.upon(hung_up, enter=finished, outputs=[_failed])
    third_attempt.upon(pin_right, enter=finished, outputs=[_verified])
    third_attempt.upon(pin_wrong, enter=finished, outputs=[_pin_failed])
    third_attempt.upon(no_input, enter=finished, outputs=[_pin_failed])
    third_attempt.upon(pressed_nine, enter=finished, outputs=[_denied])
    third_attempt.upon(pressed_zero, enter=finished, outputs=[_operator])
    third_attempt.upon(hung_up, enter=finished, outputs=[_failed])
    for _input in (pin_right, pin_wrong, no_input, pressed_nine, pressed_zero, hung_up):
        finished.upon(_input, enter=finished, outputs=[])
    del _state, _next, _ask, _input
