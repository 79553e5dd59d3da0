"""The ``voice`` channel: a notice read out on a phone call (callflows Telephony, espeak-ng TTS).

The call waits for a free trunk line at the priority given (incident notices before campaign ones),
reads the body twice — the first time is often half-missed while the phone reaches an ear — and hangs
up. An answered call that heard the notice once at least is ``delivered`` with its call id; busy, no answer or a bad
number is a failure (an invalid number a permanent one). No PIN and no keys: that is verification's job.
"""

from __future__ import annotations

from callflows.outcomes import CallEnded, CallNotConnected, CallOutcome
from notify.channels import DeliveryFailed, Message, SendResult
from notify.lines import INCIDENT
from notify.verification import VOICES


class VoiceChannel:
    name = "voice"

    def __init__(self, telephony, lines, *, priority: int = INCIDENT, caller_id: str | None = None,
                 ring_timeout: float = 30.0, repeat: int = 2, speak=None) -> None:
        self.telephony = telephony
        self.speak = speak or (lambda text, language: telephony.prompts.tts(text, VOICES.get(language, "cmn")))
        self.lines = lines
        self.priority = priority
        self.caller_id = caller_id
        self.ring_timeout = ring_timeout
        self.repeat = repeat

    async def send(self, message: Message) -> SendResult:
        try:
            prompt = await self.speak(message.body, message.language)
        except Exception as e:
            raise DeliveryFailed(f"cannot speak the notice: {e}") from None
        async with self.lines.line(self.priority):
            try:
                call = await self.telephony.dial(message.recipient, caller_id=self.caller_id,
                                                 ring_timeout=self.ring_timeout)
            except CallNotConnected as e:
                raise DeliveryFailed(f"call not answered: {e}",
                                     permanent=e.outcome is CallOutcome.INVALID_NUMBER) from None
            heard = 0
            try:
                for _ in range(self.repeat):
                    await call.play(prompt)
                    heard += 1
            except CallEnded:
                if not heard:  # hung up during the first reading: they did not get it
                    raise DeliveryFailed(f"hung up before the notice was read out (call {call.call_id})",
                                         permanent=False) from None
            finally:
                if not call.is_ended:
                    await call.hangup()
        return SendResult(call.call_id, 1, status="delivered")
