"""The geofence API and the WGS-84/GCJ-02 conversion over a real loopback HTTP server."""

import pytest_twisted
from twisted.internet import reactor, task

from alarms.geofences import GeofenceWatch
from api.app import WatchlineApi
from crm.db import Database
from crm.migrate import upgrade
from geo.gcj02 import gcj02_to_wgs84, wgs84_to_gcj02
from tests.api.test_vehicles import call
from tests.crm.fences_contract import U_SHAPE
from tests.crm.storage_contract import rows
from watchline.config import load_config
from watchline.live.memory import MemoryLiveState
from watchline.mq.memory import MemoryBus

DEPOT = {"name": "Depot", "kind": "circle", "lat": 31.2, "lon": 121.5, "radius_m": 500}


@pytest_twisted.async_yield_fixture
async def api(sqlite_url):
    db = Database(sqlite_url, reactor)
    upgrade(db.engine)
    db.startService()
    live, bus = MemoryLiveState(reactor), MemoryBus(reactor)
    live.startService()
    bus.startService()
    app = WatchlineApi(db, live, load_config(environ={}), bus=bus, clock=reactor)
    port = reactor.listenTCP(0, app.site(), interface="127.0.0.1")
    try:
        tokens = {role: await db.users.issue_token(role, f"{role}-1")
                  for role in ("admin", "supervisor", "dispatcher", "agent", "platform")}
        changes = []
        await bus.start_consuming(lambda _key, message: changes.append(message), "fences.changed")
        yield f"http://127.0.0.1:{port.getHost().port}", tokens, db, bus, changes
    finally:
        await port.stopListening()
        await bus.stopService()
        live.stopService()
        await db.stopService()


@pytest_twisted.ensureDeferred
async def test_create_read_replace_delete(api):
    base, tokens, db, _, changes = api
    await db.vehicles.import_rows(rows({"plate": "P1", "terminal_id": "11"}), "t")
    owner = (await db.vehicles.get_by_plate("P1")).owner.id
    code, depot = await call("POST", f"{base}/api/v1/fences", tokens["dispatcher"], DEPOT)
    assert code == 201
    assert {k: depot[k] for k in DEPOT} == DEPOT and depot["owner_id"] is None and isinstance(depot["id"], int)
    url = f"{base}/api/v1/fences/{depot['id']}"
    u_shape = {"name": "Yard", "kind": "polygon", "points": U_SHAPE, "owner_id": owner}
    code, yard = await call("POST", f"{base}/api/v1/fences", tokens["supervisor"], u_shape)
    assert code == 201 and yard["points"] == U_SHAPE and yard["owner_id"] == owner

    code, body = await call("GET", f"{base}/api/v1/fences", tokens["agent"])
    assert code == 200 and [f["id"] for f in body["fences"]] == [depot["id"], yard["id"]]
    code, body = await call("GET", f"{base}/api/v1/fences?owner_id={owner}", tokens["agent"])
    assert [f["name"] for f in body["fences"]] == ["Yard"]
    assert await call("GET", url, tokens["agent"]) == (200, depot)

    road = {"name": "G60", "kind": "corridor", "path": [[31.0, 121.0], [31.1, 121.2]], "width_m": 80}
    code, replaced = await call("PUT", url, tokens["admin"], road)
    assert code == 200 and replaced["kind"] == "corridor" and replaced["width_m"] == 80
    assert "radius_m" not in replaced and replaced["revision"] == 2
    code, again = await call("PUT", url, tokens["admin"], replaced)  # a GET body can be sent back as it is
    assert code == 200 and again["revision"] == 3

    assert await call("DELETE", url, tokens["dispatcher"]) == (200, {"id": depot["id"], "deleted": True})
    for method, body in (("GET", None), ("PUT", DEPOT), ("DELETE", None)):
        code, error = await call(method, url, tokens["admin"], body)
        assert code == 404 and error["error"]["code"] == "not_found", method
    assert [(c["id"], c["action"]) for c in changes] == [
        (depot["id"], "created"), (yard["id"], "created"), (depot["id"], "updated"), (depot["id"], "updated"),
        (depot["id"], "deleted")]


@pytest_twisted.ensureDeferred
async def test_roles(api):
    base, tokens, _, _, _ = api
    assert (await call("GET", f"{base}/api/v1/fences"))[0] == 401
    assert (await call("GET", f"{base}/api/v1/fences", tokens["platform"]))[0] == 403
    code, body = await call("POST", f"{base}/api/v1/fences", tokens["agent"], DEPOT)
    assert code == 403 and body["error"]["code"] == "forbidden"
    assert (await call("GET", f"{base}/api/v1/geo/convert?lat=39.9&lon=116.4", tokens["platform"]))[0] == 403


@pytest_twisted.ensureDeferred
async def test_bad_input_is_a_400_naming_the_field(api):
    base, tokens, db, _, changes = api
    token = tokens["admin"]
    bow_tie = [[31, 121], [31.1, 121.1], [31.1, 121], [31, 121.1]]
    for body, field in (
            ({k: v for k, v in DEPOT.items() if k != "radius_m"}, "radius_m"),
            (dict(DEPOT, radius_m="big"), "radius_m"),
            (dict(DEPOT, lat=123), "lat"),
            (dict(DEPOT, kind="hexagon"), "kind"),
            (dict(DEPOT, name=""), "name"),
            (dict(DEPOT, owner_id=999), "owner_id"),  # no such owner: checked in the database
            (dict(DEPOT, colour="red"), "colour"),
            ({"name": "P", "kind": "polygon", "points": [[31, 121], [31, 122], "x"]}, "points[2]"),
            ({"name": "P", "kind": "polygon", "points": bow_tie}, "points"),
            ({"name": "R", "kind": "corridor", "path": [[31, 121], [31, 122]], "width_m": -1}, "width_m")):
        code, error = await call("POST", f"{base}/api/v1/fences", token, body)
        assert code == 400 and error["error"]["field"] == field, (body, error)
        assert error["error"]["code"] == "bad_field" and error["error"]["message"]
    code, error = await call("POST", f"{base}/api/v1/fences", token, b"{not json")
    assert code == 400 and error["error"]["code"] == "bad_json"
    code, error = await call("POST", f"{base}/api/v1/fences", token, [DEPOT])
    assert code == 400 and error["error"]["code"] == "bad_body"
    code, error = await call("GET", f"{base}/api/v1/fences?owner_id=abc", token)
    assert code == 400 and error["error"]["field"] == "owner_id"
    assert await db.fences.search() == [] and changes == []


@pytest_twisted.ensureDeferred
async def test_convert_between_wgs84_and_gcj02(api):
    base, tokens, _, _, _ = api
    token = tokens["agent"]
    code, out = await call("GET", f"{base}/api/v1/geo/convert?lat=39.9087&lon=116.3975&from=wgs84&to=gcj02", token)
    assert code == 200 and (out["lat"], out["lon"]) == wgs84_to_gcj02(39.9087, 116.3975)
    assert out["datum"] == "gcj02" and out["from"] == {"lat": 39.9087, "lon": 116.3975, "datum": "wgs84"}
    assert 0.001 < abs(out["lon"] - 116.3975) < 0.01  # the few-hundred-metre offset applies in China
    code, back = await call("GET", f"{base}/api/v1/geo/convert?lat={out['lat']}&lon={out['lon']}&from=gcj02&to=wgs84",
                            token)
    assert code == 200 and (back["lat"], back["lon"]) == gcj02_to_wgs84(out["lat"], out["lon"])
    assert abs(back["lat"] - 39.9087) < 1e-6 and abs(back["lon"] - 116.3975) < 1e-6
    code, paris = await call("GET", f"{base}/api/v1/geo/convert?lat=48.85&lon=2.35", token)  # default wgs84 -> gcj02
    assert code == 200 and (paris["lat"], paris["lon"]) == (48.85, 2.35)
    for query, field in (("lon=116", "lat"), ("lat=91&lon=116", "lat"), ("lat=39&lon=east", "lon"),
                         ("lat=nan&lon=116", "lat"), ("lat=39&lon=116&from=bd09", "from"), ("lat=39&lon=116&to=x", "to")):
        code, error = await call("GET", f"{base}/api/v1/geo/convert?{query}", token)
        assert code == 400 and error["error"]["field"] == field, query


@pytest_twisted.ensureDeferred
async def test_a_fence_created_through_the_api_reaches_a_running_worker(api):
    base, tokens, db, bus, _ = api
    watch = GeofenceWatch(db, bus, MemoryLiveState(reactor), reactor, raise_alarm=None, poll_interval=60)
    await watch.start()
    try:
        assert len(watch.index) == 0
        code, depot = await call("POST", f"{base}/api/v1/fences", tokens["dispatcher"], DEPOT)
        for _ in range(250):  # the fences.changed message, not the (one-minute) poll
            if depot["id"] in watch.index:
                break
            await task.deferLater(reactor, 0.02, lambda: None)
        assert depot["id"] in watch.index
    finally:
        await watch.stop()


@pytest_twisted.ensureDeferred
async def test_openapi_lists_the_routes(api):
    base, _, _, _, _ = api
    code, spec = await call("GET", f"{base}/openapi.json")
    assert {"/api/v1/fences", "/api/v1/fences/{id}", "/api/v1/geo/convert"} <= set(spec["paths"])
    assert set(spec["paths"]["/api/v1/fences/{id}"]) == {"get", "put", "delete"}
