"""Answers written at once on a real TCP connection, in order even when the kernel takes only part."""

from __future__ import annotations

import errno
import socket

import pytest_twisted
from twisted.internet import defer, reactor, task
from twisted.internet.error import ConnectionLost
from twisted.internet.protocol import ClientFactory, Factory, Protocol
from twisted.internet.testing import StringTransport

from ingest.write_through import immediate_writer


class Collector(Protocol):
    def __init__(self) -> None:
        self.received = bytearray()
        self.lost: defer.Deferred = defer.Deferred()

    def dataReceived(self, data: bytes) -> None:
        self.received += data

    def connectionLost(self, reason=None) -> None:
        self.lost.callback(None)


async def connected_pair():
    """(server-side protocol, client Collector) over loopback."""
    accepted: defer.Deferred = defer.Deferred()

    class Server(Protocol):
        def connectionMade(self) -> None:
            accepted.callback(self)

    port = reactor.listenTCP(0, Factory.forProtocol(Server), interface="127.0.0.1")
    client = Collector()
    factory = ClientFactory()
    factory.buildProtocol = lambda addr: client
    reactor.connectTCP("127.0.0.1", port.getHost().port, factory)
    server = await accepted
    await port.stopListening()
    return server, client


async def until(condition, timeout: float = 5.0) -> None:
    for _ in range(int(timeout / 0.01)):
        if condition():
            return
        await task.deferLater(reactor, 0.01, lambda: None)
    raise AssertionError("condition not met in time")


def test_other_transports_get_their_own_write():
    transport = StringTransport()
    assert immediate_writer(transport) == transport.write


@pytest_twisted.ensureDeferred
async def test_a_small_answer_leaves_at_once_without_waiting_for_writability():
    server, client = await connected_pair()
    try:
        write = immediate_writer(server.transport)
        write(b"\x7e ack \x7e")
        # Nothing queued, the socket never registered for writability: the bytes are in the kernel.
        assert not server.transport.dataBuffer and not server.transport._tempDataBuffer
        assert server.transport not in reactor.getWriters()
        await until(lambda: bytes(client.received) == b"\x7e ack \x7e")
    finally:
        server.transport.loseConnection()
        await client.lost


@pytest_twisted.ensureDeferred
async def test_what_the_kernel_does_not_take_is_queued_behind_in_order():
    server, client = await connected_pair()
    try:
        server.transport.socket.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)
        client.transport.pauseProducing()  # the peer reads nothing: the socket buffers fill up
        write = immediate_writer(server.transport)
        chunks = [bytes([n % 251]) * 1000 for n in range(3000)]
        for chunk in chunks:
            write(chunk)
        assert server.transport.dataBuffer or server.transport._tempDataBuffer  # some had to wait
        client.transport.resumeProducing()
        expected = b"".join(chunks)
        await until(lambda: len(client.received) >= len(expected), timeout=15)
        assert bytes(client.received) == expected
    finally:
        server.transport.loseConnection()
        await client.lost


@pytest_twisted.ensureDeferred
async def test_a_closing_connection_is_left_to_the_transport():
    server, client = await connected_pair()
    write = immediate_writer(server.transport)
    server.transport.loseConnection()
    write(b"last")  # as with transport.write: queued, flushed, then the connection closes
    assert server.transport._tempDataBuffer == [b"last"]
    await client.lost
    assert bytes(client.received) == b"last"


@pytest_twisted.ensureDeferred
async def test_a_failing_socket_is_left_to_the_transport_which_closes_the_connection():
    server, client = await connected_pair()
    real = server.transport.socket

    class ResetSocket:
        def send(self, data):
            raise ConnectionResetError(errno.ECONNRESET, "reset by peer")

        def __getattr__(self, name):
            return getattr(real, name)

    server.transport.socket = ResetSocket()
    reasons: list = []
    server.connectionLost = reasons.append
    immediate_writer(server.transport)(b"ack")  # no exception here: queued for the transport
    await until(lambda: reasons)
    assert reasons[0].check(ConnectionLost) and bytes(client.received) == b""
    await client.lost
