"""The ``CampaignRunner`` service: dials the numbers of running campaigns, in processes with telephony.

Each running campaign gets a ``_Dialler`` that keeps up to the campaign's ``lines`` numbers in hand:
a number is claimed from the database (``db.campaigns.claim``, which also holds the campaign's lines
across processes), its notice is spoken, then it waits for one of the process's trunk lines at
``CAMPAIGN`` priority — so incident calls always go first — and is dialled. When a call ends its
outcome is recorded (the retry policy is applied there) and the freed slot claims the next number at
once, which is what keeps the lines busy. Nothing is dialled outside the campaign's window.

The runner learns of start/pause/resume/cancel from ``campaign.<id>.status`` on the bus and by polling
(the CLI writes only to the database). Pausing stops new dials at once: numbers still waiting for a line
are given back undialled; calls in progress finish. Progress goes out on ``campaign.<id>.progress`` (at
most once per ``progress_interval``) and every attempt on ``campaign.<id>.call``.
"""

from __future__ import annotations

import logging
from datetime import datetime, timezone
from typing import Any

from twisted.application.service import Service
from twisted.internet.defer import CancelledError, Deferred
from twisted.internet.task import LoopingCall

from crm.campaign_records import Campaign, CampaignNumber, NewNumber
from crm.fleet import masked_phone as masked
from notify.campaign_spec import Schedule, render_notice
from notify.campaigns import publish
from notify.lines import CAMPAIGN, TrunkLines
from notify.notice_call import NoticeCall, NoticeResult

log = logging.getLogger(__name__)


class _NotNow(Exception):
    """The campaign was paused, or its window closed, while the number waited for a line."""


_LOST = object()  # the claim ran out while the number waited for a line: the number is not ours to dial


class CampaignRunner(Service):
    name = "campaigns"

    def __init__(self, db, bus, notice: NoticeCall, lines: TrunkLines, clock, *, poll_interval: float = 3.0,
                 lease_s: float = 900.0, progress_interval: float = 1.0) -> None:
        self.db = db
        self.bus = bus
        self.notice = notice
        self.lines = lines
        self.clock = clock
        self.poll_interval = poll_interval
        self.lease_s = lease_s
        self.progress_interval = progress_interval
        self.diallers: dict[int, _Dialler] = {}
        self.calls = 0  # campaign calls dialled and not yet ended, in this process
        self.peak_calls = 0
        self._poller: LoopingCall | None = None
        self._consumer = None
        self._polling = False
        self._poll_again = False
        self._progress_due: dict[int, Any] = {}  # campaign id -> scheduled progress publication
        self._tasks: set[Deferred] = set()

    def now(self) -> datetime:
        return datetime.fromtimestamp(self.clock.seconds(), timezone.utc)

    # -- service ----------------------------------------------------------------------------------

    def startService(self) -> None:  # noqa: N802 (Twisted's name)
        super().startService()
        self._poller = LoopingCall(self.poll)
        self._poller.clock = self.clock
        self._poller.start(self.poll_interval, now=True).addErrback(
            lambda f: log.error("campaign polling stopped: %s", f.getTraceback()))
        self._spawn(self._subscribe())

    async def _subscribe(self) -> None:
        if self.bus is not None:
            self._consumer = await self.bus.start_consuming(lambda key, message: self.kick(), "campaign.*.status")

    def stopService(self):  # noqa: N802
        super().stopService()
        if self._poller is not None and self._poller.running:
            self._poller.stop()
        for dialler in self.diallers.values():
            dialler.stop()  # calls in progress are hung up by the telephony service; their leases expire
        for call in self._progress_due.values():
            if call.active():
                call.cancel()
        self._progress_due.clear()
        consumer, self._consumer = self._consumer, None
        return Deferred.fromCoroutine(consumer.stop_consuming()) if consumer is not None else None

    def kick(self) -> None:
        """Poll now (a campaign's state changed)."""
        if self.running:
            self._spawn(self.poll())

    async def poll(self) -> None:
        """Start diallers for running campaigns, stop those of campaigns no longer running, and free the
        numbers of processes that died in a call."""
        if self._polling:
            self._poll_again = True
            return
        self._polling = True
        try:
            self._poll_again = True
            while self._poll_again:
                self._poll_again = False
                try:
                    await self._poll_once()
                except Exception:
                    log.exception("campaign poll failed")
        finally:
            self._polling = False

    async def _poll_once(self) -> None:
        if await self.db.campaigns.release_stale(self.now()):
            log.warning("numbers of an interrupted campaign call are due again")
        running = {c.id: c for c in await self.db.campaigns.running()}
        for campaign_id, dialler in list(self.diallers.items()):
            if campaign_id not in running:
                dialler.stop()
                if dialler.in_flight == 0:
                    del self.diallers[campaign_id]
        for campaign in running.values():
            dialler = self.diallers.get(campaign.id)
            if dialler is None:
                dialler = self.diallers[campaign.id] = _Dialler(self, campaign)
            dialler.campaign = campaign
            dialler.active = True
            dialler.fill()

    # -- helpers for the diallers -----------------------------------------------------------------

    def _spawn(self, coroutine) -> Deferred:
        d = Deferred.fromCoroutine(coroutine)
        self._tasks.add(d)

        def done(result):
            self._tasks.discard(d)
            if hasattr(result, "check") and not result.check(CancelledError):
                log.error("campaign task failed: %s", result.getTraceback())
            return None

        d.addBoth(done)
        return d

    def progress_changed(self, campaign_id: int, final: bool = False) -> None:
        """Publish the campaign's progress soon (at once when ``final``: the last attempt is in)."""
        if final:
            due = self._progress_due.pop(campaign_id, None)
            if due is not None and due.active():
                due.cancel()
            self._spawn(self._publish_progress(campaign_id))
        elif campaign_id not in self._progress_due and self.running:
            self._progress_due[campaign_id] = self.clock.callLater(
                self.progress_interval, lambda: self._spawn(self._publish_progress(campaign_id)))

    async def _publish_progress(self, campaign_id: int) -> None:
        self._progress_due.pop(campaign_id, None)
        progress = (await self.db.campaigns.progress([campaign_id]))[campaign_id]
        await publish(self.bus, f"campaign.{campaign_id}.progress", {"id": campaign_id, **progress.to_json()})

    def call_started(self) -> None:
        self.calls += 1
        self.peak_calls = max(self.peak_calls, self.calls)


class _Dialler:
    """One running campaign in this process."""

    def __init__(self, runner: CampaignRunner, campaign: Campaign) -> None:
        self.runner = runner
        self.campaign = campaign
        self.active = True
        self.in_flight = 0  # claimed here and not yet recorded (waiting for a line, or in a call)
        self.calls = 0  # in a call now
        self.peak_calls = 0
        self._waiting: dict[int, Deferred] = {}  # number id -> its task, while it waits for a line
        self._undialled: set[int] = set()  # numbers claimed here and not dialled yet
        self._filling = False
        self._fill_again = False
        self._wake = None

    def stop(self) -> None:
        self.active = False
        if self._wake is not None and self._wake.active():
            self._wake.cancel()
        for task in list(self._waiting.values()):
            task.cancel()

    def fill(self) -> None:
        if self._filling:
            self._fill_again = True
            return
        self.runner._spawn(self._fill())

    async def _fill(self) -> None:
        self._filling = True
        try:
            self._fill_again = True
            while self._fill_again and self.active:
                self._fill_again = False
                await self._fill_once()
        finally:
            self._filling = False

    async def _fill_once(self) -> None:
        runner, campaign = self.runner, self.campaign
        now = runner.now()
        schedule = Schedule.from_json(campaign.schedule)
        if not schedule.is_open(now):
            self._wake_at(schedule.next_open(now), now)
            return
        free = campaign.lines - self.in_flight
        if free <= 0:
            return
        claim = await runner.db.campaigns.claim(campaign.id, free, now, runner.lease_s)
        if claim.completed:
            self.active = False
            await publish(runner.bus, f"campaign.{campaign.id}.status",
                          {"id": campaign.id, "name": campaign.name, "status": "completed"})
            runner.progress_changed(campaign.id, final=True)
            return
        for number in claim.numbers:
            self.in_flight += 1
            self._undialled.add(number.id)
            task = runner._spawn(self._call(number))
            if number.id in self._undialled:  # not dialled at once (it awaits its prompt or a line)
                self._waiting[number.id] = task
        if len(claim.numbers) < free and claim.next_due is not None:
            self._wake_at(claim.next_due, now)

    def _wake_at(self, when: datetime | None, now: datetime) -> None:
        if when is None:
            return
        delay = max(0.0, (when - now).total_seconds()) + 0.001
        if self._wake is not None and self._wake.active():
            if self._wake.getTime() <= self.runner.clock.seconds() + delay:
                return
            self._wake.cancel()
        self._wake = self.runner.clock.callLater(delay, self.fill)

    async def _call(self, number: CampaignNumber) -> None:
        runner, campaign = self.runner, self.campaign
        try:
            result = await self._dial(number, campaign)
            self._forget(number.id)
            if result is _LOST:
                log.warning("campaign %s: the claim on %s ran out before a line was free", campaign.id,
                            masked(number.phone))
                return
            if result is None:
                await runner.db.campaigns.unclaim(number.id, runner.now())
                return
            recorded = await runner.db.campaigns.record_attempt(
                number.id, result.outcome, runner.now(), result.duration_s, result.call_id, result.confirmed)
            n = recorded.number
            await publish(runner.bus, f"campaign.{campaign.id}.call", {
                "id": campaign.id, "number_id": n.id, "phone": masked(n.phone), "plate": n.plate,
                "outcome": result.outcome, "attempts": n.attempts, "status": n.status, "call_id": result.call_id})
            runner.progress_changed(campaign.id, final=recorded.completed)
            if recorded.completed:
                self.active = False
                await publish(runner.bus, f"campaign.{campaign.id}.status",
                              {"id": campaign.id, "name": campaign.name, "status": "completed"})
        finally:
            self._forget(number.id)
            self.in_flight -= 1
            if self.active:
                self.fill()

    def _forget(self, number_id: int) -> None:
        self._undialled.discard(number_id)
        self._waiting.pop(number_id, None)

    async def _dial(self, number: CampaignNumber, campaign: Campaign) -> NoticeResult | object | None:
        """The call's result; None when it was not placed (paused, window closed); _LOST when the claim
        is no longer ours."""
        notice = self.runner.notice
        try:
            text = render_notice(campaign.template, NewNumber(number.phone, number.plate, number.name,
                                                              number.variables))
            prompts = await notice.prepare(text, campaign.language, campaign.confirm)
        except CancelledError:
            return None
        except Exception as e:  # a template value or TTS failure: nothing to say, so no call
            log.error("campaign %s: no notice for %s: %s", campaign.id, masked(number.phone), e)
            return NoticeResult("failed", None, 0.0, None)
        try:
            async with self.runner.lines.line(CAMPAIGN):
                if not self.active or not Schedule.from_json(campaign.schedule).is_open(self.runner.now()):
                    raise _NotNow()
                if not await self.runner.db.campaigns.renew_claim(number, self.runner.now(), self.runner.lease_s):
                    return _LOST
                self._forget(number.id)  # dialling now: a pause no longer cancels it
                self.calls += 1
                self.peak_calls = max(self.peak_calls, self.calls)
                self.runner.call_started()
                try:
                    return await notice.deliver(number.phone, prompts, campaign.confirm, campaign.caller_id)
                except Exception as e:
                    log.error("campaign %s: call to %s failed: %s", campaign.id, masked(number.phone), e)
                    return NoticeResult("failed", None, 0.0, None)
                finally:
                    self.calls -= 1
                    self.runner.calls -= 1
        except (CancelledError, _NotNow):
            return None
