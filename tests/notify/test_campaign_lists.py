"""Campaign lists (CSV/XLSX) in, per-number reports (CSV/XLSX) out."""

import csv
import io

import openpyxl
import pytest

from crm.campaign_records import Attempt, CampaignNumber, Recipient
from notify.campaign_lists import (
    ListError,
    numbers_from_entries,
    numbers_from_fleet,
    parse_list,
    read_table,
    report_bytes,
)

T = "2026-06-01T02:00:00Z"


def entries(text: str):
    return parse_list(read_table(text.encode("utf-8"), "csv"), "CN")


def test_csv_with_phones_plates_names_and_variables():
    got = entries("\ufeffPhone,plate,name,due\n138 0013 8000,粤b 12345,Zhang,June 30\n\n,京A1,,July\n")
    assert [(e.line, e.phone, e.plate, e.name, e.variables) for e in got] == [
        (2, "+8613800138000", "粤B12345", "Zhang", {"due": "June 30"}),
        (4, None, "京A1", None, {"due": "July"})]
    owners = {"京A1": Recipient("京A1", "Li", "+8613900139000", "zh")}
    numbers = numbers_from_entries(got, owners)
    assert [(n.phone, n.plate, n.name) for n in numbers] == [("+8613800138000", "粤B12345", "Zhang"),
                                                             ("+8613900139000", "京A1", "Li")]


def test_xlsx_list_with_numbers_typed_as_numbers():
    wb = openpyxl.Workbook()
    ws = wb.active
    ws.append(["phone", "name"])
    ws.append([13800138000, "Zhang"])
    out = io.BytesIO()
    wb.save(out)
    got = parse_list(read_table(out.getvalue(), "xlsx"), "CN")
    assert [(e.line, e.phone, e.name) for e in got] == [(2, "+8613800138000", "Zhang")]


@pytest.mark.parametrize("text, message", [
    ("", "line 1: the list is empty; expected a header row"),
    ("name\nZhang\n", "line 1: the header needs a phone or a plate column"),
    ("phone,due date\n1\n", "line 1: bad column name(s): due date"),
    ("phone,phone\n1,2\n", "line 1: duplicate column(s): phone"),
    ("phone,name\n13800138000,A\n12345,B\n,C\n", "line 3: invalid phone '12345'; line 4: neither a phone nor a plate"),
])
def test_bad_lists_name_their_lines(text, message):
    with pytest.raises(ListError) as e:
        entries(text)
    assert str(e.value) == message


def test_not_utf8_and_not_xlsx():
    with pytest.raises(ListError, match="line 3: not UTF-8"):
        list(read_table("phone\n\n13800138000,\xe9\n".encode("latin-1"), "csv"))
    with pytest.raises(ListError, match="not a readable XLSX"):
        list(read_table(b"PK nonsense", "xlsx"))


def test_unknown_plates_and_owners_without_phones_are_errors():
    got = entries("plate\nA1\nA2\n")
    with pytest.raises(ListError) as e:
        numbers_from_entries(got, {"A2": Recipient("A2", "X", None, "zh")})
    assert str(e.value) == "line 2: no vehicle with plate A1; line 3: the owner of A2 has no phone"


def test_fleet_recipients_without_phone_are_left_out():
    numbers, left_out = numbers_from_fleet([Recipient("A1", "X", "+8613800138000", "zh"),
                                            Recipient("A2", "Y", None, "zh")])
    assert [n.plate for n in numbers] == ["A1"] and left_out == ["A2"]


def number(**kw) -> CampaignNumber:
    values = dict(id=1, campaign_id=1, phone="+8613800138000", plate="粤B1", name="张伟", variables={},
                  status="done", outcome="confirmed", attempts=2, confirmed=True, next_attempt_at=None, updated_at=None,
                  history=(Attempt(T, "busy", 0.0, None), Attempt(T, "lost", 0, None),
                           Attempt("2026-06-01T02:10:00Z", "confirmed", 12.5, "c2")))
    values.update(kw)
    return CampaignNumber(**values)


def test_report_csv_and_xlsx():
    rows = list(csv.reader(io.StringIO(report_bytes([number()], "csv").decode("utf-8-sig"))))
    assert rows[0][:7] == ["phone", "plate", "name", "status", "outcome", "confirmed", "attempts"]
    assert rows[1] == ["+8613800138000", "粤B1", "张伟", "done", "confirmed", "yes", "2", "12.5", T,
                       "2026-06-01T02:10:00Z", "busy;confirmed", "0;12.5"]
    wb = openpyxl.load_workbook(io.BytesIO(report_bytes([number(), number(id=2, history=(), outcome="dnc",
                                                                          status="skipped", confirmed=None,
                                                                          attempts=0)], "xlsx")))
    values = list(wb.active.iter_rows(values_only=True))
    assert values[1][4] == "confirmed" and values[2][3:7] == ("skipped", "dnc", None, 0)
