"""Alembic environment: the hub passes its engine's connection in ``config.attributes``."""

from __future__ import annotations

from alembic import context

from xds_hub.storage import tables  # noqa: F401  (registers every table on the metadata)
from xds_hub.storage.schema import metadata

connection = context.config.attributes.get("connection")
if connection is None:
    raise RuntimeError("run migrations through xds_hub.storage.migrate.upgrade(engine)")

context.configure(
    connection=connection,
    target_metadata=metadata,
    render_as_batch=connection.dialect.name == "sqlite",
    compare_type=True,
)
with context.begin_transaction():
    context.run_migrations()
