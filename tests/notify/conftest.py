"""Fixtures shared by the notify tests."""

import pytest

from callflows import Telephony
from tests.callflows.fakes import FakeNetwork, telephony_settings


@pytest.fixture
def phones(tmp_path):
    """(network, the desk's telephony with its trunk at the owner's, the owner's telephony) on a fake
    SIP network: the owner side registers flows to answer the desk's calls."""
    net = FakeNetwork()
    owner = Telephony(telephony_settings(tmp_path, 5070), net)
    desk = Telephony(telephony_settings(tmp_path, 5060, trunk="127.0.0.1:5070"), net)
    owner.startService()
    desk.startService()
    yield net, desk, owner
    desk.stopService()
    owner.stopService()
    net.run(1)
