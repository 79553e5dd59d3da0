"""Test doubles for the telephony core: a fake UDP network on a ``task.Clock``.

``FakeNetwork`` is an ``IReactorTime`` + ``IReactorUDP`` (+ ``getThreadPool``) that delivers each
datagram to whatever listens on its destination after ``latency`` seconds of fake time, so whole SIP
conversations between real ``Telephony`` instances run deterministically, with no sockets or sleeps.
Also the small helpers the telephony tests share.
"""

from __future__ import annotations

from twisted.internet.address import IPv4Address
from twisted.internet.defer import Deferred
from twisted.internet.error import CannotListenError
from twisted.internet.protocol import DatagramProtocol
from twisted.internet.task import Clock
from twisted.python.failure import Failure

from callflows import Prompt, TelephonySettings


class FakeUdpPort:
    def __init__(self, network: FakeNetwork, host: str, port: int, protocol: DatagramProtocol):
        self.network = network
        self.host = host
        self.port = port
        self.protocol = protocol
        self.listening = True

    def write(self, data: bytes, addr: tuple[str, int]) -> None:
        assert isinstance(data, bytes)
        self.network.send(data, (self.host, self.port), addr)

    def getHost(self) -> IPv4Address:  # noqa: N802
        return IPv4Address("UDP", self.host, self.port)

    def stopListening(self) -> None:  # noqa: N802
        if self.listening:
            self.listening = False
            self.network.ports.pop((self.host, self.port), None)
            self.protocol.doStop()


class FakeNetwork(Clock):
    def __init__(self, latency: float = 0.001):
        super().__init__()
        self.latency = latency
        self.ports: dict[tuple[str, int], FakeUdpPort] = {}
        self.sent: list[tuple[tuple[str, int], tuple[str, int], bytes]] = []
        self.drop = lambda data, src, dst: False  # tests set this to lose chosen datagrams
        self._next_port = 40000

    def listenUDP(self, port: int, protocol: DatagramProtocol, interface: str = "",  # noqa: N802
                  maxPacketSize: int = 8192) -> FakeUdpPort:  # noqa: N803
        host = interface or "127.0.0.1"
        if port == 0:
            self._next_port += 1
            port = self._next_port
        if (host, port) in self.ports:
            raise CannotListenError(host, port, OSError("in use"))
        listening = self.ports[(host, port)] = FakeUdpPort(self, host, port, protocol)
        protocol.makeConnection(listening)
        return listening

    def send(self, data: bytes, src: tuple[str, int], dst: tuple[str, int]) -> None:
        self.sent.append((src, dst, data))
        if self.drop(data, src, dst):
            return
        self.callLater(self.latency, self._deliver, data, src, dst)

    def _deliver(self, data: bytes, src: tuple[str, int], dst: tuple[str, int]) -> None:
        port = self.ports.get(dst)
        if port is not None and port.listening:
            port.protocol.datagramReceived(data, src)

    def run(self, seconds: float, step: float = 0.005) -> None:
        """Advance fake time in small steps so chains of deliveries and timers interleave."""
        for _ in range(int(round(seconds / step))):
            self.advance(step)

    def sip_sent(self, src_port: int) -> list[str]:
        """Start lines of the SIP messages sent from ``src_port``."""
        return [data.split(b"\r\n", 1)[0].decode() for src, _, data in self.sent
                if src[1] == src_port and data[:1] != b"\x80"]


def telephony_settings(tmp_path, port: int, **values) -> TelephonySettings:
    """Settings for a service on 127.0.0.1:``port`` with its RTP range just above it."""
    base = dict(listen=f"udp:{port}:interface=127.0.0.1", rtp_ports=(port + 100, port + 198),
                recordings_dir=str(tmp_path / f"rec{port}"), prompt_cache_dir=str(tmp_path / "prompts"),
                recording_retention_days=None)
    base.update(values)
    return TelephonySettings(**base)


def start(coro) -> Deferred:
    return Deferred.fromCoroutine(coro)


def result(d: Deferred):
    """The value of a finished Deferred (its exception raised)."""
    box = []
    d.addBoth(box.append)
    assert box, "the operation has not finished"
    if isinstance(box[0], Failure):
        box[0].raiseException()
    return box[0]


def ivr_flow(seen: dict, prompt_seconds: float = 0.5):
    """A flow that answers, plays a tone, collects up to 4 digits and hangs up, noting what it saw."""

    async def ivr(call):
        seen["call"] = call
        await call.answer()
        seen["played"] = await call.play(Prompt.tone(440, prompt_seconds))
        seen["digits"] = await call.collect(4, timeout=3)
        await call.hangup()

    return ivr
