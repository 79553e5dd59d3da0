"""``db.fences``: geofences — circle, polygon and route corridor — with a name and an owner scope.

Owns the stored form of a fence and what makes one acceptable. ``FenceDraft`` is a fence before it has
an id: building one checks every field (a ``FenceError`` names the bad one) and compiles the shape with
the geo core, so no fence the index would refuse is ever stored. ``draft_from_json`` reads the API's
flat JSON (``kind, lat, lon, radius_m | points | path, width_m``) into a draft.

Deleting is soft (``active`` cleared) and every write bumps the row's ``revision``: ``version()`` — row
count, sum of revisions, newest update — therefore moves with every committed write, in whatever order
concurrent transactions commit, and running processes poll it to reload only when something changed.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, NamedTuple

import sqlalchemy as sa

from crm.audit import AuditStore
from crm.schema import fences, owners, vehicles
from geo.fence_shapes import (
    MAX_FENCE_RADIUS_M,
    CircleFence,
    CorridorFence,
    Fence,
    PolygonFence,
    compile_fence,
)
from geo.geodesy import check_position

KINDS = ("circle", "polygon", "corridor")
GEOMETRY_FIELDS = {"circle": ("lat", "lon", "radius_m"), "polygon": ("points",), "corridor": ("path", "width_m")}
MAX_NAME = 100
MAX_POINTS = 10_000
MAX_WIDTH_M = 100_000.0
_READ_ONLY = frozenset({"id", "revision", "created_at", "updated_at"})  # a GET body may be PUT back as is
_JSON_FIELDS = frozenset({"name", "kind", "owner_id"}) | {f for fs in GEOMETRY_FIELDS.values() for f in fs}


class FenceError(ValueError):
    """A fence field is missing or wrong; ``field`` names it (for the API's 400)."""

    def __init__(self, field: str | None, message: str) -> None:
        super().__init__(message)
        self.field = field


def _number(value: Any, field: str) -> float:
    if not isinstance(value, bool) and isinstance(value, int | float):
        try:
            number = float(value)
        except OverflowError:  # an integer beyond any float
            number = math.inf
        if math.isfinite(number):
            return number
    raise FenceError(field, f"{field} must be a finite number")


def _position(value: Any, field: str) -> list[float]:
    if not isinstance(value, list | tuple) or len(value) != 2:
        raise FenceError(field, f"{field} must be a [lat, lon] pair of numbers")
    lat, lon = _number(value[0], field), _number(value[1], field)
    try:
        check_position(lat, lon)
    except ValueError as e:
        raise FenceError(field, f"{field}: {e}") from None
    return [lat, lon]


def _points(value: Any, field: str, least: int) -> list[list[float]]:
    if not isinstance(value, list | tuple) or not least <= len(value) <= MAX_POINTS:
        raise FenceError(field, f"{field} must be a list of {least} to {MAX_POINTS} [lat, lon] pairs")
    return [_position(point, f"{field}[{i}]") for i, point in enumerate(value)]


def _length(value: Any, field: str, most: float) -> float:
    metres = _number(value, field)
    if not 0 < metres <= most:
        raise FenceError(field, f"{field} must be more than 0 and at most {most:g} metres, got {value!r}")
    return metres


def _geometry(kind: str, geometry: Mapping[str, Any]) -> dict[str, Any]:
    """The geometry of ``kind`` checked field by field, in the normal form stored in the database."""
    if not isinstance(geometry, Mapping):
        raise FenceError("geometry", "geometry must be an object")
    missing = [f for f in GEOMETRY_FIELDS[kind] if geometry.get(f) is None]
    if missing:
        raise FenceError(missing[0], f"{missing[0]} is required for a {kind} fence")
    if kind == "circle":
        lat, lon = _number(geometry["lat"], "lat"), _number(geometry["lon"], "lon")
        try:
            check_position(lat, lon)
        except ValueError as e:
            raise FenceError("lat" if "latitude" in str(e) else "lon", str(e)) from None
        return {"lat": lat, "lon": lon, "radius_m": _length(geometry["radius_m"], "radius_m", MAX_FENCE_RADIUS_M)}
    if kind == "polygon":
        return {"points": _points(geometry["points"], "points", 3)}
    return {"path": _points(geometry["path"], "path", 2), "width_m": _length(geometry["width_m"], "width_m",
                                                                             MAX_WIDTH_M)}


def fence_of(kind: str, fence_id: int, name: str, owner_id: int | None, geometry: Mapping[str, Any]) -> Fence:
    """The geo core's fence for a stored (or drafted) geometry; scope = the owner id."""
    if kind == "circle":
        return CircleFence(fence_id, name, owner_id, geometry["lat"], geometry["lon"], geometry["radius_m"])
    if kind == "polygon":
        return PolygonFence(fence_id, name, owner_id, tuple(tuple(p) for p in geometry["points"]))
    if kind == "corridor":
        return CorridorFence(fence_id, name, owner_id, tuple(tuple(p) for p in geometry["path"]),
                             geometry["width_m"])
    raise ValueError(f"fence {fence_id}: unknown kind {kind!r}")


@dataclass(frozen=True)
class FenceDraft:
    """A fence to create or to replace a stored one with; checked and compiled when built."""

    name: str
    kind: str
    geometry: dict[str, Any]
    owner_id: int | None = None

    def __post_init__(self) -> None:
        name = self.name.strip() if isinstance(self.name, str) else None
        if not name or len(name) > MAX_NAME:
            raise FenceError("name", f"name must be 1 to {MAX_NAME} characters")
        if self.kind not in KINDS:
            raise FenceError("kind", f"kind must be one of {', '.join(KINDS)}, got {self.kind!r}")
        owner = self.owner_id
        if owner is not None and (isinstance(owner, bool) or not isinstance(owner, int) or not 0 < owner < 2**31):
            raise FenceError("owner_id", "owner_id must be an owner's id (a positive integer) or null")
        geometry = _geometry(self.kind, self.geometry)
        object.__setattr__(self, "name", name)
        object.__setattr__(self, "geometry", geometry)
        try:
            compile_fence(fence_of(self.kind, 0, name, owner, geometry))
        except ValueError as e:  # e.g. a self-intersecting ring: the core says why
            raise FenceError(GEOMETRY_FIELDS[self.kind][-1 if self.kind == "circle" else 0],
                             str(e).removeprefix("fence 0: ")) from None


def draft_from_json(body: Any) -> FenceDraft:
    """``{name, kind, lat, lon, radius_m | points | path, width_m, owner_id?}`` as a draft (lat/lon WGS-84).
    Fields of another kind, or unknown ones, are refused rather than silently ignored."""
    if not isinstance(body, Mapping):
        raise FenceError(None, "a fence is a JSON object")
    unknown = sorted(set(body) - _JSON_FIELDS - _READ_ONLY)
    if unknown:
        raise FenceError(unknown[0], f"unknown field {unknown[0]!r}")
    kind = body.get("kind")
    if kind not in KINDS:
        raise FenceError("kind", f"kind must be one of {', '.join(KINDS)}, got {kind!r}")
    stray = sorted(f for fields in GEOMETRY_FIELDS.values() for f in fields
                   if f in body and f not in GEOMETRY_FIELDS[kind])
    if stray:
        raise FenceError(stray[0], f"{stray[0]} does not apply to a {kind} fence")
    return FenceDraft(body.get("name"), kind, {f: body.get(f) for f in GEOMETRY_FIELDS[kind]}, body.get("owner_id"))


@dataclass(frozen=True)
class StoredFence:
    id: int
    name: str
    kind: str
    geometry: dict[str, Any]
    owner_id: int | None
    active: bool
    revision: int
    created_at: datetime
    updated_at: datetime

    @property
    def fence(self) -> Fence:
        """The geo core's fence (``ValueError`` only for a row edited by hand into nonsense)."""
        return fence_of(self.kind, self.id, self.name, self.owner_id, self.geometry)

    def to_json(self) -> dict[str, Any]:
        return {"id": self.id, "name": self.name, "kind": self.kind, **self.geometry, "owner_id": self.owner_id,
                "revision": self.revision, "created_at": self.created_at, "updated_at": self.updated_at}


class FenceVersion(NamedTuple):
    """Changes with every committed write to the fences table (compare with ``!=``)."""

    rows: int
    revisions: int
    newest: datetime | None


_VERSION = sa.select(sa.func.count(), sa.func.coalesce(sa.func.sum(fences.c.revision), 0),
                     sa.func.max(fences.c.updated_at))


class FencesStore:
    def __init__(self, db) -> None:
        self.db = db

    async def create(self, draft: FenceDraft, actor: str) -> StoredFence:
        def _thd(conn):
            now = datetime.now(timezone.utc)
            self._check_owner(conn, draft.owner_id)
            fence_id = conn.execute(fences.insert().values(
                name=draft.name, kind=draft.kind, geometry=draft.geometry, owner_id=draft.owner_id, active=True,
                revision=1, created_at=now, updated_at=now)).inserted_primary_key[0]
            AuditStore.insert(conn, actor, "fence_created", "fence", fence_id,
                              {"name": draft.name, "kind": draft.kind, "owner_id": draft.owner_id}, now)
            return self._get(conn, fence_id)

        return await self.db.pool.do(_thd)

    async def update(self, fence_id: int, draft: FenceDraft, actor: str) -> StoredFence:
        """Replace a fence's definition; ``LookupError`` if there is no such (undeleted) fence."""

        def _thd(conn):
            now = datetime.now(timezone.utc)
            self._check_owner(conn, draft.owner_id)
            done = conn.execute(fences.update().where(fences.c.id == fence_id, fences.c.active.is_(True)).values(
                name=draft.name, kind=draft.kind, geometry=draft.geometry, owner_id=draft.owner_id,
                revision=fences.c.revision + 1, updated_at=now))
            if done.rowcount == 0:
                raise LookupError(f"no fence {fence_id}")
            AuditStore.insert(conn, actor, "fence_updated", "fence", fence_id,
                              {"name": draft.name, "kind": draft.kind, "owner_id": draft.owner_id}, now)
            return self._get(conn, fence_id)

        return await self.db.pool.do(_thd)

    async def delete(self, fence_id: int, actor: str) -> None:
        """``LookupError`` if there is no such (undeleted) fence."""

        def _thd(conn):
            now = datetime.now(timezone.utc)
            done = conn.execute(fences.update().where(fences.c.id == fence_id, fences.c.active.is_(True)).values(
                active=False, revision=fences.c.revision + 1, updated_at=now))
            if done.rowcount == 0:
                raise LookupError(f"no fence {fence_id}")
            AuditStore.insert(conn, actor, "fence_deleted", "fence", fence_id, None, now)

        await self.db.pool.do(_thd)

    async def get(self, fence_id: int) -> StoredFence | None:
        def _thd(conn):
            found = self._get(conn, fence_id)
            return found if found is not None and found.active else None

        return await self.db.pool.do(_thd)

    async def search(self, owner_id: int | None = None, limit: int = 100, offset: int = 0) -> list[StoredFence]:
        """Undeleted fences in id order; ``owner_id`` narrows to that owner's own fences."""

        def _thd(conn):
            q = sa.select(fences).where(fences.c.active.is_(True)).order_by(fences.c.id).limit(limit).offset(offset)
            if owner_id is not None:
                q = q.where(fences.c.owner_id == owner_id)
            return [self._model_from_row(r) for r in conn.execute(q)]

        return await self.db.pool.do(_thd)

    async def active(self) -> list[StoredFence]:
        """Every undeleted fence: what a process indexes."""

        def _thd(conn):
            q = sa.select(fences).where(fences.c.active.is_(True)).order_by(fences.c.id)
            return [self._model_from_row(r) for r in conn.execute(q)]

        return await self.db.pool.do(_thd)

    async def version(self) -> FenceVersion:
        """One cheap aggregate: poll it and reload only when it differs from the last one seen."""

        def _thd(conn):
            rows, revisions, newest = conn.execute(_VERSION).one()
            return FenceVersion(int(rows), int(revisions), _utc(newest))

        return await self.db.pool.do(_thd)

    async def vehicle_scopes(self) -> dict[str, int | None]:
        """The scope (owner id) of every vehicle by plate, for matching vehicles to owner fences."""

        def _thd(conn):
            return dict(conn.execute(sa.select(vehicles.c.plate, vehicles.c.owner_id)).all())

        return await self.db.pool.do(_thd)

    async def vehicle_scope(self, plate: str) -> int | None:
        """One vehicle's scope (None: no owner, or no such vehicle — only unscoped fences apply)."""

        def _thd(conn):
            return conn.execute(sa.select(vehicles.c.owner_id).where(vehicles.c.plate == plate)).scalar()

        return await self.db.pool.do(_thd)

    @staticmethod
    def _check_owner(conn, owner_id: int | None) -> None:
        if owner_id is not None and conn.execute(sa.select(owners.c.id).where(owners.c.id == owner_id)).first() is None:
            raise FenceError("owner_id", f"no owner {owner_id}")

    @classmethod
    def _get(cls, conn, fence_id: int) -> StoredFence | None:
        row = conn.execute(sa.select(fences).where(fences.c.id == fence_id)).first()
        return None if row is None else cls._model_from_row(row)

    @staticmethod
    def _model_from_row(row) -> StoredFence:
        return StoredFence(id=row.id, name=row.name, kind=row.kind, geometry=dict(row.geometry),
                           owner_id=row.owner_id, active=row.active, revision=row.revision,
                           created_at=row.created_at, updated_at=row.updated_at)


def _utc(value: Any) -> datetime | None:
    """``max(updated_at)`` as an aware UTC time, whether the backend hands it back typed, naive or as text."""
    if value is None:
        return None
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    return value.replace(tzinfo=timezone.utc) if value.tzinfo is None else value
