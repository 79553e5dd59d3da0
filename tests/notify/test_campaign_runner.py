"""The campaign runner on a fake clock and a fake telephony, with the real storage (SQLite).

Time is a ``task.Clock``: calls ring, talk and get retried in fake time, while SQL runs on the real
reactor's threads; ``Harness.run`` moves the clock from one timer to the next once no SQL is in flight.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest_twisted
from twisted.internet import reactor, task
from twisted.internet.defer import Deferred

from callflows.outcomes import CallEnded, CallNotConnected, CallOutcome
from callflows.prompts import Prompt
from crm.campaign_records import NewNumber
from crm.db import Database
from crm.migrate import upgrade
from notify.campaign_runner import CampaignRunner
from notify.campaign_spec import campaign_from_fields
from notify.campaigns import CampaignControl
from notify.lines import INCIDENT, TrunkLines
from notify.notice_call import NoticeCall
from watchline.mq.fake import FakeBus

MONDAY = datetime(2026, 6, 1, 0, 0, tzinfo=timezone.utc)  # Monday 08:00 in Asia/Shanghai


class FakeCall:
    def __init__(self, tel: FakeTelephony, number: str, kind: str) -> None:
        self.tel, self.number, self.kind = tel, number, kind
        self.call_id = f"call-{len(tel.dials)}"
        self.is_ended = False

    async def play(self, prompt, interruptible=False) -> bool:
        await task.deferLater(self.tel.clock, self.tel.talk_s, lambda: None)
        if self.kind == "hangs_up":
            self._end()
            raise CallEnded()
        return True

    async def collect(self, max_digits, timeout, terminators="#", first_digit_timeout=None) -> str:
        if self.kind == "confirm":
            return "1"
        await task.deferLater(self.tel.clock, timeout, lambda: None)
        return ""

    async def hangup(self) -> CallOutcome:
        self._end()
        return CallOutcome.ANSWERED

    def _end(self) -> None:
        if not self.is_ended:
            self.is_ended = True
            self.tel.active -= 1


class FakeTelephony:
    """``dial`` as Telephony's: an answered call, or CallNotConnected. Each number follows its script
    (one kind per attempt, the last repeating): answer, confirm, hangs_up, busy, no_answer, invalid."""

    def __init__(self, clock, scripts: dict[str, list[str]], talk_s: float = 10.0, ring_s: float = 30.0):
        self.clock, self.scripts, self.talk_s, self.ring_s = clock, scripts, talk_s, ring_s
        self.dials: list[tuple[float, str]] = []
        self.active = 0
        self.peak = 0

    async def dial(self, number: str, caller_id=None, ring_timeout=None) -> FakeCall:
        script = self.scripts.get(number, ["answer"])
        kind = script[min(sum(1 for _, n in self.dials if n == number), len(script) - 1)]
        self.dials.append((self.clock.seconds(), number))
        self.active += 1
        self.peak = max(self.peak, self.active)
        refused = {"busy": CallOutcome.BUSY, "invalid": CallOutcome.INVALID_NUMBER}.get(kind)
        if kind == "no_answer":
            await task.deferLater(self.clock, ring_timeout, lambda: None)
            refused = CallOutcome.NO_ANSWER
        if refused is not None:
            self.active -= 1
            raise CallNotConnected(refused)
        return FakeCall(self, number, kind)

    def dials_to(self, number: str) -> list[float]:
        return [t for t, n in self.dials if n == number]


class Harness:
    def __init__(self, db, clock, tel, lines, bus, runner, control):
        self.db, self.clock, self.tel, self.lines, self.bus = db, clock, tel, lines, bus
        self.runner, self.control = runner, control

    async def quiet(self) -> None:
        """Until no SQL has been in flight for a few reactor turns (all else waits on the fake clock)."""
        calm = 0
        while calm < 3:
            await task.deferLater(reactor, 0.002, lambda: None)
            calm = calm + 1 if self.db.sql_in_flight == 0 else 0

    async def run(self, until=None, max_seconds: float = 7 * 86400) -> None:
        """Advance the clock timer by timer until ``until()`` holds (or nothing is left to wait for)."""
        end = self.clock.seconds() + max_seconds
        await self.quiet()
        while not (until and until()) and self.clock.seconds() < end:
            calls = self.clock.getDelayedCalls()
            if not calls:
                break
            self.clock.advance(max(0.0, min(c.getTime() for c in calls) - self.clock.seconds()))
            await self.quiet()

    async def campaign(self, numbers, start=True, **fields):
        values = {"name": "Notice", "template": "Hello {{ name }}", "lines": 2, "window": "00:00-24:00",
                  "retry": "busy=600x3,no_answer=1800x1"}
        values.update(fields)
        new = campaign_from_fields(values)
        c = await self.db.campaigns.create(new, [NewNumber(p, name=f"N{p[-2:]}") for p in numbers], "test",
                                           self.runner.now())
        if start:
            c = await self.control.change(c.id, "start", "test")
            await self.runner.poll()
        return c

    def completed(self, c) -> bool:
        return any(m["status"] == "completed" for _, m in self.bus.produced(f"campaign.{c.id}.status"))

    async def numbers(self, campaign_id):
        return {n.phone: n for n in await self.db.campaigns.numbers(campaign_id)}


@pytest_twisted.async_yield_fixture
async def harness(sqlite_url):
    db = Database(sqlite_url, reactor)
    upgrade(db.engine)
    db.startService()
    db.sql_in_flight = 0
    do = db.pool.do

    async def counted(fn, *args, **kwargs):
        db.sql_in_flight += 1
        try:
            return await do(fn, *args, **kwargs)
        finally:
            db.sql_in_flight -= 1

    db.pool.do = counted
    clock = task.Clock()
    clock.advance(MONDAY.timestamp())
    tel = FakeTelephony(clock, {})
    lines = TrunkLines(30)
    bus = FakeBus()

    async def speak(text, language):
        return Prompt.tone(440, 0.1)

    runner = CampaignRunner(db, bus, NoticeCall(tel, clock, speak=speak, ring_timeout=30, confirm_timeout=5), lines,
                            clock, poll_interval=3600)  # the tests poll when they change a campaign
    runner.startService()
    try:
        yield Harness(db, clock, tel, lines, bus, runner, CampaignControl(db, bus, clock))
    finally:
        await runner.stopService()
        await db.stopService()


def phone(i: int) -> str:
    return f"+86138000000{i:02d}"


@pytest_twisted.ensureDeferred
async def test_outcomes_retries_and_never_a_dial_after_success(harness):
    h = harness
    h.tel.scripts.update({phone(1): ["answer"], phone(2): ["confirm"], phone(3): ["busy", "busy", "answer"],
                          phone(4): ["busy"], phone(5): ["no_answer"], phone(6): ["invalid"],
                          phone(7): ["no_answer", "confirm"], phone(8): ["hangs_up"]})
    c = await h.campaign([phone(i) for i in range(1, 9)], confirm=True, lines=3)
    await h.run(until=lambda: h.completed(c))
    got = await h.numbers(c.id)
    expected = {1: ("answered", 1, False), 2: ("confirmed", 1, True), 3: ("answered", 3, False),
                4: ("busy", 4, None), 5: ("no_answer", 2, None), 6: ("invalid_number", 1, None),
                7: ("confirmed", 2, True), 8: ("answered", 1, False)}
    for i, (outcome, attempts, confirmed) in expected.items():
        n = got[phone(i)]
        assert (n.status, n.outcome, n.attempts, n.confirmed) == ("done", outcome, attempts, confirmed), i
        dials = h.tel.dials_to(phone(i))
        assert len(dials) == attempts, i  # dialled exactly once per attempt; none after the success
        gaps = [b - a for a, b in zip(dials, dials[1:], strict=False)]
        assert all(g >= 600 for g in gaps), (i, gaps)  # the retry pauses (plus the call itself)
    assert h.tel.dials_to(phone(5))[1] - h.tel.dials_to(phone(5))[0] >= 1800 + 30
    assert (await h.db.campaigns.get(c.id)).status == "completed"
    assert h.bus.produced(f"campaign.{c.id}.status")[-1][1]["status"] == "completed"
    assert len(h.bus.produced(f"campaign.{c.id}.call")) == sum(a for _, a, _ in expected.values())
    assert h.bus.produced(f"campaign.{c.id}.progress")[-1][1]["done"] == 8
    assert h.runner.peak_calls <= 3 and h.tel.peak <= 3


@pytest_twisted.ensureDeferred
async def test_dials_only_inside_the_window(harness):
    h = harness
    h.clock.advance(5 * 86400)  # Saturday 08:00 local
    h.tel.talk_s = 25 * 60
    c = await h.campaign([phone(i) for i in range(1, 5)], lines=1, window="09:00-10:00", days="mon-fri")
    await h.run(until=lambda: len(h.tel.dials) == 4)
    await h.run(until=lambda: h.completed(c))
    local = [datetime.fromtimestamp(t, timezone(timedelta(hours=8))) for t, _ in h.tel.dials]
    assert [(d.strftime("%a %H:%M")) for d in local] == ["Mon 09:00", "Mon 09:25", "Mon 09:50", "Tue 09:00"]
    assert {n.outcome for n in (await h.numbers(c.id)).values()} == {"answered"}  # 09:50 ran past 10:00


@pytest_twisted.ensureDeferred
async def test_pause_gives_back_waiting_numbers_resume_continues_cancel_lets_calls_finish(harness):
    h = harness
    hold = Deferred()

    async def incident_call():
        async with h.lines.line(INCIDENT):
            await hold

    lines = TrunkLines(1)
    h.runner.lines = lines
    h.lines = lines
    incident = Deferred.fromCoroutine(incident_call())
    c = await h.campaign([phone(i) for i in range(1, 7)], lines=2)
    await h.run(until=lambda: lines.waiting == 2)
    assert (await h.db.campaigns.progress([c.id]))[c.id].calling == 2
    await h.control.change(c.id, "pause", "test")
    await h.runner.poll()
    await h.run(until=lambda: lines.waiting == 0)
    p = (await h.db.campaigns.progress([c.id]))[c.id]
    assert (p.calling, p.pending, p.attempts) == (0, 6, 0)  # given back, not dialled
    hold.callback(None)
    await incident
    await h.run(max_seconds=600)
    assert h.tel.dials == []
    await h.control.change(c.id, "resume", "test")
    await h.runner.poll()
    await h.run(until=lambda: len(h.tel.dials) == 1)  # one trunk line: one call at a time
    await h.control.change(c.id, "cancel", "test")
    await h.runner.poll()
    await h.run(until=lambda: h.tel.active == 0 and h.db.sql_in_flight == 0)
    got = await h.numbers(c.id)
    statuses = sorted((n.status, n.outcome) for n in got.values())
    assert statuses == [("done", "answered")] + [("skipped", "cancelled")] * 5  # the call in progress finished
    assert len(h.tel.dials) == 1


@pytest_twisted.ensureDeferred
async def test_do_not_call_numbers_are_never_dialled(harness):
    h = harness
    now = h.runner.now()
    await h.db.campaigns.dnc.add(phone(1), "complained", "test", now)
    h.tel.talk_s = 100
    c = await h.campaign([phone(i) for i in range(1, 5)], lines=1)
    await h.db.campaigns.dnc.add(phone(4), None, "test", now)  # while the campaign runs
    await h.run(until=lambda: h.completed(c))
    got = await h.numbers(c.id)
    assert [got[phone(i)].outcome for i in range(1, 5)] == ["dnc", "answered", "answered", "dnc"]
    assert sorted(n for _, n in h.tel.dials) == [phone(2), phone(3)]


@pytest_twisted.ensureDeferred
async def test_30_lines_shared_with_incidents_never_exceeded_and_incidents_go_first(harness):
    h = harness
    a = await h.campaign([f"+861380000{i:04d}" for i in range(150)], lines=30)
    b = await h.campaign([f"+861390000{i:04d}" for i in range(50)], lines=20)
    await h.run(until=lambda: h.tel.active == 30)
    assert h.lines.waiting == 20  # b's numbers wait for a trunk line
    incident_started = []

    async def incident(n):
        async with h.lines.line(INCIDENT):
            incident_started.append(h.clock.seconds())
            call = await h.tel.dial(f"+86137000000{n:02d}")
            await call.play(None)
            await call.hangup()

    diallers = dict(h.runner.diallers)
    asked = h.clock.seconds()
    for n in range(40):
        Deferred.fromCoroutine(incident(n))

    over = []

    def done() -> bool:
        over.extend([h.tel.active] if h.tel.active > 30 else [])
        return h.completed(a) and h.completed(b)

    await h.run(until=done)
    assert over == [] and h.tel.peak == 30 and h.lines.peak == 30
    assert diallers[a.id].peak_calls <= 30 and diallers[b.id].peak_calls <= 20
    campaign_dials_after = [t for t, n in h.tel.dials if t > asked and not n.startswith("+86137")]
    assert max(incident_started) - asked <= 2 * h.tel.talk_s  # two rounds of lines freeing up
    assert min(campaign_dials_after) >= max(incident_started)  # queued campaign calls waited for incidents
    for c in (a, b):
        got = await h.numbers(c.id)
        assert {n.status for n in got.values()} == {"done"} and len(got) == {a.id: 150, b.id: 50}[c.id]
        assert all(len(h.tel.dials_to(p)) == 1 for p in got)


@pytest_twisted.ensureDeferred
async def test_a_claim_that_runs_out_while_waiting_for_a_line_is_not_dialled_twice(harness):
    h = harness
    hold = Deferred()

    async def incident_call():
        async with lines.line(INCIDENT):
            await hold

    lines = h.runner.lines = TrunkLines(1)
    h.runner.lease_s = 100
    Deferred.fromCoroutine(incident_call())
    c = await h.campaign([phone(1), phone(2)], lines=2)
    await h.run(until=lambda: lines.waiting == 2)
    h.clock.advance(150)
    await h.runner.poll()  # frees both numbers: their leases ran out while they waited
    await h.quiet()
    assert (await h.db.campaigns.progress([c.id]))[c.id].pending == 2
    hold.callback(None)
    await h.run(until=lambda: h.completed(c))
    assert sorted(n for _, n in h.tel.dials) == [phone(1), phone(2)]  # each once
    assert {n.outcome for n in (await h.numbers(c.id)).values()} == {"answered"}
