"""Running a routine incident's policy: verification calls to the owner, then the backup contact.

Each attempt waits for a trunk line (incident priority), places an ``OwnerVerifier`` call and puts
the result on the incident's timeline with its call id and recording. A right PIN resolves the
incident as ``owner_handled``; "not me" (9) and "operator" (0) escalate at emergency priority; three
wrong PINs escalate; busy / no answer / a bad number move on to the next step after its pause, and
when the steps run out the incident goes to the agents. Each step carries a deadline in the database
(its timeout plus its pause): if it never concludes — a hung call, a worker that died — the engine's
sweep hands the incident to the agents. The policy only acts on an incident still ``notifying``: one an
agent has taken meanwhile is left alone.
"""

from __future__ import annotations

import logging

from twisted.internet import task
from twisted.internet.defer import Deferred

from alarms.incident import Incident, IncidentStateError
from alarms.policies import dial_steps
from notify.lines import EMERGENCY, INCIDENT, TrunkLines
from notify.pin_check import VerificationOutcome as V
from notify.verification import OwnerVerifier, VerificationRequest

log = logging.getLogger(__name__)


def masked(number: str) -> str:
    return number[:-4].rstrip() + "****" if len(number) > 6 else "****"


class VerificationNotifier:
    def __init__(self, desk, vehicles, verifier: OwnerVerifier, lines: TrunkLines, clock,
                 caller_id: str | None = None) -> None:
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
        steps = dial_steps(incident.policy)
        for n, step in enumerate(steps, start=1):
            index = 0 if step["kind"] == "dial_owner" else 1
            if index >= len(phones):
                await self.desk.attempt(incident.id, f"step {n}: no {'backup' if index else 'owner'} phone", {})
                continue
            contact = phones[index]
            label = "owner" if index == 0 else "backup contact"
            async with self.lines.line(EMERGENCY if incident.severity == "emergency" else INCIDENT):
                # The step (and its deadline) starts once a line is free; if the sweep or an agent took
                # the incident while it waited, this raises and nobody is dialled.
                await self.desk.notify(incident.id, n, f"step {n}: calling the {label} {masked(contact.value)}",
                                       timeout=float(step.get("timeout", 120)) + float(step.get("retry_after", 60)))
                result = await self.verifier.verify(VerificationRequest(
                    plate=incident.plate, number=contact.value, alarm=incident.alarm, alarm_time=incident.opened_at,
                    language=language, lat=incident.lat, lon=incident.lon, caller_id=self.caller_id))
            await self.desk.attempt(incident.id, f"call to the {label}: {result.outcome.value}", {
                "call_id": result.call_id, "recording": result.recording_path, "outcome": result.outcome.value,
                "pin_attempts": result.attempts, "step": n})
            if result.outcome is V.VERIFIED:
                await self.desk.verified(incident.id, f"the {label} entered the right PIN",
                                         {"call_id": result.call_id})
                return
            if result.outcome in (V.DENIED, V.OPERATOR):
                why = "said it was not them or needs help" if result.outcome is V.DENIED else "asked for an operator"
                await self.desk.escalate(incident.id, f"the {label} {why}", priority=0,
                                         data={"call_id": result.call_id}, expect=("notifying",))
                return
            if result.outcome is V.PIN_FAILED:
                await self.desk.escalate(incident.id, f"the {label} failed the PIN three times",
                                         data={"call_id": result.call_id}, expect=("notifying",))
                return
            if n < len(steps):
                await task.deferLater(self.clock, float(step.get("retry_after", 60)), lambda: None)
        await self.desk.escalate(incident.id, f"nobody verified after {len(steps)} call steps",
                                 expect=("open", "notifying"))
