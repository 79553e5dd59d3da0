"""Fixtures for the telephony tests: a fake network and two Telephony services on it."""

from __future__ import annotations

import pytest

from callflows import Telephony
from tests.callflows.fakes import FakeNetwork, telephony_settings


@pytest.fixture
def net():
    return FakeNetwork()


@pytest.fixture
def pair(tmp_path, net):
    """``caller`` (its trunk is the callee) and ``callee`` Telephony services, started."""
    callee = Telephony(telephony_settings(tmp_path, 5070), net)
    caller = Telephony(telephony_settings(tmp_path, 5060, trunk="127.0.0.1:5070"), net)
    callee.startService()
    caller.startService()
    yield caller, callee
    caller.stopService()
    callee.stopService()
    net.run(1)
