"""Schema migrations (Alembic), callable from the CLI and from ``serve`` for an embedded SQLite."""

from __future__ import annotations

from pathlib import Path

import sqlalchemy as sa
from alembic import command
from alembic.config import Config as AlembicConfig
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory

_HERE = Path(__file__).parent


def _alembic_config(engine: sa.Engine) -> AlembicConfig:
    cfg = AlembicConfig()
    cfg.set_main_option("script_location", str(_HERE / "migrations"))
    cfg.attributes["engine"] = engine
    return cfg


def upgrade(engine: sa.Engine, revision: str = "heads") -> None:
    command.upgrade(_alembic_config(engine), revision)


def current_revision(engine: sa.Engine) -> str | None:
    """The applied revision(s), comma-joined in sorted order (several only while branches are open)."""
    with engine.connect() as conn:
        heads = MigrationContext.configure(conn).get_current_heads()
    return ",".join(sorted(heads)) or None


def head_revision(engine: sa.Engine) -> str:
    return ",".join(sorted(ScriptDirectory.from_config(_alembic_config(engine)).get_heads()))
