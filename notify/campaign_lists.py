"""Campaign lists in and reports out: who a campaign calls, and what came of each number.

A list is CSV (UTF-8, header row) or XLSX (header in row 1) with a ``phone`` and/or a ``plate`` column,
an optional ``name``, and any other columns as template variables. A plate without a phone is
dialled on its owner's first phone. Like the fleet import, every bad row is reported with its line
(the header being line 1) and nothing is created unless the whole list is good.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from crm.campaign_records import CampaignNumber, NewNumber, Recipient
from crm.fleet import cell_text, normalise_plate, parse_phone
from notify.campaign_spec import check_variable_name

MAX_ROWS = 100_000
REPORT_COLUMNS = ("phone", "plate", "name", "status", "outcome", "confirmed", "attempts", "talk_s",
                  "first_attempt_at", "last_attempt_at", "attempt_outcomes", "attempt_durations_s")


class ListError(ValueError):
    """The list cannot be used; ``problems`` are ``(line, field, message)`` (line 0: the whole file)."""

    def __init__(self, problems: list[tuple[int, str, str]]) -> None:
        self.problems = sorted(problems)
        super().__init__("; ".join(_describe(p) for p in self.problems[:5])
                         + (f" (and {len(self.problems) - 5} more)" if len(self.problems) > 5 else ""))

    @property
    def field(self) -> str:
        return self.problems[0][1] if self.problems else "list"


def _describe(problem: tuple[int, str, str]) -> str:
    line, _, message = problem
    return f"line {line}: {message}" if line else message


@dataclass(frozen=True)
class ListEntry:
    line: int
    phone: str | None  # E.164, or None: the plate's owner is dialled
    plate: str | None
    name: str | None
    variables: dict[str, str]


def read_table(data: bytes, kind: str) -> Iterator[tuple[int, dict[str, str]]]:
    """(line, {column: text}) per non-blank data row of a CSV or XLSX file's bytes; raises ListError."""
    if kind == "xlsx":
        rows = _xlsx_rows(data)
    elif kind == "csv":
        try:
            text = data.decode("utf-8-sig")
        except UnicodeDecodeError as e:
            line = data[:e.start].count(b"\n") + 1
            raise ListError([(line, "list", "not UTF-8 text (save the file as CSV UTF-8)")]) from None
        rows = csv.reader(io.StringIO(text, newline=""))
    else:
        raise ListError([(0, "list", f"unsupported list type {kind!r}; expected csv or xlsx")])
    header = [c.strip().lower() for c in next(rows, [])]
    if not any(header):
        raise ListError([(1, "list", "the list is empty; expected a header row")])
    if "phone" not in header and "plate" not in header:
        raise ListError([(1, "list", "the header needs a phone or a plate column")])
    bad = [c for c in header if c and not check_variable_name(c)]
    dupes = sorted({c for c in header if c and header.count(c) > 1})
    if bad or dupes:
        raise ListError([(1, "list", f"bad column name(s): {', '.join(bad)}" if bad
                          else f"duplicate column(s): {', '.join(dupes)}")])
    for line, cells in enumerate(rows, start=2):
        if line - 1 > MAX_ROWS:
            raise ListError([(line, "list", f"more than {MAX_ROWS} rows")])
        if any(c.strip() for c in cells):
            yield line, {name: (cells[i].strip() if i < len(cells) else "") for i, name in enumerate(header) if name}


def _xlsx_rows(data: bytes) -> Iterator[list[str]]:
    import openpyxl

    try:
        wb = openpyxl.load_workbook(io.BytesIO(data), read_only=True, data_only=True)
    except Exception as e:  # openpyxl raises many types for a broken file
        raise ListError([(0, "list", f"not a readable XLSX workbook: {e}")]) from None
    try:
        for cells in wb.worksheets[0].iter_rows(values_only=True):
            yield [cell_text(c) for c in cells]
    finally:
        wb.close()


def parse_list(rows: Iterable[tuple[int, dict[str, str]]], region: str) -> list[ListEntry]:
    entries: list[ListEntry] = []
    problems: list[tuple[int, str, str]] = []
    for line, raw in rows:
        phone_text, plate_text = raw.pop("phone", ""), raw.pop("plate", "")
        name = raw.pop("name", "") or None
        phone = None
        if phone_text:
            parsed = parse_phone(phone_text, region)
            if parsed is None:
                problems.append((line, "phone", f"invalid phone {phone_text!r}"))
            else:
                phone = parsed.e164
        elif not plate_text:
            problems.append((line, "phone", "neither a phone nor a plate"))
        if name is not None and len(name) > 200:
            problems.append((line, "name", "name longer than 200 characters"))
        if any(len(v) > 500 for v in raw.values()):
            problems.append((line, "list", "a value longer than 500 characters"))
        entries.append(ListEntry(line, phone, normalise_plate(plate_text) or None, name,
                                 {k: v for k, v in raw.items()}))
    if problems:
        raise ListError(problems)
    return entries


def numbers_from_entries(entries: list[ListEntry], owners: dict[str, Recipient]) -> list[NewNumber]:
    """Phones for every entry; a plate-only entry takes its owner's phone from ``owners`` (by plate)."""
    numbers: list[NewNumber] = []
    problems: list[tuple[int, str, str]] = []
    for e in entries:
        owner = owners.get(e.plate) if e.plate else None
        phone = e.phone
        if phone is None:
            if owner is None:
                problems.append((e.line, "plate", f"no vehicle with plate {e.plate}"))
                continue
            if owner.phone is None:
                problems.append((e.line, "plate", f"the owner of {e.plate} has no phone"))
                continue
            phone = owner.phone
        numbers.append(NewNumber(phone, e.plate, e.name or (owner.name if owner else None), e.variables or None))
    if problems:
        raise ListError(problems)
    return numbers


def numbers_from_fleet(recipients: list[Recipient]) -> tuple[list[NewNumber], list[str]]:
    """Numbers for the vehicles a fleet filter found, and the plates left out for want of a phone."""
    numbers = [NewNumber(r.phone, r.plate, r.name) for r in recipients if r.phone]
    return numbers, [r.plate for r in recipients if not r.phone]


# -- the per-number report ------------------------------------------------------------------------

def report_rows(numbers: Iterable[CampaignNumber]) -> Iterator[list]:
    """Header first, then one row per number: its outcome, attempts and their durations."""
    yield list(REPORT_COLUMNS)
    for n in numbers:
        calls = [h for h in n.history if h.outcome != "lost"]
        yield [n.phone, n.plate or "", n.name or "", n.status, n.outcome or "",
               "" if n.confirmed is None else ("yes" if n.confirmed else "no"), n.attempts,
               round(sum(h.duration_s for h in calls), 1), calls[0].at if calls else "",
               calls[-1].at if calls else "", ";".join(h.outcome for h in calls),
               ";".join(f"{h.duration_s:g}" for h in calls)]


def report_json(n: CampaignNumber) -> dict:
    return {"phone": n.phone, "plate": n.plate, "name": n.name, "status": n.status, "outcome": n.outcome,
            "confirmed": n.confirmed, "attempts": n.attempts,
            "history": [{"at": h.at, "outcome": h.outcome, "duration_s": h.duration_s, "call_id": h.call_id}
                        for h in n.history]}


def report_bytes(numbers: Iterable[CampaignNumber], kind: str) -> bytes:
    """The report as a CSV (UTF-8 with a BOM, so spreadsheet programs read Chinese names) or XLSX file."""
    rows = report_rows(numbers)
    if kind == "xlsx":
        import openpyxl

        wb = openpyxl.Workbook(write_only=True)
        ws = wb.create_sheet("report")
        for row in rows:
            ws.append(row)
        out = io.BytesIO()
        wb.save(out)
        return out.getvalue()
    if kind != "csv":
        raise ValueError(f"unknown report format {kind!r}")
    text = io.StringIO(newline="")
    csv.writer(text).writerows(rows)
    return ("\ufeff" + text.getvalue()).encode("utf-8")
