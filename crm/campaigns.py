"""``db.campaigns``: notice campaigns and their numbers (each with its attempt history); ``.dnc`` is the
do-not-call list (crm/do_not_call.py).

A campaign is created with all its numbers in one transaction (duplicates merged, do-not-call numbers
skipped with outcome ``dnc``). Dialling processes ``claim`` due numbers: the claim first writes the
campaign's row, which serialises claimers on both backends (a row lock on PostgreSQL, the write lock on
SQLite), so the campaign's ``lines`` hold across processes and no number is handed out twice. A claimed
number is ``calling`` with a lease in ``next_attempt_at``; ``record_attempt`` appends the call to its
history and applies the campaign's retry policy; a success (answered/confirmed) is final.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Any

import sqlalchemy as sa

from crm.audit import AuditStore
from crm.campaign_records import (
    ACTIONS,
    OUTCOMES,
    SUCCESS,
    Attempt,
    Campaign,
    CampaignNumber,
    CampaignStateError,
    Claim,
    NewCampaign,
    NewNumber,
    Progress,
    Recipient,
    Recorded,
    retries_left,
)
from crm.do_not_call import DoNotCallStore
from crm.schema import campaign_numbers, campaigns, contacts, owners, vehicles

_CHUNK = 500  # rows per multi-row statement / IN list


class CampaignsStore:
    def __init__(self, db) -> None:
        self.db = db
        self.dnc = DoNotCallStore(db)

    # -- campaigns ----------------------------------------------------------------------------

    async def create(self, new: NewCampaign, numbers: list[NewNumber], actor: str, now: datetime) -> Campaign:
        return await self.db.pool.do(self._create_thd, new, numbers, actor, now)

    def create_blocking(self, new: NewCampaign, numbers: list[NewNumber], actor: str, now: datetime) -> Campaign:
        return self.db.pool.do_blocking(self._create_thd, new, numbers, actor, now)

    def _create_thd(self, conn, new: NewCampaign, numbers: list[NewNumber], actor: str, now: datetime) -> Campaign:
        merged: dict[str, NewNumber] = {}
        for n in numbers:  # the first row of a phone wins; later rows add variables it lacks
            first = merged.get(n.phone)
            if first is None:
                merged[n.phone] = n
            else:
                merged[n.phone] = NewNumber(first.phone, first.plate or n.plate, first.name or n.name,
                                            {**(n.variables or {}), **(first.variables or {})} or None)
        dnc = DoNotCallStore.among(conn, list(merged))
        row = conn.execute(campaigns.insert().values(
            name=new.name, status="draft", template=new.template, language=new.language, confirm=new.confirm,
            lines=new.lines, schedule=new.schedule, retry=new.retry, caller_id=new.caller_id, created_by=actor,
            created_at=now, updated_at=now).returning(*campaigns.c)).one()
        values = [{"campaign_id": row.id, "phone": n.phone, "plate": n.plate, "name": n.name,
                   "variables": n.variables, "status": "skipped" if n.phone in dnc else "pending",
                   "outcome": "dnc" if n.phone in dnc else None, "attempts": 0, "history": [], "confirmed": None,
                   "next_attempt_at": None, "updated_at": now} for n in merged.values()]
        for i in range(0, len(values), _CHUNK):
            conn.execute(campaign_numbers.insert(), values[i:i + _CHUNK])
        AuditStore.insert(conn, actor, "campaign_created", "campaign", row.id,
                          {"name": new.name, "numbers": len(values), "dnc": len(dnc)}, now)
        return self._campaign(row)

    async def get(self, campaign_id: int) -> Campaign | None:
        return await self.db.pool.do(self._get_thd, campaign_id)

    def get_blocking(self, campaign_id: int) -> Campaign | None:
        return self.db.pool.do_blocking(self._get_thd, campaign_id)

    def _get_thd(self, conn, campaign_id: int) -> Campaign | None:
        row = conn.execute(sa.select(campaigns).where(campaigns.c.id == campaign_id)).first()
        return None if row is None else self._campaign(row)

    async def search(self, status: str | None = None, limit: int = 100, offset: int = 0) -> list[Campaign]:
        return await self.db.pool.do(self._search_thd, status, limit, offset)

    def search_blocking(self, status: str | None = None, limit: int = 100, offset: int = 0) -> list[Campaign]:
        return self.db.pool.do_blocking(self._search_thd, status, limit, offset)

    def _search_thd(self, conn, status: str | None, limit: int, offset: int) -> list[Campaign]:
        q = sa.select(campaigns).order_by(campaigns.c.id.desc()).limit(limit).offset(offset)
        if status is not None:
            q = q.where(campaigns.c.status == status)
        return [self._campaign(r) for r in conn.execute(q)]

    async def change(self, campaign_id: int, action: str, actor: str, now: datetime) -> Campaign:
        """start | pause | resume | cancel. Raises LookupError, CampaignStateError. Starting or resuming
        a campaign with nothing left to call completes it; cancelling skips its pending numbers."""
        return await self.db.pool.do(self._change_thd, campaign_id, action, actor, now)

    def change_blocking(self, campaign_id: int, action: str, actor: str, now: datetime) -> Campaign:
        return self.db.pool.do_blocking(self._change_thd, campaign_id, action, actor, now)

    def _change_thd(self, conn, campaign_id: int, action: str, actor: str, now: datetime) -> Campaign:
        if action not in ACTIONS:
            raise ValueError(f"unknown campaign action {action!r}")
        allowed, target = ACTIONS[action]
        row = conn.execute(_for_update(sa.select(campaigns).where(campaigns.c.id == campaign_id), conn)).first()
        if row is None:
            raise LookupError(f"no campaign {campaign_id}")
        if row.status not in allowed:
            raise CampaignStateError(f"cannot {action} a campaign that is {row.status}")
        values: dict[str, Any] = {"status": target, "updated_at": now}
        if action == "start":
            values["started_at"] = now
        if action == "cancel":
            values["finished_at"] = now
            conn.execute(campaign_numbers.update().where(
                campaign_numbers.c.campaign_id == campaign_id, campaign_numbers.c.status == "pending")
                .values(status="skipped", outcome="cancelled", next_attempt_at=None, updated_at=now))
        elif target == "running" and not self._left(conn, campaign_id):
            values.update(status="completed", finished_at=now)
        before = row.status
        row = conn.execute(campaigns.update().where(campaigns.c.id == campaign_id).values(**values)
                           .returning(*campaigns.c)).one()
        AuditStore.insert(conn, actor, f"campaign_{action}", "campaign", campaign_id,
                          {"from": before, "to": row.status}, now)
        return self._campaign(row)

    # -- dialling -----------------------------------------------------------------------------

    async def claim(self, campaign_id: int, limit: int, now: datetime, lease_s: float = 900.0) -> Claim:
        """Up to ``limit`` due numbers of a running campaign, and never more than its ``lines`` calling at
        once (counted over every process). Do-not-call numbers met on the way are skipped (``dnc``)."""
        return await self.db.pool.do(self._claim_thd, campaign_id, limit, now, lease_s)

    def _claim_thd(self, conn, campaign_id: int, limit: int, now: datetime, lease_s: float) -> Claim:
        # Written first: claimers of one campaign queue here, so the count below stays true until commit.
        lines = conn.execute(campaigns.update().where(campaigns.c.id == campaign_id, campaigns.c.status == "running")
                             .values(lines=campaigns.c.lines).returning(campaigns.c.lines)).scalar()
        if lines is None:
            return Claim([], None)
        cn = campaign_numbers.c
        calling = conn.execute(sa.select(sa.func.count()).where(cn.campaign_id == campaign_id,
                                                                cn.status == "calling")).scalar()
        free = min(limit, lines - calling)
        claimed: list[CampaignNumber] = []
        due = sa.or_(cn.next_attempt_at.is_(None), cn.next_attempt_at <= now)
        while free > 0:
            rows = conn.execute(sa.select(cn.id, cn.phone).where(cn.campaign_id == campaign_id, cn.status == "pending",
                                                                 due).order_by(cn.id).limit(free)).all()
            if not rows:
                break
            dnc = DoNotCallStore.among(conn, [r.phone for r in rows])
            if dnc:  # added to the list after the campaign was created
                conn.execute(campaign_numbers.update().where(cn.id.in_([r.id for r in rows if r.phone in dnc]))
                             .values(status="skipped", outcome="dnc", next_attempt_at=None, updated_at=now))
            ids = [r.id for r in rows if r.phone not in dnc]
            if ids:
                got = conn.execute(campaign_numbers.update().where(cn.id.in_(ids), cn.status == "pending")
                                   .values(status="calling", next_attempt_at=now + timedelta(seconds=lease_s),
                                           updated_at=now).returning(*campaign_numbers.c)).all()
                claimed.extend(self._number(r) for r in sorted(got, key=lambda r: r.id))
                free -= len(got)
            if not dnc:
                break
        next_due = None
        completed = False
        if len(claimed) < limit:
            next_due = conn.execute(sa.select(sa.func.min(cn.next_attempt_at)).where(
                cn.campaign_id == campaign_id, cn.status == "pending", cn.next_attempt_at > now)).scalar()
            if not claimed and calling == 0 and not self._left(conn, campaign_id):
                completed = self._complete(conn, campaign_id, now)
        return Claim(claimed, next_due, completed)

    async def renew_claim(self, number: CampaignNumber, now: datetime, lease_s: float = 900.0) -> bool:
        """Just before dialling: whether the claim is still this holder's (its lease may have run out while
        it waited for a line, and the number been freed or claimed again), and a fresh lease if so."""

        def _thd(conn):
            cn = campaign_numbers.c
            return conn.execute(campaign_numbers.update().where(
                cn.id == number.id, cn.status == "calling", cn.updated_at == number.updated_at)
                .values(next_attempt_at=now + timedelta(seconds=lease_s))).rowcount == 1

        return await self.db.pool.do(_thd)

    async def unclaim(self, number_id: int, now: datetime) -> None:
        """Give a claimed number back, not dialled (the campaign was paused while it waited for a line)."""

        def _thd(conn):
            cn = campaign_numbers.c
            status = conn.execute(sa.select(campaigns.c.status).join(campaign_numbers, cn.campaign_id == campaigns.c.id)
                                  .where(cn.id == number_id)).scalar()
            back = {"status": "skipped", "outcome": "cancelled"} if status == "cancelled" else {"status": "pending"}
            conn.execute(campaign_numbers.update().where(cn.id == number_id, cn.status == "calling")
                         .values(**back, next_attempt_at=None, updated_at=now))

        await self.db.pool.do(_thd)

    async def record_attempt(self, number_id: int, outcome: str, at: datetime, duration_s: float,
                             call_id: str | None, confirmed: bool | None = None) -> Recorded:
        """Append one call to the number's history and apply the retry policy: done on success or when
        the outcome's retries are used up, else pending again after the rule's pause. A number already
        done (a success recorded through another path) stays done."""
        return await self.db.pool.do(self._record_thd, number_id, outcome, at, duration_s, call_id, confirmed)

    def _record_thd(self, conn, number_id, outcome, at, duration_s, call_id, confirmed) -> Recorded:
        if outcome not in OUTCOMES:
            raise ValueError(f"unknown call outcome {outcome!r}")
        cn = campaign_numbers.c
        row = conn.execute(_for_update(sa.select(campaign_numbers).where(cn.id == number_id), conn)).first()
        if row is None:
            raise LookupError(f"no campaign number {number_id}")
        campaign = conn.execute(sa.select(campaigns.c.status, campaigns.c.retry)
                                .where(campaigns.c.id == row.campaign_id)).one()
        history = [*row.history, {"at": _iso(at), "outcome": outcome, "duration_s": round(duration_s, 3),
                                  "call_id": call_id}]
        values: dict[str, Any] = {"attempts": row.attempts + 1, "history": history, "updated_at": at}
        if row.status == "done" and row.outcome in SUCCESS:
            pass  # never undo a success
        else:
            values["outcome"] = outcome
            if confirmed is not None:
                values["confirmed"] = confirmed
            pause = retries_left(campaign.retry, outcome, history)
            if pause is None:
                values.update(status="done", next_attempt_at=None)
            elif campaign.status == "cancelled":
                values.update(status="skipped", next_attempt_at=None)
            else:
                values.update(status="pending", next_attempt_at=at + timedelta(seconds=pause))
        updated = conn.execute(campaign_numbers.update().where(cn.id == number_id).values(**values)
                               .returning(*campaign_numbers.c)).one()
        completed = False
        if campaign.status in ("running", "paused") and not self._left(conn, row.campaign_id):
            completed = self._complete(conn, row.campaign_id, at)
        return Recorded(self._number(updated), "completed" if completed else campaign.status, completed)

    async def release_stale(self, now: datetime) -> int:
        """Numbers whose claim's lease ran out (their process died mid-call) become due again; the lost
        call is in their history as ``failed`` without counting against the retries."""

        def _thd(conn):
            cn = campaign_numbers.c
            live = sa.select(campaigns.c.id).where(campaigns.c.status.in_(("running", "paused", "cancelled")))
            stale = conn.execute(sa.select(cn.id, cn.history, campaigns.c.status)
                                 .join(campaigns, campaigns.c.id == cn.campaign_id)
                                 .where(cn.campaign_id.in_(live), cn.status == "calling", cn.next_attempt_at < now)
                                 .limit(_CHUNK)).all()
            for r in stale:
                back = {"status": "skipped", "outcome": "cancelled"} if r.status == "cancelled" else {"status": "pending"}
                conn.execute(campaign_numbers.update().where(cn.id == r.id, cn.status == "calling").values(
                    **back, next_attempt_at=None, updated_at=now,
                    history=[*r.history, {"at": _iso(now), "outcome": "lost", "duration_s": 0, "call_id": None}]))
            return len(stale)

        return await self.db.pool.do(_thd)

    async def running(self) -> list[Campaign]:
        def _thd(conn):
            return [self._campaign(r) for r in conn.execute(
                sa.select(campaigns).where(campaigns.c.status == "running").order_by(campaigns.c.id))]

        return await self.db.pool.do(_thd)

    # -- progress and report ------------------------------------------------------------------

    async def progress(self, campaign_ids: list[int]) -> dict[int, Progress]:
        return await self.db.pool.do(self._progress_thd, campaign_ids)

    def progress_blocking(self, campaign_ids: list[int]) -> dict[int, Progress]:
        return self.db.pool.do_blocking(self._progress_thd, campaign_ids)

    def _progress_thd(self, conn, campaign_ids: list[int]) -> dict[int, Progress]:
        cn = campaign_numbers.c
        counts: dict[int, dict[str, Any]] = {i: {"total": 0, "pending": 0, "calling": 0, "done": 0, "skipped": 0,
                                                 "outcomes": {}, "confirmed": 0, "attempts": 0} for i in campaign_ids}
        for chunk in _chunks(campaign_ids):
            q = (sa.select(cn.campaign_id, cn.status, cn.outcome, sa.func.count(), sa.func.sum(cn.attempts),
                           sa.func.sum(sa.case((cn.confirmed.is_(True), 1), else_=0)))
                 .where(cn.campaign_id.in_(chunk)).group_by(cn.campaign_id, cn.status, cn.outcome))
            for campaign_id, status, outcome, n, attempts, confirmed in conn.execute(q):
                c = counts[campaign_id]
                c["total"] += n
                c[status] = c.get(status, 0) + n
                c["attempts"] += int(attempts or 0)
                c["confirmed"] += int(confirmed or 0)
                if outcome is not None:
                    c["outcomes"][outcome] = c["outcomes"].get(outcome, 0) + n
        return {i: Progress(**c) for i, c in counts.items()}

    async def numbers(self, campaign_id: int) -> list[CampaignNumber]:
        return await self.db.pool.do(self._numbers_thd, campaign_id)

    def numbers_blocking(self, campaign_id: int) -> list[CampaignNumber]:
        return self.db.pool.do_blocking(self._numbers_thd, campaign_id)

    def _numbers_thd(self, conn, campaign_id: int) -> list[CampaignNumber]:
        q = sa.select(campaign_numbers).where(campaign_numbers.c.campaign_id == campaign_id).order_by(
            campaign_numbers.c.id)
        return [self._number(r) for r in conn.execute(q)]

    # -- targets from the fleet ---------------------------------------------------------------

    async def audience(self, plates: list[str] | None = None, tier: str | None = None,
                       kind: str | None = None) -> list[Recipient]:
        return await self.db.pool.do(self._audience_thd, plates, tier, kind)

    def audience_blocking(self, plates: list[str] | None = None, tier: str | None = None,
                          kind: str | None = None) -> list[Recipient]:
        return self.db.pool.do_blocking(self._audience_thd, plates, tier, kind)

    def _audience_thd(self, conn, plates, tier, kind) -> list[Recipient]:
        """Vehicles matching the filter with their owner's first phone (contacts are ordered)."""
        first_phone = (sa.select(contacts.c.value).where(contacts.c.owner_id == owners.c.id,
                                                         contacts.c.kind == "phone")
                       .order_by(contacts.c.position).limit(1).scalar_subquery())
        q = (sa.select(vehicles.c.plate, owners.c.name, owners.c.language, first_phone.label("phone"))
             .select_from(vehicles.outerjoin(owners, owners.c.id == vehicles.c.owner_id)).order_by(vehicles.c.plate))
        if tier is not None:
            q = q.where(vehicles.c.tier == tier)
        if kind is not None:
            q = q.where(vehicles.c.kind == kind)
        found = []
        for chunk in (_chunks(sorted(set(plates))) if plates is not None else [None]):
            stmt = q if chunk is None else q.where(vehicles.c.plate.in_(chunk))
            found += [Recipient(r.plate, r.name, r.phone, r.language or "zh") for r in conn.execute(stmt)]
        return found

    # -- do not call --------------------------------------------------------------------------

    # -- helpers ------------------------------------------------------------------------------

    @staticmethod
    def _left(conn, campaign_id: int) -> bool:
        """Whether any number is still to be called or in a call."""
        cn = campaign_numbers.c
        return conn.execute(sa.select(cn.id).where(cn.campaign_id == campaign_id,
                                                   cn.status.in_(("pending", "calling"))).limit(1)).first() is not None

    @staticmethod
    def _complete(conn, campaign_id: int, now: datetime) -> bool:
        done = conn.execute(campaigns.update().where(campaigns.c.id == campaign_id,
                                                     campaigns.c.status.in_(("running", "paused")))
                            .values(status="completed", finished_at=now, updated_at=now)).rowcount > 0
        if done:
            AuditStore.insert(conn, "campaigns", "campaign_completed", "campaign", campaign_id, None, now)
        return done

    @staticmethod
    def _campaign(row) -> Campaign:
        return Campaign(id=row.id, name=row.name, status=row.status, template=row.template, language=row.language,
                        confirm=row.confirm, lines=row.lines, schedule=row.schedule, retry=row.retry,
                        caller_id=row.caller_id, created_by=row.created_by, created_at=row.created_at,
                        updated_at=row.updated_at, started_at=row.started_at, finished_at=row.finished_at)

    @staticmethod
    def _number(row) -> CampaignNumber:
        return CampaignNumber(
            id=row.id, campaign_id=row.campaign_id, phone=row.phone, plate=row.plate, name=row.name,
            variables=row.variables or {}, status=row.status, outcome=row.outcome, attempts=row.attempts,
            history=tuple(Attempt(h["at"], h["outcome"], h.get("duration_s", 0), h.get("call_id"))
                          for h in row.history),
            confirmed=row.confirmed, next_attempt_at=row.next_attempt_at, updated_at=row.updated_at)


def _iso(t: datetime) -> str:
    return t.astimezone(timezone.utc).isoformat().replace("+00:00", "Z")


def _chunks(items: list, size: int = _CHUNK):
    for i in range(0, len(items), size):
        yield items[i:i + size]


def _for_update(q, conn):
    return q.with_for_update() if conn.dialect.name == "postgresql" else q
