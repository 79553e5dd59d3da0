"""A platform's AMQP feed: Traccar's AMQP forwarder output, consumed from the platform's RabbitMQ.

Traccar publishes its event/position JSON to a topic exchange; Watchline binds its own durable queue
(``ingest.amqp_queue``) to it and acks each message only after the reports are on Watchline's bus.
A message that cannot be parsed or accepted is retried a bounded number of times and then moved to
the platform broker's ``<exchange>.dead`` queue — logged, kept, and never blocking the queue.
"""

from __future__ import annotations

import logging
from dataclasses import replace
from typing import Any

from twisted.application import service
from twisted.internet.defer import Deferred

from ingest.feeds.traccar import reports_from_traccar

log = logging.getLogger(__name__)


class AmqpFeed(service.MultiService):
    name = "amqp-feed"

    def __init__(self, sink, reactor: Any, url: str, queue: str, exchange: str = "traccar") -> None:
        super().__init__()
        from watchline.mq.amqp import AmqpBus

        if not queue:
            raise ValueError("ingest.amqp_queue is required with ingest.amqp_url")
        self.sink = sink
        self.queue = queue
        self.broker = AmqpBus.from_url(url, reactor, exchange=exchange, connection_name="watchline-feed")
        self.broker.setServiceParent(self)
        self._consumer = None

    def startService(self):
        super().startService()
        return Deferred.fromCoroutine(self._subscribe())

    async def _subscribe(self) -> None:
        self._consumer = await self.broker.start_consuming(self._on_message, "#", queue=self.queue, prefetch=100)

    def stopService(self):
        return Deferred.fromCoroutine(self._stop())

    async def _stop(self) -> None:
        if self._consumer is not None:
            await self._consumer.stop_consuming()
        await super().stopService()

    async def _on_message(self, routing_key: str, message: dict[str, Any]) -> None:
        try:
            reports = reports_from_traccar(message)
        except ValueError as e:
            log.warning("AMQP feed message on %s refused: %s", routing_key, e)
            raise
        await self.sink.submit([replace(r, report_id=f"amqp:{r.report_id}") for r in reports])
