"""``/api/v1/dispatch``: the nearest free rescue trucks, the fleet's state and work orders."""

from __future__ import annotations

import math
from typing import Any

from klein import Klein

from alarms.dispatch import NoTruckError, SiteMissingError
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
from crm.fleet import normalise_plate, parse_phone
from crm.rescue import AVAILABILITIES, MANUAL_AVAILABILITIES, TruckBusyError
from crm.workorders import KINDS, STATUSES, WorkOrderStateError
from geo.geodesy import check_position

ACT_ROLES = ("admin", "supervisor", "dispatcher")
ACTIONS = {"en_route": "en_route", "on_site": "on_site", "complete": "complete", "cancel": "cancel"}
_ORDER_FIELDS = ("incident_id", "site", "kind", "contact_phone", "address", "truck", "capability", "note")


def _number(value: Any, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise ApiError(400, "bad_field", f"{name} must be a number", field=name)
    try:
        number = float(value)
    except ValueError:
        raise ApiError(400, "bad_query", f"{name} must be a number", field=name) from None
    if not math.isfinite(number):
        raise ApiError(400, "bad_query", f"{name} must be a finite number", field=name)
    return number


def _position(lat: Any, lon: Any, field: str | None = None) -> tuple[float, float]:
    lat, lon = _number(lat, field or "lat"), _number(lon, field or "lon")
    try:
        check_position(lat, lon)
        return lat, lon
    except ValueError as e:
        name = field or ("lat" if "latitude" in str(e) else "lon")
        raise ApiError(400, "bad_field", str(e), field=name) from None


def _text(body: dict, name: str, limit: int) -> str | None:
    value = body.get(name)
    if value is None:
        return None
    if not isinstance(value, str) or len(value) > limit:
        raise ApiError(400, "bad_field", f"{name} must be a string of at most {limit} characters", field=name)
    return value.strip() or None


class DispatchResource:
    app = Klein()

    def __init__(self, db, fleet, desk, config) -> None:
        self.db = db
        self.users = db.users
        self.fleet = fleet
        self.desk = desk
        self.region = config.notify.phone_region
        self.max_body = config.api.max_body_bytes

    @app.handle_errors
    def _errors(self, request, failure):
        return routing_error(request, failure)

    # -- trucks -------------------------------------------------------------------------------
    @app.route("/nearest", methods=["GET"])
    @requires(*READ_ROLES)
    async def nearest(self, request, user):
        for name in ("lat", "lon"):
            if query_arg(request, name) is None:
                raise ApiError(400, "bad_query", f"{name} is required", field=name)
        lat, lon = _position(query_arg(request, "lat"), query_arg(request, "lon"))
        k = int_arg(request, "k", 5, 1, 100)
        max_km = query_arg(request, "max_km")
        if max_km is not None:
            max_km = _number(max_km, "max_km")
            if max_km <= 0:
                raise ApiError(400, "bad_query", "max_km must be positive", field="max_km")
        include_stale = query_arg(request, "include_stale", "false")
        if include_stale not in ("true", "false"):
            raise ApiError(400, "bad_query", "include_stale must be true or false", field="include_stale")
        found = self.fleet.nearest(lat, lon, k, max_km=max_km, capability=query_arg(request, "capability") or None,
                                   include_stale=include_stale == "true")
        return json_response(request, {"items": [{
            "plate": t.truck_id, "lat": t.lat, "lon": t.lon, "distance_m": t.distance_m, "eta_s": t.eta_s,
            "position_age_s": t.age_s, "stale": t.stale, "availability": str(t.availability),
            "skills": sorted(t.capabilities)} for t in found]})

    @app.route("/fleet", methods=["GET"])
    @requires(*READ_ROLES)
    async def fleet_state(self, request, user):
        availability = query_arg(request, "availability")
        if availability is not None and availability not in AVAILABILITIES:
            raise ApiError(400, "bad_query", f"availability must be one of {', '.join(AVAILABILITIES)}",
                           field="availability")
        trucks = [s.to_json() for s in await self.fleet.state()]
        if availability is not None:
            trucks = [t for t in trucks if t["availability"] == availability]
        return json_response(request, {"trucks": trucks})

    @app.route("/fleet/<plate>", methods=["PUT"])
    @requires(*ACT_ROLES)
    async def set_availability(self, request, plate: str, user):
        body = self._body(request, ("availability",))
        availability = body.get("availability")
        if availability not in MANUAL_AVAILABILITIES:
            raise ApiError(400, "bad_field", f"availability must be one of {', '.join(MANUAL_AVAILABILITIES)} "
                           "(the others follow a work order)", field="availability")
        try:
            await self.fleet.set_availability(normalise_plate(plate), availability, user.name)
        except LookupError as e:
            raise ApiError(404, "not_found", str(e).strip("'")) from None
        except TruckBusyError as e:
            raise ApiError(409, "conflict", str(e)) from None
        state = next(s for s in await self.fleet.state() if s.truck.plate == normalise_plate(plate))
        return json_response(request, state.to_json())

    # -- work orders --------------------------------------------------------------------------
    @app.route("/work_orders", methods=["POST"])
    @requires(*ACT_ROLES)
    async def create(self, request, user):
        body = self._body(request, _ORDER_FIELDS)
        incident_id = body.get("incident_id")
        if incident_id is not None and (isinstance(incident_id, bool) or not isinstance(incident_id, int)):
            raise ApiError(400, "bad_field", "incident_id must be an integer", field="incident_id")
        site = body.get("site")
        if site is not None:
            if not isinstance(site, dict) or "lat" not in site or "lon" not in site:
                raise ApiError(400, "bad_field", "site must be {lat, lon}", field="site")
            site = _position(site["lat"], site["lon"], "site")
        elif incident_id is None:
            raise ApiError(400, "bad_field", "give incident_id, or site {lat, lon} for a standalone call", field="site")
        kind = body.get("kind")
        if kind is not None and kind not in KINDS:
            raise ApiError(400, "bad_field", f"kind must be one of {', '.join(KINDS)}", field="kind")
        if kind is None and incident_id is None:
            raise ApiError(400, "bad_field", f"kind is required: one of {', '.join(KINDS)}", field="kind")
        phone = _text(body, "contact_phone", 32)
        if phone is not None:
            parsed = parse_phone(phone, self.region)
            if parsed is None:
                raise ApiError(400, "bad_field", f"contact_phone {phone!r} is not a valid phone number",
                               field="contact_phone")
            phone = parsed.e164
        elif incident_id is None:
            raise ApiError(400, "bad_field", "contact_phone is required for a standalone call", field="contact_phone")
        truck = _text(body, "truck", 32)
        try:
            order = await self.desk.create(
                user.name, incident_id=incident_id, site=site, kind=kind, contact_phone=phone,
                address=_text(body, "address", 500), truck_plate=normalise_plate(truck) if truck else None,
                capability=_text(body, "capability", 64), note=_text(body, "note", 2000))
        except LookupError as e:
            raise ApiError(404, "not_found", str(e).strip("'")) from None
        except SiteMissingError as e:
            raise ApiError(400, "bad_field", str(e), field="site") from None
        except (NoTruckError, TruckBusyError) as e:
            raise ApiError(409, "conflict", str(e)) from None
        return json_response(request, order.to_json(), 201)

    @app.route("/work_orders", methods=["GET"])
    @requires(*READ_ROLES)
    async def search(self, request, user):
        status = query_arg(request, "status")
        statuses = None
        if status is not None:
            statuses = tuple(s for s in status.split(",") if s)
            if not statuses or any(s not in STATUSES for s in statuses):
                raise ApiError(400, "bad_query", f"status must be one or more of {', '.join(STATUSES)}",
                               field="status")
        incident_id = query_arg(request, "incident_id")
        if incident_id is not None and not incident_id.isdigit():
            raise ApiError(400, "bad_query", "incident_id must be an integer", field="incident_id")
        truck = query_arg(request, "truck")
        found = await self.db.work_orders.search(
            statuses=statuses, truck_plate=normalise_plate(truck) if truck else None,
            incident_id=int(incident_id) if incident_id is not None else None,
            limit=int_arg(request, "limit", 100, 1, 1000), offset=int_arg(request, "offset", 0, 0, 10_000_000))
        return json_response(request, {"work_orders": [o.to_json() for o in found]})

    @app.route("/work_orders/<int:order_id>", methods=["GET"])
    @requires(*READ_ROLES)
    async def get(self, request, order_id: int, user):
        order = await self.db.work_orders.get(order_id)
        if order is None:
            raise ApiError(404, "not_found", f"no work order {order_id}")
        return json_response(request, order.to_json())

    @app.route("/work_orders/<int:order_id>/<action>", methods=["POST"])
    @requires(*ACT_ROLES)
    async def act(self, request, order_id: int, action: str, user):
        if action not in ACTIONS:
            raise ApiError(404, "not_found", f"no action {action} (expected {', '.join(ACTIONS)})")
        note = None
        if action in ("complete", "cancel") and (request.getHeader(b"content-length") or b"0") != b"0":
            note = _text(self._body(request, ("note",)), "note", 2000)
        try:
            order = await self.desk.transition(order_id, ACTIONS[action], user.name, note)
        except LookupError as e:
            raise ApiError(404, "not_found", str(e).strip("'")) from None
        except WorkOrderStateError as e:
            raise ApiError(409, "conflict", str(e)) from None
        return json_response(request, order.to_json())

    def _body(self, request, fields: tuple[str, ...]) -> dict:
        body = read_json(request, self.max_body)
        if not isinstance(body, dict):
            raise ApiError(400, "bad_body", "body must be a JSON object")
        for key in body:
            if key not in fields:
                raise ApiError(400, "bad_field", f"unknown field {key} (expected {', '.join(fields)})", field=key)
        return body


_BEARER = [{"bearer": []}]
OPENAPI_PATHS = {
    "/api/v1/dispatch/nearest": {"get": {
        "summary": "The k nearest available rescue trucks by exact geodesic distance: lat, lon (required), k "
                   "(1-100, default 5), max_km, capability, include_stale (positions older than geo.max_position_age "
                   "are left out, or flagged stale). Items: plate, lat, lon, distance_m, eta_s, position_age_s, stale, "
                   "availability, skills", "security": _BEARER,
        "responses": {"200": {"description": "{items: [...]}"}, "400": {"description": "bad query (error.field)"}}}},
    "/api/v1/dispatch/fleet": {"get": {
        "summary": "Every rescue truck: availability, work order, last position with its age; filter availability",
        "security": _BEARER, "responses": {"200": {"description": "{trucks: [...]}"}}}},
    "/api/v1/dispatch/fleet/{plate}": {"put": {
        "summary": "A dispatcher sets {availability}: available, returning or off_duty (not while serving an order)",
        "security": _BEARER, "responses": {"200": {"description": "the truck"}, "404": {"description": "no such truck"},
                                         "409": {"description": "the truck serves a work order"}}}},
    "/api/v1/dispatch/work_orders": {
        "post": {"summary": "Dispatch a truck: {incident_id} or {site: {lat, lon}, kind, contact_phone, address}; "
                            "optional truck (plate; else the nearest available, with capability), kind (tow, battery, "
                            "tyre, fuel, accident), note", "security": _BEARER,
                 "responses": {"201": {"description": "the work order"}, "404": {"description": "no such incident"},
                               "409": {"description": "no truck available"}}},
        "get": {"summary": "Work orders, newest first; filters status (comma-separated), truck, incident_id; "
                           "limit/offset", "security": _BEARER, "responses": {"200": {"description": "{work_orders}"}}}},
    "/api/v1/dispatch/work_orders/{id}": {"get": {
        "summary": "One work order", "security": _BEARER, "responses": {"200": {"description": "the work order"}}}},
    **{f"/api/v1/dispatch/work_orders/{{id}}/{action}": {"post": {
        "summary": summary, "security": _BEARER,
        "responses": {"200": {"description": "the work order"}, "409": {"description": "not allowed in this status"}}}}
       for action, summary in (("en_route", "The crew set off"), ("on_site", "The truck is at the site (also set "
                                                                          "by itself within geo.on_site_radius_m)"),
                               ("complete", "The job is done ({note} optional); the truck is available again"),
                               ("cancel", "Cancel before completion ({note} optional); the truck is available again"))},
}
