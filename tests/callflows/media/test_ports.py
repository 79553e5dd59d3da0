"""The RTP port range."""

from __future__ import annotations

import pytest
from twisted.internet.protocol import DatagramProtocol

from callflows.media.ports import PortsExhausted, RtpPortRange
from tests.callflows.fakes import FakeNetwork


def test_even_ports_in_rotation_skipping_taken_ones():
    net = FakeNetwork()
    net.listenUDP(20002, DatagramProtocol(), interface="127.0.0.1")  # another program
    ports = RtpPortRange(net, "127.0.0.1", 20001, 20008)
    got = [ports.listen(DatagramProtocol()).getHost().port for _ in range(2)]
    assert got == [20004, 20006]
    ports.release(20004)
    assert ports.listen(DatagramProtocol()).getHost().port == 20008
    net.ports.pop(("127.0.0.1", 20004))
    assert ports.listen(DatagramProtocol()).getHost().port == 20004
    with pytest.raises(PortsExhausted):
        ports.listen(DatagramProtocol())
    assert ports.in_use == 3
    with pytest.raises(ValueError):
        RtpPortRange(net, "127.0.0.1", 10, 20)
