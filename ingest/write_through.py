"""Sending a terminal server's answers at once instead of on the reactor's next turn.

Twisted's TCP ``transport.write`` only queues: it registers the socket for writability and the bytes
leave when a later reactor turn finds it writable, after every other socket that was readable in
this turn has been served. A terminal server answers each frame with a packet of a few dozen bytes,
nearly always into an empty socket buffer, so it pays per answer two ``epoll_ctl`` calls and a
dispatch through the reactor, and the terminal waits for the whole turn. ``immediate_writer`` sends
straight away when nothing is queued ahead and hands anything the kernel did not take (or an error)
to the transport's own ``write``, which keeps the order and the error handling.

It reads a few attributes of Twisted's ``tcp.Connection`` (pinned Twisted 23.10); any other
transport (TLS, a test's StringTransport, a Connection without them) gets its plain ``write``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from twisted.internet import tcp

_ATTRIBUTES = ("socket", "dataBuffer", "_tempDataBuffer", "connected", "disconnecting", "_writeDisconnected", "TLS")


def immediate_writer(transport: Any) -> Callable[[bytes], None]:
    """A ``write(data)`` for ``transport`` that sends at once when it can (see the module docstring)."""
    if not isinstance(transport, tcp.Connection) or not all(hasattr(transport, name) for name in _ATTRIBUTES):
        return transport.write

    send = transport.socket.send

    def write(data: bytes) -> None:
        if (transport.connected and not transport.disconnecting and not transport._writeDisconnected
                and not transport.TLS and not transport.dataBuffer and not transport._tempDataBuffer):
            try:
                sent = send(data)
            except OSError:  # would block, no buffer space, or a failed socket: the transport deals with it
                sent = 0
            if sent == len(data):
                return
            data = data[sent:]
        transport.write(data)

    return write
