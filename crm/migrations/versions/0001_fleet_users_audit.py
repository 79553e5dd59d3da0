"""Fleet (owners, contacts, vehicles, terminals), users and API tokens, audit log.

Revision ID: 0001
Revises:
Create Date: 2026-11-22
"""
import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "owners",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("language", sa.String(8), nullable=False, server_default="zh"),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("updated_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_owners"),
    )
    op.create_index("ix_owners_name_lower", "owners", [sa.text("lower(name)")])
    op.create_table(
        "contacts",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("owner_id", sa.Integer, nullable=False),
        sa.Column("position", sa.Integer, nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("value", sa.String(254), nullable=False),
        sa.Column("national", sa.String(32), nullable=True),
        sa.Column("label", sa.String(64), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_contacts"),
        sa.ForeignKeyConstraint(["owner_id"], ["owners.id"], name="fk_contacts_owner_id_owners", ondelete="CASCADE"),
        sa.UniqueConstraint("owner_id", "position", name="uq_contacts_owner_id_position"),
    )
    op.create_index("ix_contacts_value", "contacts", ["value"])
    op.create_index("ix_contacts_national", "contacts", ["national"])
    op.create_table(
        "vehicles",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("plate", sa.String(32), nullable=False),
        sa.Column("vin", sa.String(17), nullable=True),
        sa.Column("kind", sa.String(16), nullable=False, server_default="customer"),
        sa.Column("tier", sa.String(16), nullable=False, server_default="normal"),
        sa.Column("model", sa.String(100), nullable=True),
        sa.Column("color", sa.String(32), nullable=True),
        sa.Column("skills", sa.Text, nullable=False, server_default=""),
        sa.Column("owner_id", sa.Integer, nullable=True),
        sa.Column("pin_hash", sa.String(200), nullable=True),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("updated_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_vehicles"),
        sa.ForeignKeyConstraint(["owner_id"], ["owners.id"], name="fk_vehicles_owner_id_owners"),
        sa.UniqueConstraint("plate", name="uq_vehicles_plate"),
    )
    op.create_index("ix_vehicles_owner_id", "vehicles", ["owner_id"])
    op.create_table(
        "terminals",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("protocol", sa.String(16), nullable=False),
        sa.Column("terminal_id", sa.String(64), nullable=False),
        sa.Column("vehicle_id", sa.Integer, nullable=False),
        sa.Column("auth_code", sa.String(64), nullable=True),
        sa.Column("lenient_checksum", sa.Boolean, nullable=False, server_default=sa.false()),
        sa.PrimaryKeyConstraint("id", name="pk_terminals"),
        sa.ForeignKeyConstraint(
            ["vehicle_id"], ["vehicles.id"], name="fk_terminals_vehicle_id_vehicles", ondelete="CASCADE"
        ),
        sa.UniqueConstraint("protocol", "terminal_id", name="uq_terminals_protocol_terminal_id"),
    )
    op.create_index("ix_terminals_vehicle_id", "terminals", ["vehicle_id"])
    op.create_table(
        "users",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("name", sa.String(100), nullable=False),
        sa.Column("role", sa.String(16), nullable=False),
        sa.Column("skills", sa.Text, nullable=False, server_default=""),
        sa.Column("active", sa.Boolean, nullable=False, server_default=sa.true()),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_users"),
        sa.UniqueConstraint("name", name="uq_users_name"),
    )
    op.create_table(
        "api_tokens",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("token_hash", sa.String(64), nullable=False),
        sa.Column("user_id", sa.Integer, nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("revoked_at", sa.DateTime(), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_api_tokens"),
        sa.ForeignKeyConstraint(["user_id"], ["users.id"], name="fk_api_tokens_user_id_users", ondelete="CASCADE"),
        sa.UniqueConstraint("token_hash", name="uq_api_tokens_token_hash"),
    )
    op.create_table(
        "audit_log",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("time", sa.DateTime(), nullable=False),
        sa.Column("actor", sa.String(100), nullable=False),
        sa.Column("action", sa.String(64), nullable=False),
        sa.Column("object_type", sa.String(32), nullable=False),
        sa.Column("object_id", sa.String(64), nullable=True),
        sa.Column("details", sa.JSON, nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_audit_log"),
    )
    op.create_index("ix_audit_log_object", "audit_log", ["object_type", "object_id"])
    op.create_index("ix_audit_log_time", "audit_log", ["time"])


def downgrade() -> None:
    for table in ("audit_log", "api_tokens", "users", "terminals", "vehicles", "contacts", "owners"):
        op.drop_table(table)
