"""``/api/v1/fences`` (geofences: list, create, read, replace, delete) and ``/api/v1/geo/convert``
(WGS-84 <-> GCJ-02 for maps used in China).

Fences are JSON ``{name, kind: circle|polygon|corridor, lat, lon, radius_m | points | path, width_m,
owner_id?}`` with WGS-84 ``[lat, lon]`` pairs; a bad field is a 400 naming it. Every write publishes
``fences.changed`` on the bus so the alarm workers reload at once (they also poll, so a lost message
only delays the reload by a few seconds).
"""

from __future__ import annotations

import logging

from klein import Klein

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
from crm.fences import FenceError, draft_from_json
from geo.gcj02 import gcj02_to_wgs84, in_gcj02_region, wgs84_to_gcj02

log = logging.getLogger(__name__)

EDIT_ROLES = ("admin", "supervisor", "dispatcher")
CHANGED = "fences.changed"  # alarms.geofences listens on it (the API may not import the domain's constant)
DATUMS = ("wgs84", "gcj02")


class FencesResource:
    app = Klein()

    def __init__(self, db, bus, config) -> None:
        self.db = db
        self.users = db.users
        self.bus = bus
        self.max_body = config.api.max_body_bytes

    @app.handle_errors
    def _errors(self, request, failure):
        return routing_error(request, failure)

    @app.route("/", methods=["GET"])
    @requires(*READ_ROLES)
    async def search(self, request, user):
        owner = query_arg(request, "owner_id")
        if owner is not None:
            owner = int_arg(request, "owner_id", 0, 1, 2**31 - 1)
        found = await self.db.fences.search(owner_id=owner, limit=int_arg(request, "limit", 100, 1, 1000),
                                            offset=int_arg(request, "offset", 0, 0, 10_000_000))
        return json_response(request, {"fences": [f.to_json() for f in found]})

    @app.route("/", methods=["POST"])
    @requires(*EDIT_ROLES)
    async def create(self, request, user):
        draft = self._draft(request)
        try:
            fence = await self.db.fences.create(draft, user.name)
        except FenceError as e:  # an owner that does not exist
            raise ApiError(400, "bad_field", str(e), field=e.field) from None
        await self._changed(fence.id, "created")
        request.setHeader(b"Location", f"/api/v1/fences/{fence.id}".encode())
        return json_response(request, fence.to_json(), 201)

    @app.route("/<int:fence_id>", methods=["GET"])
    @requires(*READ_ROLES)
    async def get(self, request, fence_id: int, user):
        fence = await self.db.fences.get(fence_id)
        if fence is None:
            raise ApiError(404, "not_found", f"no fence {fence_id}")
        return json_response(request, fence.to_json())

    @app.route("/<int:fence_id>", methods=["PUT"])
    @requires(*EDIT_ROLES)
    async def replace(self, request, fence_id: int, user):
        draft = self._draft(request)
        try:
            fence = await self.db.fences.update(fence_id, draft, user.name)
        except FenceError as e:
            raise ApiError(400, "bad_field", str(e), field=e.field) from None
        except LookupError:
            raise ApiError(404, "not_found", f"no fence {fence_id}") from None
        await self._changed(fence_id, "updated")
        return json_response(request, fence.to_json())

    @app.route("/<int:fence_id>", methods=["DELETE"])
    @requires(*EDIT_ROLES)
    async def delete(self, request, fence_id: int, user):
        try:
            await self.db.fences.delete(fence_id, user.name)
        except LookupError:
            raise ApiError(404, "not_found", f"no fence {fence_id}") from None
        await self._changed(fence_id, "deleted")
        return json_response(request, {"id": fence_id, "deleted": True})

    def _draft(self, request):
        body = read_json(request, self.max_body)
        try:
            return draft_from_json(body)
        except FenceError as e:
            raise ApiError(400, "bad_field" if e.field else "bad_body", str(e), field=e.field) from None

    async def _changed(self, fence_id: int, action: str) -> None:
        if self.bus is None:
            return
        try:
            await self.bus.produce(CHANGED, {"id": fence_id, "action": action})
        except Exception as e:  # the write is committed; workers find it at their next version poll
            log.warning("fence %s %s: fences.changed not published: %s", fence_id, action, e)


class GeoResource:
    """``/api/v1/geo/convert?lat=&lon=&from=wgs84|gcj02&to=gcj02|wgs84``."""

    app = Klein()

    def __init__(self, db) -> None:
        self.users = db.users

    @app.handle_errors
    def _errors(self, request, failure):
        return routing_error(request, failure)

    @app.route("/convert", methods=["GET"])
    @requires(*READ_ROLES)
    async def convert(self, request, user):
        lat, lon = _coordinate(request, "lat"), _coordinate(request, "lon")
        source, target = _datum(request, "from", "wgs84"), _datum(request, "to", "gcj02")
        if source == target or not in_gcj02_region(lat, lon):  # equal there: the input back, to the last digit
            out_lat, out_lon = lat, lon
        else:
            convert = wgs84_to_gcj02 if source == "wgs84" else gcj02_to_wgs84
            try:
                out_lat, out_lon = convert(lat, lon)
            except ValueError as e:
                raise ApiError(400, "bad_query", str(e), field="lat" if "latitude" in str(e) else "lon") from None
        return json_response(request, {"lat": out_lat, "lon": out_lon, "datum": target,
                                       "from": {"lat": lat, "lon": lon, "datum": source}})


def _coordinate(request, name: str) -> float:
    text = query_arg(request, name)
    if text is None:
        raise ApiError(400, "bad_query", f"{name} is required", field=name)
    try:
        value = float(text)
    except ValueError:
        raise ApiError(400, "bad_query", f"{name} must be a number of degrees", field=name) from None
    limit = 90.0 if name == "lat" else 180.0
    if not -limit <= value <= limit:  # also refuses nan and inf
        raise ApiError(400, "bad_query", f"{name} must be between -{limit:g} and {limit:g}", field=name)
    return value


def _datum(request, name: str, default: str) -> str:
    value = (query_arg(request, name) or default).lower()
    if value not in DATUMS:
        raise ApiError(400, "bad_query", f"{name} must be wgs84 or gcj02", field=name)
    return value


_FENCE_SCHEMA = {
    "type": "object", "required": ["name", "kind"],
    "properties": {
        "name": {"type": "string", "maxLength": 100}, "kind": {"enum": ["circle", "polygon", "corridor"]},
        "lat": {"type": "number"}, "lon": {"type": "number"}, "radius_m": {"type": "number"},
        "points": {"type": "array", "items": {"type": "array", "items": {"type": "number"}}},
        "path": {"type": "array", "items": {"type": "array", "items": {"type": "number"}}},
        "width_m": {"type": "number"}, "owner_id": {"type": ["integer", "null"]}},
}


def _op(summary: str, roles: tuple[str, ...], ok: str = "200", body: bool = False) -> dict:
    op = {"summary": summary, "description": f"Roles: {', '.join(roles)}.", "security": [{"bearer": []}],
          "responses": {ok: {"description": "OK"}, "400": {"description": "bad input; error.field names it"},
                        "404": {"description": "no such fence"}}}
    if body:
        op["requestBody"] = {"required": True, "content": {"application/json": {"schema": _FENCE_SCHEMA}}}
    return op


OPENAPI_PATHS = {
    "/api/v1/fences": {
        "get": _op("Geofences in id order; filters owner_id; paging limit/offset", READ_ROLES),
        "post": _op("Create a geofence: circle (lat, lon, radius_m), polygon (points: [[lat, lon], ...]) or "
                    "route corridor (path: [[lat, lon], ...], width_m); owner_id scopes it to that owner's "
                    "vehicles (none: every vehicle). WGS-84.", EDIT_ROLES, "201", body=True),
    },
    "/api/v1/fences/{id}": {
        "get": _op("One geofence", READ_ROLES),
        "put": _op("Replace a geofence's definition", EDIT_ROLES, body=True),
        "delete": _op("Delete a geofence (vehicles inside it get no exit alarm)", EDIT_ROLES),
    },
    "/api/v1/geo/convert": {"get": _op(
        "Convert a position between WGS-84 and GCJ-02 (lat, lon, from=wgs84|gcj02, to=gcj02|wgs84); outside "
        "the GCJ-02 region the two are equal", READ_ROLES)},
}
