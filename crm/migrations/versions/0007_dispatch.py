"""Geofences, rescue trucks' availability and work orders.

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-30
"""
import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table("fences",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("geometry", sa.JSON(), nullable=False),
        sa.Column("owner_id", sa.Integer(), nullable=True),
        sa.Column("active", sa.Boolean(), server_default=sa.true(), nullable=False),
        sa.Column("revision", sa.Integer(), server_default="1", nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("updated_at", sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(["owner_id"], ["owners.id"], name=op.f("fk_fences_owner_id_owners"), ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_fences"))
    )
    with op.batch_alter_table("fences", schema=None) as batch_op:
        batch_op.create_index("ix_fences_owner_id", ["owner_id"], unique=False)
        batch_op.create_index("ix_fences_updated_at", ["updated_at"], unique=False)

    op.create_table("rescue_trucks",
        sa.Column("vehicle_id", sa.Integer(), nullable=False),
        sa.Column("availability", sa.String(length=16), nullable=False),
        sa.Column("work_order_id", sa.Integer(), nullable=True),
        sa.Column("changed_at", sa.DateTime(), nullable=False),
        sa.Column("changed_by", sa.String(length=100), nullable=False),
        sa.ForeignKeyConstraint(["vehicle_id"], ["vehicles.id"], name=op.f("fk_rescue_trucks_vehicle_id_vehicles"), ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("vehicle_id", name=op.f("pk_rescue_trucks"))
    )

    op.create_table("work_orders",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("incident_id", sa.Integer(), nullable=True),
        sa.Column("truck_id", sa.Integer(), nullable=False),
        sa.Column("customer_plate", sa.String(length=32), nullable=True),
        sa.Column("contact_phone", sa.String(length=32), nullable=True),
        sa.Column("site_lat", sa.Float(), nullable=False),
        sa.Column("site_lon", sa.Float(), nullable=False),
        sa.Column("address", sa.Text(), nullable=True),
        sa.Column("distance_m", sa.Float(), nullable=True),
        sa.Column("eta_s", sa.Float(), nullable=True),
        sa.Column("note", sa.Text(), nullable=True),
        sa.Column("created_by", sa.String(length=100), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("updated_at", sa.DateTime(), nullable=False),
        sa.Column("en_route_at", sa.DateTime(), nullable=True),
        sa.Column("on_site_at", sa.DateTime(), nullable=True),
        sa.Column("completed_at", sa.DateTime(), nullable=True),
        sa.Column("cancelled_at", sa.DateTime(), nullable=True),
        sa.ForeignKeyConstraint(["incident_id"], ["incidents.id"], name=op.f("fk_work_orders_incident_id_incidents"), ondelete="SET NULL"),
        sa.ForeignKeyConstraint(["truck_id"], ["vehicles.id"], name=op.f("fk_work_orders_truck_id_vehicles")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_work_orders"))
    )
    with op.batch_alter_table("work_orders", schema=None) as batch_op:
        batch_op.create_index("ix_work_orders_incident_id", ["incident_id"], unique=False)
        batch_op.create_index("ix_work_orders_status", ["status"], unique=False)
        batch_op.create_index("ix_work_orders_truck_id", ["truck_id"], unique=False)


def downgrade() -> None:
    op.drop_table("work_orders")
    op.drop_table("rescue_trucks")
    op.drop_table("fences")
