"""One notice call: dial a number, read it the campaign's message, and optionally ask for a "1" to confirm.

``NoticeCall.deliver`` places the call and returns a ``NoticeResult`` whose outcome is one of the
campaign outcomes (answered, confirmed, busy, no_answer, invalid_number, failed); retries and the
trunk lines belong to the campaign runner. Prompts are spoken (TTS) before a line is taken, so a line
is never held while espeak-ng works.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from callflows.outcomes import CallEnded, CallNotConnected, CallOutcome
from callflows.prompts import Prompt
from notify.verification import VOICES

log = logging.getLogger(__name__)

CONFIRM_ASK = {"zh": "确认收到请按1。", "en": "Press 1 to confirm."}
THANKS = {"zh": "谢谢，再见。", "en": "Thank you, goodbye."}
_NOT_CONNECTED = {
    CallOutcome.BUSY: "busy", CallOutcome.REJECTED: "busy",  # declined: the phone is there, try later
    CallOutcome.NO_ANSWER: "no_answer", CallOutcome.UNAVAILABLE: "no_answer",
    CallOutcome.INVALID_NUMBER: "invalid_number",
}

Speak = Callable[[str, str], Awaitable[Prompt]]  # (text, language) -> prompt


@dataclass(frozen=True)
class NoticeResult:
    outcome: str
    call_id: str | None
    duration_s: float  # from the answer to the hang-up; 0 when not answered
    confirmed: bool | None  # None unless the campaign asks for a confirmation and the call was answered
    readings: int = 0  # how many times the notice was read out to the end
    detail: str | None = None  # the telephony's own outcome when the call did not connect (rejected, ...)


@dataclass(frozen=True)
class NoticePrompts:
    notice: Prompt
    thanks: Prompt | None


class NoticeCall:
    def __init__(self, telephony, clock, *, speak: Speak | None = None, ring_timeout: float = 30.0,
                 confirm_timeout: float = 8.0) -> None:
        self.telephony = telephony
        self.clock = clock
        self.speak = speak or (lambda text, language: telephony.prompts.tts(text, VOICES.get(language, "cmn")))
        self.ring_timeout = ring_timeout
        self.confirm_timeout = confirm_timeout

    async def prepare(self, text: str, language: str, confirm: bool) -> NoticePrompts:
        """The spoken notice (with the request to press 1 when ``confirm``); raises if TTS fails."""
        language = language if language in VOICES else "zh"
        notice = await self.speak(f"{text} {CONFIRM_ASK[language]}" if confirm else text, language)
        thanks = await self.speak(THANKS[language], language) if confirm else None
        return NoticePrompts(notice, thanks)

    async def deliver(self, number: str, prompts: NoticePrompts, confirm: bool,
                      caller_id: str | None = None, repeat: int = 1) -> NoticeResult:
        """Call ``number`` and read the notice (``repeat`` times when no confirmation is asked: the
        first reading is often half-missed while the phone reaches an ear)."""
        try:
            call = await self.telephony.dial(number, caller_id=caller_id, ring_timeout=self.ring_timeout)
        except CallNotConnected as e:
            return NoticeResult(_NOT_CONNECTED.get(e.outcome, "failed"), None, 0.0, None, detail=e.outcome.value)
        answered = self.clock.seconds()
        confirmed = None
        readings = 0
        try:
            if confirm:
                confirmed = False
                # Interruptible: a "1" keyed while the message plays is a confirmation already.
                await call.play(prompts.notice, interruptible=True)
                readings = 1
                confirmed = await call.collect(1, timeout=self.confirm_timeout, terminators="") == "1"
                if confirmed and prompts.thanks is not None:
                    await call.play(prompts.thanks)
            else:
                for _ in range(max(1, repeat)):
                    await call.play(prompts.notice)
                    readings += 1
        except CallEnded:
            pass  # they hung up: the notice was (partly) heard, the call still counts as answered
        finally:
            if not call.is_ended:  # also on a media error or a cancellation: never leave a call up
                await call.hangup()
        duration = max(0.0, self.clock.seconds() - answered)
        return NoticeResult("confirmed" if confirmed else "answered", call.call_id, duration,
                            confirmed, readings)
