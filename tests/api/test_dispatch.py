"""The dispatch API over a real loopback HTTP server: nearest trucks, fleet state, work orders."""

from __future__ import annotations

import pytest
import pytest_twisted
from twisted.internet import reactor, task

from geo.geodesy import distance_m
from ingest.pipeline import IngestPipeline
from tests.alarms.test_dispatch import SITE, open_incident, report
from tests.api.test_vehicles import call


@pytest.fixture
def api(dispatch_system):
    port, tokens, db, clock, fleet, _bus = dispatch_system
    return f"http://127.0.0.1:{port}/api/v1/dispatch", tokens, db, clock, fleet


@pytest_twisted.ensureDeferred
async def test_nearest_available_trucks_with_distance_eta_and_age(api):
    base, tokens, _, clock, _ = api
    clock.advance(45)
    code, body = await call("GET", f"{base}/nearest?lat={SITE[0]}&lon={SITE[1]}&k=2", tokens["agent"])
    assert code == 200 and [t["plate"] for t in body["items"]] == ["R1", "R2"]
    first = body["items"][0]
    assert set(first) == {"plate", "lat", "lon", "distance_m", "eta_s", "position_age_s", "stale", "availability",
                          "skills"}
    assert first["distance_m"] == pytest.approx(distance_m(22.550, 114.050, *SITE), abs=1e-6)
    assert first["eta_s"] == pytest.approx(first["distance_m"] / 10)
    assert (first["position_age_s"], first["stale"], first["availability"], first["skills"]) == (
        45, False, "available", ["battery", "tow"])
    code, body = await call("GET", f"{base}/nearest?lat={SITE[0]}&lon={SITE[1]}&capability=tow&max_km=5",
                            tokens["dispatcher"])
    assert [t["plate"] for t in body["items"]] == ["R1"]
    clock.advance(1000)
    code, body = await call("GET", f"{base}/nearest?lat={SITE[0]}&lon={SITE[1]}", tokens["agent"])
    assert body["items"] == []  # every position is older than the limit
    code, body = await call("GET", f"{base}/nearest?lat={SITE[0]}&lon={SITE[1]}&include_stale=true", tokens["agent"])
    assert [(t["plate"], t["stale"]) for t in body["items"]] == [("R1", True), ("R2", True), ("R3", True)]


@pytest_twisted.ensureDeferred
async def test_bad_queries_name_the_field_and_roles_are_checked(api):
    base, tokens, _, _, _ = api
    agent = tokens["agent"]
    for query, field in (("lon=114", "lat"), ("lat=22", "lon"), ("lat=x&lon=114", "lat"), ("lat=95&lon=114", "lat"),
                         ("lat=22&lon=400", "lon"), ("lat=22&lon=nan", "lon"), ("lat=22&lon=114&k=0", "k"),
                         ("lat=22&lon=114&max_km=-1", "max_km"), ("lat=22&lon=114&include_stale=yes",
                                                                  "include_stale")):
        code, body = await call("GET", f"{base}/nearest?{query}", agent)
        assert code == 400 and body["error"]["field"] == field, (query, body)
    assert (await call("GET", f"{base}/nearest?lat=1&lon=1", tokens["platform"]))[0] == 403
    assert (await call("GET", f"{base}/nearest?lat=1&lon=1"))[0] == 401
    code, body = await call("POST", f"{base}/work_orders", agent, {"site": {"lat": 22, "lon": 114}})
    assert code == 403  # agents look; dispatchers, supervisors and admins dispatch
    assert (await call("PUT", f"{base}/fleet/R1", agent, {"availability": "off_duty"}))[0] == 403
    assert (await call("GET", f"{base}/elsewhere", agent))[0] == 404


@pytest_twisted.ensureDeferred
async def test_fleet_state_and_manual_availability(api):
    base, tokens, _, clock, _ = api
    dispatcher = tokens["dispatcher"]
    clock.advance(20)
    code, body = await call("GET", f"{base}/fleet", tokens["agent"])
    assert code == 200 and [t["plate"] for t in body["trucks"]] == ["R1", "R2", "R3"]
    r1 = body["trucks"][0]
    assert (r1["availability"], r1["skills"], r1["work_order_id"], r1["changed_by"]) == (
        "available", ["tow", "battery"], None, "engine")
    assert r1["last_position"] == {"lat": 22.55, "lon": pytest.approx(114.05), "time": "2026-06-01T09:00:00Z",
                                   "age_s": 20, "stale": False}
    code, body = await call("PUT", f"{base}/fleet/R1", dispatcher, {"availability": "off_duty"})
    assert code == 200 and (body["availability"], body["changed_by"]) == ("off_duty", "dispatcher-1")
    code, body = await call("GET", f"{base}/nearest?lat={SITE[0]}&lon={SITE[1]}", dispatcher)
    assert [t["plate"] for t in body["items"]] == ["R2", "R3"]
    code, body = await call("GET", f"{base}/fleet?availability=off_duty", dispatcher)
    assert [t["plate"] for t in body["trucks"]] == ["R1"]
    for payload, field in (({"availability": "en_route"}, "availability"), ({"state": "x"}, "state")):
        code, body = await call("PUT", f"{base}/fleet/R2", dispatcher, payload)
        assert code == 400 and body["error"]["field"] == field
    assert (await call("PUT", f"{base}/fleet/C1", dispatcher, {"availability": "available"}))[0] == 404
    code, order = await call("POST", f"{base}/work_orders", dispatcher,
                             {"site": {"lat": SITE[0], "lon": SITE[1]}, "kind": "tyre", "contact_phone": "13700137000"})
    assert code == 201 and order["truck_plate"] == "R2"
    code, body = await call("PUT", f"{base}/fleet/R2", dispatcher, {"availability": "off_duty"})
    assert code == 409 and "serves work order" in body["error"]["message"]


@pytest_twisted.ensureDeferred
async def test_work_order_from_an_incident_through_its_life_cycle(api):
    base, tokens, db, clock, fleet = api
    dispatcher = tokens["dispatcher"]
    incident = await open_incident(db)
    code, order = await call("POST", f"{base}/work_orders", dispatcher, {"incident_id": incident.id,
                                                                         "capability": "tow"})
    assert code == 201, order
    assert (order["truck_plate"], order["kind"], order["status"], order["customer_plate"], order["contact_phone"],
            order["site"], order["created_by"]) == ("R1", "accident", "dispatched", "C1", "+8613900139000",
                                                    {"lat": SITE[0], "lon": SITE[1]}, "dispatcher-1")
    assert order["eta_s"] == pytest.approx(order["distance_m"] / 10)
    url = f"{base}/work_orders/{order['id']}"
    code, body = await call("GET", url, tokens["agent"])
    assert code == 200 and body["id"] == order["id"]
    code, body = await call("GET", f"{base}/work_orders?status=dispatched,en_route&truck=R1", tokens["agent"])
    assert [o["id"] for o in body["work_orders"]] == [order["id"]]
    code, body = await call("GET", f"{base}/work_orders?incident_id={incident.id}", tokens["agent"])
    assert [o["id"] for o in body["work_orders"]] == [order["id"]]
    code, body = await call("POST", f"{url}/complete", dispatcher)
    assert code == 409 and "it is dispatched" in body["error"]["message"]
    clock.advance(60)
    code, body = await call("POST", f"{url}/en_route", dispatcher)
    assert code == 200 and (body["status"], body["en_route_at"]) == ("en_route", "2026-06-01T09:01:00Z")
    # The truck reaches the site: its own report moves the order.
    await report(IngestPipeline(db.vehicles, fleet.bus, reactor), [fleet], "R1", 22.5405, 114.05, seconds=90)

    async def status():
        return (await call("GET", url, dispatcher))[1]["status"]

    for _ in range(200):
        if await status() == "on_site":
            break
        await task.deferLater(reactor, 0.01, lambda: None)
    assert await status() == "on_site"
    code, body = await call("POST", f"{url}/on_site", dispatcher)
    assert code == 409
    code, body = await call("POST", f"{url}/complete", dispatcher, {"note": "towed to the garage"})
    assert code == 200 and (body["status"], body["note"]) == ("completed", "towed to the garage")
    code, body = await call("GET", f"{base}/fleet", dispatcher)
    assert body["trucks"][0]["availability"] == "available"
    code, body = await call("POST", f"{url}/cancel", dispatcher)
    assert code == 409
    kinds = [e.kind for e in (await db.incidents.get(incident.id)).timeline]
    assert kinds[1:] == ["work_order", "message", "work_order", "work_order"]


@pytest_twisted.ensureDeferred
async def test_work_order_requests_that_are_refused(api):
    base, tokens, db, _, _ = api
    dispatcher, url = tokens["dispatcher"], f"{base}/work_orders"
    site = {"lat": SITE[0], "lon": SITE[1]}
    for payload, field in (
            ({"kind": "tow", "contact_phone": "13700137000"}, "site"),
            ({"site": {"lat": 95, "lon": 1}, "kind": "tow", "contact_phone": "13700137000"}, "site"),
            ({"site": [22, 114], "kind": "tow", "contact_phone": "13700137000"}, "site"),
            ({"site": site, "contact_phone": "13700137000"}, "kind"),
            ({"site": site, "kind": "ferry", "contact_phone": "13700137000"}, "kind"),
            ({"site": site, "kind": "tow"}, "contact_phone"),
            ({"site": site, "kind": "tow", "contact_phone": "12"}, "contact_phone"),
            ({"incident_id": "7"}, "incident_id"),
            ({"incident_id": 7, "colour": "red"}, "colour")):
        code, body = await call("POST", url, dispatcher, payload)
        assert code == 400 and body["error"]["field"] == field, (payload, body)
    assert (await call("POST", url, dispatcher, {"incident_id": 999}))[0] == 404
    code, body = await call("POST", url, dispatcher, {"incident_id": (await open_incident(db, None, None)).id})
    assert code == 400 and body["error"]["field"] == "site"
    code, body = await call("POST", url, dispatcher, {"site": site, "kind": "fuel", "contact_phone": "13700137000",
                                                      "capability": "fuel"})
    assert code == 409 and "no available rescue truck with fuel" in body["error"]["message"]
    assert (await call("POST", url, dispatcher, {"site": site, "kind": "tow", "contact_phone": "13700137000",
                                                 "truck": "NOPE"}))[0] == 404
    code, order = await call("POST", url, dispatcher, {"site": site, "kind": "tow", "contact_phone": "13700137000",
                                                       "truck": "R3", "address": "Shennan Road 1"})
    assert code == 201 and (order["truck_plate"], order["address"]) == ("R3", "Shennan Road 1")
    code, body = await call("POST", url, dispatcher, {"site": site, "kind": "tow", "contact_phone": "13700137000",
                                                      "truck": "R3"})
    assert code == 409 and "not available" in body["error"]["message"]
    assert (await call("GET", f"{url}?status=lost", dispatcher))[1]["error"]["field"] == "status"
    assert (await call("GET", f"{url}/999", dispatcher))[0] == 404
    assert (await call("POST", f"{url}/999/cancel", dispatcher))[0] == 404
    assert (await call("POST", f"{url}/{order['id']}/teleport", dispatcher))[0] == 404
    code, body = await call("POST", f"{url}/{order['id']}/cancel", dispatcher, {"note": "owner fixed it"})
    assert code == 200 and (body["status"], body["note"]) == ("cancelled", "owner fixed it")


@pytest_twisted.ensureDeferred
async def test_openapi_describes_dispatch(api):
    import json

    import treq

    base = api[0].split("/api/")[0]
    spec = json.loads(await (await treq.get(f"{base}/openapi.json".encode())).content())
    for path in ("/api/v1/dispatch/nearest", "/api/v1/dispatch/fleet", "/api/v1/dispatch/fleet/{plate}",
                 "/api/v1/dispatch/work_orders", "/api/v1/dispatch/work_orders/{id}/complete"):
        assert path in spec["paths"], path
