"""Positions: every accepted position report, newest-first per vehicle.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-22
"""
import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "positions",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True),
        sa.Column("vehicle_id", sa.Integer, nullable=False),
        sa.Column("report_id", sa.String(64), nullable=False),
        sa.Column("time", sa.DateTime(), nullable=False),
        sa.Column("received_at", sa.DateTime(), nullable=False),
        sa.Column("lat", sa.Float, nullable=True),
        sa.Column("lon", sa.Float, nullable=True),
        sa.Column("altitude", sa.Float, nullable=True),
        sa.Column("speed_kmh", sa.Float, nullable=True),
        sa.Column("course", sa.Float, nullable=True),
        sa.Column("valid", sa.Boolean, nullable=False),
        sa.Column("satellites", sa.Integer, nullable=True),
        sa.Column("alarms", sa.JSON, nullable=False),
        sa.Column("status", sa.JSON, nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_positions"),
        sa.ForeignKeyConstraint(["vehicle_id"], ["vehicles.id"], name="fk_positions_vehicle_id_vehicles",
                                ondelete="CASCADE"),
        sa.UniqueConstraint("report_id", name="uq_positions_report_id"),
    )
    op.create_index("ix_positions_vehicle_id_time", "positions", ["vehicle_id", "time"])


def downgrade() -> None:
    op.drop_table("positions")
