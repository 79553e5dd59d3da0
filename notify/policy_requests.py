"""Routine incidents' policies in a split deployment: the worker asks, a telephony process dials.

The alarm engine runs in ``worker`` processes and the SIP trunk belongs to ``telephony`` processes;
the roles share only PostgreSQL, RabbitMQ and Redis. So a worker's notifier (``PolicyRequests``)
publishes ``policy.start`` with the incident's id, and every telephony process consumes the one
durable queue ``<exchange>.policies`` (``PolicyRunner``): exactly one of them takes each request,
loads the incident (its snapshotted policy and all) and runs it with its ``VerificationNotifier``.

Nothing is lost when no telephony process is up: the incident opened with a start deadline, and
the engine's sweep hands it to the agents when the policy has not started in time. A request for an
incident no longer ``open`` (the sweep, or an agent, got there first) is dropped.
"""

from __future__ import annotations

import logging
from typing import Any

from twisted.application import service
from twisted.internet.defer import Deferred

from alarms.incident import Incident

log = logging.getLogger(__name__)

ROUTING_KEY = "policy.start"


class PolicyRequests:
    """The engine's notifier where there is no telephony in the process."""

    def __init__(self, bus) -> None:
        self.bus = bus

    def start(self, incident: Incident) -> None:
        asking = Deferred.fromCoroutine(self.bus.produce(ROUTING_KEY, {"incident_id": incident.id}))
        asking.addErrback(lambda f: log.error("incident %s: policy request not sent (%s); the sweep will hand it "
                                              "to the agents", incident.id, f.getErrorMessage()))


class PolicyRunner(service.Service):
    """In a telephony process: runs the policies workers ask for."""

    name = "policy-runner"

    def __init__(self, db, bus, notifier, queue: str = "watchline.policies") -> None:
        self.db = db
        self.bus = bus
        self.notifier = notifier  # notify.escalation.VerificationNotifier
        self.queue = queue
        self._consumer = None

    def startService(self):  # noqa: N802 - twisted's name
        super().startService()
        return Deferred.fromCoroutine(self._start())

    async def _start(self) -> None:
        self._consumer = await self.bus.start_consuming(self._on_request, ROUTING_KEY, queue=self.queue)

    def stopService(self):  # noqa: N802
        super().stopService()
        if self._consumer is not None:
            consumer, self._consumer = self._consumer, None
            return Deferred.fromCoroutine(consumer.stop_consuming())
        return None

    async def _on_request(self, _routing_key: str, message: dict[str, Any]) -> None:
        incident_id = message.get("incident_id")
        if isinstance(incident_id, bool) or not isinstance(incident_id, int):
            log.error("policy request without an incident id: %r", message)  # acked: retrying cannot fix it
            return
        incident = await self.db.incidents.get(incident_id)
        if incident is None or incident.state != "open":
            log.info("policy request for incident %s dropped: %s", incident_id,
                     "no such incident" if incident is None else f"it is {incident.state} now")
            return
        self.notifier.start(incident)  # runs on its own; the request is done once it has started
