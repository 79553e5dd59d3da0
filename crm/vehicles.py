"""``db.vehicles``: the fleet — vehicles with their owner, ordered contacts and terminals.

Imports are all or nothing: rows are validated by ``crm.fleet`` first, then checked against the
database (terminal ids bound elsewhere, new vehicles without a PIN) and written in one transaction.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime, timezone

import sqlalchemy as sa

from crm.audit import AuditStore
from crm.fleet import FleetRow, RowError
from crm.pins import hash_pin, verify_pin
from crm.schema import contacts, owners, terminals, vehicles
from ingest.sink import TerminalInfo, normalise_terminal_id

_CHUNK = 500  # IN-list size: well under SQLite's bound-parameter limit


class FleetImportError(ValueError):
    def __init__(self, errors: list[RowError]) -> None:
        self.errors = sorted(errors, key=lambda e: e.line)
        super().__init__("; ".join(str(e) for e in self.errors[:5]))


@dataclass(frozen=True)
class Contact:
    position: int
    kind: str  # phone | email
    value: str
    label: str | None


@dataclass(frozen=True)
class Owner:
    id: int
    name: str
    language: str
    contacts: tuple[Contact, ...]


@dataclass(frozen=True)
class Terminal:
    protocol: str
    terminal_id: str


@dataclass(frozen=True)
class Vehicle:
    id: int
    plate: str
    vin: str | None
    kind: str
    tier: str
    model: str | None
    color: str | None
    skills: tuple[str, ...]
    owner: Owner | None
    terminals: tuple[Terminal, ...]
    has_pin: bool
    created_at: datetime
    updated_at: datetime


@dataclass(frozen=True)
class ImportResult:
    created: int
    updated: int

    @property
    def total(self) -> int:
        return self.created + self.updated


def _chunks(items: list, size: int = _CHUNK) -> Iterable[list]:
    for i in range(0, len(items), size):
        yield items[i : i + size]


class VehiclesStore:
    def __init__(self, db) -> None:
        self.db = db

    # -- import -------------------------------------------------------------------------------

    def import_rows_blocking(self, rows: list[FleetRow], actor: str = "cli") -> ImportResult:
        hashes = _hash_pins(rows)
        return self.db.pool.do_blocking(self._import_thd, rows, hashes, actor)

    async def import_rows(self, rows: list[FleetRow], actor: str) -> ImportResult:
        from twisted.internet.threads import deferToThreadPool

        reactor = self.db.pool._reactor
        hashes = await deferToThreadPool(reactor, reactor.getThreadPool(), _hash_pins, rows)
        return await self.db.pool.do(self._import_thd, rows, hashes, actor)

    def _import_thd(self, conn, rows: list[FleetRow], hashes: list[str | None], actor: str) -> ImportResult:
        now = datetime.now(timezone.utc)
        plates = [r.plate for r in rows]
        existing = {}
        for chunk in _chunks(plates):
            for row in conn.execute(sa.select(vehicles.c.id, vehicles.c.plate).where(vehicles.c.plate.in_(chunk))):
                existing[row.plate] = row.id
        errors = [RowError(r.line, "pin is empty (required for a new vehicle)", "pin")
                  for r in rows if not r.pin and r.plate not in existing]
        bound = {}  # (protocol, terminal_id) -> plate it is bound to now
        keys = sorted({(r.protocol, r.terminal_id) for r in rows})
        for chunk in _chunks(keys):
            q = (sa.select(terminals.c.protocol, terminals.c.terminal_id, vehicles.c.plate)
                 .join(vehicles, vehicles.c.id == terminals.c.vehicle_id)
                 .where(sa.tuple_(terminals.c.protocol, terminals.c.terminal_id).in_(chunk)))
            bound.update({(t.protocol, t.terminal_id): t.plate for t in conn.execute(q)})
        moving = {r.plate: (r.protocol, r.terminal_id) for r in rows}
        for r in rows:
            holder = bound.get((r.protocol, r.terminal_id))
            # A terminal may move to this plate only if its current vehicle gets another one here.
            if holder and holder != r.plate and moving.get(holder, (r.protocol, r.terminal_id)) == (r.protocol, r.terminal_id):
                errors.append(RowError(r.line, f"duplicate terminal id {r.terminal_id}: already used by {holder}",
                                       "terminal_id"))
        if errors:
            raise FleetImportError(errors)

        owner_ids = self._upsert_owners(conn, rows, now)
        created = updated = 0
        new_rows = []
        updates: dict[bool, list[dict]] = {}  # executemany needs one key set: with and without a PIN
        for r, pin_hash in zip(rows, hashes, strict=True):
            values = dict(
                vin=r.vin, kind=r.kind, tier=r.tier, model=r.model, color=r.color, skills=",".join(r.skills),
                owner_id=owner_ids[r.owner_phone.e164], updated_at=now,
            )
            if pin_hash is not None:
                values["pin_hash"] = pin_hash
            if r.plate in existing:
                updates.setdefault("pin_hash" in values, []).append(dict(values, _id=existing[r.plate]))
                updated += 1
            else:
                new_rows.append(dict(values, plate=r.plate, created_at=now, pin_hash=pin_hash))
        for batch in updates.values():
            columns = {k: sa.bindparam(k) for k in batch[0] if k != "_id"}
            conn.execute(vehicles.update().where(vehicles.c.id == sa.bindparam("_id")).values(columns), batch)
        for chunk in _chunks(new_rows):
            result = conn.execute(vehicles.insert().returning(vehicles.c.id, vehicles.c.plate,
                                                               sort_by_parameter_order=True), chunk)
            existing.update({row.plate: row.id for row in result})
            created += len(chunk)
        self._bind_terminals(conn, rows, existing)
        AuditStore.insert(conn, actor, "fleet_imported", "fleet", None,
                          {"created": created, "updated": updated, "rows": len(rows)}, now)
        return ImportResult(created, updated)

    @staticmethod
    def _upsert_owners(conn, rows: list[FleetRow], now: datetime) -> dict[str, int]:
        """Owners are keyed by their primary phone; returns {e164: owner id}."""
        names: dict[str, str] = {}
        wanted: dict[str, list[tuple[str, str, str | None, str]]] = {}  # e164 -> ordered contacts
        for r in rows:
            names[r.owner_phone.e164] = r.owner_name  # the last row naming an owner wins
            found = wanted.setdefault(
                r.owner_phone.e164, [("phone", r.owner_phone.e164, r.owner_phone.national, "owner")])
            if r.backup_phone:
                found.append(("phone", r.backup_phone.e164, r.backup_phone.national, "backup"))
            if r.email:
                found.append(("email", r.email, None, "email"))
        ids: dict[str, int] = {}
        phones = list(wanted)
        for chunk in _chunks(phones):
            q = sa.select(contacts.c.value, contacts.c.owner_id).where(
                contacts.c.kind == "phone", contacts.c.position == 0, contacts.c.value.in_(chunk))
            ids.update({row.value: row.owner_id for row in conn.execute(q)})
        renamed = [dict(_id=ids[phone], name=name, updated_at=now) for phone, name in names.items() if phone in ids]
        if renamed:
            conn.execute(owners.update().where(owners.c.id == sa.bindparam("_id"))
                         .values(name=sa.bindparam("name"), updated_at=sa.bindparam("updated_at")), renamed)
        for phone, name in names.items():
            if phone not in ids:
                ids[phone] = conn.execute(owners.insert().values(
                    name=name, created_at=now, updated_at=now)).inserted_primary_key[0]
        touched = [ids[p] for p in phones]
        for chunk in _chunks(touched):
            conn.execute(contacts.delete().where(contacts.c.owner_id.in_(chunk)))
        contact_rows = []
        for phone, found in wanted.items():
            seen = set()
            for kind, value, national, label in found:
                if value not in seen:
                    seen.add(value)
                    contact_rows.append(dict(owner_id=ids[phone], position=len(seen) - 1, kind=kind,
                                             value=value, national=national, label=label))
        if contact_rows:
            conn.execute(contacts.insert(), contact_rows)
        return ids

    @staticmethod
    def _bind_terminals(conn, rows: list[FleetRow], vehicle_ids: dict[str, int]) -> None:
        keys = [(r.protocol, r.terminal_id) for r in rows]
        current = {}
        for chunk in _chunks(keys):
            q = sa.select(terminals.c.protocol, terminals.c.terminal_id, terminals.c.vehicle_id).where(
                sa.tuple_(terminals.c.protocol, terminals.c.terminal_id).in_(chunk))
            current.update({(t.protocol, t.terminal_id): t.vehicle_id for t in conn.execute(q)})
        keep = {k for r, k in zip(rows, keys, strict=True) if current.get(k) == vehicle_ids[r.plate]}
        ids = [vehicle_ids[r.plate] for r in rows]
        for chunk in _chunks(ids):
            # One terminal per imported row: drop the vehicle's others, and the moved ones.
            conn.execute(terminals.delete().where(
                terminals.c.vehicle_id.in_(chunk),
                sa.not_(sa.tuple_(terminals.c.protocol, terminals.c.terminal_id).in_(list(keep) or [("", "")]))))
        moved = [k for k in keys if k in current and k not in keep]
        for chunk in _chunks(moved):
            conn.execute(terminals.delete().where(sa.tuple_(terminals.c.protocol, terminals.c.terminal_id).in_(chunk)))
        new = [dict(protocol=r.protocol, terminal_id=r.terminal_id, vehicle_id=vehicle_ids[r.plate])
               for r, k in zip(rows, keys, strict=True) if k not in keep]
        if new:
            conn.execute(terminals.insert(), new)

    # -- reads --------------------------------------------------------------------------------

    async def get_by_plate(self, plate: str) -> Vehicle | None:
        def _thd(conn):
            found = self._load(conn, sa.select(vehicles).where(vehicles.c.plate == plate))
            return found[0] if found else None

        return await self.db.pool.do(_thd)

    async def tier_of(self, plate: str) -> str | None:
        """Just the vehicle's tier (the alarm engine asks for every new plate it sees)."""

        def _thd(conn):
            return conn.execute(sa.select(vehicles.c.tier).where(vehicles.c.plate == plate)).scalar()

        return await self.db.pool.do(_thd)

    async def tiers(self) -> dict[str, str]:
        """Every vehicle's tier by plate, in one query (the alarm engine's cache)."""

        def _thd(conn):
            return dict(conn.execute(sa.select(vehicles.c.plate, vehicles.c.tier)).all())

        return await self.db.pool.do(_thd)

    async def search(self, q: str, limit: int = 50) -> list[Vehicle]:
        """Plate, owner name or phone, as an agent types it: exact, prefix and partial matches,
        best first."""
        q = q.strip()
        if not q:
            return []

        def _thd(conn):
            like = q.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
            plate_q = like.upper().replace(" ", "")
            # Only a query that looks like a phone number searches phones: "Owner 123" is a name.
            digits = "".join(ch for ch in q if ch.isdigit()) if re.fullmatch(r"[\d\s+\-()]+", q) else ""
            conds = [
                vehicles.c.plate.like(f"%{plate_q}%", escape="\\"),
                owners.c.name.ilike(f"%{like}%", escape="\\"),
            ]
            if len(digits) >= 3:
                conds.append(vehicles.c.owner_id.in_(
                    sa.select(contacts.c.owner_id).where(sa.or_(
                        contacts.c.national.like(f"%{digits}%"), contacts.c.value.like(f"%{digits}%")))))
            rank = sa.case(
                (vehicles.c.plate == plate_q, 0),
                (vehicles.c.plate.like(f"{plate_q}%", escape="\\"), 1),
                (owners.c.name.ilike(f"{like}%", escape="\\"), 2),
                else_=3,
            )
            stmt = (sa.select(vehicles).outerjoin(owners, owners.c.id == vehicles.c.owner_id)
                    .where(sa.or_(*conds)).order_by(rank, vehicles.c.plate).limit(limit))
            return self._load(conn, stmt)

        return await self.db.pool.do(_thd)

    def iter_all_blocking(self) -> list[Vehicle]:
        return self.db.pool.do_blocking(lambda conn: self._load(conn, sa.select(vehicles).order_by(vehicles.c.plate)))

    async def verify_pin(self, plate: str, pin: str) -> bool:
        def _thd(conn):
            return conn.execute(sa.select(vehicles.c.pin_hash).where(vehicles.c.plate == plate)).scalar()

        pin_hash = await self.db.pool.do(_thd)
        return verify_pin(pin_hash, pin)

    @classmethod
    def _load(cls, conn, stmt) -> list[Vehicle]:
        rows = conn.execute(stmt).all()
        if not rows:
            return []
        vids = [r.id for r in rows]
        oids = sorted({r.owner_id for r in rows if r.owner_id is not None})
        terms: dict[int, list[Terminal]] = {}
        for chunk in _chunks(vids):
            for t in conn.execute(sa.select(terminals).where(terminals.c.vehicle_id.in_(chunk))
                                  .order_by(terminals.c.id)):
                terms.setdefault(t.vehicle_id, []).append(Terminal(t.protocol, t.terminal_id))
        owner_rows, owner_contacts = {}, {}
        for chunk in _chunks(oids):
            owner_rows.update({o.id: o for o in conn.execute(sa.select(owners).where(owners.c.id.in_(chunk)))})
            for c in conn.execute(sa.select(contacts).where(contacts.c.owner_id.in_(chunk))
                                  .order_by(contacts.c.owner_id, contacts.c.position)):
                owner_contacts.setdefault(c.owner_id, []).append(Contact(c.position, c.kind, c.value, c.label))
        return [cls._model_from_row(r, owner_rows.get(r.owner_id), owner_contacts.get(r.owner_id, []),
                                    terms.get(r.id, [])) for r in rows]

    @staticmethod
    def _model_from_row(row, owner_row, owner_contacts, terms) -> Vehicle:
        owner = None
        if owner_row is not None:
            owner = Owner(owner_row.id, owner_row.name, owner_row.language, tuple(owner_contacts))
        return Vehicle(
            id=row.id, plate=row.plate, vin=row.vin, kind=row.kind, tier=row.tier, model=row.model,
            color=row.color, skills=tuple(s for s in row.skills.split(",") if s), owner=owner,
            terminals=tuple(terms), has_pin=row.pin_hash is not None, created_at=row.created_at,
            updated_at=row.updated_at,
        )

    # -- terminals (ingest) -------------------------------------------------------------------

    async def lookup_terminal(self, protocol: str, terminal_id: str) -> TerminalInfo | None:
        terminal_id = normalise_terminal_id(protocol, terminal_id)

        def _thd(conn):
            row = conn.execute(
                sa.select(terminals.c.auth_code, terminals.c.lenient_checksum, vehicles.c.plate, vehicles.c.model)
                .join(vehicles, vehicles.c.id == terminals.c.vehicle_id)
                .where(terminals.c.protocol == protocol, terminals.c.terminal_id == terminal_id)
            ).first()
            if row is None:
                return None
            return TerminalInfo(protocol, terminal_id, row.plate, row.auth_code, row.lenient_checksum, row.model)

        return await self.db.pool.do(_thd)

    async def lookup_terminals(self, protocol: str, terminal_ids: list[str]) -> dict[str, TerminalInfo]:
        """``lookup_terminal`` for many terminals in one database call (the ingest cache refreshes
        its terminals this way): the fleet's ones by normalised id; an id missing is not in the fleet."""
        ids = sorted({normalise_terminal_id(protocol, terminal_id) for terminal_id in terminal_ids})

        def _thd(conn):
            found = {}
            for chunk in _chunks(ids):
                for row in conn.execute(
                    sa.select(terminals.c.terminal_id, terminals.c.auth_code, terminals.c.lenient_checksum,
                              vehicles.c.plate, vehicles.c.model)
                    .join(vehicles, vehicles.c.id == terminals.c.vehicle_id)
                    .where(terminals.c.protocol == protocol, terminals.c.terminal_id.in_(chunk))
                ):
                    found[row.terminal_id] = TerminalInfo(protocol, row.terminal_id, row.plate, row.auth_code,
                                                          row.lenient_checksum, row.model)
            return found

        return await self.db.pool.do(_thd)

    async def set_auth_code(self, protocol: str, terminal_id: str, auth_code: str) -> None:
        terminal_id = normalise_terminal_id(protocol, terminal_id)

        def _thd(conn):
            conn.execute(terminals.update().where(terminals.c.protocol == protocol,
                                                  terminals.c.terminal_id == terminal_id)
                         .values(auth_code=auth_code))

        await self.db.pool.do(_thd)


def _hash_pins(rows: list[FleetRow]) -> list[str | None]:
    """argon2 releases the GIL, so two threads use both cores."""
    with ThreadPoolExecutor(max_workers=2) as ex:
        return list(ex.map(lambda r: hash_pin(r.pin) if r.pin else None, rows))
