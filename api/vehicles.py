"""``/api/v1/vehicles``: look vehicles up as an agent would, and create or update them."""

from __future__ import annotations

from typing import Any

from klein import Klein

from api.http import (
    READ_ROLES,
    WRITE_ROLES,
    ApiError,
    int_arg,
    json_response,
    query_arg,
    read_json,
    requires,
    routing_error,
)
from crm.fleet import COLUMNS, FleetRow, normalise_plate, validate_record
from crm.vehicles import FleetImportError, Vehicle


def vehicle_json(v: Vehicle, position: dict[str, Any] | None = None) -> dict[str, Any]:
    owner = None
    if v.owner is not None:
        owner = {
            "name": v.owner.name,
            "language": v.owner.language,
            "contacts": [{"kind": c.kind, "value": c.value, "label": c.label} for c in v.owner.contacts],
        }
    return {
        "plate": v.plate, "vin": v.vin, "kind": v.kind, "tier": v.tier, "model": v.model, "color": v.color,
        "skills": list(v.skills), "owner": owner,
        "terminals": [{"protocol": t.protocol, "terminal_id": t.terminal_id} for t in v.terminals],
        "has_pin": v.has_pin, "created_at": v.created_at, "updated_at": v.updated_at,
        "last_position": position,
    }


class VehiclesResource:
    app = Klein()

    def __init__(self, db, live, config) -> None:
        self.db = db
        self.users = db.users
        self.live = live
        self.region = config.notify.phone_region
        self.max_body = config.api.max_body_bytes

    @app.handle_errors
    def _errors(self, request, failure):
        return routing_error(request, failure)

    @app.route("/", methods=["GET"])
    @requires(*READ_ROLES)
    async def search(self, request, user):
        q = query_arg(request, "q", "") or ""
        limit = int_arg(request, "limit", 20, 1, 200)
        if not q.strip():
            raise ApiError(400, "bad_query", "q is required: part of a plate, an owner's name or a phone", field="q")
        found = await self.db.vehicles.search(q, limit)
        positions = await self.live.get_positions([v.plate for v in found]) if found else {}
        return json_response(request, {"vehicles": [vehicle_json(v, positions.get(v.plate)) for v in found]})

    @app.route("/<plate>", methods=["GET"])
    @requires(*READ_ROLES)
    async def get(self, request, plate: str, user):
        v = await self.db.vehicles.get_by_plate(normalise_plate(plate))
        if v is None:
            raise ApiError(404, "not_found", f"no vehicle with plate {plate}")
        return json_response(request, vehicle_json(v, await self.live.get_position(v.plate)))

    @app.route("/<plate>/positions", methods=["GET"])
    @requires(*READ_ROLES)
    async def positions(self, request, plate: str, user):
        limit = int_arg(request, "limit", 100, 1, 10_000)
        found = await self.db.positions.latest(normalise_plate(plate), limit)
        if found is None:
            raise ApiError(404, "not_found", f"no vehicle with plate {plate}")
        return json_response(request, {"plate": normalise_plate(plate), "positions": [
            {"time": p.time, "lat": p.lat, "lon": p.lon, "speed_kmh": p.speed_kmh, "course": p.course,
             "altitude": p.altitude, "valid": p.valid, "alarms": list(p.alarms)} for p in found]})

    @app.route("/", methods=["POST"])
    @requires(*WRITE_ROLES)
    async def create(self, request, user):
        row = self._row(read_json(request, self.max_body))
        if await self.db.vehicles.get_by_plate(row.plate) is not None:
            raise ApiError(409, "conflict", f"vehicle {row.plate} exists; PUT /api/v1/vehicles/{row.plate} updates it")
        return await self._save(request, row, user, 201)

    @app.route("/<plate>", methods=["PUT"])
    @requires(*WRITE_ROLES)
    async def update(self, request, plate: str, user):
        body = read_json(request, self.max_body)
        if isinstance(body, dict):
            body.setdefault("plate", plate)
        row = self._row(body)
        if row.plate != normalise_plate(plate):
            raise ApiError(400, "bad_field", "plate in the body differs from the URL", field="plate")
        if await self.db.vehicles.get_by_plate(row.plate) is None:
            raise ApiError(404, "not_found", f"no vehicle with plate {plate}; POST /api/v1/vehicles creates it")
        return await self._save(request, row, user, 200)

    def _row(self, body: Any) -> FleetRow:
        if not isinstance(body, dict):
            raise ApiError(400, "bad_body", "body must be a JSON object")
        clean = {}
        for key, value in body.items():
            if key not in COLUMNS:
                raise ApiError(400, "bad_field", f"unknown field {key} (expected {', '.join(COLUMNS)})", field=key)
            if key == "skills" and isinstance(value, list) and all(isinstance(s, str) for s in value):
                value = ",".join(value)
            if isinstance(value, bool) or not isinstance(value, (str, int)):
                raise ApiError(400, "bad_field", f"{key} must be a string", field=key)
            clean[key] = str(value).strip()
        row, problems = validate_record(0, {c: clean.get(c, "") for c in COLUMNS}, self.region)
        if problems:
            field, message = problems[0]
            raise ApiError(400, "bad_field", message, field=field or None)
        return row

    async def _save(self, request, row: FleetRow, user, status: int):
        try:
            await self.db.vehicles.import_rows([row], actor=user.name)
        except FleetImportError as e:
            err = e.errors[0]
            raise ApiError(409 if err.field == "terminal_id" else 400, "bad_field", err.reason, field=err.field) from None
        v = await self.db.vehicles.get_by_plate(row.plate)
        return json_response(request, vehicle_json(v), status)
