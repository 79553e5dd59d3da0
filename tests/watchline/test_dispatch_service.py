"""Black box: a rescue truck's JT/T 808 terminal drives to a site over TCP, and the work order that
sent it flips to ``on_site`` by itself — seen through the HTTP API of the whole service tree."""

from __future__ import annotations

import json
from datetime import datetime, timezone

import pytest
import pytest_twisted
import treq
from twisted.internet import defer, reactor
from twisted.internet.endpoints import TCP4ClientEndpoint, connectProtocol

from crm.fleet import validate
from crm.migrate import upgrade
from geo.geodesy import destination, distance_m
from ingest.jt808 import messages as m
from ingest.jt808.terminal import TerminalIdentity, location_body
from tests.conftest import free_port
from tests.watchline.test_service import Terminal, _sleep, eventually, register_and_authenticate
from watchline.config import load_config
from watchline.service import Watchline

SITE = (22.5431, 114.0579)
TRUCK, TRUCK_PHONE = "粤B9R001", "13811110001"


@pytest.fixture
def system(tmp_path):
    api_port, jt808_port = free_port(), free_port()
    config = load_config(environ={
        "WATCHLINE_DATABASE_URL": f"sqlite:///{tmp_path / 'w.db'}",
        "WATCHLINE_API_LISTEN": f"tcp:{api_port}:interface=127.0.0.1",
        "WATCHLINE_INGEST_JT808": f"tcp:{jt808_port}:interface=127.0.0.1",
        "WATCHLINE_INGEST_GT06": "",
        "WATCHLINE_SIP_LISTEN": "",
    })
    app = Watchline(config, reactor)
    upgrade(app.db.engine)
    rows, errors = validate(iter([
        (2, {"plate": TRUCK, "terminal_id": TRUCK_PHONE, "protocol": "jt808", "owner_name": "Rescue Co",
             "owner_phone": "13800138000", "tier": "normal", "pin": "1234", "kind": "rescue", "skills": "tow"}),
    ]), "CN")
    assert not errors
    app.db.vehicles.import_rows_blocking(rows)
    token = app.db.users.issue_token_blocking("dispatcher", "disp-1")
    app.startService()
    yield f"http://127.0.0.1:{api_port}/api/v1/dispatch", jt808_port, token
    pytest_twisted.blockon(defer.maybeDeferred(app.stopService))


async def get(url: str, token: str) -> dict:
    resp = await treq.get(url.encode(), headers={"Authorization": f"Bearer {token}"})
    body = json.loads(await resp.content())
    assert resp.code == 200, body
    return body


@pytest_twisted.ensureDeferred
async def test_a_truck_driving_to_the_site_flips_its_work_order_on_site(system):
    base, port, token = system
    term = Terminal()
    await connectProtocol(TCP4ClientEndpoint(reactor, "127.0.0.1", port), term)
    ident = TerminalIdentity(TRUCK_PHONE)
    seen = await register_and_authenticate(term, ident, 0)

    async def drive_to(metres_north: float) -> tuple[float, float]:
        """One position report ``metres_north`` of the site, acked by the platform."""
        nonlocal seen
        lat, lon = destination(*SITE, 0.0, metres_north)
        term.transport.write(ident.packet(m.LOCATION, location_body(lat=lat, lon=lon,
                                                                    time=datetime.now(timezone.utc))))
        seen += 1
        await term.replies_count(seen)
        return round(lat, 6), round(lon, 6)  # as the terminal encodes them

    async def truck_at(lat: float) -> dict | None:
        (truck,) = (await get(f"{base}/fleet", token))["trucks"]
        position = truck["last_position"]
        return truck if position and position["lat"] == pytest.approx(lat, abs=1e-9) else None

    start = await drive_to(2500)
    await eventually(lambda: truck_at(start[0]))
    (nearest,) = (await get(f"{base}/nearest?lat={SITE[0]}&lon={SITE[1]}&capability=tow", token))["items"]
    assert nearest["plate"] == TRUCK and nearest["distance_m"] == pytest.approx(distance_m(*start, *SITE), abs=0.01)

    resp = await treq.post(f"{base}/work_orders".encode(), json.dumps({
        "site": {"lat": SITE[0], "lon": SITE[1]}, "kind": "tow", "contact_phone": "13900139000",
        "capability": "tow"}).encode(), headers={"Authorization": f"Bearer {token}",
                                                  "Content-Type": "application/json"})
    order = json.loads(await resp.content())
    assert resp.code == 201 and (order["truck_plate"], order["status"]) == (TRUCK, "dispatched"), order
    url = f"{base}/work_orders/{order['id']}"

    for metres in (1800, 1000, 500, 260):  # still outside the 200 m circle
        here = await drive_to(metres)
    await eventually(lambda: truck_at(here[0]))
    await _sleep(0.1)
    assert (await get(url, token))["status"] == "dispatched"
    (truck,) = (await get(f"{base}/fleet", token))["trucks"]
    assert (truck["availability"], truck["work_order_id"]) == ("dispatched", order["id"])

    await drive_to(120)  # inside the circle: the order moves by itself

    async def on_site() -> dict | None:
        found = await get(url, token)
        return found if found["status"] == "on_site" else None

    arrived = await eventually(on_site)
    assert arrived["on_site_at"] is not None and arrived["en_route_at"] is None
    (truck,) = (await get(f"{base}/fleet", token))["trucks"]
    assert truck["availability"] == "on_site"
    await drive_to(10)  # more reports at the site change nothing
    await _sleep(0.1)
    assert (await get(url, token))["on_site_at"] == arrived["on_site_at"]
    term.transport.loseConnection()
