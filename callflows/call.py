"""The call-flow API: what a flow holds for one call leg (``play``, ``collect``, ``bridge``,
``transfer``, ``hangup``), with the flow-level state as an automat machine (setting_up -> connected
<-> bridged -> ended). The leg's signalling state lives in ``LegMachine``; this machine reacts to
its reports, owns the recording and the call-log entry, and fails pending waits when the call ends.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from automat import MethodicalMachine, NoTransition
from twisted.internet.defer import CancelledError, Deferred
from twisted.internet.interfaces import IReactorTime
from twisted.logger import Logger

from callflows.calllog import CallLog, CallRecord
from callflows.outcomes import CallEnded, CallOutcome
from callflows.prompts import Prompt
from callflows.recording import CallRecording
from callflows.sipleg import SipLeg

log = Logger()


@dataclass
class CallContext:
    """What every Call of one Telephony shares."""

    clock: IReactorTime
    call_log: CallLog
    recordings_dir: Path
    dial: Callable[..., Awaitable[Call]]


class Call:
    _machine = MethodicalMachine()

    def __init__(self, leg: SipLeg, context: CallContext):
        self.leg = leg
        self._ctx = context
        self.started_at = self._now()
        self.answered_at: datetime | None = None
        self.ended_at: datetime | None = None
        self.outcome: CallOutcome | None = None
        self.recording: CallRecording | None = None
        self.bridged_with: Call | None = None
        self._digits: deque[str] = deque(maxlen=64)  # type-ahead; a bridged call keeps only the last
        self._digit_waiters: list[Deferred[None]] = []
        self._connected_waiters: list[Deferred[None]] = []
        self._ended_waiters: list[Deferred[CallOutcome]] = []
        self._bridge_waiters: list[Deferred[None]] = []
        self._log_chain: Deferred[Any] = Deferred.fromCoroutine(context.call_log.record_call(CallRecord(
            leg.call_id, leg.direction, self.from_number, self.to_number, self.started_at)))
        self._log_chain.addErrback(self._log_failed)
        leg.on_connected = self.leg_connected
        leg.on_ended = self.leg_ended
        leg.on_digit = self._digit

    # -- identity ---------------------------------------------------------------------------------
    @property
    def call_id(self) -> str:
        return self.leg.call_id

    @property
    def direction(self) -> str:
        return self.leg.direction

    @property
    def from_number(self) -> str:
        return self.leg.remote_number if self.direction == "inbound" else self.leg.local_number

    @property
    def to_number(self) -> str:
        return self.leg.local_number if self.direction == "inbound" else self.leg.remote_number

    @property
    def codec(self) -> str:
        return self.leg.stream.codec

    @property
    def is_ended(self) -> bool:
        return self.state() == "ended"

    def _now(self) -> datetime:
        return datetime.fromtimestamp(self._ctx.clock.seconds(), UTC)

    # -- the flow API -----------------------------------------------------------------------------
    async def answer(self) -> None:
        """Answer an inbound call (a no-op once connected); raises CallEnded if it is over."""
        if self.state() == "setting_up":
            waiter: Deferred[None] = Deferred()
            self._connected_waiters.append(waiter)
            self.leg._feed("answer")
            await waiter
        self._check_alive()

    async def play(self, prompt: Prompt, interruptible: bool = False) -> bool:
        """Play to the end (True) or until a digit arrives when ``interruptible`` (False). Digits
        pressed meanwhile stay queued for ``collect``."""
        await self.answer()
        if self.bridged_with is not None:
            raise RuntimeError("cannot play into a bridged call")
        if interruptible and self._digits:
            return False
        done = self.leg.stream.play(prompt.audio(self.codec))
        if interruptible:
            self._watch_digit_for(done)
        completed = await done
        self._check_alive()
        return bool(completed)

    def _watch_digit_for(self, playing: Deferred[bool]) -> None:
        waiter = self._wait_digit()

        def interrupt(_: object) -> None:
            if not playing.called:
                self.leg.stream.stop_playback()

        def stop_watching(result: object) -> object:
            if not waiter.called:
                waiter.cancel()
            return result

        waiter.addCallbacks(interrupt, lambda failure: None)
        playing.addBoth(stop_watching)

    async def collect(self, max_digits: int, timeout: float, terminators: str = "#",
                      first_digit_timeout: float | None = None) -> str:
        """Up to ``max_digits`` digits; ends early on a terminator (not returned) or when ``timeout``
        seconds pass without a digit (``first_digit_timeout`` for the first one, default ``timeout``)."""
        await self.answer()
        digits = ""
        while len(digits) < max_digits:
            self._check_alive()
            if not self._digits:
                wait = first_digit_timeout if not digits and first_digit_timeout is not None else timeout
                waiter = self._wait_digit()
                timer = self._ctx.clock.callLater(wait, waiter.cancel)
                try:
                    await waiter
                except CancelledError:
                    return digits  # no digit in time
                finally:
                    if timer.active():
                        timer.cancel()
                continue
            digit = self._digits.popleft()
            if digit in terminators:
                return digits
            digits += digit
        return digits

    def clear_digits(self) -> None:
        self._digits.clear()

    async def send_digits(self, digits: str) -> None:
        """Send DTMF as RFC 4733 events, or as SIP INFO when the peer did not offer telephone-event."""
        await self.answer()
        if self.leg.stream.te_payload_type is not None:
            await self.leg.stream.send_digits(digits)
        else:
            for digit in digits:
                await self.leg.send_info_digit(digit)
        self._check_alive()

    async def bridge(self, other: Call) -> None:
        """Connect the two calls' media both ways (both recorded); returns when either hangs up."""
        await self.answer()
        await other.answer()
        if other is self:
            raise ValueError("cannot bridge a call with itself")
        try:
            self.bridge_with(other)
        except NoTransition:
            raise RuntimeError(f"call {self.call_id} cannot bridge in state {self.state()}") from None
        try:
            other.bridge_with(self)
        except NoTransition:
            self.unbridge()
            raise RuntimeError(f"call {other.call_id} cannot bridge in state {other.state()}") from None
        waiter: Deferred[None] = Deferred()
        self._bridge_waiters.append(waiter)
        await waiter

    async def transfer(self, number: str, caller_id: str | None = None,
                       ring_timeout: float | None = None) -> Call:
        """Blind transfer, B2BUA style: dial ``number`` and bridge it to this call; returns the new call
        once the bridge ends (hang it up if the flow has no further use for it)."""
        other = await self._ctx.dial(number, caller_id=caller_id or self.from_number, ring_timeout=ring_timeout)
        try:
            await self.bridge(other)
        finally:
            if self.is_ended and not other.is_ended:
                await other.hangup()
        return other

    async def hangup(self) -> CallOutcome:
        """End the call (BYE, CANCEL or a 480 as the state needs) and wait until it is over."""
        if not self.is_ended:
            waiter = self.wait_ended()
            self.leg.hangup()
            return await waiter
        assert self.outcome is not None
        return self.outcome

    def wait_ended(self) -> Deferred[CallOutcome]:
        d: Deferred[CallOutcome] = Deferred()
        if self.is_ended:
            assert self.outcome is not None
            d.callback(self.outcome)
        else:
            self._ended_waiters.append(d)
        return d

    def wait_connected(self) -> Deferred[None]:
        d: Deferred[None] = Deferred()
        if self.state() == "setting_up":
            self._connected_waiters.append(d)
        elif self.is_ended:
            d.errback(CallEnded(self.call_id))
        else:
            d.callback(None)
        return d

    # -- digits -----------------------------------------------------------------------------------
    def _digit(self, digit: str) -> None:
        self._digits.append(digit)
        waiters, self._digit_waiters = self._digit_waiters, []
        for waiter in waiters:
            waiter.callback(None)

    def _wait_digit(self) -> Deferred[None]:
        """Fires at the next digit; errbacks CallEnded if the call ends first; cancellable."""

        def forget(d: Deferred[None]) -> None:
            if d in self._digit_waiters:
                self._digit_waiters.remove(d)

        waiter: Deferred[None] = Deferred(forget)
        self._digit_waiters.append(waiter)
        return waiter

    def _check_alive(self) -> None:
        if self.is_ended:
            raise CallEnded(self.call_id)

    def _log_failed(self, failure: Any) -> None:
        log.failure("call log update for {call_id} failed", failure, call_id=self.call_id)

    def _log(self, **changes: Any) -> None:
        update = self._ctx.call_log.update_call

        def run(_: object) -> Deferred[None]:
            return Deferred.fromCoroutine(update(self.call_id, **changes))

        self._log_chain.addCallback(run).addErrback(self._log_failed)

    # -- state machine ----------------------------------------------------------------------------
    @_machine.serializer()
    def state(self, state: str) -> str:
        return state

    @_machine.state(initial=True, serialized="setting_up")
    def setting_up(self) -> None:
        "Dialling, or offered and not yet answered."

    @_machine.state(serialized="connected")
    def connected(self) -> None:
        "Answered; the flow can play and collect."

    @_machine.state(serialized="bridged")
    def bridged(self) -> None:
        "Media relayed to and from another call."

    @_machine.state(serialized="ended")
    def ended(self) -> None:
        "Over."

    @_machine.input()
    def leg_connected(self) -> None:
        "The leg was answered."

    @_machine.input()
    def leg_ended(self, outcome: CallOutcome) -> None:
        "The leg is over."

    @_machine.input()
    def bridge_with(self, other: Call) -> None:
        "Relay media with ``other``."

    @_machine.input()
    def unbridge(self) -> None:
        "Stop relaying (the other side ended or the flow asked)."

    @_machine.output()
    def _start_recording(self) -> None:
        self.answered_at = self._now()
        day = self.answered_at.strftime("%Y/%m/%d")
        safe_id = "".join(c if c.isalnum() or c in "-_." else "_" for c in self.call_id)[:80]
        path = self._ctx.recordings_dir / day / f"{self.answered_at:%H%M%S}-{self.direction}-{safe_id}.wav"
        try:
            self.recording = CallRecording(path, self.codec, self.codec)
            self.leg.stream.recording = self.recording
        except OSError:
            log.failure("cannot record call {call_id} to {path}", call_id=self.call_id, path=path)
        self._log(answered_at=self.answered_at,
                  recording_path=str(self.recording.path) if self.recording is not None else None)

    @_machine.output()
    def _wake_connected(self) -> None:
        waiters, self._connected_waiters = self._connected_waiters, []
        for waiter in waiters:
            waiter.callback(None)

    @_machine.output()
    def _start_relay(self, other: Call) -> None:
        self.bridged_with = other
        stream = self.leg.stream
        stream.stop_playback()
        stream.set_bridged(True)
        stream.relay_to = other.leg.stream

    @_machine.output()
    def _stop_relay(self) -> None:
        other, self.bridged_with = self.bridged_with, None
        self.leg.stream.relay_to = None
        self.leg.stream.set_bridged(False)
        waiters, self._bridge_waiters = self._bridge_waiters, []
        for waiter in waiters:
            waiter.callback(None)
        if other is not None:
            try:
                other.unbridge()
            except NoTransition:
                pass

    @_machine.output()
    def _finish(self, outcome: CallOutcome) -> None:
        self.outcome = outcome
        self.ended_at = self._now()
        if self.recording is not None:
            self.recording.close()
        self._log(ended_at=self.ended_at, outcome=outcome.value)
        failure = CallEnded(self.call_id)
        waiters, self._connected_waiters = self._connected_waiters, []
        waiters += self._digit_waiters
        self._digit_waiters = []
        for waiter in waiters:
            waiter.errback(failure)
        self.leg.stream.release_waiters()
        ended, self._ended_waiters = self._ended_waiters, []
        for waiter in ended:
            waiter.callback(outcome)

    setting_up.upon(leg_connected, enter=connected, outputs=[_start_recording, _wake_connected])
    setting_up.upon(leg_ended, enter=ended, outputs=[_finish])
    connected.upon(bridge_with, enter=bridged, outputs=[_start_relay])
    connected.upon(unbridge, enter=connected, outputs=[])
    connected.upon(leg_ended, enter=ended, outputs=[_finish])
    bridged.upon(unbridge, enter=connected, outputs=[_stop_relay])
    bridged.upon(leg_ended, enter=ended, outputs=[_stop_relay, _finish])
    for _ignored in (leg_connected, leg_ended, unbridge):
        ended.upon(_ignored, enter=ended, outputs=[])
    del _ignored
