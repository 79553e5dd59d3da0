"""``watchline campaign …``: create from a list or the fleet, act, report, the do-not-call list; bad input
gives one line and a non-zero exit."""

import csv
import json

import openpyxl
import pytest
import sqlalchemy as sa

from watchline.cli import main

FLEET = ("plate,terminal_id,protocol,owner_name,owner_phone,tier,pin\n"
         "京A1,13800000001,jt808,Zhang,13800138001,gold,1234\n"
         "京A2,13800000002,jt808,Li,13800138002,normal,1234\n")


@pytest.fixture
def env(tmp_path, monkeypatch):
    url = f"sqlite:///{tmp_path / 'w.db'}"
    monkeypatch.setenv("WATCHLINE_DATABASE_URL", url)
    return url


def rows(url: str, sql: str) -> list:
    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            return conn.execute(sa.text(sql)).all()
    finally:
        engine.dispose()


def test_create_from_a_list_then_act_show_and_report(env, tmp_path, capsys):
    src = tmp_path / "fleet.csv"
    src.write_text(FLEET, encoding="utf-8")
    assert main(["import", "fleet", str(src)]) == 0
    assert main(["campaign", "dnc", "add", "139 0013 9000", "--reason", "asked"]) == 0
    listing = tmp_path / "notice.csv"
    listing.write_text("phone,plate,name,due\n13800138000,,Wang,June 30\n,京A1,,July 1\n13900139000,,X,May\n",
                       encoding="utf-8")
    template = tmp_path / "notice.txt"
    template.write_text("{{ name }}: inspection due {{ due }}", encoding="utf-8")
    capsys.readouterr()
    assert main(["campaign", "create", "--name", "Inspection", "--template", f"@{template}", "--list", str(listing),
                 "--lines", "4", "--window", "08:00-18:00", "--days", "mon-fri", "--confirm",
                 "--retry", "busy=600x3,no_answer=1800x2"]) == 0
    assert "campaign 1 created: 3 numbers (1 on the do-not-call list), draft" in capsys.readouterr().out
    (campaign,) = rows(env, "SELECT lines, confirm, schedule, retry, status FROM campaigns")
    assert campaign[0] == 4 and campaign[1] and campaign[4] == "draft"
    assert json.loads(campaign[2]) == {"start": "08:00", "end": "18:00", "days": ["mon", "tue", "wed", "thu", "fri"],
                                       "timezone": "Asia/Shanghai"}
    assert json.loads(campaign[3]) == {"busy": {"after_s": 600.0, "max": 3}, "no_answer": {"after_s": 1800.0, "max": 2}}
    assert rows(env, "SELECT phone, name FROM campaign_numbers ORDER BY id")[1] == ("+8613800138001", "Zhang")
    for action, status in (("start", "running"), ("pause", "paused"), ("resume", "running")):
        assert main(["campaign", action, "1"]) == 0
        assert f"campaign 1 is {status}" in capsys.readouterr().out
    assert main(["campaign", "start", "1"]) == 2
    assert "cannot start a campaign that is running" in capsys.readouterr().err
    assert main(["campaign", "show", "1"]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert shown["status"] == "running" and shown["progress"]["total"] == 3 and shown["progress"]["pending"] == 2
    assert main(["campaign", "list"]) == 0
    assert "1\trunning\t1/3 finished" in capsys.readouterr().out
    out = tmp_path / "report.csv"
    assert main(["campaign", "report", "1", "--out", str(out)]) == 0
    report = list(csv.reader(out.open(encoding="utf-8-sig")))
    assert report[0][:5] == ["phone", "plate", "name", "status", "outcome"] and len(report) == 4
    assert report[3][3:5] == ["skipped", "dnc"]
    xlsx = tmp_path / "report.xlsx"
    assert main(["campaign", "report", "1", "--format", "xlsx", "--out", str(xlsx)]) == 0
    assert openpyxl.load_workbook(xlsx).active.max_row == 4
    assert main(["campaign", "cancel", "1"]) == 0


def test_create_from_a_fleet_filter_and_start(env, tmp_path, capsys):
    src = tmp_path / "fleet.csv"
    src.write_text(FLEET, encoding="utf-8")
    assert main(["import", "fleet", str(src)]) == 0
    assert main(["campaign", "create", "--name", "Gold", "--template", "Hi {{ name }}", "--tier", "gold",
                 "--start"]) == 0
    assert "1 numbers (0 on the do-not-call list), running" in capsys.readouterr().out
    assert rows(env, "SELECT phone, plate FROM campaign_numbers") == [("+8613800138001", "京A1")]


def test_do_not_call_list(env, capsys):
    assert main(["campaign", "dnc", "add", "13800138000"]) == 0
    assert main(["campaign", "dnc", "list"]) == 0
    assert capsys.readouterr().out.splitlines()[-1].startswith("+8613800138000\t")
    assert main(["campaign", "dnc", "remove", "+8613800138000"]) == 0
    assert main(["campaign", "dnc", "remove", "+8613800138000"]) == 2
    assert "is not on the do-not-call list" in capsys.readouterr().err


@pytest.mark.parametrize("argv, files, message", [
    (["--list", "L"], {"L": "phone\n13800138000\n12345\n"}, "L: line 3: invalid phone '12345'"),
    (["--list", "L"], {"L": "name\nX\n"}, "L: line 1: the header needs a phone or a plate column"),
    (["--list", "L"], {"L": "plate\nNOPE\n"}, "L: line 2: no vehicle with plate NOPE"),
    (["--list", "L", "--window", "9-5"], {"L": "phone\n13800138000\n"}, "window must look like 09:00-18:00"),
    (["--list", "L", "--days", "someday"], {"L": "phone\n13800138000\n"}, "bad day 'someday'"),
    (["--list", "L", "--retry", "busy=x"], {"L": "phone\n13800138000\n"}, "bad rule 'busy=x'"),
    (["--list", "L", "--lines", "0"], {"L": "phone\n13800138000\n"}, "lines must be an integer from 1"),
    (["--list", "missing.csv"], {}, "missing.csv: cannot read"),
    (["--list", "L", "--tier", "gold"], {"L": "phone\n13800138000\n"}, "give either --list FILE or a fleet filter"),
    (["--tier", "diamond"], {}, "tier must be one of"),
])
def test_bad_create_input_is_one_line(env, tmp_path, capsys, argv, files, message):
    for name, text in files.items():
        (tmp_path / name).write_text(text, encoding="utf-8")
    argv = [str(tmp_path / a) if a in files or a.endswith(".csv") else a for a in argv]
    assert main(["campaign", "create", "--name", "N", "--template", "{{ name }}", *argv]) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and "\n" not in err, err
    assert not sa.inspect(sa.create_engine(env)).has_table("campaigns") or rows(env, "SELECT id FROM campaigns") == []


@pytest.mark.parametrize("argv, message", [
    (["campaign", "show", "7"], "no campaign 7"),
    (["campaign", "dnc", "add", "12"], "invalid phone '12'"),
    (["campaign", "report", "7", "--out", "x.pdf"], "no campaign 7"),
])
def test_bad_ids_and_numbers(env, capsys, argv, message):
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and "\n" not in err
