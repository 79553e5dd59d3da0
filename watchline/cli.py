"""The ``watchline`` command: serve, demo, db upgrade, import/export fleet, token issue, simulate, campaign.

Every command takes ``--config FILE`` and exits non-zero with a one-line reason on bad input.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from pathlib import Path

from watchline.config import Config, ConfigError, load_config


class UsageError(Exception):
    """Bad input from the command line: printed as one line, exit status 2."""


def _add_config(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", metavar="FILE", default=os.environ.get("WATCHLINE_CONFIG"),
                   help="TOML config file (default: built-in embedded settings)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="watchline", description="Watchline alarm desk")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("serve", help="run Watchline (all roles, or one)")
    _add_config(p)
    p.add_argument("--role", choices=("all", "ingest", "worker", "api", "telephony"), default="all")

    p = sub.add_parser("demo", help="serve plus simulated terminals, phones and agents")
    _add_config(p)

    p = sub.add_parser("db", help="database maintenance")
    dbsub = p.add_subparsers(dest="db_command", required=True)
    p = dbsub.add_parser("upgrade", help="apply schema migrations")
    _add_config(p)

    p = sub.add_parser("import", help="import data")
    isub = p.add_subparsers(dest="what", required=True)
    p = isub.add_parser("fleet", help="import vehicles, owners and terminals from CSV or XLSX")
    _add_config(p)
    p.add_argument("file")

    p = sub.add_parser("export", help="export data")
    esub = p.add_subparsers(dest="what", required=True)
    p = esub.add_parser("fleet", help="export the fleet as CSV or XLSX (no PINs)")
    _add_config(p)
    p.add_argument("file")

    p = sub.add_parser("token", help="API tokens")
    tsub = p.add_subparsers(dest="token_command", required=True)
    p = tsub.add_parser("issue", help="print a new bearer token")
    _add_config(p)
    p.add_argument("--role", required=True, choices=("admin", "supervisor", "agent", "dispatcher", "platform"))
    p.add_argument("--name")

    p = sub.add_parser("simulate", help="simulators usable against any running Watchline")
    ssub = p.add_subparsers(dest="what", required=True)
    p = ssub.add_parser("terminals", help="a fleet of simulated GPS terminals")
    _add_config(p)
    p.add_argument("--protocol", choices=("jt808", "gt06"), default="jt808")
    p.add_argument("--count", type=int, default=10)
    p.add_argument("--rate", type=float, default=10.0, help="reports per second, whole fleet")
    p.add_argument("--alarm-ratio", type=float, default=0.0)
    p.add_argument("--duration", type=float, default=30.0, help="seconds to run")
    p.add_argument("--target", default=None, help="HOST:PORT (default: 127.0.0.1 and the protocol's port)")
    p.add_argument("--version", type=int, choices=(2013, 2019), default=2013, help="JT/T 808 header flavour")
    p.add_argument("--first-id", type=int, default=None,
                   help="first terminal phone (jt808) or IMEI (gt06); the rest count up from it")
    from watchline import campaign_cli

    campaign_cli.add_parser(sub, _add_config)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("alembic").setLevel(logging.WARNING)
    try:
        config = load_config(args.config)
        return _dispatch(args, config)
    except (ConfigError, UsageError) as e:
        print(f"watchline: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


def _dispatch(args, config: Config) -> int:
    if args.command in ("serve", "demo"):
        from twisted.internet import reactor  # the process's reactor is chosen here, at the edge

        from watchline.run import run_server

        return run_server(config, reactor, role=getattr(args, "role", "all"), demo=args.command == "demo")
    if args.command == "db":
        return _db_upgrade(config)
    if args.command == "import":
        return _import_fleet(config, Path(args.file))
    if args.command == "export":
        return _export_fleet(config, Path(args.file))
    if args.command == "token":
        return _issue_token(config, args.role, args.name)
    if args.command == "campaign":
        from watchline import campaign_cli

        return campaign_cli.run(args, config, _open_db, UsageError)
    if args.command == "simulate":
        from twisted.internet import reactor

        from watchline.simulate import simulate_terminals

        return simulate_terminals(config, args, reactor)
    raise UsageError(f"unknown command {args.command}")


def _open_db(config: Config, upgrade: bool = True):
    from crm.db import Database
    from crm.migrate import current_revision, head_revision
    from crm.migrate import upgrade as do_upgrade

    db = Database(config.database.url, reactor=None, pool_size=config.database.pool_size)
    try:
        if upgrade and db.dialect == "sqlite":
            do_upgrade(db.engine)
        elif current_revision(db.engine) != head_revision(db.engine):
            raise UsageError("the database schema is not up to date: run 'watchline db upgrade'")
    except Exception as e:
        if isinstance(e, UsageError):
            raise
        raise UsageError(f"cannot open database {_safe_url(config.database.url)}: {e.__class__.__name__}: "
                         f"{str(e).splitlines()[0]}") from None
    return db


def _safe_url(url: str) -> str:
    import sqlalchemy as sa

    try:
        return sa.make_url(url).render_as_string(hide_password=True)
    except Exception:
        return "<unparsable url>"


def _db_upgrade(config: Config) -> int:
    from crm.db import Database
    from crm.migrate import current_revision, upgrade

    db = Database(config.database.url, reactor=None)
    try:
        upgrade(db.engine)
    except Exception as e:
        raise UsageError(f"migration failed on {_safe_url(config.database.url)}: {str(e).splitlines()[0]}") from None
    print(f"database at revision {current_revision(db.engine)}")
    return 0


def _import_fleet(config: Config, path: Path) -> int:
    from crm.fleet import FleetFileError, read_rows, validate
    from crm.vehicles import FleetImportError

    if not path.exists():
        raise UsageError(f"{path}: no such file")
    try:
        rows, errors = validate(read_rows(path), config.notify.phone_region)
    except FleetFileError as e:
        raise UsageError(f"{path.name}: {e}") from None
    if not errors and not rows:
        raise UsageError(f"{path.name}: no data rows")
    if not errors:
        db = _open_db(config)
        try:
            result = db.vehicles.import_rows_blocking(rows)
        except FleetImportError as e:
            errors = e.errors
    if errors:
        for err in errors:
            print(f"{path.name}: {err}", file=sys.stderr)
        print(f"watchline: {path.name}: {len(errors)} bad row(s); nothing imported", file=sys.stderr)
        return 1
    print(f"imported {result.total} vehicles ({result.created} new, {result.updated} updated) from {path.name}")
    return 0


def _export_fleet(config: Config, path: Path) -> int:
    from crm.fleet import export_rows, write_file

    if path.suffix.lower() not in (".csv", ".xlsx"):
        raise UsageError(f"{path}: choose a .csv or .xlsx file name")
    db = _open_db(config)
    count = write_file(path, export_rows(db.vehicles.iter_all_blocking()))
    print(f"exported {count} rows to {path} (PINs are never exported)")
    return 0


def _issue_token(config: Config, role: str, name: str | None) -> int:
    db = _open_db(config)
    try:
        token = db.users.issue_token_blocking(role, name)
    except ValueError as e:
        raise UsageError(str(e)) from None
    print(token)
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
