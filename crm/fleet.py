"""Fleet files: parse and validate the CSV/XLSX fleet format of design.md, and write it back.

Validation is complete before anything is written: every bad row is reported with its line number
(as a spreadsheet counts it, the header being line 1) and a reason, and the caller writes nothing
unless the whole file is good. PINs are read here but never written out.
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import phonenumbers

from crm.pins import is_valid_pin
from ingest.sink import normalise_terminal_id

REQUIRED = ("plate", "terminal_id", "protocol", "owner_name", "owner_phone", "tier", "pin")
OPTIONAL = ("vin", "backup_phone", "kind", "model", "color", "email", "skills")
COLUMNS = REQUIRED + OPTIONAL
PROTOCOLS = ("jt808", "gt06", "traccar", "http")
TIERS = ("platinum", "gold", "normal")
KINDS = ("customer", "rescue")

_PLATE_RE = re.compile(r"^[0-9A-Z\u4e00-\u9fff\-]{2,16}$")
_VIN_RE = re.compile(r"^[A-HJ-NPR-Z0-9]{17}$")
_EMAIL_RE = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
_PLATFORM_ID_RE = re.compile(r"^[A-Za-z0-9._:\-]{1,64}$")
_SKILL_RE = re.compile(r"^[a-z0-9_\-]{1,32}$")


class FleetFileError(ValueError):
    """The file as a whole cannot be read (format, encoding, header)."""


@dataclass(frozen=True)
class RowError:
    line: int
    reason: str
    field: str | None = None

    def __str__(self) -> str:
        return f"line {self.line}: {self.reason}"


@dataclass(frozen=True)
class PhoneNumber:
    e164: str  # +8613800138000
    national: str  # 13800138000


@dataclass(frozen=True)
class FleetRow:
    line: int
    plate: str
    terminal_id: str
    protocol: str
    owner_name: str
    owner_phone: PhoneNumber
    tier: str
    pin: str = field(repr=False)  # "" = keep the stored PIN
    vin: str | None = None
    backup_phone: PhoneNumber | None = None
    kind: str = "customer"
    model: str | None = None
    color: str | None = None
    email: str | None = None
    skills: tuple[str, ...] = ()


def normalise_plate(plate: str) -> str:
    return re.sub(r"[\s\u00b7·]+", "", plate).upper()


def parse_phone(text: str, region: str) -> PhoneNumber | None:
    try:
        num = phonenumbers.parse(text, region)
    except phonenumbers.NumberParseException:
        return None
    if not phonenumbers.is_valid_number(num):
        return None
    return PhoneNumber(
        phonenumbers.format_number(num, phonenumbers.PhoneNumberFormat.E164), str(num.national_number)
    )


def masked_phone(number: str) -> str:
    """A phone number for timelines and logs: its last four digits hidden."""
    return number[:-4].rstrip() + "****" if len(number) > 6 else "****"


def validate_terminal_id(protocol: str, terminal_id: str) -> str | None:
    """Normalised id, or None if it is not a valid id for the protocol."""
    if protocol == "jt808":
        return normalise_terminal_id("jt808", terminal_id) if re.fullmatch(r"[0-9]{1,20}", terminal_id) else None
    if protocol == "gt06":
        return terminal_id if re.fullmatch(r"[0-9]{15}", terminal_id) else None
    return terminal_id if _PLATFORM_ID_RE.match(terminal_id) else None


def read_rows(path: str | Path) -> Iterator[tuple[int, dict[str, str]]]:
    """(line number, {column: text}) for every non-blank data row; raises FleetFileError."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix == ".xlsx":
        yield from _read_xlsx(path)
    elif suffix in (".csv", ".txt", ""):
        yield from _read_csv(path)
    else:
        raise FleetFileError(f"{path.name}: unsupported file type {suffix!r}; expected .csv or .xlsx")


def _header(cells: list[str]) -> list[str]:
    header = [c.strip().lower() for c in cells]
    missing = [c for c in REQUIRED if c not in header]
    if missing:
        raise FleetFileError(f"line 1: missing required column(s): {', '.join(missing)}")
    unknown = [c for c in header if c and c not in COLUMNS]
    if unknown:
        raise FleetFileError(f"line 1: unknown column(s): {', '.join(unknown)} (expected {', '.join(COLUMNS)})")
    dupes = sorted({c for c in header if c and header.count(c) > 1})
    if dupes:
        raise FleetFileError(f"line 1: duplicate column(s): {', '.join(dupes)}")
    return header


def _read_csv(path: Path) -> Iterator[tuple[int, dict[str, str]]]:
    try:
        text = path.read_bytes().decode("utf-8-sig")
    except OSError as e:
        raise FleetFileError(f"{path}: cannot read: {e.strerror}") from None
    except UnicodeDecodeError as e:
        line = e.object[: e.start].count(b"\n") + 1
        raise FleetFileError(f"line {line}: not UTF-8 text (save the file as CSV UTF-8)") from None
    reader = csv.reader(io.StringIO(text, newline=""))
    try:
        first = next(reader)
    except StopIteration:
        raise FleetFileError("line 1: the file is empty; expected a header row") from None
    header = _header(first)
    # A spreadsheet shows one row per record (a quoted cell may span physical lines), blank
    # lines included, so count records rather than physical lines.
    for line, cells in enumerate(reader, start=2):
        yield from _row(line, header, cells)


def _read_xlsx(path: Path) -> Iterator[tuple[int, dict[str, str]]]:
    import openpyxl

    try:
        wb = openpyxl.load_workbook(path, read_only=True, data_only=True)
    except Exception as e:  # openpyxl raises many types for a broken file
        raise FleetFileError(f"{path.name}: not a readable XLSX workbook: {e}") from None
    try:
        rows = wb.worksheets[0].iter_rows(values_only=True)
        first = next(rows, None)
        if first is None:
            raise FleetFileError("line 1: the sheet is empty; expected a header row")
        header = _header([cell_text(c) for c in first])
        for line, cells in enumerate(rows, start=2):
            yield from _row(line, header, [cell_text(c) for c in cells])
    finally:
        wb.close()


def cell_text(value) -> str:
    if value is None:
        return ""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))  # phone numbers and PINs typed as numbers
    return str(value)


def _row(line: int, header: list[str], cells: list[str]) -> Iterable[tuple[int, dict[str, str]]]:
    if not any(c.strip() for c in cells):
        return
    row = {name: (cells[i].strip() if i < len(cells) else "") for i, name in enumerate(header) if name}
    if len(cells) > len(header) and any(c.strip() for c in cells[len(header):]):
        row["__extra__"] = "x"
    yield line, row


def validate(rows: Iterable[tuple[int, dict[str, str]]], region: str) -> tuple[list[FleetRow], list[RowError]]:
    good: list[FleetRow] = []
    errors: list[RowError] = []
    plates: dict[str, int] = {}
    terminals: dict[tuple[str, str], int] = {}
    for line, raw in rows:
        row, found = validate_record(line, raw, region)
        problems = [message for _, message in found]
        if row is not None:
            if row.plate in plates:
                problems.append(f"duplicate plate {row.plate} (also on line {plates[row.plate]})")
            key = (row.protocol, row.terminal_id)
            if key in terminals:
                problems.append(f"duplicate terminal id {row.terminal_id} (also on line {terminals[key]})")
            plates.setdefault(row.plate, line)
            terminals.setdefault(key, line)
        if problems:
            errors.extend(RowError(line, p) for p in problems)
        else:
            good.append(row)
    return good, errors


def validate_record(line: int, raw: dict[str, str], region: str) -> tuple[FleetRow | None, list[tuple[str, str]]]:
    """One fleet record → (row, []) or (None, [(field, problem), ...])."""
    problems: list[tuple[str, str]] = []
    if raw.pop("__extra__", None):
        problems.append(("", "more cells than header columns"))
    for col in REQUIRED:
        # An empty pin keeps a re-imported vehicle's PIN (exports carry none); the store refuses
        # it for a new vehicle.
        if not raw.get(col) and col != "pin":
            problems.append((col, f"{col} is empty"))
    if problems:
        return None, problems

    plate = normalise_plate(raw["plate"])
    if not _PLATE_RE.match(plate):
        problems.append(("plate", f"bad plate {raw['plate']!r}"))
    protocol = raw["protocol"].lower()
    terminal_id = None
    if protocol not in PROTOCOLS:
        problems.append(("protocol", f"unknown protocol {raw['protocol']!r} (expected {', '.join(PROTOCOLS)})"))
    else:
        terminal_id = validate_terminal_id(protocol, raw["terminal_id"])
        if terminal_id is None:
            expect = {"jt808": "up to 20 digits", "gt06": "a 15-digit IMEI"}.get(protocol, "1-64 letters/digits")
            problems.append(("terminal_id", f"bad terminal_id {raw['terminal_id']!r} for {protocol} (expected {expect})"))
    tier = raw["tier"].lower()
    if tier not in TIERS:
        problems.append(("tier", f"unknown tier {raw['tier']!r} (expected {', '.join(TIERS)})"))
    if raw["pin"] and not is_valid_pin(raw["pin"]):
        problems.append(("pin", "pin must be 4 to 8 digits"))
    owner_phone = parse_phone(raw["owner_phone"], region)
    if owner_phone is None:
        problems.append(("owner_phone", f"invalid phone {raw['owner_phone']!r} in owner_phone"))
    backup = None
    if raw.get("backup_phone"):
        backup = parse_phone(raw["backup_phone"], region)
        if backup is None:
            problems.append(("backup_phone", f"invalid phone {raw['backup_phone']!r} in backup_phone"))
    kind = (raw.get("kind") or "customer").lower()
    if kind not in KINDS:
        problems.append(("kind", f"unknown kind {raw['kind']!r} (expected customer or rescue)"))
    vin = (raw.get("vin") or "").upper() or None
    if vin and not _VIN_RE.match(vin):
        problems.append(("vin", f"bad vin {raw['vin']!r} (17 letters/digits, no I, O or Q)"))
    email = raw.get("email") or None
    if email and not _EMAIL_RE.match(email):
        problems.append(("email", f"bad email {email!r}"))
    skills = tuple(s.strip().lower() for s in re.split(r"[,;|]", raw.get("skills") or "") if s.strip())
    bad_skills = [s for s in skills if not _SKILL_RE.match(s)]
    if bad_skills:
        problems.append(("skills", f"bad skill name(s): {', '.join(bad_skills)}"))
    if len(raw["owner_name"]) > 200:
        problems.append(("owner_name", "owner_name longer than 200 characters"))
    for col, limit in (("model", 100), ("color", 32)):
        if len(raw.get(col) or "") > limit:
            problems.append((col, f"{col} longer than {limit} characters"))
    if problems:
        return None, problems
    return FleetRow(
        line=line, plate=plate, terminal_id=terminal_id, protocol=protocol, owner_name=raw["owner_name"],
        owner_phone=owner_phone, tier=tier, pin=raw["pin"], vin=vin, backup_phone=backup, kind=kind,
        model=raw.get("model") or None, color=raw.get("color") or None, email=email, skills=skills,
    ), []


def export_rows(vehicles) -> Iterator[list[str]]:
    """Rows in the import format (header first) for ``Vehicle`` records; the PIN column stays empty."""
    yield list(COLUMNS)
    for v in vehicles:
        phones = [c for c in (v.owner.contacts if v.owner else ()) if c.kind == "phone"]
        emails = [c for c in (v.owner.contacts if v.owner else ()) if c.kind == "email"]
        for t in v.terminals or (None,):
            yield [
                v.plate, t.terminal_id if t else "", t.protocol if t else "", v.owner.name if v.owner else "",
                phones[0].value if phones else "", v.tier, "", v.vin or "",
                phones[1].value if len(phones) > 1 else "", v.kind, v.model or "", v.color or "",
                emails[0].value if emails else "", ",".join(v.skills),
            ]


def write_file(path: str | Path, rows: Iterable[list[str]]) -> int:
    """Write rows (header first) as CSV or XLSX by the file's suffix; returns the data-row count."""
    path = Path(path)
    rows = iter(rows)
    count = 0
    if path.suffix.lower() == ".xlsx":
        import openpyxl

        wb = openpyxl.Workbook(write_only=True)
        ws = wb.create_sheet("fleet")
        ws.append(next(rows))
        for row in rows:
            ws.append(row)
            count += 1
        wb.save(path)
    else:
        with path.open("w", encoding="utf-8", newline="") as f:
            writer = csv.writer(f)
            writer.writerow(next(rows))
            for row in rows:
                writer.writerow(row)
                count += 1
    return count
