"""The command line: import/export fleet, token issue, bad input → one line and non-zero exit."""

import pytest
import sqlalchemy as sa

from watchline.cli import main

HEADER = "plate,terminal_id,protocol,owner_name,owner_phone,tier,pin\n"


@pytest.fixture
def env(tmp_path, monkeypatch):
    url = f"sqlite:///{tmp_path / 'w.db'}"
    monkeypatch.setenv("WATCHLINE_DATABASE_URL", url)
    return url


def _count(url: str, table: str) -> int:
    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            return conn.execute(sa.text(f"SELECT count(*) FROM {table}")).scalar()
    finally:
        engine.dispose()


def test_import_export_reimport(env, tmp_path, capsys):
    src = tmp_path / "fleet.csv"
    src.write_text(HEADER + "京A1,13800000001,jt808,Zhang,13800138000,gold,1234\n"
                            "京A2,860000000000001,gt06,Zhang,13800138000,normal,5678\n", encoding="utf-8")
    assert main(["import", "fleet", str(src)]) == 0
    assert "imported 2 vehicles (2 new, 0 updated)" in capsys.readouterr().out
    out = tmp_path / "out.xlsx"
    assert main(["export", "fleet", str(out)]) == 0
    assert main(["import", "fleet", str(out)]) == 0  # empty PINs keep the stored ones
    assert "(0 new, 2 updated)" in capsys.readouterr().out
    assert _count(env, "owners") == 1


def test_bad_row_writes_nothing_and_names_the_line(env, tmp_path, capsys):
    src = tmp_path / "fleet.csv"
    src.write_text(HEADER + "A1,1,jt808,Z,13800138000,normal,1234\nA2,2,jt808,Z,13800138000,diamond,1234\n",
                   encoding="utf-8")
    assert main(["import", "fleet", str(src)]) == 1
    err = capsys.readouterr().err
    assert "line 3: unknown tier 'diamond'" in err and "nothing imported" in err
    engine = sa.create_engine(env)
    with engine.connect() as conn:
        assert not sa.inspect(conn).has_table("vehicles") or _count(env, "vehicles") == 0


def test_token_issue_prints_a_token(env, capsys):
    assert main(["token", "issue", "--role", "platform", "--name", "traccar"]) == 0
    token = capsys.readouterr().out.strip()
    assert token.startswith("wl_") and len(token) > 40
    assert _count(env, "api_tokens") == 1


@pytest.mark.parametrize("argv, message", [
    (["import", "fleet", "/nonexistent.csv"], "no such file"),
    (["export", "fleet", "x.pdf"], "choose a .csv or .xlsx"),
])
def test_bad_input_is_one_line(env, capsys, argv, message):
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and "\n" not in err


def test_bad_config_value_names_the_key(tmp_path, capsys):
    cfg = tmp_path / "w.toml"
    cfg.write_text('[ingest]\njt808 = "tcp:nope"\n')
    assert main(["import", "fleet", "x.csv", "--config", str(cfg)]) == 2
    assert "ingest.jt808" in capsys.readouterr().err
