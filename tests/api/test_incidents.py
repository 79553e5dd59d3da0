"""The agents' incident API and the live event stream over a real loopback HTTP server."""

import json
from datetime import datetime, timezone

import pytest_twisted
import treq
from twisted.internet import endpoints, protocol, reactor, task

from alarms.desk import IncidentDesk
from alarms.rules import load_rules
from api.app import WatchlineApi
from crm.db import Database
from crm.incidents import NewIncident
from crm.migrate import upgrade
from tests.api.test_vehicles import call
from tests.crm.storage_contract import rows
from watchline.config import load_config
from watchline.live.memory import MemoryLiveState
from watchline.mq.memory import MemoryBus

T0 = datetime(2026, 5, 1, 8, tzinfo=timezone.utc)


class Rules:
    """Stands in for the engine's reload: the path is set by each test."""

    def __init__(self):
        self.path = ""
        self.loaded = None

    def reload(self):
        self.loaded = load_rules(self.path)
        return self.loaded


@pytest_twisted.async_yield_fixture
async def api(sqlite_url):
    db = Database(sqlite_url, reactor)
    upgrade(db.engine)
    db.startService()
    live, bus = MemoryLiveState(reactor), MemoryBus(reactor)
    live.startService()
    bus.startService()
    desk = IncidentDesk(db, bus, reactor)
    rules = Rules()
    app = WatchlineApi(db, live, load_config(environ={}), desk=desk, bus=bus, clock=reactor,
                       rules_reload=rules.reload)
    port = reactor.listenTCP(0, app.site(), interface="127.0.0.1")
    try:
        await db.vehicles.import_rows(rows(
            {"plate": "P1", "terminal_id": "11", "tier": "gold", "owner_name": "Zhang Wei",
             "backup_phone": "13900139000"},
            {"plate": "P2", "terminal_id": "12"}), "test")
        tokens = {role: await db.users.issue_token(role, f"{role}-1") for role in ("admin", "agent", "platform")}
        yield f"http://127.0.0.1:{port.getHost().port}", tokens, db, desk, rules
    finally:
        await port.stopListening()
        await bus.stopService()
        live.stopService()
        await db.stopService()


async def open_incident(db, desk, plate="P1", alarm="sos", severity="emergency", tier="gold"):
    incident, _ = await db.incidents.open_or_join(NewIncident(
        plate=plate, alarm=alarm, severity=severity, priority=0 if severity == "emergency" else 50, tier=tier,
        policy={"name": "agent_only", "steps": []}, time=T0), T0)
    return await desk.escalate(incident.id, "to the agent queue")


@pytest_twisted.ensureDeferred
async def test_list_filter_get_with_owner_and_act(api):
    base, tokens, db, desk, _ = api
    sos = await open_incident(db, desk)
    door = await open_incident(db, desk, "P2", "illegal_door_open", "routine", "normal")
    agent = tokens["agent"]
    code, body = await call("GET", f"{base}/api/v1/incidents", agent)
    assert code == 200 and [i["id"] for i in body["incidents"]] == [sos.id, door.id]
    first = body["incidents"][0]  # each item in the shape of design.md, timeline included
    assert {"id", "plate", "alarm", "severity", "state", "opened_at", "updated_at"} <= set(first)
    assert [e["kind"] for e in first["timeline"]] == ["opened", "escalate"]
    code, body = await call("GET", f"{base}/api/v1/incidents?severity=routine&state=escalated", agent)
    assert [i["alarm"] for i in body["incidents"]] == ["illegal_door_open"]
    code, body = await call("GET", f"{base}/api/v1/incidents?plate=P1&since=2000-01-01T00:00:00Z", agent)
    assert [i["plate"] for i in body["incidents"]] == ["P1"]

    code, body = await call("GET", f"{base}/api/v1/incidents/{sos.id}", agent)
    assert code == 200 and (body["severity"], body["state"]) == ("emergency", "escalated")
    assert body["vehicle"]["owner"]["name"] == "Zhang Wei"
    assert [c["value"] for c in body["vehicle"]["owner"]["contacts"]][:2] == ["+8613800138000", "+8613900139000"]
    assert "pin" not in json.dumps(body["vehicle"]).replace("has_pin", "")

    code, body = await call("POST", f"{base}/api/v1/incidents/{sos.id}/acknowledge", agent)
    assert code == 200 and (body["state"], body["assignee"]) == ("acknowledged", "agent-1")
    code, body = await call("POST", f"{base}/api/v1/incidents/{sos.id}/comment", agent, {"text": "owner is safe"})
    assert code == 200 and body["timeline"][-1]["text"] == "owner is safe"
    code, body = await call("POST", f"{base}/api/v1/incidents/{sos.id}/reassign", agent, {"to": "bob"})
    assert code == 200 and body["assignee"] == "bob"
    code, body = await call("POST", f"{base}/api/v1/incidents/{sos.id}/resolve", agent,
                            {"outcome": "police_notified", "note": "110 called"})
    assert code == 200 and (body["state"], body["outcome"]) == ("resolved", "police_notified")
    assert [e["kind"] for e in body["timeline"]] == [
        "opened", "escalate", "acknowledge", "comment", "reassigned", "resolve"]
    assert [e["actor"] for e in body["timeline"]][2:] == ["agent-1"] * 4


@pytest_twisted.ensureDeferred
async def test_bad_requests_are_clear_errors(api):
    base, tokens, db, desk, _ = api
    incident = await open_incident(db, desk)
    agent, url = tokens["agent"], f"{base}/api/v1/incidents"
    for query, field in (("state=lost", "state"), ("severity=bad", "severity"), ("since=yesterday", "since"),
                         ("since=2026-01-01T00:00:00", "since"), ("limit=0", "limit")):
        code, body = await call("GET", f"{url}?{query}", agent)
        assert code == 400 and body["error"].get("field") == field, (query, body)
    assert (await call("GET", f"{url}/999", agent))[0] == 404
    assert (await call("POST", f"{url}/999/acknowledge", agent))[0] == 404
    code, body = await call("POST", f"{url}/{incident.id}/resolve", agent, {"outcome": "other"})
    assert code == 400 and body["error"]["field"] == "note"
    code, body = await call("POST", f"{url}/{incident.id}/resolve", agent, {"outcome": "gone"})
    assert code == 400 and body["error"]["field"] == "outcome"
    assert (await call("POST", f"{url}/{incident.id}/resolve", agent, b"{not json"))[0] == 400
    assert (await call("POST", f"{url}/{incident.id}/comment", agent, {"text": ""}))[0] == 400
    assert (await call("POST", f"{url}/{incident.id}/acknowledge", tokens["platform"]))[0] == 403
    assert (await call("POST", f"{url}/{incident.id}/resolve", agent, {"outcome": "false_alarm"}))[0] == 200
    code, body = await call("POST", f"{url}/{incident.id}/acknowledge", agent)
    assert code == 409 and body["error"]["code"] == "conflict"


class Stream(protocol.Protocol):
    """A raw HTTP/1.1 SSE client: collects ``(event, data)`` pairs as they arrive."""

    def __init__(self, path: str):
        self.path, self.head, self.events, self._buffer = path, None, [], b""

    def connectionMade(self):  # noqa: N802 - twisted's name
        self.transport.write(f"GET {self.path} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n".encode())

    def dataReceived(self, data: bytes):  # noqa: N802
        self._buffer += data
        if self.head is None and b"\r\n\r\n" in self._buffer:
            self.head, self._buffer = self._buffer.split(b"\r\n\r\n", 1)
        while self.head is not None and b"\n\n" in self._buffer:
            block, self._buffer = self._buffer.split(b"\n\n", 1)
            lines = [line for line in block.decode().splitlines() if ": " in line and not line.startswith(":")]
            fields = dict(line.split(": ", 1) for line in lines)
            if "event" in fields:
                self.events.append((fields["event"], json.loads(fields["data"])))

    async def wait_for(self, count: int) -> list:
        for _ in range(250):  # bounded: 5 s
            if len(self.events) >= count:
                return self.events
            await task.deferLater(reactor, 0.02, lambda: None)
        raise AssertionError(f"only {self.events}")


@pytest_twisted.ensureDeferred
async def test_event_stream_carries_every_change(api):
    base, tokens, db, desk, _ = api
    assert (await treq.get(f"{base}/api/v1/events".encode())).code == 401
    assert (await treq.get(f"{base}/api/v1/events?token={tokens['platform']}".encode())).code == 403
    port = int(base.rsplit(":", 1)[1])
    stream = await endpoints.connectProtocol(endpoints.TCP4ClientEndpoint(reactor, "127.0.0.1", port),
                                             Stream(f"/api/v1/events?token={tokens['agent']}"))
    try:
        for _ in range(250):
            if stream.head is not None:
                break
            await task.deferLater(reactor, 0.02, lambda: None)
        assert stream.head.startswith(b"HTTP/1.1 200") and b"text/event-stream" in stream.head
        incident = await open_incident(db, desk)
        await call("POST", f"{base}/api/v1/incidents/{incident.id}/acknowledge", tokens["agent"])
        events = await stream.wait_for(2)
        assert [name for name, _ in events] == ["incident.escalated", "incident.acknowledged"]
        assert events[1][1]["incident"]["assignee"] == "agent-1" and events[1][1]["event"] == "acknowledged"
    finally:
        stream.transport.loseConnection()
    for _ in range(100):  # the server notices and stops the stream's bus consumers (bounded: 2 s)
        if not desk.bus._consumers:
            break
        await task.deferLater(reactor, 0.02, lambda: None)
    assert not desk.bus._consumers


@pytest_twisted.ensureDeferred
async def test_rules_reload_keeps_the_old_rules_on_a_bad_file(api, tmp_path):
    base, tokens, _, _, rules = api
    good, bad = tmp_path / "rules.toml", tmp_path / "bad.toml"
    good.write_text('[[rule]]\nname = "nights"\nalarms = ["power_cut"]\nhours = "22:00-07:00"\n'
                    'severity = "emergency"\n')
    bad.write_text('[[rule]]\nname = "broken"\nalarms = ["sos"]\nseverity = "panic"\n')
    rules.path = str(good)
    code, body = await call("POST", f"{base}/api/v1/rules/reload", tokens["admin"])
    assert code == 200 and body["rules"] == 1
    rules.path = str(bad)
    code, body = await call("POST", f"{base}/api/v1/rules/reload", tokens["admin"])
    assert code == 400 and body["error"]["code"] == "bad_rules" and "severity" in body["error"]["message"]
    assert rules.loaded.rules[0].name == "nights"
    assert (await call("POST", f"{base}/api/v1/rules/reload", tokens["agent"]))[0] == 403
