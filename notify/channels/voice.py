"""The ``voice`` channel: a notice read out on a phone call (``notify.notice_call``, espeak-ng TTS).

The call waits for a free trunk line at the priority given (incident notices before campaign ones),
reads the body twice — the first time is often half-missed while the phone reaches an ear — and hangs
up. An answered call that heard the notice once at least is ``delivered`` with its call id; busy, no answer or a bad
number is a failure (an invalid number a permanent one). No PIN and no keys: that is verification's job.
"""

from __future__ import annotations

from notify.channels import DeliveryFailed, Message, SendResult
from notify.lines import INCIDENT
from notify.notice_call import NoticeCall

_NOT_ANSWERED = {"busy": "busy", "no_answer": "no answer", "invalid_number": "not a valid number",
                 "failed": "failed"}


class VoiceChannel:
    name = "voice"

    def __init__(self, telephony, lines, clock, *, priority: int = INCIDENT, caller_id: str | None = None,
                 ring_timeout: float = 30.0, repeat: int = 2, speak=None) -> None:
        self.call = NoticeCall(telephony, clock, speak=speak, ring_timeout=ring_timeout)
        self.lines = lines
        self.priority = priority
        self.caller_id = caller_id
        self.repeat = repeat

    async def send(self, message: Message) -> SendResult:
        try:
            prompts = await self.call.prepare(message.body, message.language, confirm=False)
        except Exception as e:
            raise DeliveryFailed(f"cannot speak the notice: {e}") from None
        async with self.lines.line(self.priority):
            result = await self.call.deliver(message.recipient, prompts, False, self.caller_id, repeat=self.repeat)
        if result.outcome in _NOT_ANSWERED:
            detail = f" ({result.detail})" if result.detail and result.detail != result.outcome else ""
            raise DeliveryFailed(f"call not answered: {_NOT_ANSWERED[result.outcome]}{detail}",
                                 permanent=result.outcome == "invalid_number")
        if not result.readings:  # hung up during the first reading: they did not get it
            raise DeliveryFailed(f"hung up before the notice was read out (call {result.call_id})", permanent=False)
        return SendResult(result.call_id, 1, status="delivered")
