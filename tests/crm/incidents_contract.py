"""``db.incidents`` part of the storage contract (run on SQLite and PostgreSQL through StorageContract)."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest
import pytest_twisted
from twisted.internet import defer

from alarms.incident import IncidentStateError
from crm.incidents import NewIncident

T0 = datetime(2026, 5, 1, 8, tzinfo=timezone.utc)


def new(plate="P1", alarm="sos", severity="emergency", priority=0, tier="normal", **extra) -> NewIncident:
    return NewIncident(plate=plate, alarm=alarm, severity=severity, priority=priority, tier=tier,
                       policy={"name": "agent_only", "steps": []}, time=T0, **extra)


class IncidentsContract:
    @pytest_twisted.ensureDeferred
    async def test_concurrent_open_or_join_opens_exactly_one(self, database):
        results = await defer.gatherResults([
            defer.Deferred.fromCoroutine(database.incidents.open_or_join(new(alarm_serial=i), T0))
            for i in range(1, 21)])
        created = [incident for incident, was_created in results if was_created]
        assert len(created) == 1
        assert {incident.id for incident, _ in results} == {created[0].id}
        repeats = [r.count for r, was_created in results if not was_created]
        assert len(repeats) == 19 and min(repeats) >= 2 and max(repeats) == 20
        found = await database.incidents.search(plate="P1")
        assert len(found) == 1 and found[0].count == 20
        full = await database.incidents.get(found[0].id)
        assert [e.kind for e in full.timeline] == ["opened"]

    @pytest_twisted.ensureDeferred
    async def test_life_cycle_timeline_audit_and_reopen_after_resolution(self, database):
        incident, _ = await database.incidents.open_or_join(new(alarm="power_cut", severity="routine"), T0)
        step = database.incidents.transition
        await step(incident.id, "notify", "engine", "dialling the owner", T0, step=1)
        with pytest.raises(IncidentStateError, match="cannot acknowledge an incident that is verified"):
            await step(incident.id, "verify", "owner", "PIN right", T0)
            await step(incident.id, "acknowledge", "alice", "taken", T0)
        done = await step(incident.id, "resolve", "engine", "resolved", T0 + timedelta(seconds=5),
                          {"outcome": "owner_handled"}, outcome="owner_handled")
        assert (done.state, done.outcome, done.resolved_at) == ("resolved", "owner_handled", T0 + timedelta(seconds=5))
        assert [(e.actor, e.kind) for e in done.timeline] == [
            ("engine", "opened"), ("engine", "notifying"), ("owner", "verify"), ("engine", "resolve")]
        with pytest.raises(IncidentStateError):
            await step(incident.id, "escalate", "engine", "too late", T0)
        with pytest.raises(LookupError):
            await step(10**9, "escalate", "engine", "no such", T0)
        again, created = await database.incidents.open_or_join(new(alarm="power_cut", severity="routine"), T0)
        assert created and again.id != incident.id
        actions = [e.action for e in await database.audit.entries("incident")]
        assert {"incident_opened", "incident_notify", "incident_verify", "incident_resolve"} <= set(actions)

    @pytest_twisted.ensureDeferred
    async def test_queue_order_and_due_acknowledgements(self, database):
        opened = {}
        for i, (plate, severity, priority, tier) in enumerate((
                ("N1", "routine", 50, "platinum"), ("E-normal", "emergency", 0, "normal"),
                ("E-gold", "emergency", 0, "gold"), ("E-plat", "emergency", 0, "platinum"),
                ("E-later-plat", "emergency", 0, "platinum"))):
            incident, _ = await database.incidents.open_or_join(
                new(plate, severity=severity, priority=priority, tier=tier), T0 + timedelta(seconds=i))
            opened[plate] = incident
        order = [i.plate for i in await database.incidents.search()]
        assert order == ["E-plat", "E-later-plat", "E-gold", "E-normal", "N1"]
        assert [i.plate for i in await database.incidents.search(severity="routine")] == ["N1"]
        assert [i.plate for i in await database.incidents.search(since=T0 + timedelta(seconds=3))] == [
            "E-plat", "E-later-plat"]
        for plate in ("E-gold", "E-plat"):
            await database.incidents.transition(opened[plate].id, "escalate", "engine", "", T0)
        await database.incidents.transition(opened["E-gold"].id, "acknowledge", "bob", "", T0,
                                            assignee="bob", due_at=T0 + timedelta(minutes=15))
        assert await database.incidents.due(T0 + timedelta(minutes=14)) == []
        (due,) = await database.incidents.due(T0 + timedelta(minutes=15))
        assert (due.plate, due.assignee, due.state) == ("E-gold", "bob", "acknowledged")
        assert due.due_at == T0 + timedelta(minutes=15)
        resumed = await database.incidents.unresolved_in(("open",))
        assert sorted(i.plate for i in resumed) == ["E-later-plat", "E-normal", "N1"]

    @pytest_twisted.ensureDeferred
    async def test_a_timeline_entry_moves_the_deadline_only_while_notifying(self, database):
        notifying, _ = await database.incidents.open_or_join(new("N1", severity="routine", priority=50), T0)
        await database.incidents.transition(notifying.id, "notify", "engine", "step 1", T0, step=1,
                                            due_at=T0 + timedelta(minutes=2))
        taken, _ = await database.incidents.open_or_join(new("A1"), T0)
        await database.incidents.transition(taken.id, "escalate", "engine", "", T0)
        await database.incidents.transition(taken.id, "acknowledge", "bob", "", T0, assignee="bob",
                                            due_at=T0 + timedelta(minutes=15))
        later = T0 + timedelta(hours=1)
        for incident in (notifying, taken):
            await database.incidents.update(incident.id, "engine", "call", "call: busy", T0, {},
                                            due_if_notifying=later)
        assert (await database.incidents.get(notifying.id)).due_at == later
        assert (await database.incidents.get(taken.id)).due_at == T0 + timedelta(minutes=15)  # the agent's
        assert [e.kind for e in (await database.incidents.get(taken.id)).timeline][-1] == "call"
