"""The alarm engine on the embedded backends: reports on the bus in, incidents and events out."""

from datetime import datetime, timedelta, timezone

import pytest_twisted
from twisted.internet import reactor, task

from alarms.desk import IncidentDesk
from alarms.engine import AlarmEngine
from alarms.report import Fix, Report
from crm.db import Database
from crm.migrate import upgrade
from ingest.pipeline import IngestPipeline
from tests.crm.storage_contract import rows
from watchline.live.memory import MemoryLiveState
from watchline.mq.memory import MemoryBus

T0 = datetime(2026, 5, 1, 8, tzinfo=timezone.utc)


class Feedback:
    def __init__(self):
        self.sent = []
        self.connected = {"11"}

    def is_connected(self, terminal_id):
        return terminal_id in self.connected

    async def confirm_alarm(self, terminal_id, serial, bits):
        self.sent.append((terminal_id, serial, bits))
        return 0


@pytest_twisted.async_yield_fixture
async def system(sqlite_url):
    db = Database(sqlite_url, reactor)
    upgrade(db.engine)
    db.startService()
    bus, live = MemoryBus(reactor), MemoryLiveState(reactor)
    bus.startService()
    live.startService()
    feedback = Feedback()
    desk = IncidentDesk(db, bus, reactor, ack_timeout=0.3, feedback=feedback)
    engine = AlarmEngine(db, bus, live, reactor, desk, sweep_interval=0.05)
    try:
        await db.vehicles.import_rows(rows({"plate": "P1", "terminal_id": "11", "tier": "gold"},
                                           {"plate": "P2", "terminal_id": "12", "owner_phone": "13900139000"}), "test")
        events = []
        await engine.startService()
        await bus.start_consuming(lambda k, m: events.append((k, m)), "incident.#")
        yield db, IngestPipeline(db.vehicles, bus, reactor), desk, events, feedback
    finally:
        await engine.stopService()
        await bus.stopService()
        live.stopService()
        await db.stopService()


def report(terminal: str, *alarms: str, i: int = 0, serial: int = 7) -> Report:
    return Report("jt808", terminal, T0 + timedelta(seconds=i), Fix(31.0, 121.0, valid=False), alarms=alarms,
                  raw_alarms={"jt808_word": 0, "jt808_serial": serial})


async def settle(db, check, timeout=5.0):
    for _ in range(int(timeout / 0.02)):
        found = await db.incidents.search(limit=1000)
        if check(found):
            return found
        await task.deferLater(reactor, 0.02, lambda: None)
    raise AssertionError(f"not settled: {found}")


@pytest_twisted.ensureDeferred
async def test_sos_opens_one_emergency_incident_in_escalated(system):
    db, pipeline, _, events, _ = system
    await pipeline.submit([report("11", "sos", i=i) for i in range(3)])  # repeats join it
    (incident,) = await settle(db, lambda f: f and f[0].state == "escalated" and f[0].count == 3)
    assert (incident.plate, incident.alarm, incident.severity, incident.priority) == ("P1", "sos", "emergency", 0)
    full = await db.incidents.get(incident.id)
    assert [e.kind for e in full.timeline] == ["opened", "escalate"]
    assert [k for k, _ in events][:2] == ["incident.opened", "incident.escalated"]


@pytest_twisted.ensureDeferred
async def test_routine_alarm_held_fifty_times_is_one_incident(system):
    db, pipeline, _, _, _ = system
    await pipeline.submit([report("12", "illegal_door_open")])
    await pipeline.submit([report("12", "power_cut", i=i) for i in range(50)])  # a level alarm, held
    found = await settle(db, lambda f: len(f) == 2 and all(i.state == "escalated" for i in f))
    by_alarm = {i.alarm: i for i in found}
    assert by_alarm["illegal_door_open"].severity == "routine"
    assert by_alarm["power_cut"].count == 1  # one raise for the held alarm, not fifty
    full = await db.incidents.get(by_alarm["power_cut"].id)
    assert "no telephony configured" in full.timeline[-1].text


@pytest_twisted.ensureDeferred
async def test_clear_and_raise_after_resolution_opens_a_new_incident(system):
    db, pipeline, desk, _, feedback = system
    await pipeline.submit([report("11", "power_cut", i=0), report("11", "power_cut", i=1)])
    (first,) = await settle(db, lambda f: f and f[0].state == "escalated")
    await desk.acknowledge(first.id, "alice")
    await desk.resolve(first.id, "alice", "false_alarm")
    await pipeline.submit([report("11", i=2), report("11", "power_cut", i=3)])  # cleared, then raised again
    found = await settle(db, lambda f: len(f) == 2 and all(i.state in ("escalated", "resolved") for i in f))
    assert sorted(i.state for i in found) == ["escalated", "resolved"]
    assert feedback.sent == []  # power_cut is a level alarm: nothing to confirm with 0x8203


@pytest_twisted.ensureDeferred
async def test_resolving_a_confirmable_alarm_sends_8203_and_ack_timeout_re_escalates(system):
    db, pipeline, desk, _, feedback = system
    await pipeline.submit([report("11", "sos", serial=42)])
    (incident,) = await settle(db, lambda f: f and f[0].state == "escalated")
    await desk.acknowledge(incident.id, "bob")
    await settle(db, lambda f: f[0].state == "escalated" and f[0].assignee is None)  # 0.3 s ack timeout
    await desk.acknowledge(incident.id, "carol")
    done = await desk.resolve(incident.id, "carol", "owner_handled")
    assert feedback.sent == [("11", 42, 1)]
    kinds = [e.kind for e in (await db.incidents.get(done.id)).timeline]
    assert kinds == ["opened", "escalate", "acknowledge", "escalate", "acknowledge", "resolve", "terminal_feedback"]


@pytest_twisted.ensureDeferred
async def test_8203_goes_through_the_bus_to_the_process_holding_the_terminal(sqlite_url):
    from alarms.desk import TerminalConfirmations
    from crm.incidents import NewIncident

    db = Database(sqlite_url, reactor)
    upgrade(db.engine)
    db.startService()
    bus = MemoryBus(reactor)
    bus.startService()
    feedback = Feedback()
    api_desk = IncidentDesk(db, bus, reactor)  # an API process: no terminal sessions
    ingest_desk = IncidentDesk(db, bus, reactor, feedback=feedback)  # the ingest process holding "11"
    confirmations = TerminalConfirmations(ingest_desk)
    await confirmations.startService()
    try:
        incident, _ = await db.incidents.open_or_join(NewIncident(
            "P1", "sos", "emergency", 0, "gold", {"name": "agent_only"}, T0, "jt808", "11", 42), T0)
        await api_desk.escalate(incident.id, "queue")
        await api_desk.resolve(incident.id, "alice", "false_alarm")
        for _ in range(100):
            timeline = (await db.incidents.get(incident.id)).timeline
            if timeline[-1].data and "result" in timeline[-1].data:
                break
            await task.deferLater(reactor, 0.02, lambda: None)
        assert feedback.sent == [("11", 42, 1)]
        assert [e.text for e in timeline[-2:]] == [
            "0x8203 asked of the ingest process holding the terminal (not connected here)",
            "terminal confirmed the alarm (0x8203 → 0x0001 result 0)"]
    finally:
        await confirmations.stopService()
        await bus.stopService()
        await db.stopService()
