"""``db.campaigns`` part of the storage contract (run on SQLite and PostgreSQL through StorageContract)."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest
import pytest_twisted
import sqlalchemy as sa
from twisted.internet import defer

from crm.campaign_records import CampaignStateError, NewCampaign, NewNumber

T0 = datetime(2026, 6, 1, 2, tzinfo=timezone.utc)
RETRY = {"busy": {"after_s": 600, "max": 1}, "no_answer": {"after_s": 60, "max": 2}}


def campaign(lines=2, **extra) -> NewCampaign:
    values = dict(name="Annual inspection", template="{{ name }}: inspection due", lines=lines,
                  schedule={"start": "00:00", "end": "24:00", "days": [0, 1, 2, 3, 4, 5, 6],
                            "timezone": "Asia/Shanghai"}, retry=RETRY)
    values.update(extra)
    return NewCampaign(**values)


def phones(n: int, start: int = 0) -> list[NewNumber]:
    return [NewNumber(f"+86138000{i:05d}", plate=f"P{i}", name=f"Owner {i}") for i in range(start, start + n)]


class CampaignsContract:
    @pytest_twisted.ensureDeferred
    async def test_create_merges_duplicates_skips_dnc_and_is_all_or_nothing(self, database):
        store = database.campaigns
        await store.dnc.add("+8613800000001", "asked not to be called", "alice", T0)
        numbers = [*phones(3), NewNumber("+8613800000002", plate="DUP", variables={"due": "June"})]
        created = await store.create(campaign(), numbers, "alice", T0)
        assert (created.status, created.lines, created.created_by) == ("draft", 2, "alice")
        got = await store.numbers(created.id)
        assert [(n.phone, n.status, n.outcome) for n in got] == [
            ("+8613800000000", "pending", None), ("+8613800000001", "skipped", "dnc"),
            ("+8613800000002", "pending", None)]
        assert (got[2].plate, got[2].variables) == ("P2", {"due": "June"})  # first row wins, variables merged
        progress = (await store.progress([created.id]))[created.id]
        assert (progress.total, progress.pending, progress.skipped, progress.outcomes) == (3, 2, 1, {"dnc": 1})
        with pytest.raises((TypeError, sa.exc.StatementError)):  # a value the JSON column cannot hold: nothing is written
            await store.create(campaign(name="broken"), [*phones(2), NewNumber("+8613900000000",
                                                                               variables={"x": object()})], "a", T0)
        assert [c.name for c in await store.search()] == ["Annual inspection"]

    @pytest_twisted.ensureDeferred
    async def test_state_changes(self, database):
        store = database.campaigns
        c = await store.create(campaign(), phones(2), "alice", T0)
        with pytest.raises(CampaignStateError, match="cannot pause a campaign that is draft"):
            await store.change(c.id, "pause", "alice", T0)
        started = await store.change(c.id, "start", "alice", T0)
        assert (started.status, started.started_at) == ("running", T0)
        assert [x.id for x in await store.running()] == [c.id]
        assert (await store.change(c.id, "pause", "bob", T0)).status == "paused"
        assert await store.running() == []
        assert (await store.claim(c.id, 5, T0)).numbers == []  # paused: nothing to claim
        assert (await store.change(c.id, "resume", "bob", T0)).status == "running"
        cancelled = await store.change(c.id, "cancel", "bob", T0 + timedelta(seconds=1))
        assert (cancelled.status, cancelled.finished_at) == ("cancelled", T0 + timedelta(seconds=1))
        assert {(n.status, n.outcome) for n in await store.numbers(c.id)} == {("skipped", "cancelled")}
        with pytest.raises(CampaignStateError):
            await store.change(c.id, "resume", "bob", T0)
        with pytest.raises(LookupError):
            await store.change(10**9, "start", "bob", T0)
        empty = await store.create(campaign(), [], "alice", T0)
        assert (await store.change(empty.id, "start", "alice", T0)).status == "completed"  # nothing to call
        actions = [e.action for e in await database.audit.entries("campaign", c.id)]
        assert {"campaign_created", "campaign_start", "campaign_pause", "campaign_cancel"} <= set(actions)

    @pytest_twisted.ensureDeferred
    async def test_concurrent_claims_never_exceed_the_lines_nor_share_a_number(self, database):
        store = database.campaigns
        c = await store.create(campaign(lines=5), phones(40), "alice", T0)
        await store.change(c.id, "start", "alice", T0)
        claims = await defer.gatherResults([defer.Deferred.fromCoroutine(store.claim(c.id, 3, T0))
                                            for _ in range(6)])
        ids = [n.id for claim in claims for n in claim.numbers]
        assert len(ids) == 5 and len(set(ids)) == 5  # the campaign's 5 lines, each number once
        assert all(n.status == "calling" and n.next_attempt_at == T0 + timedelta(seconds=900)
                   for claim in claims for n in claim.numbers)
        assert (await store.claim(c.id, 3, T0)).numbers == []
        first = next(n for claim in claims for n in claim.numbers)
        await store.record_attempt(first.id, "answered", T0 + timedelta(seconds=20), 12.5, "call-1")
        again = await store.claim(c.id, 3, T0 + timedelta(seconds=21))
        assert len(again.numbers) == 1 and again.numbers[0].id not in ids

    @pytest_twisted.ensureDeferred
    async def test_retry_policy_success_is_final_and_the_last_attempt_completes(self, database):
        store = database.campaigns
        c = await store.create(campaign(lines=10), phones(3), "alice", T0)
        await store.change(c.id, "start", "alice", T0)
        a, b, d = (await store.claim(c.id, 10, T0)).numbers
        r = await store.record_attempt(a.id, "busy", T0, 0, "c1")
        assert (r.number.status, r.number.next_attempt_at, r.completed) == ("pending", T0 + timedelta(seconds=600), False)
        await store.record_attempt(b.id, "confirmed", T0, 8.2, "c2", confirmed=True)
        await store.record_attempt(d.id, "invalid_number", T0, 0, "c3")  # no rule: final at once
        claim = await store.claim(c.id, 10, T0 + timedelta(seconds=599))
        assert (claim.numbers, claim.next_due) == ([], T0 + timedelta(seconds=600))
        (retry,) = (await store.claim(c.id, 10, T0 + timedelta(seconds=600))).numbers
        assert retry.id == a.id and retry.attempts == 1
        r = await store.record_attempt(a.id, "busy", T0 + timedelta(seconds=601), 0, "c4")  # max 1 retry: final
        assert (r.number.status, r.number.outcome, r.number.attempts, r.completed) == ("done", "busy", 2, True)
        assert r.campaign_status == "completed" and (await store.get(c.id)).finished_at is not None
        late = await store.record_attempt(b.id, "busy", T0 + timedelta(seconds=700), 0, "c5")
        assert (late.number.status, late.number.outcome, late.number.confirmed) == ("done", "confirmed", True)
        report = {n.id: n for n in await store.numbers(c.id)}
        assert [(h.outcome, h.call_id) for h in report[a.id].history] == [("busy", "c1"), ("busy", "c4")]
        assert report[b.id].history[0].duration_s == 8.2 and report[b.id].history[0].at == "2026-06-01T02:00:00Z"
        p = (await store.progress([c.id]))[c.id]
        assert (p.done, p.pending, p.calling, p.confirmed, p.attempts) == (3, 0, 0, 1, 5)
        assert p.outcomes == {"busy": 1, "confirmed": 1, "invalid_number": 1}

    @pytest_twisted.ensureDeferred
    async def test_dnc_added_later_is_skipped_at_claim_and_stale_claims_come_back(self, database):
        store = database.campaigns
        c = await store.create(campaign(lines=2), phones(4), "alice", T0)
        await store.change(c.id, "start", "alice", T0)
        await store.dnc.add("+8613800000000", None, "bob", T0)
        claim = await store.claim(c.id, 2, T0, lease_s=60)
        assert [n.phone for n in claim.numbers] == ["+8613800000001", "+8613800000002"]
        assert await store.release_stale(T0 + timedelta(seconds=59)) == 0
        assert await store.release_stale(T0 + timedelta(seconds=61)) == 2
        got = {n.phone: n for n in await store.numbers(c.id)}
        assert (got["+8613800000000"].status, got["+8613800000000"].outcome) == ("skipped", "dnc")
        assert got["+8613800000001"].status == "pending" and got["+8613800000001"].history[-1].outcome == "lost"
        await store.unclaim((await store.claim(c.id, 1, T0 + timedelta(seconds=62))).numbers[0].id, T0)
        assert (await store.progress([c.id]))[c.id].calling == 0
        assert [e.phone for e in await store.dnc.search()] == ["+8613800000000"]
        assert await store.dnc.remove("+8613800000000", "bob", T0)
        assert not await store.dnc.remove("+8613800000000", "bob", T0)
        assert await store.dnc.search() == []

    @pytest_twisted.ensureDeferred
    async def test_audience_from_the_fleet(self, database):
        from tests.crm.storage_contract import rows

        await database.vehicles.import_rows(rows(
            {"plate": "G1", "terminal_id": "21", "tier": "gold", "owner_phone": "13800138001", "owner_name": "A"},
            {"plate": "G2", "terminal_id": "22", "tier": "gold", "owner_phone": "13800138002", "owner_name": "B",
             "backup_phone": "13900139000"},
            {"plate": "N1", "terminal_id": "23", "owner_phone": "13800138003", "owner_name": "C"}), "t")
        gold = await database.campaigns.audience(tier="gold")
        assert [(r.plate, r.name, r.phone) for r in gold] == [("G1", "A", "+8613800138001"),
                                                              ("G2", "B", "+8613800138002")]
        assert [r.plate for r in await database.campaigns.audience(plates=["N1", "G2", "X"])] == ["G2", "N1"]
        assert [r.plate for r in await database.campaigns.audience(tier="gold", kind="rescue")] == []

    @pytest_twisted.ensureDeferred
    async def test_a_claim_that_ran_out_is_no_longer_its_holders(self, database):
        store = database.campaigns
        c = await store.create(campaign(lines=1), phones(1), "alice", T0)
        await store.change(c.id, "start", "alice", T0)
        (old,) = (await store.claim(c.id, 1, T0, lease_s=60)).numbers
        assert await store.renew_claim(old, T0 + timedelta(seconds=30), 60)  # lease now ends at T0 + 90 s
        assert await store.release_stale(T0 + timedelta(seconds=89)) == 0
        assert await store.release_stale(T0 + timedelta(seconds=91)) == 1
        (new,) = (await store.claim(c.id, 1, T0 + timedelta(seconds=92), lease_s=60)).numbers
        assert new.id == old.id
        assert not await store.renew_claim(old, T0 + timedelta(seconds=93), 60)
        assert await store.renew_claim(new, T0 + timedelta(seconds=93), 60)
