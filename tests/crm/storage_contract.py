"""The storage contract suite: one set of tests run against SQLite (tests/crm) and PostgreSQL
(tests/integration). Subclasses provide the ``database`` fixture (a started, migrated Database)."""

from __future__ import annotations

import pytest
import pytest_twisted
from twisted.internet import reactor, task

from crm.fleet import validate
from crm.vehicles import FleetImportError
from tests.crm.campaigns_contract import CampaignsContract
from tests.crm.deliveries_contract import DeliveriesContract
from tests.crm.fences_contract import FencesContract
from tests.crm.incidents_contract import IncidentsContract
from tests.crm.workorders_contract import WorkOrdersContract


def rows(*records: dict[str, str]):
    base = {"terminal_id": "", "protocol": "jt808", "owner_name": "Zhang Wei", "owner_phone": "13800138000",
            "tier": "normal", "pin": "1234"}
    good, errors = validate(((i + 2, dict(base, **r)) for i, r in enumerate(records)), "CN")
    assert not errors, errors
    return good


class StorageContract(IncidentsContract, DeliveriesContract, WorkOrdersContract, CampaignsContract, FencesContract):
    @pytest_twisted.ensureDeferred
    async def test_import_then_find_by_plate_name_and_phone(self, database):
        result = await database.vehicles.import_rows(rows(
            {"plate": "京A12345", "terminal_id": "013800000001", "owner_name": "Zhang Wei",
             "owner_phone": "+86 138 0013 8000", "backup_phone": "13900139000", "email": "zw@example.com"},
            {"plate": "沪B7777", "terminal_id": "860000000000001", "protocol": "gt06", "owner_name": "Li Na",
             "owner_phone": "13700137000", "tier": "gold"},
        ), actor="test")
        assert (result.created, result.updated) == (2, 0)
        v = await database.vehicles.get_by_plate("京A12345")
        assert v.owner.name == "Zhang Wei"
        assert [(c.kind, c.value) for c in v.owner.contacts] == [
            ("phone", "+8613800138000"), ("phone", "+8613900139000"), ("email", "zw@example.com")]
        assert [(t.protocol, t.terminal_id) for t in v.terminals] == [("jt808", "13800000001")]
        assert v.has_pin
        for q, plate in (("京A123", "京A12345"), ("zhang", "京A12345"), ("li n", "沪B7777"),
                         ("13700137000", "沪B7777"), ("0013 8000", "京A12345"), ("b77", "沪B7777")):
            assert plate in [x.plate for x in await database.vehicles.search(q)], q

    @pytest_twisted.ensureDeferred
    async def test_reimport_updates_by_plate_and_keeps_pin_when_empty(self, database):
        await database.vehicles.import_rows(rows({"plate": "粤C1", "terminal_id": "1", "pin": "4321"}), "t")
        result = await database.vehicles.import_rows(
            rows({"plate": "粤C1", "terminal_id": "2", "tier": "platinum", "pin": ""}), "t")
        assert (result.created, result.updated) == (0, 1)
        v = await database.vehicles.get_by_plate("粤C1")
        assert v.tier == "platinum"
        assert [t.terminal_id for t in v.terminals] == ["2"]
        assert await database.vehicles.verify_pin("粤C1", "4321")
        assert not await database.vehicles.verify_pin("粤C1", "4322")
        assert await database.vehicles.lookup_terminal("jt808", "1") is None
        info = await database.vehicles.lookup_terminal("jt808", "0002")
        assert info.plate == "粤C1"

    @pytest_twisted.ensureDeferred
    async def test_terminal_bound_elsewhere_rejects_whole_import(self, database):
        await database.vehicles.import_rows(rows({"plate": "A1", "terminal_id": "11"}), "t")
        with pytest.raises(FleetImportError) as err:
            await database.vehicles.import_rows(rows(
                {"plate": "A2", "terminal_id": "12"}, {"plate": "A3", "terminal_id": "11"}), "t")
        assert err.value.errors[0].line == 3
        assert "already used by A1" in err.value.errors[0].reason
        assert await database.vehicles.get_by_plate("A2") is None  # all or nothing

    @pytest_twisted.ensureDeferred
    async def test_new_vehicle_needs_a_pin(self, database):
        with pytest.raises(FleetImportError) as err:
            await database.vehicles.import_rows(rows({"plate": "A9", "terminal_id": "19", "pin": ""}), "t")
        assert err.value.errors[0].field == "pin"

    @pytest_twisted.ensureDeferred
    async def test_auth_code_round_trip(self, database):
        await database.vehicles.import_rows(rows({"plate": "A5", "terminal_id": "15"}), "t")
        await database.vehicles.set_auth_code("jt808", "015", "abc123")
        assert (await database.vehicles.lookup_terminal("jt808", "15")).auth_code == "abc123"

    @pytest_twisted.ensureDeferred
    async def test_tokens_and_audit(self, database):
        token = await database.users.issue_token("agent", "alice")
        user = await database.users.user_for_token(token)
        assert (user.name, user.role) == ("alice", "agent")
        assert await database.users.user_for_token(token + "x") is None
        with pytest.raises(ValueError):
            await database.users.issue_token("root")
        entries = await database.audit.entries("user")
        assert entries[0].action == "token_issued" and entries[0].details["name"] == "alice"

    @pytest_twisted.ensureDeferred
    async def test_slow_query_does_not_delay_the_reactor(self, database):
        ticks = []
        loop = task.LoopingCall(lambda: ticks.append(reactor.seconds()))
        loop.start(0.01)

        def slow(conn):
            import threading

            threading.Event().wait(0.5)  # a query that takes half a second, in the SQL thread
            return 1

        await database.pool.do(slow)
        loop.stop()
        gaps = [b - a for a, b in zip(ticks, ticks[1:], strict=False)]
        assert len(ticks) >= 25 and max(gaps) < 0.2, (len(ticks), max(gaps))

    @pytest_twisted.ensureDeferred
    async def test_positions_batch_newest_first_and_redelivery_ignored(self, database):
        from datetime import datetime, timedelta, timezone

        from alarms.report import Fix, Report

        await database.vehicles.import_rows(rows({"plate": "P1", "terminal_id": "31"}), "t")
        t0 = datetime(2026, 1, 1, tzinfo=timezone.utc)
        reports = [Report("jt808", "31", t0 + timedelta(seconds=i), Fix(30.0 + i / 1000, 120.0, speed_kmh=i),
                          alarms=("sos",) if i == 2 else (), report_id=f"r{i}", plate="P1") for i in range(5)]
        unknown = Report("jt808", "99", t0, Fix(1, 1), plate="NOPE")
        assert await database.positions.add_many(reports[:3] + [unknown]) == 3
        assert await database.positions.add_many(reports) == 5  # r0-r2 again: skipped, not doubled
        found = await database.positions.latest("P1", 10)
        assert [p.speed_kmh for p in found] == [4, 3, 2, 1, 0]
        assert found[2].alarms == ("sos",) and found[0].time == t0 + timedelta(seconds=4)
        assert await database.positions.latest("NOPE", 10) is None

    @pytest_twisted.ensureDeferred
    async def test_call_log(self, database):
        from datetime import datetime, timedelta, timezone

        from callflows.calllog import CallLog, CallRecord

        assert isinstance(database.calls, CallLog)
        t0 = datetime(2026, 3, 1, 8, tzinfo=timezone.utc)
        await database.calls.record_call(CallRecord("abc@host", "outbound", "+861010", "+8613800138000", t0))
        await database.calls.update_call("abc@host", answered_at=t0 + timedelta(seconds=5))
        await database.calls.update_call("abc@host", ended_at=t0 + timedelta(seconds=65), outcome="answered",
                                         recording_path="recordings/abc.wav")
        got = await database.calls.get("abc@host")
        assert (got.answered_at, got.ended_at, got.outcome, got.recording_path) == (
            t0 + timedelta(seconds=5), t0 + timedelta(seconds=65), "answered", "recordings/abc.wav")
        with pytest.raises(KeyError):
            await database.calls.update_call("nope", outcome="failed")

    @pytest_twisted.ensureDeferred
    async def test_schema_matches_metadata(self, database):
        from alembic.autogenerate import compare_metadata
        from alembic.runtime.migration import MigrationContext

        from crm.schema import metadata

        def _thd(conn):
            return compare_metadata(MigrationContext.configure(conn), metadata)

        diff = [d for d in await database.pool.do(_thd) if not _ignorable(d)]
        assert diff == []


def _ignorable(diff) -> bool:
    # Expression indexes (lower(name)) are not reflected the same way by every backend.
    return isinstance(diff, tuple) and diff[0] in ("add_index", "remove_index") and "lower" in str(diff[1])


