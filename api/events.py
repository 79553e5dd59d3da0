"""``/api/v1/events``: the live stream (Server-Sent Events) of incident, agent, queue, fleet (trucks'
availability, geofence crossings), dispatch (work orders), geofence-definition and campaign events.

Each connection gets its own transient bus consumer, so every desk sees every event as it is produced;
a comment line every 15 s keeps proxies from closing an idle stream. EventSource cannot set headers,
so the token may also come as ``?token=``.
"""

from __future__ import annotations

import json
import logging

from twisted.internet import task
from twisted.internet.defer import Deferred
from twisted.web.resource import Resource
from twisted.web.server import NOT_DONE_YET

from api.http import READ_ROLES, WRITE_ROLES, ApiError, bearer_token, dumps

log = logging.getLogger(__name__)
# Fences, fleet, dispatch and incidents are readable by every READ_ROLES role through the REST API too;
# campaigns only by admin and supervisor, so only their streams carry campaign events.
TOPICS = ("incident.#", "agent.#", "queue.#", "fleet.#", "dispatch.#", "fences.#")
CAMPAIGN_TOPIC = "campaign.#"


class EventStream(Resource):
    isLeaf = True

    def __init__(self, bus, users, clock, heartbeat: float = 15.0) -> None:
        super().__init__()
        self.bus = bus
        self.users = users
        self.clock = clock
        self.heartbeat = heartbeat

    def render_GET(self, request):  # noqa: N802 - twisted.web's name
        Deferred.fromCoroutine(self._stream(request))
        return NOT_DONE_YET

    async def _stream(self, request) -> None:
        closed = request.notifyFinish()  # asked first: a client gone during an await below is seen
        gone = [False]
        closed.addBoth(lambda _: gone.__setitem__(0, True))
        token = bearer_token(request) or (request.args.get(b"token") or [b""])[0].decode("latin-1") or None
        user = await self.users.user_for_token(token) if token else None
        if gone[0]:
            return
        error = None
        if user is None:
            error = ApiError(401, "unauthenticated", "missing or invalid token")
        elif user.role not in READ_ROLES:
            error = ApiError(403, "forbidden", f"role {user.role} may not read the event stream")
        if error is not None:
            request.setResponseCode(error.status)
            request.setHeader(b"Content-Type", b"application/json; charset=utf-8")
            request.write(dumps(error.body()))
            request.finish()
            return
        request.setHeader(b"Content-Type", b"text/event-stream; charset=utf-8")
        request.setHeader(b"Cache-Control", b"no-store")
        request.setHeader(b"X-Accel-Buffering", b"no")
        request.write(b": connected\n\n")

        def send(routing_key: str, message: dict) -> None:
            if not gone[0]:
                request.write(f"event: {routing_key}\ndata: {json.dumps(message, ensure_ascii=False)}\n\n".encode())

        consumers = []
        beat = task.LoopingCall(lambda: gone[0] or request.write(b": keep-alive\n\n"))
        beat.clock = self.clock
        try:
            for topic in TOPICS + ((CAMPAIGN_TOPIC,) if user.role in WRITE_ROLES else ()):
                consumers.append(await self.bus.start_consuming(send, topic))
                if gone[0]:
                    return
            beat.start(self.heartbeat, now=False)
            await closed
        except Exception as e:  # the bus refused: end the stream; the client reconnects
            log.warning("event stream ended: %s", e)
            if not gone[0]:
                request.finish()
        finally:
            if beat.running:
                beat.stop()
            for consumer in consumers:
                await consumer.stop_consuming()
