"""Bring a database to the current schema (run at start-up by `serve` and by every operator verb)."""

from __future__ import annotations

from sqlalchemy import Engine

from xds_hub.storage.schema import metadata


def upgrade(engine: Engine) -> None:
    """Create or migrate the schema.  Idempotent; safe to call from several processes."""
    # Import the modules that add their tables to the shared metadata.
    from xds_hub.storage import tables  # noqa: F401

    metadata.create_all(engine, checkfirst=True)
