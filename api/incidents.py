"""``/api/v1/incidents``: the agents' queue and every action on an incident."""

from __future__ import annotations

from datetime import datetime

from klein import Klein

from alarms.incident import OUTCOMES, STATES, IncidentStateError
from api.http import (
    READ_ROLES,
    ApiError,
    int_arg,
    json_response,
    query_arg,
    read_json,
    requires,
    routing_error,
)
from api.vehicles import vehicle_json

ACT_ROLES = ("admin", "supervisor", "agent")


def _time_arg(request, name: str) -> datetime | None:
    text = query_arg(request, name)
    if text is None:
        return None
    try:
        t = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise ApiError(400, "bad_query", f"{name} must be an ISO-8601 time", field=name) from None
    if t.tzinfo is None:
        raise ApiError(400, "bad_query", f"{name} needs a time zone", field=name)
    return t


class IncidentsResource:
    app = Klein()

    def __init__(self, db, desk, config, live=None) -> None:
        self.db = db
        self.live = live
        self.users = db.users
        self.desk = desk
        self.max_body = config.api.max_body_bytes

    @app.handle_errors
    def _errors(self, request, failure):
        return routing_error(request, failure)

    @app.route("/", methods=["GET"])
    @requires(*READ_ROLES)
    async def search(self, request, user):
        state = query_arg(request, "state")
        if state is not None and state not in STATES:
            raise ApiError(400, "bad_query", f"state must be one of {', '.join(STATES)}", field="state")
        severity = query_arg(request, "severity")
        if severity is not None and severity not in ("emergency", "routine"):
            raise ApiError(400, "bad_query", "severity must be emergency or routine", field="severity")
        found = await self.db.incidents.search(
            state=state, severity=severity, plate=query_arg(request, "plate"), since=_time_arg(request, "since"),
            until=_time_arg(request, "until"), limit=int_arg(request, "limit", 100, 1, 1000),
            offset=int_arg(request, "offset", 0, 0, 10_000_000), with_timelines=True)
        return json_response(request, {"incidents": [i.to_json() for i in found]})  # design.md: with timeline

    @app.route("/<int:incident_id>", methods=["GET"])
    @requires(*READ_ROLES)
    async def get(self, request, incident_id: int, user):
        incident = await self.db.incidents.get(incident_id)
        if incident is None:
            raise ApiError(404, "not_found", f"no incident {incident_id}")
        body = incident.to_json()
        vehicle = await self.db.vehicles.get_by_plate(incident.plate)  # the screen pop: owner and contacts
        position = await self.live.get_position(incident.plate) if self.live is not None and vehicle else None
        body["vehicle"] = vehicle_json(vehicle, position) if vehicle is not None else None
        return json_response(request, body)

    @app.route("/<int:incident_id>/acknowledge", methods=["POST"])
    @requires(*ACT_ROLES)
    async def acknowledge(self, request, incident_id: int, user):
        return await self._act(request, self.desk.acknowledge(incident_id, user.name))

    @app.route("/<int:incident_id>/resolve", methods=["POST"])
    @requires(*ACT_ROLES)
    async def resolve(self, request, incident_id: int, user):
        body = self._body(request)
        outcome = body.get("outcome")
        if outcome not in OUTCOMES:
            raise ApiError(400, "bad_field", f"outcome must be one of {', '.join(OUTCOMES)}", field="outcome")
        note = body.get("note")
        if note is not None and not isinstance(note, str):
            raise ApiError(400, "bad_field", "note must be a string", field="note")
        if outcome == "other" and not (note or "").strip():
            raise ApiError(400, "bad_field", "a note is required when the outcome is other", field="note")
        return await self._act(request, self.desk.resolve(incident_id, user.name, outcome, note))

    @app.route("/<int:incident_id>/comment", methods=["POST"])
    @requires(*ACT_ROLES)
    async def comment(self, request, incident_id: int, user):
        text = self._body(request).get("text")
        if not isinstance(text, str) or not text.strip() or len(text) > 4000:
            raise ApiError(400, "bad_field", "text must be 1 to 4000 characters", field="text")
        return await self._act(request, self.desk.comment(incident_id, user.name, text.strip()))

    @app.route("/<int:incident_id>/reassign", methods=["POST"])
    @requires(*ACT_ROLES)
    async def reassign(self, request, incident_id: int, user):
        to = self._body(request).get("to")
        if not isinstance(to, str) or not to.strip() or len(to) > 100:
            raise ApiError(400, "bad_field", "to must name an agent", field="to")
        return await self._act(request, self.desk.reassign(incident_id, user.name, to.strip()))

    def _body(self, request) -> dict:
        body = read_json(request, self.max_body)
        if not isinstance(body, dict):
            raise ApiError(400, "bad_body", "body must be a JSON object")
        return body

    async def _act(self, request, action):
        try:
            incident = await action
        except LookupError as e:
            raise ApiError(404, "not_found", str(e).strip("'")) from None
        except IncidentStateError as e:
            raise ApiError(409, "conflict", str(e)) from None
        return json_response(request, (await self.db.incidents.get(incident.id) or incident).to_json())


OPENAPI_PATHS = {
    "/api/v1/incidents": {"get": {
        "summary": "Incidents with their timelines, emergencies first, then priority, tier and age; filters "
                   "state, severity, plate, since, until; paging limit/offset", "security": [{"bearer": []}],
        "responses": {"200": {"description": "{incidents: [...]}"}}}},
    "/api/v1/incidents/{id}": {"get": {"summary": "One incident with its timeline and its vehicle (owner, "
                                                      "contacts, last position)", "security": [{"bearer": []}],
                                       "responses": {"200": {"description": "incident"}}}},
    **{f"/api/v1/incidents/{{id}}/{action}": {"post": {
        "summary": summary, "security": [{"bearer": []}],
        "responses": {"200": {"description": "the incident"}, "409": {"description": "not allowed in this state"}}}}
       for action, summary in (("acknowledge", "An agent takes the incident"),
                               ("resolve", "Resolve with {outcome, note} (note required for other)"),
                               ("comment", "Add {text} to the timeline"),
                               ("reassign", "Hand over to {to}"))},
}
