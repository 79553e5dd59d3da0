"""``watchline demo``: the running system plus a simulated fleet, so a newcomer sees the flow at once.

On an empty database it loads a demo fleet (cars and rescue trucks with JT/T 808 and GT06 terminals),
prints an admin token and a few URLs to try, then drives simulated terminals against this process's
own listeners: positions and, now and then, alarms.
"""

from __future__ import annotations

import logging

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


def start_demo(app, reactor) -> Deferred:
    return Deferred.fromCoroutine(_run(app, reactor))


async def _run(app, reactor) -> None:
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
    half = CARS // 2
    if app.config.ingest.jt808:
        from ingest.jt808.simulator import run_fleet as jt808_fleet

        port = int(app.config.ingest.jt808.split(":")[1])
        _background(jt808_fleet(reactor, "127.0.0.1", port, half, rate=5, alarm_ratio=0.05, duration=3600,
                                first_phone=JT808_FIRST), "JT/T 808")
    if app.config.ingest.gt06:
        from ingest.gt06.simulator import fleet_imeis
        from ingest.gt06.simulator import run_fleet as gt06_fleet

        port = int(app.config.ingest.gt06.split(":")[1])
        _background(gt06_fleet(reactor, "127.0.0.1", port, half, rate=5, alarm_ratio=0.05, duration=3600,
                               imeis=fleet_imeis(half, GT06_PREFIX)), "GT06")
    log.info("demo: %d simulated terminals reporting; owner phones and agents join once the "
             "telephony and notification parts land", CARS)


def _background(coro, name: str) -> None:
    d = Deferred.fromCoroutine(coro)
    d.addCallbacks(lambda stats: log.info("demo %s fleet finished: %s", name, stats.as_dict()),
                   lambda f: log.error("demo %s fleet failed: %s", name, f.getErrorMessage()))
