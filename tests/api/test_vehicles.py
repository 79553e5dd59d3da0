"""The vehicles API over a real loopback HTTP server: auth, search, get, create/update, positions."""

import json

import pytest
import pytest_twisted
import treq
from twisted.internet import reactor

from api.app import WatchlineApi
from crm.db import Database
from crm.migrate import upgrade
from watchline.config import load_config
from watchline.live.memory import MemoryLiveState


@pytest.fixture
def api(sqlite_url):
    db = Database(sqlite_url, reactor)
    upgrade(db.engine)
    db.startService()
    live = MemoryLiveState(reactor)
    live.startService()
    app = WatchlineApi(db, live, load_config(environ={}))
    port = reactor.listenTCP(0, app.site(), interface="127.0.0.1")
    base = f"http://127.0.0.1:{port.getHost().port}"
    tokens = {role: db.users.issue_token_blocking(role, f"{role}-1")
              for role in ("admin", "agent", "platform")}
    yield base, tokens, db, live
    pytest_twisted.blockon(port.stopListening())
    live.stopService()
    pytest_twisted.blockon(db.stopService())


async def call(method, url, token=None, body=None):
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    kwargs = {}
    if body is not None:
        headers["Content-Type"] = "application/json"
        kwargs["data"] = body if isinstance(body, bytes) else json.dumps(body).encode()
    resp = await treq.request(method, url.encode(), headers=headers, **kwargs)
    return resp.code, json.loads(await resp.content())


VEHICLE = {"plate": "京A12345", "terminal_id": "013800000001", "protocol": "jt808", "owner_name": "Zhang Wei",
           "owner_phone": "13800138000", "tier": "gold", "pin": "2468", "skills": ["tow"]}


@pytest_twisted.ensureDeferred
async def test_auth_errors_are_json(api):
    base, tokens, _, _ = api
    assert await call("GET", f"{base}/api/v1/vehicles?q=1") == (
        401, {"error": {"code": "unauthenticated", "message": "missing bearer token"}})
    code, body = await call("GET", f"{base}/api/v1/vehicles?q=1", "wl_bogus")
    assert code == 401 and body["error"]["code"] == "unauthenticated"
    code, body = await call("GET", f"{base}/api/v1/vehicles?q=1", tokens["platform"])
    assert code == 403 and body["error"]["code"] == "forbidden"
    code, body = await call("POST", f"{base}/api/v1/vehicles", tokens["agent"], VEHICLE)
    assert code == 403


@pytest_twisted.ensureDeferred
async def test_create_get_search_update(api):
    base, tokens, _, live = api
    code, created = await call("POST", f"{base}/api/v1/vehicles", tokens["admin"], VEHICLE)
    assert code == 201 and created["plate"] == "京A12345" and created["tier"] == "gold"
    assert "pin" not in json.dumps(created) or created["has_pin"] is True
    assert "pin_hash" not in created
    code, _ = await call("POST", f"{base}/api/v1/vehicles", tokens["admin"], VEHICLE)
    assert code == 409
    await live.set_position("京A12345", {"time": "2026-01-01T00:00:00Z", "lat": 39.9, "lon": 116.4})
    code, got = await call("GET", f"{base}/api/v1/vehicles/%E4%BA%ACA12345", tokens["agent"])
    assert code == 200 and got["owner"]["contacts"][0]["value"] == "+8613800138000"
    assert got["terminals"] == [{"protocol": "jt808", "terminal_id": "13800000001"}]
    assert got["last_position"]["lat"] == 39.9
    for q in ("A123", "zhang", "13800138000", "138001"):
        code, found = await call("GET", f"{base}/api/v1/vehicles?q={q}", tokens["agent"])
        assert code == 200 and [v["plate"] for v in found["vehicles"]] == ["京A12345"], q
    code, updated = await call("PUT", f"{base}/api/v1/vehicles/%E4%BA%ACA12345", tokens["admin"],
                               dict(VEHICLE, tier="platinum", pin=""))
    assert code == 200 and updated["tier"] == "platinum" and updated["has_pin"]


@pytest_twisted.ensureDeferred
async def test_bad_fields_name_the_field(api):
    base, tokens, _, _ = api
    for body, field in ((dict(VEHICLE, tier="vip"), "tier"), (dict(VEHICLE, owner_phone="12"), "owner_phone"),
                        (dict(VEHICLE, colour="red"), "colour"), (dict(VEHICLE, pin=True), "pin"),
                        (dict(VEHICLE, pin=""), "pin")):
        code, err = await call("POST", f"{base}/api/v1/vehicles", tokens["admin"], body)
        assert code == 400 and err["error"]["field"] == field, (body, err)
    code, err = await call("POST", f"{base}/api/v1/vehicles", tokens["admin"], b"{not json")
    assert code == 400 and err["error"]["code"] == "bad_json"
    code, err = await call("GET", f"{base}/api/v1/vehicles?q=a&limit=0", tokens["agent"])
    assert code == 400 and err["error"]["field"] == "limit"


@pytest_twisted.ensureDeferred
async def test_missing_vehicle_and_positions(api):
    base, tokens, _, _ = api
    code, err = await call("GET", f"{base}/api/v1/vehicles/NOPE", tokens["agent"])
    assert code == 404 and err["error"]["code"] == "not_found"
    code, _ = await call("GET", f"{base}/api/v1/vehicles/NOPE/positions", tokens["agent"])
    assert code == 404
    for path in ("/api/v1/vehicles/a/b/c", "/api/v1/nothing", "/nope"):
        code, err = await call("GET", base + path, tokens["agent"])
        assert code == 404 and err["error"]["code"] == "not_found", path
    code, err = await call("DELETE", f"{base}/api/v1/vehicles/x", tokens["agent"])
    assert code == 405 and err["error"]["code"] == "method_not_allowed"


@pytest_twisted.ensureDeferred
async def test_healthz_and_openapi_need_no_token(api):
    base, _, _, _ = api
    assert await call("GET", f"{base}/healthz") == (200, {"status": "ok", "database": True})
    code, spec = await call("GET", f"{base}/openapi.json")
    assert code == 200 and "/api/v1/vehicles/{plate}/positions" in spec["paths"]
