"""Running a routine incident's policy with a scripted verifier: outcomes drive the incident."""

from datetime import datetime, timezone

import pytest
import pytest_twisted
from twisted.internet import defer, reactor, task

from alarms.desk import IncidentDesk
from crm.db import Database
from crm.incidents import NewIncident
from crm.migrate import upgrade
from notify.channels.sms_parts import decode_parts
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


RETRYING = {"name": "retrying", "loops": 1, "steps": [
    {"kind": "dial_owner", "timeout": 5, "retry_after": 0,
     "retry": {"busy": {"times": 2, "after": 0}, "no_answer": {"times": 1, "after": 0}}},
    {"kind": "dial_backup", "timeout": 5, "retry_after": 0, "retry": {"no_answer": {"times": 1, "after": 0}}},
    {"kind": "agent_queue"}]}


async def run_policy(db, desk, verifier, policy, plate="P1"):
    incident, _ = await db.incidents.open_or_join(NewIncident(plate, "power_cut", "routine", 50, "normal", policy, T0),
                                                  T0)
    await VerificationNotifier(desk, db.vehicles, verifier, TrunkLines(2), reactor).run(incident)
    return await db.incidents.get(incident.id)


@pytest_twisted.ensureDeferred
async def test_retries_per_outcome_on_the_same_number_then_the_backup(setup):
    db, desk = setup
    # owner: busy, busy (2 busy retries allowed), no answer (1 allowed), no answer (none left) -> backup
    verifier = ScriptedVerifier(V.BUSY, V.BUSY, V.NO_ANSWER, V.NO_ANSWER, V.NO_ANSWER, V.NO_ANSWER)
    done = await run_policy(db, desk, verifier, RETRYING)
    owner, backup = "+8613800138000", "+8613900139000"
    assert verifier.dialled == [owner] * 4 + [backup] * 2
    assert done.state == "escalated" and done.timeline[-1].text == "nobody verified after 2 call steps"
    calls = [e for e in done.timeline if e.kind == "call"]
    assert [(c.data["step"], c.data["retry"], c.data["outcome"]) for c in calls] == [
        (1, 0, "busy"), (1, 1, "busy"), (1, 2, "no_answer"), (1, 3, "no_answer"), (2, 0, "no_answer"),
        (2, 1, "no_answer")]
    notes = [e.text for e in done.timeline if e.kind == "notifying"]
    assert notes[:2] == ["step 1: calling the owner +861380013****", "step 1: calling the owner +861380013**** (retry 1)"]


@pytest_twisted.ensureDeferred
async def test_a_retry_that_verifies_ends_the_policy(setup):
    db, desk = setup
    verifier = ScriptedVerifier(V.BUSY, V.VERIFIED)
    done = await run_policy(db, desk, verifier, RETRYING)
    assert verifier.dialled == ["+8613800138000"] * 2 and (done.state, done.outcome) == ("resolved", "owner_handled")


@pytest_twisted.ensureDeferred
async def test_an_invalid_number_is_not_retried_nor_dialled_in_later_loops(setup):
    db, desk = setup
    verifier = ScriptedVerifier(V.INVALID_NUMBER, V.NO_ANSWER, V.NO_ANSWER)
    done = await run(db, desk, verifier)  # POLICY: owner, backup, twice
    assert verifier.dialled == ["+8613800138000", "+8613900139000", "+8613900139000"]
    assert "the owner's number +861380013**** was invalid; not dialled again" in [e.text for e in done.timeline][-4]
    assert done.state == "escalated" and done.timeline[-1].text == "nobody verified after 4 call steps"


@pytest_twisted.ensureDeferred
async def test_the_deadline_covers_each_call_then_the_pause_a_line_and_the_next_call(setup):
    from alarms.policies import LINE_WAIT

    db, desk = setup
    policy = {**RETRYING, "steps": [{"kind": "dial_owner", "timeout": 100, "retry_after": 5,
                                     "retry": {"busy": {"times": 1, "after": 600}}}, {"kind": "agent_queue"}]}
    incident, _ = await db.incidents.open_or_join(NewIncident("P1", "power_cut", "routine", 50, "normal", policy, T0),
                                                  T0)
    seen = []

    class Watching(ScriptedVerifier):
        async def verify(self, request):
            seen.append(((await db.incidents.get(incident.id)).due_at, desk.now()))
            return await super().verify(request)

    clock = task.Clock()  # the policy's pauses; the database runs on the reactor
    running = defer.Deferred.fromCoroutine(VerificationNotifier(
        desk, db.vehicles, Watching(V.BUSY, V.VERIFIED), TrunkLines(2), clock).run(incident))
    for _ in range(200):  # bounded: until the policy sleeps in its 600 s busy pause
        if clock.getDelayedCalls():
            break
        await task.deferLater(reactor, 0.01, lambda: None)
    pausing = await db.incidents.get(incident.id)
    (call_due, call_at), = seen
    assert 99 <= (call_due - call_at).total_seconds() <= 101  # the call: its step's timeout
    paused_at = pausing.timeline[-1].time
    assert pausing.timeline[-1].data["outcome"] == "busy"
    assert (pausing.due_at - paused_at).total_seconds() == pytest.approx(600 + LINE_WAIT + 100, abs=1)
    clock.advance(600)
    await running
    assert (await db.incidents.get(incident.id)).outcome == "owner_handled"


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


# -- quiet hours: an SMS through a real SMPP session instead of a call ------------------------------

NIGHT = datetime(2026, 5, 1, 15, 30, tzinfo=timezone.utc)  # 23:30 in Beijing


@pytest_twisted.async_yield_fixture
async def smsc():
    from notify.channels import Channels
    from notify.channels.sms import SmsChannel
    from tests.notify.smsc import Smsc

    server = Smsc()
    port = reactor.listenTCP(0, server, interface="127.0.0.1")
    made = []

    def notices(db):
        from notify.notices import Notices

        channels = Channels(db.deliveries, reactor)
        channels.register(SmsChannel(reactor, f"smpp://watchline:s3cret@127.0.0.1:{port.getHost().port}",
                                     "Watchline", connect_timeout=2.0, retries=0))
        channels.startService()
        made.append(channels)
        return Notices(channels)

    try:
        yield server, notices
    finally:
        for channels in made:
            await channels.stopService()
        await port.stopListening()


async def run_at(db, desk, verifier, notices, at=NIGHT, policy=POLICY, quiet_hours="22:00-07:00"):
    incident, _ = await db.incidents.open_or_join(NewIncident(
        "P1", "power_cut", "routine", 50, "normal", policy, at), at)
    await VerificationNotifier(desk, db.vehicles, verifier, TrunkLines(2), reactor, notices=notices,
                               quiet_hours=quiet_hours).run(incident)
    return await db.incidents.get(incident.id)


@pytest_twisted.ensureDeferred
async def test_routine_alarm_at_2330_beijing_gets_an_sms_not_a_call_then_goes_to_agents(setup, smsc):
    (db, desk), (server, notices) = setup, smsc
    verifier = ScriptedVerifier()  # any call would fail the test: it has no outcome to give
    done = await run_at(db, desk, verifier, notices(db))
    assert verifier.dialled == []
    message_id = server.submitted[0][0]
    parts = [pdu.params["short_message"] for _, pdu in server.submitted]
    text = decode_parts(parts, ucs2=True)  # a Chinese notice of more than 70 characters: UCS2 parts
    assert len(parts) == 2 and {pdu.params["destination_addr"] for _, pdu in server.submitted} == {b"8613800138000"}
    assert "P1" in text and "主电源断电报警" in text and "5月1日23:30" in text and f"事件号{done.id}" in text
    assert (done.state, done.priority, done.due_at) == ("escalated", 50, None)
    assert [e.kind for e in done.timeline] == ["opened", "notifying", "message", "escalate"]
    assert done.timeline[1].text == "quiet hours (22:00-07:00): an SMS to the owner +861380013**** instead of a call"
    message = done.timeline[2]
    assert message.text == "SMS to the owner: sent" and message.data["external_id"] == message_id
    assert done.timeline[3].text == "quiet hours: SMS sent to the owner; to the agents as routine"
    delivery = await db.deliveries.get(message.data["delivery_id"])
    assert (delivery.incident_id, delivery.template, delivery.status, delivery.body) == (
        done.id, "incident_notice", "sent", text)


@pytest_twisted.ensureDeferred
async def test_a_rule_without_quiet_hours_is_called_at_night_and_daytime_is_called(setup, smsc):
    (db, desk), (server, notices) = setup, smsc
    sms = notices(db)
    verifier = ScriptedVerifier(V.VERIFIED, V.VERIFIED)
    night = await run_at(db, desk, verifier, sms, policy=dict(POLICY, quiet_hours=""))
    day = await run_at(db, desk, verifier, sms, at=T0)  # 16:00 in Beijing
    assert len(verifier.dialled) == 2 and server.submitted == []
    assert night.state == day.state == "resolved"


@pytest_twisted.ensureDeferred
async def test_a_rules_own_window_decides_over_the_default(setup, smsc):
    (db, desk), (server, notices) = setup, smsc
    verifier = ScriptedVerifier()
    done = await run_at(db, desk, verifier, notices(db), policy=dict(POLICY, quiet_hours="23:00-23:45"),
                        quiet_hours="")
    assert verifier.dialled == [] and len(server.submitted) == 2 and done.state == "escalated"


@pytest_twisted.ensureDeferred
async def test_a_failed_sms_falls_back_to_calling(setup, smsc):
    from smpp.pdu.pdu_types import CommandStatus

    (db, desk), (server, notices) = setup, smsc
    server.refuse = [CommandStatus.ESME_RINVDSTADR]
    allowed = []
    attempt = desk.attempt

    async def recording_attempt(incident_id, text, data, kind="call", next_within=None):
        allowed.append((text, next_within))
        return await attempt(incident_id, text, data, kind, next_within)

    desk.attempt = recording_attempt
    verifier = ScriptedVerifier(V.VERIFIED)
    done = await run_at(db, desk, verifier, notices(db))
    assert verifier.dialled == ["+8613800138000"] and done.state == "resolved"
    kinds = [e.kind for e in done.timeline]
    assert kinds == ["opened", "notifying", "message", "notifying", "call", "verify", "resolve"]
    assert done.timeline[2].text == "SMS to the owner: failed (SMSC refused part 1/2: ESME_RINVDSTADR (Invalid Dest Addr))"
    from alarms.policies import LINE_WAIT
    # The failed SMS's entry gives the policy time for a line and the call (not the SMS step's 120 s).
    assert allowed[0] == (done.timeline[2].text, LINE_WAIT + POLICY["steps"][0]["timeout"])


@pytest_twisted.ensureDeferred
async def test_without_sms_quiet_hours_still_call_and_say_so(setup):
    db, desk = setup
    verifier = ScriptedVerifier(V.VERIFIED)
    done = await run_at(db, desk, verifier, None)
    assert verifier.dialled == ["+8613800138000"] and done.state == "resolved"
    assert done.timeline[1].text == "quiet hours (22:00-07:00), but SMS is off: calling instead"


def test_quiet_window_across_midnight():
    from datetime import time

    from notify.escalation import in_quiet_hours

    assert in_quiet_hours("22:00-07:00", time(23, 30)) and in_quiet_hours("22:00-07:00", time(6, 59))
    assert not in_quiet_hours("22:00-07:00", time(7, 0)) and not in_quiet_hours("22:00-07:00", time(12))
    assert in_quiet_hours("01:00-05:00", time(3)) and not in_quiet_hours("01:00-05:00", time(23))
    assert not in_quiet_hours("", time(23, 30))
