"""The RTP port range: even ports handed out in rotation so a just-freed port is not reused at once."""

from __future__ import annotations

from twisted.internet.error import CannotListenError
from twisted.internet.interfaces import IListeningPort, IReactorUDP
from twisted.internet.protocol import DatagramProtocol


class PortsExhausted(RuntimeError):
    pass


class RtpPortRange:
    def __init__(self, reactor: IReactorUDP, interface: str, first: int, last: int):
        if first > last or first < 1024 or last > 65535:
            raise ValueError(f"bad RTP port range {first}-{last}")
        self._reactor = reactor
        self._interface = interface
        self._ports = list(range(first + (first % 2), last + 1, 2))
        self._next = 0
        self._used: set[int] = set()

    @property
    def in_use(self) -> int:
        return len(self._used)

    def listen(self, protocol: DatagramProtocol) -> IListeningPort:
        for _ in range(len(self._ports)):
            port = self._ports[self._next]
            self._next = (self._next + 1) % len(self._ports)
            if port in self._used:
                continue
            try:
                listening = self._reactor.listenUDP(port, protocol, interface=self._interface)
            except CannotListenError:
                continue  # taken by another program
            self._used.add(port)
            return listening
        raise PortsExhausted("no free RTP port")

    def release(self, port: int) -> None:
        self._used.discard(port)
