"""Who is connected: authenticated JT/T 808 terminal connections by terminal id, and the
platform-to-terminal commands other parts of Watchline send through them.

``confirm_alarm`` (0x8203), ``send_text`` (0x8300) and ``query_position`` (0x8201) each send one
command on the terminal's live connection and wait, with a timeout on the injected clock, for the
terminal's answer: its 0x0001 result, or for a position query the Report decoded from its 0x0201.
A terminal that is not connected is a clear ``TerminalNotConnected`` error, never a silent drop.
"""

from __future__ import annotations

from typing import Protocol

from twisted.internet import defer
from twisted.internet.defer import Deferred

from alarms.names import JT808_ALARM_BITS, JT808_CONFIRMABLE_BITS
from alarms.report import Report
from ingest.jt808 import messages
from ingest.jt808.messages import TerminalResponse
from ingest.sink import normalise_terminal_id

CONFIRMABLE_MASK = sum(1 << bit for bit in JT808_CONFIRMABLE_BITS)


class CommandError(Exception):
    pass


class TerminalNotConnected(CommandError, LookupError):
    pass


class TerminalTimeout(CommandError, TimeoutError):
    pass


class TerminalDisconnected(CommandError, ConnectionError):
    """The connection went away before the terminal answered."""


class TerminalRefused(CommandError):
    """The terminal answered a position query with a non-zero 0x0001 result."""

    def __init__(self, message: str, result: int) -> None:
        super().__init__(message)
        self.result = result


class TerminalSession(Protocol):
    """What the registry needs from a connection (``protocol.Jt808Protocol`` implements it)."""

    terminal_id: str | None
    is_2019: bool

    def request(self, msg_id: int, body: bytes) -> Deferred:
        """Send a command; the Deferred fires with the terminal's TerminalResponse (0x0001) or,
        for 0x8201, the Report of its 0x0201. Cancelling it forgets the command."""


class Jt808Sessions:
    def __init__(self, clock, *, command_timeout: float = 30.0) -> None:
        self._clock = clock
        self.command_timeout = command_timeout
        self._sessions: dict[str, TerminalSession] = {}

    # --- connections --------------------------------------------------------------------

    def register(self, terminal_id: str, session: TerminalSession) -> TerminalSession | None:
        """Bind the terminal to this connection; returns the connection it replaces, if any
        (a reconnecting terminal's old socket may linger until its idle timeout)."""
        previous = self._sessions.get(terminal_id)
        self._sessions[terminal_id] = session
        return previous if previous is not session else None

    def unregister(self, terminal_id: str, session: TerminalSession) -> None:
        if self._sessions.get(terminal_id) is session:
            del self._sessions[terminal_id]

    def is_connected(self, terminal_id: str) -> bool:
        return normalise_terminal_id("jt808", terminal_id) in self._sessions

    def connected(self) -> list[str]:
        return sorted(self._sessions)

    def __len__(self) -> int:
        return len(self._sessions)

    # --- commands -----------------------------------------------------------------------

    async def confirm_alarm(self, terminal_id: str, alarm_serial: int, bits: int) -> int:
        """0x8203 manual alarm confirmation; ``alarm_serial`` is the 0x0200 serial that carried
        the alarm (0 = every message of that alarm type). Returns the terminal's 0x0001 result."""
        if not bits or bits & ~CONFIRMABLE_MASK:
            confirmable = ", ".join(f"{bit} {JT808_ALARM_BITS[bit]}" for bit in sorted(JT808_CONFIRMABLE_BITS))
            raise ValueError(f"alarm bits 0x{bits:08X} are not all confirmable by 0x8203 ({confirmable})")
        if not 0 <= alarm_serial <= 0xFFFF:
            raise ValueError(f"alarm serial {alarm_serial} is not a WORD")
        answer = await self._request(
            terminal_id, messages.ALARM_CONFIRMATION, lambda s: messages.alarm_confirmation(alarm_serial, bits)
        )
        return self._result(answer)

    async def send_text(
        self,
        terminal_id: str,
        text: str,
        *,
        emergency: bool = False,
        display: bool = True,
        tts: bool = False,
        text_type: int = messages.TEXT_NOTIFICATION,
    ) -> int:
        """0x8300 text message (GBK, at most 1024 bytes). Returns the terminal's 0x0001 result."""
        text.encode("gbk")  # fail here, with a clear UnicodeEncodeError, not inside the session

        def body(session: TerminalSession) -> bytes:
            return messages.text_message(
                text, is_2019=session.is_2019, emergency=emergency, display=display, tts=tts, text_type=text_type
            )

        return self._result(await self._request(terminal_id, messages.TEXT_MESSAGE, body))

    async def query_position(self, terminal_id: str) -> Report:
        """0x8201 position query -> the Report decoded from the terminal's 0x0201 answer."""
        answer = await self._request(terminal_id, messages.POSITION_QUERY, lambda s: b"")
        if isinstance(answer, TerminalResponse):
            raise TerminalRefused(
                f"terminal {terminal_id} answered the position query with result {answer.result}", answer.result
            )
        return answer

    async def _request(self, terminal_id: str, msg_id: int, build_body):
        key = normalise_terminal_id("jt808", terminal_id)
        session = self._sessions.get(key)
        if session is None:
            raise TerminalNotConnected(f"JT/T 808 terminal {terminal_id} is not connected")
        pending = session.request(msg_id, build_body(session))
        pending.addTimeout(self.command_timeout, self._clock)
        try:
            return await pending
        except defer.TimeoutError:
            raise TerminalTimeout(
                f"terminal {terminal_id} did not answer 0x{msg_id:04X} within {self.command_timeout:g} s"
            ) from None

    @staticmethod
    def _result(answer) -> int:
        if not isinstance(answer, TerminalResponse):
            raise CommandError(f"unexpected answer {answer!r}")
        return answer.result
