"""Traccar JSON published to a real RabbitMQ reaches the ingest sink through the AMQP feed."""

import uuid

import pytest_twisted
from twisted.internet import reactor, task

from ingest.feeds.amqp_feed import AmqpFeed
from tests.conftest import require_service
from watchline.mq.amqp import AmqpBus

AMQP_URL = "amqp://guest:guest@127.0.0.1:5672/%2F"

MESSAGE = {"position": {"id": 1, "fixTime": "2026-05-01T08:00:00Z", "latitude": 31.2, "longitude": 121.4,
                        "speed": 5, "attributes": {"alarm": "sos"}},
           "device": {"id": 7, "uniqueId": "car-77"}}


class Sink:
    def __init__(self):
        self.reports = []

    async def submit(self, reports):
        self.reports.extend(reports)


@pytest_twisted.ensureDeferred
async def test_traccar_amqp_forward_reaches_the_sink():
    require_service("RabbitMQ", "127.0.0.1", 5672)
    exchange, queue = f"wltest-traccar-{uuid.uuid4().hex[:8]}", f"wltest-feed-{uuid.uuid4().hex[:8]}"
    sink = Sink()
    feed = AmqpFeed(sink, reactor, AMQP_URL, queue, exchange)
    platform = AmqpBus.from_url(AMQP_URL, reactor, exchange=exchange, connection_name="wltest-platform")
    await feed.startService()
    await platform.startService()
    try:
        # A first connection can be slow on a freshly started broker; the feed's queue must be bound
        # before the platform publishes, or RabbitMQ drops the unroutable messages.
        await feed.broker.wait_connected(30)
        await platform.wait_connected(30)
        await platform.produce("positions", MESSAGE)
        await platform.produce("positions", {"device": {"uniqueId": "x"}})  # bad: dead-lettered, not blocking
        await platform.produce("events", dict(MESSAGE, position=dict(MESSAGE["position"], id=2)))
        for _ in range(400):
            if len(sink.reports) >= 2:
                break
            await task.deferLater(reactor, 0.05, lambda: None)
        assert [r.report_id for r in sink.reports] == ["amqp:traccar-p1", "amqp:traccar-p2"]
        assert sink.reports[0].alarms == ("sos",) and sink.reports[0].terminal_id == "car-77"
    finally:
        await platform.stopService()
        await feed.stopService()
        await _cleanup(exchange, queue)


async def _cleanup(exchange: str, queue: str) -> None:
    import subprocess

    for args in (["delete_queue", queue], ["delete_queue", f"{exchange}.dead"]):
        subprocess.run(["rabbitmqctl", "-q", *args], capture_output=True, timeout=30)
