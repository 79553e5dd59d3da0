"""Fleet file parsing and validation: line numbers, reasons, CSV and XLSX."""

from pathlib import Path

import pytest

from crm.fleet import COLUMNS, FleetFileError, export_rows, read_rows, validate, write_file

HEADER = "plate,terminal_id,protocol,owner_name,owner_phone,tier,pin,backup_phone,kind\n"


def _csv(tmp_path: Path, body: str, header: str = HEADER) -> Path:
    path = tmp_path / "fleet.csv"
    path.write_text(header + body, encoding="utf-8")
    return path


def test_good_rows_are_normalised(tmp_path):
    path = _csv(tmp_path, "京a 12345,013800000001,JT808,Zhang,138 0013 8000,Gold,123456,+85291234567,rescue\n")
    good, errors = validate(read_rows(path), "CN")
    assert errors == []
    row = good[0]
    assert (row.plate, row.terminal_id, row.protocol, row.tier, row.kind) == (
        "京A12345", "13800000001", "jt808", "gold", "rescue")
    assert row.owner_phone.e164 == "+8613800138000"
    assert row.backup_phone.e164 == "+85291234567"


@pytest.mark.parametrize("cells, reason", [
    ("!!,1,jt808,Z,13800138000,normal,1234,,", "bad plate"),
    ("A1,1,jt808,Z,13800138000,vip,1234,,", "unknown tier"),
    ("A1,1,jt808,Z,13800138000,normal,12a4,,", "pin must be 4 to 8 digits"),
    ("A1,1,jt808,Z,12345,normal,1234,,", "invalid phone"),
    ("A1,12345,gt06,Z,13800138000,normal,1234,,", "bad terminal_id"),
    ("A1,1,tcp,Z,13800138000,normal,1234,,", "unknown protocol"),
    ("A1,1,jt808,Z,13800138000,normal,1234,,truck", "unknown kind"),
    ("A1,1,jt808,,13800138000,normal,1234,,", "owner_name is empty"),
])
def test_each_bad_row_names_its_line_and_reason(tmp_path, cells, reason):
    path = _csv(tmp_path, "A0,9,jt808,Z,13800138000,normal,1234,,\n" + cells + "\n")
    good, errors = validate(read_rows(path), "CN")
    assert [e.line for e in errors] == [3]
    assert reason in errors[0].reason


def test_duplicates_inside_the_file_name_both_lines(tmp_path):
    path = _csv(tmp_path, "A1,7,jt808,Z,13800138000,normal,1234,,\n\nA2,007,jt808,Z,13800138000,normal,1234,,\n"
                          "a1,8,jt808,Z,13800138000,normal,1234,,\n")
    _, errors = validate(read_rows(path), "CN")
    # Blank line 3 still counts, as a spreadsheet shows it.
    assert [(e.line, e.reason) for e in errors] == [
        (4, "duplicate terminal id 7 (also on line 2)"), (5, "duplicate plate A1 (also on line 2)")]


def test_quoted_multiline_cell_counts_as_one_spreadsheet_row(tmp_path):
    path = _csv(tmp_path, 'A1,1,jt808,"Zhang\nWei",13800138000,normal,1234,,\nA2,2,jt808,Z,1,normal,1234,,\n')
    _, errors = validate(read_rows(path), "CN")
    assert [e.line for e in errors] == [3]


def test_header_problems_are_line_1(tmp_path):
    with pytest.raises(FleetFileError, match="line 1: missing required column"):
        list(read_rows(_csv(tmp_path, "", header="plate,protocol\n")))
    with pytest.raises(FleetFileError, match="line 1: unknown column"):
        list(read_rows(_csv(tmp_path, "", header=HEADER.strip() + ",colour\n")))


def test_non_utf8_is_reported_with_its_line(tmp_path):
    path = tmp_path / "fleet.csv"
    path.write_bytes(HEADER.encode() + "A1,1,jt808,张,13800138000,normal,1234,,\n".encode("gbk"))
    with pytest.raises(FleetFileError, match="line 2: not UTF-8"):
        list(read_rows(path))


def test_xlsx_round_trip_without_pins(tmp_path):
    import openpyxl

    src = tmp_path / "in.xlsx"
    wb = openpyxl.Workbook()
    ws = wb.active
    ws.append(list(COLUMNS))
    ws.append(["粤B1", 13800000001, "jt808", "Li", 13800138000, "normal", 1234, None, None, None, None, None,
               None, "tow; battery"])
    wb.save(src)
    good, errors = validate(read_rows(src), "CN")
    assert errors == [] and good[0].terminal_id == "13800000001" and good[0].pin == "1234"
    assert good[0].skills == ("tow", "battery")


def test_export_rows_leave_the_pin_empty():
    from datetime import datetime, timezone

    from crm.vehicles import Contact, Owner, Terminal, Vehicle

    now = datetime.now(timezone.utc)
    v = Vehicle(1, "A1", None, "customer", "gold", None, None, (), Owner(1, "Li", "zh", (
        Contact(0, "phone", "+8613800138000", "owner"),)), (Terminal("gt06", "860000000000001"),), True, now, now)
    header, row = list(export_rows([v]))
    assert row[header.index("pin")] == "" and row[header.index("owner_phone")] == "+8613800138000"


def test_write_file_counts_data_rows(tmp_path):
    assert write_file(tmp_path / "x.csv", iter([list(COLUMNS), ["a"] * len(COLUMNS)])) == 1
