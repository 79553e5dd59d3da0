"""The framework floor for bench/ingest.py: a bare Twisted TCP server that splits the stream on 0x7E
and answers every frame with a fixed-shape platform packet, doing nothing else.

    python bench/ingest_floor.py --port PORT [--interface 127.0.0.1]

It echoes only what the JT/T 808 simulator needs to match an answer to its frame — the message id,
phone and serial bytes of the request header — so the answer to 0x0100 is a 0x8100 "registered"
with a constant auth code and every other frame gets a 0x8001 result 0. No check of the frame, no
decoding, no sink: whatever the real server costs beyond this is ours, not Twisted's or the kernel's.
Prints ``listening <port>`` once the port is bound; SIGTERM stops it.
"""

from __future__ import annotations

import argparse
import sys

from twisted.internet.protocol import Factory, Protocol

_REGISTER = b"\x01\x00"
_AUTH_CODE = b"FLOOR"


def _xor(data: bytes) -> int:
    code = 0
    for byte in data:
        code ^= byte
    return code


def answer(frame: bytes) -> bytes:
    """The platform packet for one un-escaped 2013 or 2019 frame (header flavour copied)."""
    attrs = frame[2:4]
    head_end = 15 if attrs[0] & 0x40 else 10  # 2019 header: version byte + 10-byte phone
    echo = frame[head_end:head_end + 2] + frame[0:2]  # request serial + request msg id
    if frame[0:2] == _REGISTER:
        msg_id, body = b"\x81\x00", frame[head_end:head_end + 2] + b"\x00" + _AUTH_CODE
    else:
        msg_id, body = b"\x80\x01", echo + b"\x00"
    packet = msg_id + bytes((attrs[0] & 0x40, len(body))) + frame[4:head_end] + b"\x00\x00" + body
    packet += bytes((_xor(packet),))
    if b"\x7d" in packet or b"\x7e" in packet:
        packet = packet.replace(b"\x7d", b"\x7d\x01").replace(b"\x7e", b"\x7d\x02")
    return b"\x7e" + packet + b"\x7e"


class FloorProtocol(Protocol):
    def __init__(self) -> None:
        self._pending = b""

    def connectionMade(self) -> None:
        self.transport.setTcpNoDelay(True)  # as the real server does: acks are awaited one by one

    def dataReceived(self, data: bytes) -> None:
        pieces = (self._pending + data).split(b"\x7e")
        self._pending = pieces.pop()
        write = self.transport.write
        for piece in pieces:
            if len(piece) < 13:
                continue
            if b"\x7d" in piece:
                piece = piece.replace(b"\x7d\x02", b"\x7e").replace(b"\x7d\x01", b"\x7d")
            write(answer(piece))


class FloorFactory(Factory):
    protocol = FloorProtocol

    def buildProtocol(self, addr) -> FloorProtocol:
        return FloorProtocol()


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--interface", default="127.0.0.1")
    args = parser.parse_args(argv)
    from twisted.internet import reactor

    port = reactor.listenTCP(args.port, FloorFactory(), backlog=4096, interface=args.interface)
    print(f"listening {port.getHost().port}", flush=True)
    reactor.run()


if __name__ == "__main__":
    main(sys.argv[1:])
