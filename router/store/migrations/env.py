"""Alembic environment for the router's tables, run programmatically by RouterStore.migrate().

The connection comes in through `config.attributes["connection"]`; the version table is the router's
own, so the router's migrations never collide with another component's in a shared database.
"""

from alembic import context

from router.store.schema import VERSION_TABLE, metadata

connection = context.config.attributes.get("connection")
if connection is None:
    raise RuntimeError("run the router's migrations through router.store.database.RouterStore.migrate()")

context.configure(
    connection=connection,
    target_metadata=metadata,
    version_table=VERSION_TABLE,
    render_as_batch=connection.dialect.name == "sqlite",
)
with context.begin_transaction():
    context.run_migrations()
