"""Alembic environment of the hub's schema (one history for every table module).

At run time :func:`xds_hub.storage.migrate.upgrade` passes an open connection, already inside its
locked transaction, in ``config.attributes["connection"]``.  For developers writing a revision, the
``alembic`` command works too, on a database named with ``-x db=URL`` (see the README's
"Schema migrations" section).
"""

from __future__ import annotations

from alembic import context

from xds_hub.storage import tables  # noqa: F401  (registers every table on the metadata)
from xds_hub.storage.schema import metadata


def _run(connection: object) -> None:
    context.configure(
        connection=connection,  # type: ignore[arg-type]
        target_metadata=metadata,
        render_as_batch=True,  # ALTERs render as batch operations, which SQLite needs
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


connection = context.config.attributes.get("connection")
if connection is not None:
    _run(connection)
else:
    url = context.get_x_argument(as_dictionary=True).get("db")
    if not url:
        raise RuntimeError("run `alembic ... -x db=URL ...`, or migrate with `xds-hub db upgrade`")
    from xds_hub.storage.db import make_engine

    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            _run(conn)
            conn.commit()
    finally:
        engine.dispose()
