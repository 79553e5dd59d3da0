"""The live stream carries issue 7's events — geofence changes, the rescue fleet's availability and work
orders — to a desk that reads it, over a real loopback HTTP server and the in-process bus."""

from __future__ import annotations

import pytest
import pytest_twisted
from twisted.internet import endpoints, reactor, task

from tests.alarms.test_dispatch import open_incident
from tests.api.test_incidents import Stream
from tests.api.test_vehicles import call


@pytest.fixture
def api(dispatch_system):
    port, tokens, db, _clock, _fleet, bus = dispatch_system
    return port, tokens, db, bus


async def open_stream(port: int, token: str) -> Stream:
    stream = await endpoints.connectProtocol(endpoints.TCP4ClientEndpoint(reactor, "127.0.0.1", port),
                                             Stream(f"/api/v1/events?token={token}"))
    for _ in range(250):  # bounded: 5 s; the server subscribes in the turn it sends the head
        if stream.head is not None:
            break
        await task.deferLater(reactor, 0.02, lambda: None)
    assert stream.head is not None and stream.head.startswith(b"HTTP/1.1 200")
    return stream


async def wait_for_names(stream: Stream, names: list[str]) -> list[tuple[str, dict]]:
    """The stream's events with these names, once each has arrived (bounded: 5 s)."""
    for _ in range(250):
        got = [(name, body) for name, body in stream.events if name in names]
        if {name for name, _ in got} >= set(names):
            return got
        await task.deferLater(reactor, 0.02, lambda: None)
    raise AssertionError(f"missing {set(names) - {n for n, _ in stream.events}}; got {stream.events}")


@pytest_twisted.ensureDeferred
async def test_fence_fleet_and_work_order_events_reach_an_agents_stream(api):
    port, tokens, db, _bus = api
    root, dispatcher = f"http://127.0.0.1:{port}/api/v1", tokens["dispatcher"]
    stream = await open_stream(port, tokens["agent"])  # an agent reads the stream; a dispatcher acts
    try:
        code, fence = await call("POST", f"{root}/fences", dispatcher, {
            "name": "depot", "kind": "circle", "lat": 22.54, "lon": 114.05, "radius_m": 300})
        assert code == 201, fence
        code, _ = await call("PUT", f"{root}/dispatch/fleet/R3", dispatcher, {"availability": "off_duty"})
        assert code == 200
        incident = await open_incident(db)
        code, order = await call("POST", f"{root}/dispatch/work_orders", dispatcher,
                                 {"incident_id": incident.id, "capability": "tow"})
        assert code == 201 and order["truck_plate"] == "R1", order
        code, _ = await call("POST", f"{root}/dispatch/work_orders/{order['id']}/en_route", dispatcher)
        assert code == 200
        code, _ = await call("DELETE", f"{root}/fences/{fence['id']}", dispatcher)
        assert code == 200

        wanted = ["fences.changed", "fleet.truck.off_duty", "fleet.truck.dispatched", "dispatch.work_order.dispatched",
                  "fleet.truck.en_route", "dispatch.work_order.en_route"]
        events = await wait_for_names(stream, wanted)
        fences = [body for name, body in events if name == "fences.changed"]
        for _ in range(100):  # the delete's event may trail the others (bounded: 2 s)
            if len(fences) == 2:
                break
            await task.deferLater(reactor, 0.02, lambda: None)
            fences = [body for name, body in stream.events if name == "fences.changed"]
        assert fences == [{"id": fence["id"], "action": "created"}, {"id": fence["id"], "action": "deleted"}]
        trucks = [(name, body["truck"]["plate"]) for name, body in events if name.startswith("fleet.truck.")]
        assert trucks == [("fleet.truck.off_duty", "R3"), ("fleet.truck.dispatched", "R1"),
                          ("fleet.truck.en_route", "R1")]
        orders = [(name, body["work_order"]["id"], body["work_order"]["status"])
                  for name, body in events if name.startswith("dispatch.")]
        assert orders == [("dispatch.work_order.dispatched", order["id"], "dispatched"),
                          ("dispatch.work_order.en_route", order["id"], "en_route")]
        assert dict(events)["fleet.truck.dispatched"]["truck"]["work_order_id"] == order["id"]
    finally:
        stream.transport.loseConnection()


@pytest_twisted.ensureDeferred
async def test_campaign_events_reach_supervisors_only(api):
    """The campaigns API is admin/supervisor only; so is their progress on the stream."""
    port, tokens, _db, bus = api
    agent, supervisor = await open_stream(port, tokens["agent"]), await open_stream(port, tokens["supervisor"])
    try:
        await bus.produce("campaign.3.progress", {"id": 3, "done": 1})
        await bus.produce("fleet.truck.available", {"truck": {"plate": "R9"}})
        await wait_for_names(supervisor, ["campaign.3.progress", "fleet.truck.available"])
        await wait_for_names(agent, ["fleet.truck.available"])
        assert [name for name, _ in agent.events] == ["fleet.truck.available"]
    finally:
        agent.transport.loseConnection()
        supervisor.transport.loseConnection()
