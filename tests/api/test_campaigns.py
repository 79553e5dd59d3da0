"""The campaigns and do-not-call API over a real loopback HTTP server, with the event stream."""

import base64
import csv
import io

import openpyxl
import pytest_twisted
import treq
from twisted.internet import endpoints, reactor, task

from api.app import WatchlineApi
from crm.db import Database
from crm.migrate import upgrade
from tests.api.test_incidents import Stream
from tests.api.test_vehicles import call
from tests.crm.storage_contract import rows
from watchline.config import load_config
from watchline.live.memory import MemoryLiveState
from watchline.mq.memory import MemoryBus

FIELDS = {"name": "Inspection", "template": "{{ name }}, your car {{ plate }} is due on {{ due }}", "lines": 5,
          "window": "00:00-24:00", "confirm": True, "retry": "busy=60x2"}


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
        await db.vehicles.import_rows(rows({"plate": "P1", "terminal_id": "11", "owner_name": "Zhang Wei",
                                            "owner_phone": "13800138001"}), "test")
        tokens = {role: await db.users.issue_token(role, f"{role}-1") for role in ("supervisor", "agent")}
        yield f"http://127.0.0.1:{port.getHost().port}", tokens, db
    finally:
        await port.stopListening()
        await bus.stopService()
        live.stopService()
        await db.stopService()


@pytest_twisted.ensureDeferred
async def test_create_from_csv_act_and_report(api):
    base, tokens, db = api
    sup = tokens["supervisor"]
    url = f"{base}/api/v1/campaigns"
    listing = "phone,plate,name,due\n13800138000,粤B1,Li,June 30\n,P1,,July 1\n"
    code, created = await call("POST", url, sup, {**FIELDS, "csv": listing})
    assert code == 201, created
    assert (created["status"], created["lines"], created["confirm"]) == ("draft", 5, True)
    assert created["schedule"]["timezone"] == "Asia/Shanghai" and created["retry"] == {"busy": {"after_s": 60, "max": 2}}
    assert created["progress"]["total"] == 2 and created["progress"]["pending"] == 2
    cid = created["id"]
    numbers = {n.phone: n for n in await db.campaigns.numbers(cid)}
    assert numbers["+8613800138001"].name == "Zhang Wei" and numbers["+8613800138001"].variables == {"due": "July 1"}
    code, body = await call("POST", f"{url}/{cid}/start", sup)
    assert code == 200 and body["status"] == "running"
    code, body = await call("POST", f"{url}/{cid}/resume", sup)
    assert code == 409 and body["error"]["code"] == "conflict"
    assert (await call("POST", f"{url}/{cid}/pause", sup))[1]["status"] == "paused"
    assert (await call("POST", f"{url}/{cid}/explode", sup))[0] == 404
    assert (await call("POST", f"{url}/999/start", sup))[0] == 404
    code, got = await call("GET", f"{url}/{cid}", sup)
    assert code == 200 and got["status"] == "paused" and got["progress"]["pending"] == 2
    code, listed = await call("GET", f"{url}?status=paused", sup)
    assert [c["id"] for c in listed["campaigns"]] == [cid] and listed["campaigns"][0]["progress"]["total"] == 2
    code, report = await call("GET", f"{url}/{cid}/report", sup)
    assert code == 200 and [n["phone"] for n in report["numbers"]] == ["+8613800138000", "+8613800138001"]
    resp = await treq.get(f"{url}/{cid}/report?format=csv".encode(), headers={"Authorization": f"Bearer {sup}"})
    assert resp.code == 200 and resp.headers.getRawHeaders("content-type")[0].startswith("text/csv")
    lines = list(csv.reader(io.StringIO((await resp.content()).decode("utf-8-sig"))))
    assert lines[0][0] == "phone" and lines[1][:5] == ["+8613800138000", "粤B1", "Li", "pending", ""]
    resp = await treq.get(f"{url}/{cid}/report?format=xlsx".encode(), headers={"Authorization": f"Bearer {sup}"})
    sheet = openpyxl.load_workbook(io.BytesIO(await resp.content())).active
    assert [r[0] for r in sheet.iter_rows(values_only=True)] == ["phone", "+8613800138000", "+8613800138001"]
    code, body = await call("GET", f"{url}/{cid}/report?format=pdf", sup)
    assert code == 400 and body["error"]["field"] == "format"
    assert (await call("POST", f"{url}/{cid}/cancel", sup))[1]["status"] == "cancelled"


@pytest_twisted.ensureDeferred
async def test_create_from_numbers_xlsx_plates_and_filter(api):
    base, tokens, db = api
    sup, url = tokens["supervisor"], f"{base}/api/v1/campaigns"
    wb = openpyxl.Workbook()
    wb.active.append(["phone", "due"])
    wb.active.append([13900139000, "May"])
    out = io.BytesIO()
    wb.save(out)
    code, body = await call("POST", url, sup, {**FIELDS, "template": "Due {{ due }}",
                                               "xlsx": base64.b64encode(out.getvalue()).decode(), "start": True})
    assert code == 201 and body["status"] == "running" and body["progress"]["total"] == 1
    code, body = await call("POST", url, sup, {**FIELDS, "template": "Hi {{ name }}", "plates": ["p1"]})
    assert code == 201 and body["progress"]["total"] == 1
    code, body = await call("POST", url, sup, {**FIELDS, "template": "Hi", "filter": {"tier": "normal"}})
    assert code == 201 and body["progress"]["total"] == 1
    code, body = await call("POST", url, sup, {**FIELDS, "template": "Hi", "numbers": ["13800138000", "13900139000"]})
    assert code == 201 and body["progress"]["total"] == 2


@pytest_twisted.ensureDeferred
async def test_bad_input_is_400_naming_the_field_and_roles(api):
    base, tokens, db = api
    sup, url = tokens["supervisor"], f"{base}/api/v1/campaigns"
    for body, field in (({**FIELDS, "numbers": ["1"]}, "numbers[0].phone"),
                        ({**FIELDS, "csv": "phone,due\n13800138000,x\n12,y\n"}, "csv"),
                        ({**FIELDS, "xlsx": "not base64!"}, "xlsx"),
                        ({**FIELDS, "csv": "a", "numbers": ["13800138000"]}, "csv"),
                        ({**FIELDS, "numbers": ["13800138000"]}, "template"),  # no "due" for this number
                        ({**FIELDS, "numbers": ["13800138000"], "lines": 0}, "lines"),
                        ({**FIELDS, "numbers": ["13800138000"], "window": "9 to 5"}, "window"),
                        ({**FIELDS, "numbers": ["13800138000"], "retry": "busy"}, "retry"),
                        ({**FIELDS, "numbers": ["13800138000"], "start": "yes"}, "start"),
                        ({**FIELDS, "numbers": ["13800138000"], "colour": "red"}, "colour"),
                        ({"template": "x", "numbers": ["13800138000"]}, "name")):
        code, got = await call("POST", url, sup, body)
        assert code == 400 and got["error"]["field"] == field, (body, got)
    code, got = await call("POST", url, sup, {**FIELDS, "csv": "phone,due\n13800138000,x\n12,y\n"})
    assert got["error"]["message"] == "csv line 3: invalid phone '12'"
    assert await db.campaigns.search() == []
    assert (await call("GET", url, tokens["agent"]))[0] == 403
    assert (await call("POST", f"{base}/api/v1/do-not-call", tokens["agent"], {"phone": "13800138000"}))[0] == 403


@pytest_twisted.ensureDeferred
async def test_do_not_call_list(api):
    base, tokens, _ = api
    sup, url = tokens["supervisor"], f"{base}/api/v1/do-not-call"
    code, body = await call("POST", url, sup, {"phone": "138 0013 8000", "reason": "complained"})
    assert code == 201 and body["phone"] == "+8613800138000"
    code, body = await call("POST", url, sup, {"phone": "12"})
    assert code == 400 and body["error"]["field"] == "phone"
    assert [e["phone"] for e in (await call("GET", url, sup))[1]["numbers"]] == ["+8613800138000"]
    code, body = await call("POST", f"{base}/api/v1/campaigns", sup,
                            {**FIELDS, "template": "Hi", "numbers": ["13800138000", "13900139000"]})
    assert body["progress"]["skipped"] == 1 and body["progress"]["outcomes"] == {"dnc": 1}
    assert (await call("DELETE", f"{url}/%2B8613800138000", sup))[0] == 200
    assert (await call("DELETE", f"{url}/13800138000", sup))[0] == 404
    assert (await call("GET", url, sup))[1]["numbers"] == []


@pytest_twisted.ensureDeferred
async def test_event_stream_forwards_campaign_events(api):
    base, tokens, _ = api
    port = int(base.rsplit(":", 1)[1])
    stream = await endpoints.connectProtocol(endpoints.TCP4ClientEndpoint(reactor, "127.0.0.1", port),
                                             Stream(f"/api/v1/events?token={tokens['supervisor']}"))
    try:
        for _ in range(250):
            if stream.head is not None:
                break
            await task.deferLater(reactor, 0.02, lambda: None)
        code, body = await call("POST", f"{base}/api/v1/campaigns", tokens["supervisor"],
                                {**FIELDS, "template": "Hi", "numbers": ["13800138000"], "start": True})
        events = await stream.wait_for(1)
        assert events[0] == (f"campaign.{body['id']}.status", {"id": body["id"], "name": "Inspection",
                                                                "status": "running"})
    finally:
        stream.transport.loseConnection()
