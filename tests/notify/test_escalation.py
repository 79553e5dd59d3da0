"""Running a routine incident's policy with a scripted verifier: outcomes drive the incident."""

from datetime import datetime, timezone

import pytest_twisted
from twisted.internet import reactor

from alarms.desk import IncidentDesk
from crm.db import Database
from crm.incidents import NewIncident
from crm.migrate import upgrade
from notify.escalation import VerificationNotifier
from notify.lines import TrunkLines
from notify.pin_check import VerificationOutcome as V
from notify.verification import VerificationResult
from tests.crm.storage_contract import rows
from watchline.mq.fake import FakeBus

T0 = datetime(2026, 5, 1, 8, tzinfo=timezone.utc)
POLICY = {"name": "verify_owner", "loops": 2, "steps": [
    {"kind": "dial_owner", "timeout": 5, "retry_after": 0},
    {"kind": "dial_backup", "timeout": 5, "retry_after": 0},
    {"kind": "agent_queue"}]}


class ScriptedVerifier:
    def __init__(self, *outcomes):
        self.outcomes, self.dialled = list(outcomes), []

    async def verify(self, request):
        self.dialled.append(request.number)
        outcome = self.outcomes.pop(0)
        return VerificationResult(outcome, f"call-{len(self.dialled)}", 1 if outcome is V.VERIFIED else 0)


@pytest_twisted.async_yield_fixture
async def setup(sqlite_url):
    db = Database(sqlite_url, reactor)
    upgrade(db.engine)
    db.startService()
    try:
        await db.vehicles.import_rows(rows({"plate": "P1", "terminal_id": "11", "backup_phone": "13900139000"},
                                           {"plate": "P2", "terminal_id": "12"}), "test")
        yield db, IncidentDesk(db, FakeBus(), reactor)
    finally:
        await db.stopService()


async def run(db, desk, verifier, plate="P1"):
    incident, _ = await db.incidents.open_or_join(NewIncident(
        plate, "power_cut", "routine", 50, "normal", POLICY, T0), T0)
    await VerificationNotifier(desk, db.vehicles, verifier, TrunkLines(2), reactor).run(incident)
    return await db.incidents.get(incident.id)


@pytest_twisted.ensureDeferred
async def test_owner_busy_then_backup_verifies(setup):
    db, desk = setup
    verifier = ScriptedVerifier(V.BUSY, V.VERIFIED)
    done = await run(db, desk, verifier)
    assert verifier.dialled == ["+8613800138000", "+8613900139000"]
    assert (done.state, done.outcome) == ("resolved", "owner_handled")
    assert [e.kind for e in done.timeline] == ["opened", "notifying", "call", "notifying", "call", "verify", "resolve"]
    assert done.timeline[1].text == "step 1: calling the owner +861380013****"
    assert done.timeline[4].data["call_id"] == "call-2" and done.due_at is None


@pytest_twisted.ensureDeferred
async def test_owner_says_not_me_escalates_at_emergency_priority(setup):
    db, desk = setup
    done = await run(db, desk, ScriptedVerifier(V.DENIED))
    assert (done.state, done.priority) == ("escalated", 0)
    assert done.timeline[-1].text == "the owner said it was not them or needs help"


@pytest_twisted.ensureDeferred
async def test_nobody_answers_all_loops_then_agents(setup):
    db, desk = setup
    verifier = ScriptedVerifier(*[V.NO_ANSWER] * 4)
    done = await run(db, desk, verifier)
    assert len(verifier.dialled) == 4 and done.state == "escalated"
    assert done.timeline[-1].text == "nobody verified after 4 call steps"


@pytest_twisted.ensureDeferred
async def test_no_backup_phone_is_skipped_and_noted(setup):
    db, desk = setup
    verifier = ScriptedVerifier(V.PIN_FAILED)
    done = await run(db, desk, verifier, plate="P2")
    assert verifier.dialled == ["+8613800138000"] and done.state == "escalated"
    assert done.timeline[-1].text == "the owner failed the PIN three times"


@pytest_twisted.ensureDeferred
async def test_an_agent_taking_the_incident_mid_call_stops_the_policy(setup):
    db, desk = setup

    class AgentTakesIt(ScriptedVerifier):
        async def verify(self, request):
            incidents = await db.incidents.search(plate="P1")
            await desk.acknowledge(incidents[0].id, "alice")  # while the owner's phone rings
            return await super().verify(request)

    done = await run(db, desk, AgentTakesIt(V.NO_ANSWER, V.NO_ANSWER))
    assert (done.state, done.assignee) == ("acknowledged", "alice")


@pytest_twisted.ensureDeferred
async def test_two_sweeps_escalate_once_and_a_stuck_open_incident_goes_to_agents(setup):
    from twisted.internet import defer

    db, desk = setup
    taken, _ = await db.incidents.open_or_join(NewIncident("P1", "sos", "emergency", 0, "normal", POLICY, T0), T0)
    await desk.escalate(taken.id, "queue")
    desk.ack_timeout = 0.001
    await desk.acknowledge(taken.id, "bob")
    stuck, _ = await db.incidents.open_or_join(NewIncident("P2", "power_cut", "routine", 50, "normal", POLICY, T0,
                                                           start_deadline=0.001), T0)
    from twisted.internet import task
    await task.deferLater(reactor, 0.01, lambda: None)
    counts = await defer.gatherResults([defer.Deferred.fromCoroutine(desk.sweep()) for _ in range(2)])
    assert sum(counts) == 2
    taken = await db.incidents.get(taken.id)
    assert [e.kind for e in taken.timeline].count("escalate") == 2 and taken.state == "escalated"
    stuck = await db.incidents.get(stuck.id)
    assert stuck.state == "escalated" and "did not start in time" in stuck.timeline[-1].text


@pytest_twisted.ensureDeferred
async def test_a_step_that_never_concludes_is_escalated_by_the_sweep(setup):
    db, desk = setup
    incident, _ = await db.incidents.open_or_join(NewIncident("P1", "power_cut", "routine", 50, "normal", POLICY, T0),
                                                  T0)
    await desk.notify(incident.id, 1, "calling", timeout=0.001)
    await desk.sweep()
    done = await db.incidents.get(incident.id)
    assert done.state == "escalated" and "did not conclude in time" in done.timeline[-1].text
