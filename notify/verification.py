"""Owner verification calls: dial the owner, say what happened, and check the service PIN.

``OwnerVerifier.verify`` places one call and returns its ``VerificationResult``; retries, backup
contacts and escalation belong to the policy that calls it. The PIN logic is the ``PinCheck`` state
machine; this module only turns the call's events into its inputs and plays what it asks for.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone, tzinfo
from pathlib import Path
from typing import Any

import jinja2

from callflows.outcomes import CallEnded, CallNotConnected, CallOutcome
from callflows.prompts import Prompt
from notify.alarm_words import alarm_words
from notify.pin_check import PinCheck, VerificationOutcome

log = logging.getLogger(__name__)

BEIJING = timezone(timedelta(hours=8), "CST")
VOICES = {"zh": "cmn", "en": "en"}
_TEMPLATES = jinja2.Environment(
    loader=jinja2.FileSystemLoader(str(Path(__file__).parent / "templates")),
    autoescape=False, undefined=jinja2.StrictUndefined, keep_trailing_newline=False,
)
_NOT_CONNECTED = {
    CallOutcome.BUSY: VerificationOutcome.BUSY,
    CallOutcome.INVALID_NUMBER: VerificationOutcome.INVALID_NUMBER,
    CallOutcome.NO_ANSWER: VerificationOutcome.NO_ANSWER,
}


@dataclass(frozen=True)
class VerificationRequest:
    plate: str
    number: str  # the contact to dial
    alarm: str  # canonical alarm name
    alarm_time: datetime
    language: str = "zh"  # zh | en: the owner's language
    place: str | None = None  # a place name when known; otherwise the coordinates are read out
    lat: float | None = None
    lon: float | None = None
    caller_id: str | None = None


@dataclass(frozen=True)
class VerificationResult:
    outcome: VerificationOutcome
    call_id: str | None
    attempts: int  # PIN attempts made (0 when the call was not answered)
    recording_path: str | None = None


def render(template: str, language: str, **context: Any) -> str:
    language = language if language in VOICES else "zh"
    return _TEMPLATES.get_template(f"{template}.{language}.j2").render(**context).strip()


def greeting_text(req: VerificationRequest, operator: str, tz: tzinfo = BEIJING) -> str:
    local = req.alarm_time.astimezone(tz)
    when = (f"{local:%H:%M} on {local:%d %B}" if req.language == "en"
            else f"{local.month}月{local.day}日{local.hour}点{local.minute}分")
    return render("verify_greeting", req.language, operator=operator, plate_spoken=" ".join(req.plate),
                  alarm_words=alarm_words(req.alarm, req.language), time_local=when, place=req.place,
                  lat=f"{req.lat:.4f}" if req.lat is not None else "?",
                  lon=f"{req.lon:.4f}" if req.lon is not None else "?")


Speak = Callable[[str, str], Awaitable[Prompt]]  # (text, language) -> prompt


class OwnerVerifier:
    def __init__(self, telephony, check_pin: Callable[[str, str], Awaitable[bool]], *,
                 speak: Speak | None = None, operator: str = "Watchline", pin_timeout: float = 10.0,
                 ring_timeout: float = 30.0, tz: tzinfo = BEIJING) -> None:
        self.telephony = telephony
        self.check_pin = check_pin
        self.speak = speak or (lambda text, language: telephony.prompts.tts(text, VOICES.get(language, "cmn")))
        self.operator = operator
        self.pin_timeout = pin_timeout
        self.ring_timeout = ring_timeout
        self.tz = tz

    async def verify(self, req: VerificationRequest) -> VerificationResult:
        try:
            greeting = await self.speak(greeting_text(req, self.operator, self.tz), req.language)
        except Exception as e:  # no TTS is no reason to skip the call: the PIN check still works
            log.error("greeting prompt failed (%s); calling with a tone", e)
            greeting = Prompt.tone(660, 0.5)
        try:
            call = await self.telephony.dial(req.number, caller_id=req.caller_id, ring_timeout=self.ring_timeout)
        except CallNotConnected as e:
            return VerificationResult(_NOT_CONNECTED.get(e.outcome, VerificationOutcome.FAILED), None, 0)
        session = _Session(self, call, req)
        try:
            outcome = await session.run(greeting)
        finally:
            if not call.is_ended:
                await call.hangup()
        recording = str(call.recording.path) if call.recording is not None else None
        return VerificationResult(outcome, call.call_id, session.attempts, recording)


class _Session:
    """One answered verification call: feeds the PinCheck machine and acts on its outputs."""

    def __init__(self, verifier: OwnerVerifier, call, req: VerificationRequest) -> None:
        self.v = verifier
        self.call = call
        self.req = req
        self.attempts = 0
        self.outcome: VerificationOutcome | None = None
        self.retry: int | None = None
        self.machine = PinCheck(ask_again=self._ask_again, finish=self._finish)

    def _ask_again(self, attempt: int) -> None:
        self.retry = attempt

    def _finish(self, outcome: VerificationOutcome) -> None:
        self.outcome = outcome

    async def run(self, greeting: Prompt) -> VerificationOutcome:
        try:
            await self.call.play(greeting, interruptible=True)
            while self.outcome is None:
                digits = await self.call.collect(8, timeout=self.v.pin_timeout, terminators="#")
                await self._feed(digits)
                if self.retry is not None and self.outcome is None:
                    attempt, self.retry = self.retry, None
                    prompt = await self.v.speak(render("verify_retry", self.req.language, attempt=attempt),
                                                self.req.language)
                    await self.call.play(prompt, interruptible=True)
            prompt = await self.v.speak(render("verify_result", self.req.language, outcome=self.outcome.value),
                                        self.req.language)
            await self.call.play(prompt)
        except CallEnded:
            if self.outcome is None:
                self.machine.hung_up()
        return self.outcome

    async def _feed(self, digits: str) -> None:
        if digits == "":
            self.attempts += 1
            self.machine.no_input()
        elif digits == "9":
            self.machine.pressed_nine()
        elif digits == "0":
            self.machine.pressed_zero()
        else:
            self.attempts += 1
            if await self.v.check_pin(self.req.plate, digits):
                self.machine.pin_right()
            else:
                self.machine.pin_wrong()
