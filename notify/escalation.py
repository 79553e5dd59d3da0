"""Running a routine incident's policy: verification calls to the owner, then the backup contact.

Each attempt waits for a trunk line (incident priority), places an ``OwnerVerifier`` call and puts
the result on the incident's timeline with its call id and recording. A right PIN resolves the
incident as ``owner_handled``; "not me" (9) and "operator" (0) escalate at emergency priority; three
wrong PINs escalate; busy / no answer / a failed call are retried on the same number as the step's
``retry`` says (per outcome: how many times, after what pause), then the policy moves on to the next
step after its pause; a number that does not exist is not dialled again; when the steps run out the
incident goes to the agents. Each step carries a deadline in the database
(its timeout plus its pause): if it never concludes — a hung call, a worker that died — the engine's
sweep hands the incident to the agents. The policy only acts on an incident still ``notifying``: one an
agent has taken meanwhile is left alone.

Quiet hours (``notify.quiet_hours``, or the deciding rule's ``quiet_hours`` carried in the policy; in the
operator's time zone): a routine incident opened then is not phoned. The owner gets an SMS notice
(``incident_notice``: plate, the alarm in words, time, place, the hotline), the timeline gets a
``message`` entry with the delivery id, and the incident goes to the agents at its routine priority with
"quiet hours: SMS sent". We escalate rather than keep it ``notifying`` until a daytime call because an
unverified alarm must stay in front of a person: the night desk sees it (below every emergency) and can
call if it looks like theft, the morning shift inherits a queue rather than a batch of 07:00 calls about
alarms nine hours old, and no in-memory timer has to survive a restart to get there. If SMS is off or
the SMS fails, the owner is called after all — waking someone beats telling no one.
"""

from __future__ import annotations

import logging
from datetime import time, tzinfo

from twisted.internet import task
from twisted.internet.defer import Deferred

from alarms.incident import Incident, IncidentStateError
from alarms.policies import LINE_WAIT, RETRYABLE, call_deadline, dial_steps, pause_deadline, retry_rule
from crm.fleet import masked_phone as masked
from notify.lines import EMERGENCY, INCIDENT, TrunkLines
from notify.pin_check import VerificationOutcome as V
from notify.verification import BEIJING, OwnerVerifier, VerificationRequest

log = logging.getLogger(__name__)


QUIET_STEP_TIMEOUT = 120.0  # an SMS notice that has not concluded by then is the sweep's to escalate
_RETRYABLE = frozenset(V(o) for o in RETRYABLE)


def in_quiet_hours(window: str, local: time) -> bool:
    """``window`` "22:00-07:00" (may cross midnight; "" = never) contains the local time ``local``."""
    if not window:
        return False
    start, end = (time.fromisoformat(part.strip()) for part in window.split("-"))
    local = local.replace(tzinfo=None)
    return start <= local < end if start < end else (local >= start or local < end)


class VerificationNotifier:
    def __init__(self, desk, vehicles, verifier: OwnerVerifier, lines: TrunkLines, clock,
                 caller_id: str | None = None, *, notices=None, quiet_hours: str = "", tz: tzinfo = BEIJING) -> None:
        self.notices = notices  # notify.notices.Notices: SMS in quiet hours (None: always call)
        self.quiet_hours = quiet_hours
        self.tz = tz
        self.desk = desk
        self.vehicles = vehicles
        self.verifier = verifier
        self.lines = lines
        self.clock = clock
        self.caller_id = caller_id

    def start(self, incident: Incident) -> None:
        Deferred.fromCoroutine(self.run(incident)).addErrback(self._failed, incident)

    def _failed(self, failure, incident: Incident) -> None:
        log.error("policy of incident %s failed: %s", incident.id, failure.getTraceback())
        Deferred.fromCoroutine(self.desk.escalate(
            incident.id, f"the notification policy failed ({failure.getErrorMessage()}); to the agent queue",
            expect=("open", "notifying"))).addErrback(lambda f: None)  # gone meanwhile, or the sweep will

    async def run(self, incident: Incident) -> None:
        try:
            await self._run(incident)
        except IncidentStateError as e:  # an agent took or resolved it meanwhile: the policy stops
            log.info("incident %s policy stopped: %s", incident.id, e)

    async def _run(self, incident: Incident) -> None:
        vehicle = await self.vehicles.get_by_plate(incident.plate)
        phones = [c for c in (vehicle.owner.contacts if vehicle and vehicle.owner else ()) if c.kind == "phone"]
        language = "en" if vehicle and vehicle.owner and vehicle.owner.language == "en" else "zh"
        if phones and await self._quiet_notice(incident, phones[0].value, language):
            return
        steps = dial_steps(incident.policy)
        unreachable: set[str] = set()  # numbers that came back invalid: not dialled again in later loops
        for n, step in enumerate(steps, start=1):
            index = 0 if step["kind"] == "dial_owner" else 1
            label = "owner" if index == 0 else "backup contact"
            if index >= len(phones):
                await self.desk.attempt(incident.id, f"step {n}: no {'backup' if index else 'owner'} phone", {})
                continue
            contact = phones[index]
            if contact.value in unreachable:
                await self.desk.attempt(incident.id, f"step {n}: the {label}'s number {masked(contact.value)} "
                                                     "was invalid; not dialled again", {"step": n})
                continue
            following = steps[n] if n < len(steps) else None
            if await self._step(incident, n, step, following, contact.value, label, language, unreachable):
                return
            if following is not None:
                await task.deferLater(self.clock, float(step.get("retry_after", 60)), lambda: None)
        await self.desk.escalate(incident.id, f"nobody verified after {len(steps)} call steps",
                                 expect=("open", "notifying"))

    async def _step(self, incident: Incident, n: int, step: dict, following: dict | None, number: str, label: str,
                    language: str, unreachable: set[str]) -> bool:
        """One dialling step: call ``number``, again on busy / no answer / failure as the step's ``retry``
        says. True when the policy is over (verified, or escalated by the callee's answer).

        Deadlines: each call has the step's ``timeout``; the entry that records a call moves the deadline
        past the pause that follows, a trunk line and the next call (``pause_deadline``)."""
        retried: dict[str, int] = {}
        while True:
            again = sum(retried.values())
            async with self.lines.line(EMERGENCY if incident.severity == "emergency" else INCIDENT):
                # The step (and its deadline) starts once a line is free; if the sweep or an agent took
                # the incident while it waited, this raises and nobody is dialled.
                await self.desk.notify(incident.id, n, f"step {n}: calling the {label} {masked(number)}"
                                       + (f" (retry {again})" if again else ""), timeout=call_deadline(step))
                result = await self.verifier.verify(VerificationRequest(
                    plate=incident.plate, number=number, alarm=incident.alarm, alarm_time=incident.opened_at,
                    language=language, lat=incident.lat, lon=incident.lon, caller_id=self.caller_id))
            outcome = result.outcome
            times, after = retry_rule(step, outcome.value)
            retry = outcome in _RETRYABLE and retried.get(outcome.value, 0) < times
            if retry:
                next_within = pause_deadline(after, step)
            elif outcome in _RETRYABLE or outcome is V.INVALID_NUMBER:
                next_within = pause_deadline(float(step.get("retry_after", 60)), following) if following else None
            else:
                next_within = None  # verified or escalated at once, below
            await self.desk.attempt(incident.id, f"call to the {label}: {outcome.value}", {
                "call_id": result.call_id, "recording": result.recording_path, "outcome": outcome.value,
                "pin_attempts": result.attempts, "step": n, "retry": again}, next_within=next_within)
            if outcome is V.VERIFIED:
                await self.desk.verified(incident.id, f"the {label} entered the right PIN",
                                         {"call_id": result.call_id})
                return True
            if outcome in (V.DENIED, V.OPERATOR):
                why = "said it was not them or needs help" if outcome is V.DENIED else "asked for an operator"
                await self.desk.escalate(incident.id, f"the {label} {why}", priority=0,
                                         data={"call_id": result.call_id}, expect=("notifying",))
                return True
            if outcome is V.PIN_FAILED:
                await self.desk.escalate(incident.id, f"the {label} failed the PIN three times",
                                         data={"call_id": result.call_id}, expect=("notifying",))
                return True
            if outcome is V.INVALID_NUMBER:
                unreachable.add(number)
            if not retry:
                return False
            retried[outcome.value] = retried.get(outcome.value, 0) + 1
            await task.deferLater(self.clock, after, lambda: None)

    async def _quiet_notice(self, incident: Incident, owner: str, language: str) -> bool:
        """In quiet hours: SMS the owner and hand the incident to the agents. False: call as usual."""
        window = incident.policy.get("quiet_hours", self.quiet_hours)
        if incident.severity != "routine" or not in_quiet_hours(window, incident.opened_at.astimezone(self.tz).time()):
            return False
        if self.notices is None or not self.notices.can_sms:
            await self.desk.attempt(incident.id, f"quiet hours ({window}), but SMS is off: calling instead", {},
                                    kind="message")
            return False
        await self.desk.notify(incident.id, 1, f"quiet hours ({window}): an SMS to the owner {masked(owner)} "
                                               "instead of a call", timeout=QUIET_STEP_TIMEOUT)
        delivery = await self.notices.incident_notice(incident, owner, language)
        steps = dial_steps(incident.policy)
        # A failed SMS: the owner is called after all, once a line is free — the deadline allows for that.
        calling = LINE_WAIT + call_deadline(steps[0]) if delivery.status == "failed" and steps else None
        await self.desk.attempt(incident.id, f"SMS to the owner: {delivery.status}"
                                + (f" ({delivery.error})" if delivery.error else ""), {
                                    "delivery_id": delivery.id, "channel": "sms", "status": delivery.status,
                                    "external_id": delivery.external_id}, kind="message", next_within=calling)
        if delivery.status == "failed":
            return False
        await self.desk.escalate(incident.id, "quiet hours: SMS sent to the owner; to the agents as routine",
                                 data={"delivery_id": delivery.id}, expect=("notifying",))
        return True
