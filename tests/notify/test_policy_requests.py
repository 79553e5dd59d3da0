"""Split deployment: a worker's routine incident is phoned by a telephony process, over the bus."""

from __future__ import annotations

import pytest_twisted
from twisted.internet import reactor, task

from alarms.desk import IncidentDesk
from crm.incidents import NewIncident
from notify.escalation import VerificationNotifier
from notify.lines import TrunkLines
from notify.pin_check import VerificationOutcome as V
from notify.policy_requests import ROUTING_KEY, PolicyRequests, PolicyRunner
from tests.conftest import free_port
from tests.notify.test_escalation import POLICY, T0, ScriptedVerifier, setup  # noqa: F401 - setup is a fixture
from watchline.config import load_config
from watchline.mq.memory import MemoryBus
from watchline.service import Watchline


class Recording:
    def __init__(self):
        self.started = []

    def start(self, incident):
        self.started.append(incident.id)


async def open_routine(db, plate="P1"):
    incident, _ = await db.incidents.open_or_join(NewIncident(plate, "power_cut", "routine", 50, "normal", POLICY, T0,
                                                              start_deadline=60), T0)
    return incident


@pytest_twisted.ensureDeferred
async def test_a_workers_request_is_run_by_the_telephony_process(setup):  # noqa: F811
    db, _ = setup
    bus = MemoryBus(reactor)
    bus.startService()
    desk = IncidentDesk(db, bus, reactor)
    verifier = ScriptedVerifier(V.VERIFIED)
    runner = PolicyRunner(db, bus, VerificationNotifier(desk, db.vehicles, verifier, TrunkLines(1), reactor))
    await runner.startService()
    try:
        incident = await open_routine(db)
        PolicyRequests(bus).start(incident)  # in the worker
        for _ in range(200):  # bounded: 2 s
            done = await db.incidents.get(incident.id)
            if done.state == "resolved":
                break
            await task.deferLater(reactor, 0.01, lambda: None)
        assert (done.state, done.outcome) == ("resolved", "owner_handled")
        assert verifier.dialled == ["+8613800138000"]
    finally:
        await runner.stopService()
        await bus.stopService()


@pytest_twisted.ensureDeferred
async def test_requests_for_taken_or_unknown_incidents_and_bad_messages_are_dropped(setup):  # noqa: F811
    db, desk = setup
    notifier = Recording()
    runner = PolicyRunner(db, None, notifier)
    taken = await open_routine(db)
    await desk.escalate(taken.id, "the sweep got there first")
    for message in ({"incident_id": taken.id}, {"incident_id": 999_999}, {"incident_id": "1"}, {}):
        await runner._on_request(ROUTING_KEY, message)
    assert notifier.started == []
    waiting = await open_routine(db, "P2")
    await runner._on_request(ROUTING_KEY, {"incident_id": waiting.id})
    assert notifier.started == [waiting.id]


def test_split_roles_are_wired_over_the_bus(tmp_path):
    environ = {"WATCHLINE_DATABASE_URL": f"sqlite:///{tmp_path / 'w.db'}", "WATCHLINE_API_LISTEN": "",
               "WATCHLINE_INGEST_JT808": "", "WATCHLINE_INGEST_GT06": "",
               "WATCHLINE_SIP_LISTEN": f"udp:{free_port()}:interface=127.0.0.1", "WATCHLINE_SIP_TRUNK": "127.0.0.1:5999"}
    worker = Watchline(load_config(environ=environ), reactor, role="worker")
    assert isinstance(worker.engine.notifier, PolicyRequests) and worker.engine.notifier.bus is worker.bus
    phones = Watchline(load_config(environ=environ), reactor, role="telephony")
    (runner,) = [s for s in phones if isinstance(s, PolicyRunner)]
    assert runner.queue == "watchline.policies" and isinstance(runner.notifier, VerificationNotifier)
    everything = Watchline(load_config(environ=environ), reactor)  # one process: it phones itself
    assert isinstance(everything.engine.notifier, VerificationNotifier)
    assert not [s for s in everything if isinstance(s, PolicyRunner)]
