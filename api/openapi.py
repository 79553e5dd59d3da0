"""The OpenAPI 3.1 description served at ``/openapi.json``: every route, its roles and shapes."""

from __future__ import annotations

from typing import Any

_ERROR = {"$ref": "#/components/schemas/Error"}


def _op(summary: str, roles: str | None, ok: dict[str, Any] | None = None, params=(), body=None,
        status: str = "200") -> dict[str, Any]:
    op: dict[str, Any] = {
        "summary": summary,
        "responses": {
            status: {"description": "OK", "content": {"application/json": {"schema": ok or {"type": "object"}}}},
            "400": {"description": "Bad request", "content": {"application/json": {"schema": _ERROR}}},
        },
    }
    if roles:
        op["description"] = f"Roles: {roles}."
        op["security"] = [{"bearer": []}]
        op["responses"]["401"] = {"description": "Missing or invalid token",
                                  "content": {"application/json": {"schema": _ERROR}}}
        op["responses"]["403"] = {"description": "Role not allowed",
                                  "content": {"application/json": {"schema": _ERROR}}}
    if params:
        op["parameters"] = list(params)
    if body:
        op["requestBody"] = {"required": True, "content": {"application/json": {"schema": body}}}
    return op


def _param(name: str, where: str = "query", schema: dict | None = None, required: bool = False) -> dict:
    return {"name": name, "in": where, "required": required or where == "path",
            "schema": schema or {"type": "string"}}


PLATE = _param("plate", "path")
READ = "admin, supervisor, agent, dispatcher"
WRITE = "admin, supervisor"

_VEHICLE_IN = {"type": "object", "required": ["plate", "terminal_id", "protocol", "owner_name",
                                              "owner_phone", "tier"],
               "properties": {k: {"type": "string"} for k in (
                   "plate", "terminal_id", "protocol", "owner_name", "owner_phone", "tier", "pin", "vin",
                   "backup_phone", "kind", "model", "color", "email", "skills")}}

SPEC: dict[str, Any] = {
    "openapi": "3.1.0",
    "info": {"title": "Watchline API", "version": "1"},
    "components": {
        "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
        "schemas": {
            "Error": {"type": "object", "required": ["error"], "properties": {"error": {
                "type": "object", "required": ["code", "message"],
                "properties": {"code": {"type": "string"}, "message": {"type": "string"},
                               "field": {"type": "string"}}}}},
            "Vehicle": {"type": "object", "properties": {
                "plate": {"type": "string"}, "vin": {"type": ["string", "null"]},
                "kind": {"enum": ["customer", "rescue"]}, "tier": {"enum": ["platinum", "gold", "normal"]},
                "model": {"type": ["string", "null"]}, "color": {"type": ["string", "null"]},
                "skills": {"type": "array", "items": {"type": "string"}},
                "owner": {"type": ["object", "null"]}, "terminals": {"type": "array"},
                "has_pin": {"type": "boolean"}, "last_position": {"type": ["object", "null"]}}},
        },
    },
    "paths": {
        "/healthz": {"get": _op("Liveness and database reachability", None)},
        "/openapi.json": {"get": _op("This description", None)},
        "/api/v1/vehicles": {
            "get": _op("Search by plate, owner name or phone (prefix and partial)", READ,
                       params=[_param("q", required=True), _param("limit", schema={"type": "integer"})]),
            "post": _op("Create a vehicle (fleet columns)", WRITE, {"$ref": "#/components/schemas/Vehicle"},
                        body=_VEHICLE_IN, status="201"),
        },
        "/api/v1/vehicles/{plate}/positions": {
            "get": _op("Position history, newest first: time (ISO-8601 UTC), lat/lon (WGS-84), speed_kmh, "
                       "course, altitude, valid, alarms (canonical names)", READ,
                       params=[PLATE, _param("limit", schema={"type": "integer", "minimum": 1, "maximum": 10000})]),
        },
        "/api/v1/vehicles/{plate}": {
            "get": _op("One vehicle with owner, contacts, terminals, last position", READ,
                       {"$ref": "#/components/schemas/Vehicle"}, params=[PLATE]),
            "put": _op("Update a vehicle (an empty pin keeps the stored one)", WRITE,
                       {"$ref": "#/components/schemas/Vehicle"}, params=[PLATE], body=_VEHICLE_IN),
        },
    },
}


def add_paths(paths: dict[str, Any]) -> None:
    """Resources added by later slices register their paths here at import time."""
    SPEC["paths"].update(paths)
