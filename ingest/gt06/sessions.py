"""Which GT06 terminals are online, and the 0x80 online commands sent to them (gt06.md §5.6).

A logged-in connection registers itself under its IMEI. ``send_command`` writes a 0x80 frame with
a fresh server flag and waits for the terminal's 0x15/0x21 reply carrying that flag back (or, for
firmware that echoes 0, the oldest command still waiting), with a timeout on the injected clock.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass
from typing import Protocol

from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IDelayedCall, IReactorTime
from twisted.logger import Logger

from ingest.gt06 import replies
from ingest.gt06.packet import CommandReply

log = Logger()


class TerminalNotConnected(LookupError):
    def __init__(self, imei: str):
        super().__init__(f"GT06 terminal {imei} is not connected")
        self.imei = imei


class CommandTimeout(TimeoutError):
    def __init__(self, imei: str, command: str, timeout: float):
        super().__init__(f"GT06 terminal {imei} did not answer {command!r} within {timeout:g} s")


class TerminalDisconnected(ConnectionError):
    def __init__(self, imei: str):
        super().__init__(f"GT06 terminal {imei} disconnected before answering")


class CommandLink(Protocol):
    """What a connection offers the registry (``Gt06Protocol`` implements it)."""

    def send(self, data: bytes) -> None: ...

    def next_serial(self) -> int: ...


@dataclass
class _Waiting:
    command: str
    deferred: Deferred
    timer: IDelayedCall


class Gt06Sessions:
    def __init__(self, clock: IReactorTime, default_timeout: float = 30.0):
        self._clock = clock
        self.default_timeout = default_timeout
        self._links: dict[str, CommandLink] = {}
        self._waiting: dict[str, OrderedDict[int, _Waiting]] = {}
        self._flag = 0

    def register(self, imei: str, link: CommandLink) -> None:
        old = self._links.get(imei)
        if old is not None and old is not link:
            self._fail_all(imei, TerminalDisconnected(imei))  # the terminal reconnected
        self._links[imei] = link

    def unregister(self, imei: str, link: CommandLink) -> None:
        if self._links.get(imei) is link:
            del self._links[imei]
            self._fail_all(imei, TerminalDisconnected(imei))

    def is_online(self, imei: str) -> bool:
        return imei in self._links

    def online(self) -> list[str]:
        return sorted(self._links)

    async def send_command(self, imei: str, command: str, *, timeout: float | None = None,
                           language: int | None = None) -> str:
        """Send ``command`` (e.g. ``"Relay,1#"``) and return the terminal's reply text."""
        link = self._links.get(imei)
        if link is None:
            raise TerminalNotConnected(imei)
        self._flag = self._flag % 0xFFFFFFFF + 1
        flag = self._flag
        frame = replies.online_command(command, link.next_serial(), flag, language)
        timeout = self.default_timeout if timeout is None else timeout
        deferred: Deferred = Deferred()
        error = CommandTimeout(imei, command, timeout)
        timer = self._clock.callLater(timeout, self._expire, imei, flag, error)
        self._waiting.setdefault(imei, OrderedDict())[flag] = _Waiting(command, deferred, timer)
        link.send(frame)
        return await deferred

    def command_reply(self, imei: str, reply: CommandReply) -> None:
        waiting = self._waiting.get(imei)
        if not waiting:
            log.info("GT06 {imei}: unsolicited command reply {text!r}", imei=imei, text=reply.text)
            return
        flag = reply.server_flag if reply.server_flag in waiting else next(iter(waiting))
        entry = waiting.pop(flag)
        entry.timer.cancel()
        entry.deferred.callback(reply.text)

    def _expire(self, imei: str, flag: int, error: Exception) -> None:
        entry = self._waiting.get(imei, {}).pop(flag, None)
        if entry is not None:
            entry.deferred.errback(error)

    def _fail_all(self, imei: str, error: Exception) -> None:
        for entry in self._waiting.pop(imei, {}).values():
            if entry.timer.active():
                entry.timer.cancel()
            entry.deferred.errback(error)
