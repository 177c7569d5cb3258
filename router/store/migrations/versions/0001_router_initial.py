"""Router tables: settings, profiles, overrides, personas, sticky conversations, audit, events,
call records, roll-up buckets (minute and hour), admin keys.

Revision ID: 0001_router_initial
Revises:
Create Date: 2025-01-01
"""

import sqlalchemy as sa
from alembic import op

revision = "0001_router_initial"
down_revision = None
branch_labels = None
depends_on = None

_BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
_SCALARS = (
    "calls",
    "ok",
    "error",
    "timeout",
    "refusal",
    "policy_violation",
    "cancelled",
    "cost_sum",
    "cost_n",
    "cost_units",
    "units_in",
    "units_out",
    "latency_sum",
    "ttft_n",
)


def upgrade() -> None:
    op.create_table(
        "router_settings",
        sa.Column("key", sa.String(64), primary_key=True),
        sa.Column("value", sa.JSON, nullable=True),
        sa.Column("updated_at", sa.Float, nullable=False),
        sa.Column("updated_by", sa.String(200), nullable=False),
    )
    op.create_table(
        "router_profiles",
        sa.Column("mode", sa.String(32), primary_key=True),
        sa.Column("role", sa.String(32), primary_key=True),
        sa.Column("profile", sa.JSON, nullable=False),
        sa.Column("updated_at", sa.Float, nullable=False),
        sa.Column("updated_by", sa.String(200), nullable=False),
    )
    op.create_table(
        "router_overrides",
        sa.Column("scope", sa.String(16), primary_key=True),
        sa.Column("subject", sa.String(200), primary_key=True),
        sa.Column("role", sa.String(32), primary_key=True),
        sa.Column("model", sa.String(200), nullable=False),
        sa.Column("locked", sa.Boolean, nullable=False),
        sa.Column("reason", sa.Text, nullable=False),
        sa.Column("updated_at", sa.Float, nullable=False),
        sa.Column("updated_by", sa.String(200), nullable=False),
    )
    op.create_table(
        "router_personas",
        sa.Column("persona", sa.String(200), primary_key=True),
        sa.Column("sla", sa.JSON, nullable=False),
        sa.Column("updated_at", sa.Float, nullable=False),
        sa.Column("updated_by", sa.String(200), nullable=False),
    )
    op.create_table(
        "router_conversation_models",
        sa.Column("conversation_id", sa.String(200), primary_key=True),
        sa.Column("role", sa.String(32), primary_key=True),
        sa.Column("model", sa.String(200), nullable=False),
        sa.Column("config_version", sa.Integer, nullable=False),
        sa.Column("reason", sa.String(64), nullable=False),
        sa.Column("tenant", sa.String(200), nullable=True),
        sa.Column("persona", sa.String(200), nullable=True),
        sa.Column("selected_at", sa.Float, nullable=False),
    )
    op.create_table(
        "router_audit",
        sa.Column("id", _BigId, primary_key=True, autoincrement=True),
        sa.Column("ts", sa.Float, nullable=False),
        sa.Column("actor", sa.String(200), nullable=False),
        sa.Column("action", sa.String(64), nullable=False),
        sa.Column("target", sa.String(400), nullable=False),
        sa.Column("before", sa.JSON, nullable=True),
        sa.Column("after", sa.JSON, nullable=True),
    )
    op.create_index("ix_router_audit_ts", "router_audit", ["ts"])
    op.create_table(
        "router_events",
        sa.Column("id", sa.String(40), primary_key=True),
        sa.Column("ts", sa.Float, nullable=False),
        sa.Column("topic", sa.String(64), nullable=False),
        sa.Column("origin", sa.String(64), nullable=False),
        sa.Column("payload", sa.JSON, nullable=False),
    )
    op.create_index("ix_router_events_ts", "router_events", ["ts"])
    op.create_index("ix_router_events_topic", "router_events", ["topic"])
    op.create_table(
        "router_call_records",
        sa.Column("id", _BigId, primary_key=True, autoincrement=True),
        sa.Column("ts", sa.Float, nullable=False),
        sa.Column("role", sa.String(32), nullable=False),
        sa.Column("model", sa.String(200), nullable=False),
        sa.Column("outcome", sa.String(32), nullable=False),
        sa.Column("latency_ms", sa.Float, nullable=False),
        sa.Column("ttft_ms", sa.Float, nullable=True),
        sa.Column("units_in", sa.Float, nullable=False),
        sa.Column("units_out", sa.Float, nullable=False),
        sa.Column("unit", sa.String(16), nullable=False),
        sa.Column("units_estimated", sa.Boolean, nullable=False),
        sa.Column("cost", sa.Float, nullable=True),
        sa.Column("tenant", sa.String(200), nullable=True),
        sa.Column("persona", sa.String(200), nullable=True),
        sa.Column("conversation_id", sa.String(200), nullable=True),
        sa.Column("source", sa.String(16), nullable=False),
        sa.Column("error", sa.Text, nullable=False),
    )
    op.create_index("ix_router_call_records_ts", "router_call_records", ["ts"])
    op.create_index("ix_router_call_records_role_model_ts", "router_call_records", ["role", "model", "ts"])
    op.create_table(
        "router_rollup_buckets",
        sa.Column("id", _BigId, primary_key=True, autoincrement=True),
        sa.Column("role", sa.String(32), nullable=False),
        sa.Column("model", sa.String(200), nullable=False),
        sa.Column("start_minute", sa.Integer, nullable=False),
        sa.Column("span_minutes", sa.Integer, nullable=False),
        sa.Column("unit", sa.String(16), nullable=False),
        sa.Column("writer", sa.String(64), nullable=False),
        *[sa.Column(name, sa.Float, nullable=False) for name in _SCALARS],
        sa.Column("last_ts", sa.Float, nullable=False),
        sa.Column("latency_hist", sa.LargeBinary, nullable=False),
        sa.Column("ttft_hist", sa.LargeBinary, nullable=False),
    )
    op.create_index(
        "ix_router_rollup_buckets_span_start", "router_rollup_buckets", ["span_minutes", "start_minute", "role"]
    )
    op.create_table(
        "router_admin_keys",
        sa.Column("id", _BigId, primary_key=True, autoincrement=True),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("key_hash", sa.String(64), nullable=False, unique=True),
        sa.Column("created_at", sa.Float, nullable=False),
        sa.Column("revoked_at", sa.Float, nullable=True),
    )


def downgrade() -> None:
    for table in (
        "router_admin_keys",
        "router_rollup_buckets",
        "router_call_records",
        "router_events",
        "router_audit",
        "router_conversation_models",
        "router_personas",
        "router_overrides",
        "router_profiles",
        "router_settings",
    ):
        op.drop_table(table)
