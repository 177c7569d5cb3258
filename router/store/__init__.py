"""The router's persistence: schema, migrations, the store, write-behind writers, LISTEN/NOTIFY.

The only part of the router that imports SQLAlchemy, alembic or psycopg.
"""

from router.store.database import Change, RouterStore, StoredConfig

__all__ = ["Change", "RouterStore", "StoredConfig"]
