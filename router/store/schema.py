"""The router's tables (SQLAlchemy Core): what the migrations create and the store reads and writes.

Kept apart from the store's queries so that alembic's environment and the tests can name the schema
without loading the store.
"""

import sqlalchemy as sa

from router.telemetry import SCALAR_NAMES

NOTIFY_CHANNEL = "somagent_router_events"
NOTIFY_MAX_BYTES = 7900  # PostgreSQL's NOTIFY payload limit is 8000 bytes
VERSION_TABLE = "router_alembic_version"

metadata = sa.MetaData()
_BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")

settings_t = sa.Table(
    "router_settings",
    metadata,
    sa.Column("key", sa.String(64), primary_key=True),
    sa.Column("value", sa.JSON, nullable=True),
    sa.Column("updated_at", sa.Float, nullable=False),
    sa.Column("updated_by", sa.String(200), nullable=False),
)
profiles_t = sa.Table(
    "router_profiles",
    metadata,
    sa.Column("mode", sa.String(32), primary_key=True),
    sa.Column("role", sa.String(32), primary_key=True),
    sa.Column("profile", sa.JSON, nullable=False),
    sa.Column("updated_at", sa.Float, nullable=False),
    sa.Column("updated_by", sa.String(200), nullable=False),
)
overrides_t = sa.Table(
    "router_overrides",
    metadata,
    sa.Column("scope", sa.String(16), primary_key=True),
    sa.Column("subject", sa.String(200), primary_key=True),
    sa.Column("role", sa.String(32), primary_key=True),
    sa.Column("model", sa.String(200), nullable=False),
    sa.Column("locked", sa.Boolean, nullable=False),
    sa.Column("reason", sa.Text, nullable=False),
    sa.Column("updated_at", sa.Float, nullable=False),
    sa.Column("updated_by", sa.String(200), nullable=False),
)
personas_t = sa.Table(
    "router_personas",
    metadata,
    sa.Column("persona", sa.String(200), primary_key=True),
    sa.Column("sla", sa.JSON, nullable=False),
    sa.Column("updated_at", sa.Float, nullable=False),
    sa.Column("updated_by", sa.String(200), nullable=False),
)
sticky_t = sa.Table(
    "router_conversation_models",
    metadata,
    sa.Column("conversation_id", sa.String(200), primary_key=True),
    sa.Column("role", sa.String(32), primary_key=True),
    sa.Column("model", sa.String(200), nullable=False),
    sa.Column("config_version", sa.Integer, nullable=False),
    sa.Column("reason", sa.String(64), nullable=False),
    sa.Column("tenant", sa.String(200), nullable=True),
    sa.Column("persona", sa.String(200), nullable=True),
    sa.Column("selected_at", sa.Float, nullable=False),
)
audit_t = sa.Table(
    "router_audit",
    metadata,
    sa.Column("id", _BigId, primary_key=True, autoincrement=True),
    sa.Column("ts", sa.Float, nullable=False, index=True),
    sa.Column("actor", sa.String(200), nullable=False),
    sa.Column("action", sa.String(64), nullable=False),
    sa.Column("target", sa.String(400), nullable=False),
    sa.Column("before", sa.JSON, nullable=True),
    sa.Column("after", sa.JSON, nullable=True),
)
events_t = sa.Table(
    "router_events",
    metadata,
    sa.Column("id", sa.String(40), primary_key=True),
    sa.Column("ts", sa.Float, nullable=False, index=True),
    sa.Column("topic", sa.String(64), nullable=False, index=True),
    sa.Column("origin", sa.String(64), nullable=False),
    sa.Column("payload", sa.JSON, nullable=False),
)
calls_t = sa.Table(
    "router_call_records",
    metadata,
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
    sa.Index("ix_router_call_records_ts", "ts"),
    sa.Index("ix_router_call_records_role_model_ts", "role", "model", "ts"),
)
buckets_t = sa.Table(
    "router_rollup_buckets",
    metadata,
    sa.Column("id", _BigId, primary_key=True, autoincrement=True),
    sa.Column("role", sa.String(32), nullable=False),
    sa.Column("model", sa.String(200), nullable=False),
    sa.Column("start_minute", sa.Integer, nullable=False),  # epoch minute the bucket starts at
    sa.Column("span_minutes", sa.Integer, nullable=False),  # 1 (minute bucket) or 60 (hour bucket)
    sa.Column("unit", sa.String(16), nullable=False),
    sa.Column("writer", sa.String(64), nullable=False),
    *[sa.Column(name, sa.Float, nullable=False) for name in SCALAR_NAMES],
    sa.Column("last_ts", sa.Float, nullable=False),
    sa.Column("latency_hist", sa.LargeBinary, nullable=False),
    sa.Column("ttft_hist", sa.LargeBinary, nullable=False),
    sa.Index("ix_router_rollup_buckets_span_start", "span_minutes", "start_minute", "role"),
)
admin_keys_t = sa.Table(
    "router_admin_keys",
    metadata,
    sa.Column("id", _BigId, primary_key=True, autoincrement=True),
    sa.Column("name", sa.String(200), nullable=False),
    sa.Column("key_hash", sa.String(64), nullable=False, unique=True),
    sa.Column("created_at", sa.Float, nullable=False),
    sa.Column("revoked_at", sa.Float, nullable=True),
)
# -- benchmark capsules (router/capsules) ------------------------------------------------------------
capsules_t = sa.Table(
    "router_capsules",
    metadata,
    sa.Column("name", sa.String(80), primary_key=True),
    sa.Column("version", sa.String(40), primary_key=True),
    sa.Column("kind", sa.String(16), nullable=False),
    sa.Column("digest", sa.String(64), nullable=False),
    sa.Column("definition", sa.JSON, nullable=False),
    sa.Column("created_at", sa.Float, nullable=False),
    sa.Column("created_by", sa.String(200), nullable=False),
)
benchmark_runs_t = sa.Table(
    "router_benchmark_runs",
    metadata,
    sa.Column("id", sa.String(40), primary_key=True),
    sa.Column("capsule", sa.String(80), nullable=False),
    sa.Column("version", sa.String(40), nullable=False),
    sa.Column("digest", sa.String(64), nullable=False),
    sa.Column("role", sa.String(32), nullable=False),
    sa.Column("mode", sa.String(32), nullable=False),
    sa.Column("seed", sa.Integer, nullable=False),
    sa.Column("models", sa.JSON, nullable=False),
    sa.Column("profile", sa.JSON, nullable=True),  # the role's profile when the run started
    sa.Column("purpose", sa.String(16), nullable=False),  # manual | scheduled | gate | api
    sa.Column("status", sa.String(16), nullable=False),  # running | done | failed
    sa.Column("started_at", sa.Float, nullable=False),
    sa.Column("finished_at", sa.Float, nullable=True),
    sa.Column("summary", sa.JSON, nullable=True),  # per model: quality and metrics
    sa.Index("ix_router_benchmark_runs_capsule_started", "capsule", "started_at"),
)
benchmark_items_t = sa.Table(
    "router_benchmark_items",
    metadata,
    sa.Column("run_id", sa.String(40), primary_key=True),
    sa.Column("model", sa.String(200), primary_key=True),
    sa.Column("item_id", sa.String(80), primary_key=True),
    sa.Column("ts", sa.Float, nullable=False),
    sa.Column("result", sa.JSON, nullable=False),
)
work_items_t = sa.Table(
    "router_work_items",
    metadata,
    sa.Column("id", _BigId, primary_key=True, autoincrement=True),
    sa.Column("ts", sa.Float, nullable=False),
    sa.Column("kind", sa.String(32), nullable=False),  # regression
    sa.Column("capsule", sa.String(80), nullable=False),
    sa.Column("role", sa.String(32), nullable=False),
    sa.Column("model", sa.String(200), nullable=False),
    sa.Column("metric", sa.String(64), nullable=False),
    sa.Column("status", sa.String(16), nullable=False),  # open | closed
    sa.Column("detail", sa.JSON, nullable=False),
    sa.Column("closed_at", sa.Float, nullable=True),
    sa.Column("closed_by", sa.String(200), nullable=True),
)
promotions_t = sa.Table(
    "router_promotions",
    metadata,
    sa.Column("id", sa.String(40), primary_key=True),
    sa.Column("ts", sa.Float, nullable=False),
    sa.Column("role", sa.String(32), nullable=False),
    sa.Column("mode", sa.String(32), nullable=False),
    sa.Column("model", sa.String(200), nullable=False),
    sa.Column("status", sa.String(16), nullable=False),  # promotable | refused | approved | staged
    sa.Column("verdict", sa.JSON, nullable=False),
    sa.Column("requested_by", sa.String(200), nullable=False),
    sa.Column("decided_by", sa.String(200), nullable=True),
    sa.Column("decided_at", sa.Float, nullable=True),
)
