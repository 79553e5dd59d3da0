"""The ``webhook`` channel against a local twisted.web server: JSON body, retries with backoff, 4xx final."""

from __future__ import annotations

import json
from types import SimpleNamespace

import pytest
import pytest_twisted
from twisted.internet import defer, reactor, task
from twisted.web import resource, server

from crm.db import Database
from crm.migrate import upgrade
from notify.channels import Channels, DeliveryFailed, Message
from notify.channels.webhook import WebhookChannel


class Hook(resource.Resource):
    """Answers each POST with the next status from ``script`` (then 200), recording what it got."""

    isLeaf = True

    def __init__(self, *script: int):
        super().__init__()
        self.script, self.posts = list(script), []

    def render_POST(self, request):
        self.posts.append((request.path, dict(request.requestHeaders.getAllRawHeaders()), request.content.read()))
        code = self.script.pop(0) if self.script else 200
        request.setResponseCode(code)
        return b'{"ok": true}' if code == 200 else b"try later" if code >= 500 else b"bad field: plate"


@pytest_twisted.async_yield_fixture
async def rig(sqlite_url):
    db = Database(sqlite_url, reactor)
    upgrade(db.engine)
    db.startService()
    hook = Hook()
    port = reactor.listenTCP(0, server.Site(hook), interface="127.0.0.1")
    clock = task.Clock()
    url = f"http://127.0.0.1:{port.getHost().port}/hooks/watchline"
    channels = Channels(db.deliveries, reactor)
    channels.register(WebhookChannel(reactor, [url], retries=3, clock=clock, timeout=5))
    try:
        yield SimpleNamespace(db=db, hook=hook, channels=channels, clock=clock, url=url)
    finally:
        await port.stopListening()
        await db.stopService()


async def send_driving_clock(rig, message):
    """Send, advancing the fake clock whenever the channel waits on it; returns (delivery, waits)."""
    d = defer.Deferred.fromCoroutine(rig.channels.send("webhook", message))
    waits = []
    for _ in range(500):
        if d.called:
            break
        calls = rig.clock.getDelayedCalls()
        if calls:
            delay = calls[0].getTime() - rig.clock.seconds()
            waits.append(delay)
            rig.clock.advance(delay)
        await task.deferLater(reactor, 0.01, lambda: None)
    return await d, waits


def notice(url):
    return Message(url, "救援车京B999已出发", "work_order_dispatched", subject="rescue on its way", work_order_id=None,
                   data={"truck_plate": "京B999", "eta_s": 1290.0})


@pytest_twisted.ensureDeferred
async def test_two_503s_are_retried_with_backoff_then_200(rig):
    rig.hook.script = [503, 503]
    delivery, waits = await send_driving_clock(rig, notice(rig.url))
    assert (delivery.status, delivery.attempts, delivery.external_id) == ("sent", 3, "HTTP 200")
    assert waits == [1.0, 2.0]
    assert len(rig.hook.posts) == 3
    path, headers, body = rig.hook.posts[-1]
    assert path == b"/hooks/watchline"
    assert headers[b"Content-Type"] == [b"application/json; charset=utf-8"]
    assert headers[b"X-Watchline-Attempt"] == [b"3"]
    assert json.loads(body) == {"notice": "work_order_dispatched", "subject": "rescue on its way",
                                "body": "救援车京B999已出发", "language": "zh", "incident_id": None,
                                "work_order_id": None, "data": {"truck_plate": "京B999", "eta_s": 1290.0}}
    assert (await rig.db.deliveries.get(delivery.id)).status == "sent"


@pytest_twisted.ensureDeferred
async def test_400_is_final_at_once(rig):
    rig.hook.script = [400]
    delivery, waits = await send_driving_clock(rig, notice(rig.url))
    assert (delivery.status, delivery.attempts, waits) == ("failed", 1, [])
    assert delivery.error.endswith("HTTP 400 Bad Request: bad field: plate")
    assert len(rig.hook.posts) == 1


@pytest_twisted.ensureDeferred
async def test_server_errors_until_retries_run_out(rig):
    rig.hook.script = [500, 502, 503, 504, 200]
    delivery, waits = await send_driving_clock(rig, notice(rig.url))
    assert (delivery.status, delivery.attempts, waits) == ("failed", 4, [1.0, 2.0, 4.0])
    assert "HTTP 504" in delivery.error


@pytest_twisted.ensureDeferred
async def test_connection_refused_is_retried(rig):
    delivery, waits = await send_driving_clock(rig, notice("http://127.0.0.1:1/hook"))
    assert (delivery.status, delivery.attempts, waits) == ("failed", 4, [1.0, 2.0, 4.0])
    assert "ConnectionRefused" in delivery.error


@pytest_twisted.ensureDeferred
async def test_timeout_is_a_failed_attempt():
    """A server that never answers: the request is cancelled after ``timeout`` and counted as failed."""
    from twisted.internet import protocol

    silent = reactor.listenTCP(0, protocol.Factory.forProtocol(protocol.Protocol), interface="127.0.0.1")
    try:
        channel = WebhookChannel(reactor, retries=0, timeout=0.2)
        with pytest.raises(DeliveryFailed) as failed:
            await channel.send(notice(f"http://127.0.0.1:{silent.getHost().port}/"))
        assert failed.value.attempts == 1 and not failed.value.permanent
        assert "Cancel" in failed.value.reason
    finally:
        await silent.stopListening()
