"""``watchline demo``: the running system plus a simulated fleet, owners' phones and agents, so a
newcomer sees the whole flow at once.

On an empty database it loads a demo fleet (cars and rescue trucks with JT/T 808 and GT06 terminals),
prints an admin token and a few URLs to try, then drives simulated terminals against this process's
own listeners: positions and, now and then, alarms. Unless ``sip.trunk`` is configured, the trunk is a
second SIP endpoint in this process playing the owners' phones (``DemoPhones``): routine alarms are
really phoned, over SIP and RTP, and most owners key their PIN; some press 9, get it wrong or do not
answer. Demo agents take what reaches the queue and resolve it after a while (``DemoAgents``).
"""

from __future__ import annotations

import dataclasses
import logging
import random
import re
import shutil
import socket
import tempfile

from twisted.internet import task
from twisted.internet.defer import Deferred

from crm.fleet import validate

log = logging.getLogger("watchline.demo")

JT808_FIRST = 13800000000
GT06_PREFIX = "35900000"
CARS = 20


def demo_rows(count: int = CARS):
    from ingest.gt06.simulator import fleet_imeis

    imeis = fleet_imeis(count, GT06_PREFIX)
    for i in range(count):
        jt808 = i % 2 == 0
        yield i + 2, {
            "plate": f"京D{i:05d}", "protocol": "jt808" if jt808 else "gt06",
            "terminal_id": str(JT808_FIRST + i // 2) if jt808 else imeis[i // 2],
            "owner_name": f"Demo Owner {i}", "owner_phone": f"1390000{i:04d}",
            "tier": ("platinum", "gold", "normal", "normal")[i % 4], "pin": "2468",
            "kind": "rescue" if i % 5 == 4 else "customer", "skills": "tow,battery" if i % 5 == 4 else "",
        }


PIN = "2468"
DEMO_PHONES_RTP = (31000, 31998)


def demo_config(config):
    """(the config ``watchline demo`` runs with, the demo phones' address or None). Without a trunk of
    the user's own, the trunk is the demo phones on a free local port, and routine alarms are phoned at
    any hour (no quiet hours)."""
    if not config.sip.listen or config.sip.trunk:
        return config, None
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        phones = f"127.0.0.1:{s.getsockname()[1]}"
    return dataclasses.replace(config, sip=dataclasses.replace(config.sip, trunk=phones),
                               notify=dataclasses.replace(config.notify, quiet_hours="")), phones


class DemoPhones:
    """The owners' phones: a SIP endpoint answering every number Watchline dials on the demo trunk.
    What a phone does depends on its number's last digit — 0-5: key the right PIN; 6: a wrong PIN
    three times; 7: "not me" (9); 8: never answers; 9: answers late, then keys the PIN."""

    def __init__(self, reactor, trunk: str, rng: random.Random | None = None) -> None:
        from callflows import Telephony, TelephonySettings

        host, port = trunk.rsplit(":", 1)
        self.work = work = tempfile.mkdtemp(prefix="watchline-demo-phones-")
        self.reactor = reactor
        self.rng = rng or random.Random()
        self.telephony = Telephony(TelephonySettings(
            listen=f"udp:{port}:interface={host}", rtp_ports=DEMO_PHONES_RTP, recordings_dir=f"{work}/rec",
            prompt_cache_dir=f"{work}/prompts", recording_retention_days=None), reactor)
        self.telephony.register_flow(re.compile(r"\+?[0-9]+"), self.owner)
        self.answered: dict[str, int] = {}

    def start(self) -> None:
        try:
            self.telephony.startService()
        except Exception:  # the port was taken meanwhile: nothing of ours is left behind
            shutil.rmtree(self.work, ignore_errors=True)
            raise

    async def stop(self) -> None:
        await self.telephony.stopService()
        shutil.rmtree(self.work, ignore_errors=True)

    async def owner(self, call) -> None:
        last = call.to_number[-1:]
        if last == "8":
            await call.wait_ended()  # rings until Watchline gives up: no_answer
            return
        await self._pause(4.0 if last == "9" else 1.0)
        await call.answer()
        self.answered[call.to_number] = self.answered.get(call.to_number, 0) + 1
        await self._pause(2.0)  # the greeting starts; owners key while it plays
        if last == "6":
            for _ in range(3):
                await call.send_digits("1111#")
                await self._pause(3.0)
        else:
            await call.send_digits("9#" if last == "7" else f"{PIN}#")
        await call.wait_ended()

    def _pause(self, seconds: float) -> Deferred:
        return task.deferLater(self.reactor, seconds * self.rng.uniform(0.8, 1.2), lambda: None)


class DemoAgents:
    """Agents at the desk: every few seconds one takes the oldest escalated incident and resolves it a
    little later — an emergency as rescue dispatched, anything else as a false alarm."""

    NAMES = ("demo-agent-1", "demo-agent-2")
    INTERVAL = 5.0  # seconds between two takes
    HANDLING = 8.0  # seconds an agent spends on an incident

    def __init__(self, desk, db, reactor) -> None:
        self.desk, self.db, self.reactor = desk, db, reactor
        self.loop = task.LoopingCall(lambda: Deferred.fromCoroutine(self._take()).addErrback(
            lambda f: log.warning("demo agents: %s", f.getErrorMessage())))
        self.loop.clock = reactor
        self._turn = 0
        self.done: Deferred | None = None  # fires once stopped and the incident in hand is finished

    def start(self) -> None:
        self.done = self.loop.start(self.INTERVAL, now=False)

    async def _take(self) -> None:
        from alarms.incident import IncidentStateError

        waiting = await self.db.incidents.search(state="escalated", limit=1)
        if not waiting:
            return
        incident = waiting[0]
        agent = self.NAMES[self._turn % len(self.NAMES)]
        self._turn += 1
        try:
            await self.desk.acknowledge(incident.id, agent)
            await task.deferLater(self.reactor, self.HANDLING, lambda: None)
            outcome = "rescue_dispatched" if incident.severity == "emergency" else "false_alarm"
            await self.desk.resolve(incident.id, agent, outcome, "handled by the demo agent")
        except IncidentStateError:  # someone else (a real user of the demo) got there first
            return


class Demo:
    """What ``start_demo`` started, to stop it again (tests; a real demo ends with its process)."""

    def __init__(self) -> None:
        self.fleets: list[Deferred] = []
        self.phones: DemoPhones | None = None
        self.agents: DemoAgents | None = None

    def shutdown(self) -> Deferred:
        """The agents (after the incident in hand) and the phones stop; the process is ending, and the
        terminals go with it."""
        return Deferred.fromCoroutine(self._shutdown())

    async def _shutdown(self) -> None:
        if self.agents is not None and self.agents.loop.running:
            self.agents.loop.stop()
            await self.agents.done
        if self.phones is not None:
            await self.phones.stop()

    async def stop(self) -> None:
        """Wait for the terminals to end (their ``duration``), then shut down."""
        for fleet in self.fleets:
            await fleet
        await self.shutdown()



def start_demo(app, reactor, phones: str | None = None, duration: float = 3600.0) -> Deferred[Demo]:
    """Load the demo fleet and start its terminals (reporting for ``duration`` seconds), the demo
    agents, and the owners' phones on ``phones`` (the trunk address ``demo_config`` chose) when given."""
    return Deferred.fromCoroutine(_run(app, reactor, phones, duration))


async def _run(app, reactor, phones: str | None, duration: float) -> Demo:
    demo = Demo()
    rows, errors = validate(demo_rows(), app.config.notify.phone_region)
    assert not errors, errors
    if await app.db.vehicles.get_by_plate(rows[0].plate) is None:
        await app.db.vehicles.import_rows(rows, actor="demo")
        log.info("demo fleet loaded: %d vehicles", len(rows))
    token = await app.db.users.issue_token("admin", "demo-admin")
    api = app.config.api.listen
    log.info("admin token: %s", token)
    log.info("try: curl -H 'Authorization: Bearer %s' http://127.0.0.1:%s/api/v1/vehicles/京D00000/positions",
             token, api.split(":")[1] if api else "8080")
    if phones is not None and getattr(app, "telephony", None) is not None:
        demo.phones = DemoPhones(reactor, phones)
        demo.phones.start()
        log.info("demo: owners' phones answer on %s (PIN %s; numbers ending 6 get it wrong, 7 press 9, "
                 "8 do not answer)", phones, PIN)
    if getattr(app, "desk", None) is not None:
        demo.agents = DemoAgents(app.desk, app.db, reactor)
        demo.agents.start()
        log.info("demo: agents %s take escalated incidents", ", ".join(DemoAgents.NAMES))
    half = CARS // 2
    if app.config.ingest.jt808:
        from ingest.jt808.simulator import run_fleet as jt808_fleet

        port = int(app.config.ingest.jt808.split(":")[1])
        demo.fleets.append(_background(jt808_fleet(reactor, "127.0.0.1", port, half, rate=5, alarm_ratio=0.05,
                                                   duration=duration, first_phone=JT808_FIRST), "JT/T 808"))
    if app.config.ingest.gt06:
        from ingest.gt06.simulator import fleet_imeis
        from ingest.gt06.simulator import run_fleet as gt06_fleet

        port = int(app.config.ingest.gt06.split(":")[1])
        demo.fleets.append(_background(gt06_fleet(reactor, "127.0.0.1", port, half, rate=5, alarm_ratio=0.05,
                                                  duration=duration, imeis=fleet_imeis(half, GT06_PREFIX)), "GT06"))
    log.info("demo: %d simulated terminals reporting", CARS)
    return demo


def _background(coro, name: str) -> Deferred:
    d = Deferred.fromCoroutine(coro)
    d.addCallbacks(lambda stats: log.info("demo %s fleet finished: %s", name, stats.as_dict()),
                   lambda f: log.error("demo %s fleet failed: %s", name, f.getErrorMessage()))
    return d
