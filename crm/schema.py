"""The relational schema: every table Watchline keeps, as SQLAlchemy Core metadata.

Alembic migrations (crm/migrations) create and evolve these tables; the tests check that the
migrated schema equals this metadata, so the two cannot drift apart.
"""

from __future__ import annotations

from datetime import timezone

import sqlalchemy as sa

metadata = sa.MetaData(
    naming_convention={
        "ix": "ix_%(table_name)s_%(column_0_N_name)s",
        "uq": "uq_%(table_name)s_%(column_0_N_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
        "ck": "ck_%(table_name)s_%(constraint_name)s",
    }
)



class UtcDateTime(sa.TypeDecorator):
    """Timezone-aware UTC datetimes on every backend (SQLite keeps no zone of its own)."""

    impl = sa.DateTime
    cache_ok = True

    def process_bind_param(self, value, dialect):
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        return value.astimezone(timezone.utc).replace(tzinfo=None)

    def process_result_value(self, value, dialect):
        return None if value is None else value.replace(tzinfo=timezone.utc)


owners = sa.Table(
    "owners",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("name", sa.String(200), nullable=False),
    sa.Column("language", sa.String(8), nullable=False, server_default="zh"),
    sa.Column("created_at", UtcDateTime(), nullable=False),
    sa.Column("updated_at", UtcDateTime(), nullable=False),
    sa.Index("ix_owners_name_lower", sa.func.lower(sa.column("name"))),
)

# Ordered ways to reach an owner: position 0 is the primary phone, then backups, then e-mail.
contacts = sa.Table(
    "contacts",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("owner_id", sa.Integer, sa.ForeignKey("owners.id", ondelete="CASCADE"), nullable=False),
    sa.Column("position", sa.Integer, nullable=False),
    sa.Column("kind", sa.String(16), nullable=False),  # phone | email
    sa.Column("value", sa.String(254), nullable=False),  # E.164 for phones
    sa.Column("national", sa.String(32), nullable=True),  # national number digits, for search
    sa.Column("label", sa.String(64), nullable=True),  # owner | backup | ...
    sa.UniqueConstraint("owner_id", "position"),
    sa.Index("ix_contacts_value", "value"),
    sa.Index("ix_contacts_national", "national"),
)

vehicles = sa.Table(
    "vehicles",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("plate", sa.String(32), nullable=False, unique=True),
    sa.Column("vin", sa.String(17), nullable=True),
    sa.Column("kind", sa.String(16), nullable=False, server_default="customer"),  # customer | rescue
    sa.Column("tier", sa.String(16), nullable=False, server_default="normal"),  # platinum | gold | normal
    sa.Column("model", sa.String(100), nullable=True),
    sa.Column("color", sa.String(32), nullable=True),
    sa.Column("skills", sa.Text, nullable=False, server_default=""),  # comma-separated capabilities
    sa.Column("owner_id", sa.Integer, sa.ForeignKey("owners.id"), nullable=True),
    sa.Column("pin_hash", sa.String(200), nullable=True),
    sa.Column("created_at", UtcDateTime(), nullable=False),
    sa.Column("updated_at", UtcDateTime(), nullable=False),
    sa.Index("ix_vehicles_owner_id", "owner_id"),
)

terminals = sa.Table(
    "terminals",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("protocol", sa.String(16), nullable=False),  # jt808 | gt06 | traccar | http
    sa.Column("terminal_id", sa.String(64), nullable=False),
    sa.Column("vehicle_id", sa.Integer, sa.ForeignKey("vehicles.id", ondelete="CASCADE"), nullable=False),
    sa.Column("auth_code", sa.String(64), nullable=True),
    sa.Column("lenient_checksum", sa.Boolean, nullable=False, server_default=sa.false()),
    sa.UniqueConstraint("protocol", "terminal_id"),
    sa.Index("ix_terminals_vehicle_id", "vehicle_id"),
)

users = sa.Table(
    "users",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("name", sa.String(100), nullable=False, unique=True),
    sa.Column("role", sa.String(16), nullable=False),  # admin | supervisor | agent | dispatcher | platform
    sa.Column("skills", sa.Text, nullable=False, server_default=""),
    sa.Column("active", sa.Boolean, nullable=False, server_default=sa.true()),
    sa.Column("created_at", UtcDateTime(), nullable=False),
)

api_tokens = sa.Table(
    "api_tokens",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("token_hash", sa.String(64), nullable=False, unique=True),  # sha256 hex of the token
    sa.Column("user_id", sa.Integer, sa.ForeignKey("users.id", ondelete="CASCADE"), nullable=False),
    sa.Column("created_at", UtcDateTime(), nullable=False),
    sa.Column("revoked_at", UtcDateTime(), nullable=True),
)

# Append-only: rows are inserted, never updated or deleted (the storage component offers no way to).
audit_log = sa.Table(
    "audit_log",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("time", UtcDateTime(), nullable=False),
    sa.Column("actor", sa.String(100), nullable=False),
    sa.Column("action", sa.String(64), nullable=False),
    sa.Column("object_type", sa.String(32), nullable=False),
    sa.Column("object_id", sa.String(64), nullable=True),
    sa.Column("details", sa.JSON, nullable=True),
    sa.Index("ix_audit_log_object", "object_type", "object_id"),
    sa.Index("ix_audit_log_time", "time"),
)

# Every accepted position report, appended in batches by the position recorder.
positions = sa.Table(
    "positions",
    metadata,
    sa.Column("id", sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True),
    sa.Column("vehicle_id", sa.Integer, sa.ForeignKey("vehicles.id", ondelete="CASCADE"), nullable=False),
    sa.Column("report_id", sa.String(64), nullable=False),
    sa.Column("time", UtcDateTime(), nullable=False),
    sa.Column("received_at", UtcDateTime(), nullable=False),
    sa.Column("lat", sa.Float, nullable=True),
    sa.Column("lon", sa.Float, nullable=True),
    sa.Column("altitude", sa.Float, nullable=True),
    sa.Column("speed_kmh", sa.Float, nullable=True),
    sa.Column("course", sa.Float, nullable=True),
    sa.Column("valid", sa.Boolean, nullable=False),
    sa.Column("satellites", sa.Integer, nullable=True),
    sa.Column("alarms", sa.JSON, nullable=False),
    sa.Column("status", sa.JSON, nullable=True),
    sa.UniqueConstraint("report_id"),
    sa.Index("ix_positions_vehicle_id_time", "vehicle_id", "time"),
)

# One row per call leg (SIP Call-ID), written by the telephony core through db.calls.
calls = sa.Table(
    "calls",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("call_id", sa.String(200), nullable=False, unique=True),
    sa.Column("direction", sa.String(8), nullable=False),  # inbound | outbound
    sa.Column("from_number", sa.String(64), nullable=False),
    sa.Column("to_number", sa.String(64), nullable=False),
    sa.Column("started_at", UtcDateTime(), nullable=False),
    sa.Column("answered_at", UtcDateTime(), nullable=True),
    sa.Column("ended_at", UtcDateTime(), nullable=True),
    sa.Column("outcome", sa.String(32), nullable=True),
    sa.Column("recording_path", sa.String(500), nullable=True),
    sa.Index("ix_calls_started_at", "started_at"),
    sa.Index("ix_calls_to_number", "to_number"),
)

# Incidents: one alarm on one vehicle while it is open. ``open_key`` (plate|alarm) is set while the
# incident is unresolved and cleared on resolve: its uniqueness is what makes two workers unable to
# open two incidents for the same vehicle and alarm.
incidents = sa.Table(
    "incidents",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("plate", sa.String(32), nullable=False),
    sa.Column("alarm", sa.String(64), nullable=False),
    sa.Column("severity", sa.String(16), nullable=False),
    sa.Column("priority", sa.Integer, nullable=False),
    sa.Column("tier", sa.String(16), nullable=False),
    sa.Column("state", sa.String(16), nullable=False),
    sa.Column("policy", sa.JSON, nullable=False),
    sa.Column("step", sa.Integer, nullable=False, server_default="0"),
    sa.Column("count", sa.Integer, nullable=False, server_default="1"),
    sa.Column("open_key", sa.String(120), nullable=True, unique=True),
    sa.Column("opened_at", UtcDateTime(), nullable=False),
    sa.Column("updated_at", UtcDateTime(), nullable=False),
    sa.Column("last_seen_at", UtcDateTime(), nullable=False),
    sa.Column("due_at", UtcDateTime(), nullable=True),  # the next timer (ack timeout), persisted
    sa.Column("resolved_at", UtcDateTime(), nullable=True),
    sa.Column("assignee", sa.String(100), nullable=True),
    sa.Column("outcome", sa.String(32), nullable=True),
    sa.Column("note", sa.Text, nullable=True),
    sa.Column("terminal_protocol", sa.String(16), nullable=True),
    sa.Column("terminal_id", sa.String(64), nullable=True),
    sa.Column("alarm_serial", sa.Integer, nullable=True),  # JT/T 808 message serial, for 0x8203
    sa.Column("lat", sa.Float, nullable=True),
    sa.Column("lon", sa.Float, nullable=True),
    sa.Index("ix_incidents_state_priority", "state", "priority"),
    sa.Index("ix_incidents_plate", "plate"),
    sa.Index("ix_incidents_due_at", "due_at"),
)

incident_events = sa.Table(
    "incident_events",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("incident_id", sa.Integer, sa.ForeignKey("incidents.id", ondelete="CASCADE"), nullable=False),
    sa.Column("time", UtcDateTime(), nullable=False),
    sa.Column("actor", sa.String(100), nullable=False),
    sa.Column("kind", sa.String(32), nullable=False),
    sa.Column("text", sa.Text, nullable=False),
    sa.Column("data", sa.JSON, nullable=True),  # links: call_id, recording, work_order_id, ...
    sa.Index("ix_incident_events_incident_id", "incident_id"),
)

# --- geo and dispatch (migration 0007) -------------------------------------------------------------

fences = sa.Table(
    "fences",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("name", sa.String(100), nullable=False),
    sa.Column("kind", sa.String(16), nullable=False),  # circle | polygon | corridor
    sa.Column("geometry", sa.JSON, nullable=False),  # circle: lat, lon, radius_m; polygon: points; corridor: path, width_m
    sa.Column("owner_id", sa.Integer, sa.ForeignKey("owners.id", ondelete="CASCADE"), nullable=True),  # scope
    # Deleting only clears ``active`` and every write bumps ``revision``: the sum of revisions then moves
    # with every committed write, which is how running processes notice changes (db.fences.version).
    sa.Column("active", sa.Boolean, nullable=False, server_default=sa.true()),
    sa.Column("revision", sa.Integer, nullable=False, server_default="1"),
    sa.Column("created_at", UtcDateTime(), nullable=False),
    sa.Column("updated_at", UtcDateTime(), nullable=False),
    sa.Index("ix_fences_updated_at", "updated_at"),
    sa.Index("ix_fences_owner_id", "owner_id"),
)

rescue_trucks = sa.Table(
    "rescue_trucks",
    metadata,
    sa.Column("vehicle_id", sa.Integer, sa.ForeignKey("vehicles.id", ondelete="CASCADE"), primary_key=True),
    sa.Column("availability", sa.String(16), nullable=False),  # available | dispatched | en_route | ...
    sa.Column("work_order_id", sa.Integer, nullable=True),  # the order it is serving, if any
    sa.Column("changed_at", UtcDateTime(), nullable=False),
    sa.Column("changed_by", sa.String(100), nullable=False),
)

work_orders = sa.Table(
    "work_orders",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("kind", sa.String(16), nullable=False),  # tow | battery | tyre | fuel | accident
    sa.Column("status", sa.String(16), nullable=False),  # dispatched | en_route | on_site | completed | cancelled
    sa.Column("incident_id", sa.Integer, sa.ForeignKey("incidents.id", ondelete="SET NULL"), nullable=True),
    sa.Column("truck_id", sa.Integer, sa.ForeignKey("vehicles.id"), nullable=False),
    sa.Column("customer_plate", sa.String(32), nullable=True),
    sa.Column("contact_phone", sa.String(32), nullable=True),
    sa.Column("site_lat", sa.Float, nullable=False),
    sa.Column("site_lon", sa.Float, nullable=False),
    sa.Column("address", sa.Text, nullable=True),
    sa.Column("distance_m", sa.Float, nullable=True),  # truck to site when dispatched
    sa.Column("eta_s", sa.Float, nullable=True),
    sa.Column("note", sa.Text, nullable=True),
    sa.Column("created_by", sa.String(100), nullable=False),
    sa.Column("created_at", UtcDateTime(), nullable=False),
    sa.Column("updated_at", UtcDateTime(), nullable=False),
    sa.Column("en_route_at", UtcDateTime(), nullable=True),
    sa.Column("on_site_at", UtcDateTime(), nullable=True),
    sa.Column("completed_at", UtcDateTime(), nullable=True),
    sa.Column("cancelled_at", UtcDateTime(), nullable=True),
    sa.Index("ix_work_orders_status", "status"),
    sa.Index("ix_work_orders_truck_id", "truck_id"),
    sa.Index("ix_work_orders_incident_id", "incident_id"),
)

# --- notifications and campaigns (migration 0008) --------------------------------------------------

deliveries = sa.Table(
    "deliveries",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("channel", sa.String(16), nullable=False),  # voice | sms | email | webhook
    sa.Column("recipient", sa.String(500), nullable=False),  # E.164, address or URL
    sa.Column("template", sa.String(64), nullable=False),
    sa.Column("subject", sa.String(200), nullable=True),
    sa.Column("body", sa.Text, nullable=False),
    sa.Column("status", sa.String(16), nullable=False),  # pending | sent | delivered | failed
    sa.Column("attempts", sa.Integer, nullable=False, server_default="0"),
    sa.Column("error", sa.Text, nullable=True),
    sa.Column("external_id", sa.String(100), nullable=True),  # SMSC message id, SMTP queue id, ...
    sa.Column("incident_id", sa.Integer, sa.ForeignKey("incidents.id", ondelete="SET NULL"), nullable=True),
    sa.Column("work_order_id", sa.Integer, sa.ForeignKey("work_orders.id", ondelete="SET NULL"), nullable=True),
    sa.Column("created_at", UtcDateTime(), nullable=False),
    sa.Column("updated_at", UtcDateTime(), nullable=False),
    sa.Index("ix_deliveries_incident_id", "incident_id"),
    sa.Index("ix_deliveries_status", "status"),
)

campaigns = sa.Table(
    "campaigns",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("name", sa.String(200), nullable=False),
    sa.Column("status", sa.String(16), nullable=False),  # draft | running | paused | completed | cancelled
    sa.Column("template", sa.Text, nullable=False),  # jinja2 text read to each number
    sa.Column("language", sa.String(8), nullable=False, server_default="zh"),
    sa.Column("confirm", sa.Boolean, nullable=False, server_default=sa.false()),  # "press 1 to confirm"
    sa.Column("lines", sa.Integer, nullable=False),
    sa.Column("schedule", sa.JSON, nullable=False),  # {start, end, days, timezone}: when numbers may be dialled
    sa.Column("retry", sa.JSON, nullable=False),  # outcome -> {after_s, max}: max retries after that outcome
    sa.Column("caller_id", sa.String(32), nullable=True),  # the number presented to the called party
    sa.Column("created_by", sa.String(100), nullable=False),
    sa.Column("created_at", UtcDateTime(), nullable=False),
    sa.Column("updated_at", UtcDateTime(), nullable=False),
    sa.Column("started_at", UtcDateTime(), nullable=True),
    sa.Column("finished_at", UtcDateTime(), nullable=True),
)

campaign_numbers = sa.Table(
    "campaign_numbers",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("campaign_id", sa.Integer, sa.ForeignKey("campaigns.id", ondelete="CASCADE"), nullable=False),
    sa.Column("phone", sa.String(32), nullable=False),  # E.164
    sa.Column("plate", sa.String(32), nullable=True),
    sa.Column("name", sa.String(200), nullable=True),
    sa.Column("variables", sa.JSON, nullable=True),  # extra template values from the list
    sa.Column("status", sa.String(16), nullable=False),  # pending | calling | done | skipped
    sa.Column("outcome", sa.String(32), nullable=True),  # last call outcome, or dnc / cancelled when skipped
    sa.Column("attempts", sa.Integer, nullable=False, server_default="0"),
    sa.Column("history", sa.JSON, nullable=False),  # [{at, outcome, duration_s, call_id}]
    sa.Column("confirmed", sa.Boolean, nullable=True),
    # pending: not before this time (NULL: now); calling: the claim's lease, after which a sweep frees it
    sa.Column("next_attempt_at", UtcDateTime(), nullable=True),
    sa.Column("updated_at", UtcDateTime(), nullable=False),
    sa.UniqueConstraint("campaign_id", "phone"),
    sa.Index("ix_campaign_numbers_campaign_id_status", "campaign_id", "status", "next_attempt_at"),
)

do_not_call = sa.Table(
    "do_not_call",
    metadata,
    sa.Column("phone", sa.String(32), primary_key=True),  # E.164
    sa.Column("reason", sa.String(200), nullable=True),
    sa.Column("added_at", UtcDateTime(), nullable=False),
)
