"""The PIN check machine: every input in every state gives exactly the expected outputs."""

import pytest

from notify.pin_check import PinCheck
from notify.pin_check import VerificationOutcome as V


def run(*inputs: str) -> list:
    out = []
    machine = PinCheck(lambda n: out.append(("ask", n)), lambda o: out.append(("finish", o)))
    for name in inputs:
        getattr(machine, name)()
    return out


@pytest.mark.parametrize("inputs, expected", [
    (["pin_right"], [("finish", V.VERIFIED)]),
    (["pin_wrong", "pin_right"], [("ask", 2), ("finish", V.VERIFIED)]),
    (["pin_wrong", "no_input", "pin_right"], [("ask", 2), ("ask", 3), ("finish", V.VERIFIED)]),
    (["pin_wrong", "pin_wrong", "pin_wrong"], [("ask", 2), ("ask", 3), ("finish", V.PIN_FAILED)]),
    (["no_input", "no_input", "no_input"], [("ask", 2), ("ask", 3), ("finish", V.PIN_FAILED)]),
    (["pressed_nine"], [("finish", V.DENIED)]),
    (["pin_wrong", "pin_wrong", "pressed_nine"], [("ask", 2), ("ask", 3), ("finish", V.DENIED)]),
    (["pin_wrong", "pressed_zero"], [("ask", 2), ("finish", V.OPERATOR)]),
    (["hung_up"], [("finish", V.FAILED)]),
    (["pin_wrong", "pin_wrong", "hung_up"], [("ask", 2), ("ask", 3), ("finish", V.FAILED)]),
    # After an outcome nothing more happens.
    (["pin_right", "pin_wrong", "pressed_nine", "hung_up"], [("finish", V.VERIFIED)]),
])
def test_transitions(inputs, expected):
    assert run(*inputs) == expected
