"""Bring a database to the current schema, managed by Alembic (run by `serve` and every operator verb).

The history is ``migrations/versions`` (one Alembic revision per schema change; the schema of every
table module: registry, repository, imaging, PIX, audit).  :func:`upgrade` decides by what it finds:

- At head (every start after the first): one ``SELECT version_num``, nothing else, no Alembic import.
- An empty database: ``metadata.create_all`` and the head revision recorded in ``alembic_version``,
  Alembic's own recipe for a new database ("building an up to date database from scratch"): same
  schema as running every revision (tests compare both with the metadata), a fraction of the time.
- Behind (an older xds-hub's database): ``alembic upgrade head``.
- Made by ``create_all`` before the hub used Alembic (hub tables, no ``alembic_version``): stamped
  with :data:`BASELINE`, which is exactly that schema, then ``alembic upgrade head``.
- At a revision this version does not know (a newer xds-hub migrated it): :class:`SchemaVersionError`;
  the hub does not start on a schema it does not understand, and never downgrades on its own.

Two processes starting at once (two hubs on one PostgreSQL, a hub and an operator verb) cannot both
migrate: the work runs in one transaction under a lock, and the state is read again once it is held.
PostgreSQL: a transaction-scoped advisory lock.  SQLite: the hub's writer gate (a ``flock`` shared by
its processes) and ``BEGIN IMMEDIATE``; foreign keys are off while the schema changes (batch operations
recreate tables) and checked with ``PRAGMA foreign_key_check`` before the commit.  Both run DDL
transactionally, so a migration that fails leaves the previous schema whole.
"""

from __future__ import annotations

import functools
import logging
import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import (
    Column,
    Connection,
    Engine,
    MetaData,
    PrimaryKeyConstraint,
    String,
    Table,
    inspect,
    text,
)

from xds_hub.errors import ConfigError
from xds_hub.storage.db import is_sqlite, writer_gate

log = logging.getLogger(__name__)

MIGRATIONS = Path(__file__).with_name("migrations")
#: The revision whose schema ``create_all`` made before the hub used Alembic.
BASELINE = "0001"
#: The advisory lock key that serialises migrations on PostgreSQL ("XDSM").
MIGRATE_LOCK = 0x5844_534D

#: Alembic's version table, as Alembic creates it (for stamping a new database without importing it).
_alembic_version = Table(
    "alembic_version",
    MetaData(),
    Column("version_num", String(32), nullable=False),
    PrimaryKeyConstraint("version_num", name="alembic_version_pkc"),
)
_SELECT_VERSION = text("SELECT version_num FROM alembic_version")


class SchemaVersionError(ConfigError):
    """The database's schema revision is one this version of xds-hub cannot run on."""


@dataclass(frozen=True, slots=True)
class History:
    """The revisions of ``migrations/versions``: each one's parents, and the head."""

    parents: dict[str, tuple[str, ...]]
    head: str


_REVISION = re.compile(r"^revision\s*(?::[^=]*)?=\s*['\"]([^'\"]+)['\"]", re.M)
_DOWN_REVISION = re.compile(r"^down_revision\s*(?::[^=]*)?=\s*(.*)$", re.M)


@functools.cache
def history() -> History:
    """Read from the revision files' ``revision`` / ``down_revision`` lines (about 1 ms; importing
    Alembic costs 0.2 s of CPU, which every start would pay).  A test checks it agrees with Alembic."""
    parents: dict[str, tuple[str, ...]] = {}
    for path in sorted((MIGRATIONS / "versions").glob("*.py")):
        source = path.read_text(encoding="utf-8")
        rev, down = _REVISION.search(source), _DOWN_REVISION.search(source)
        if rev is None or down is None:
            raise RuntimeError(f"{path}: no revision / down_revision line")
        parents[rev.group(1)] = tuple(re.findall(r"['\"]([^'\"]+)['\"]", down.group(1)))
    heads = set(parents) - {p for ps in parents.values() for p in ps}
    if len(heads) != 1:  # a packaging mistake, not a user's
        raise RuntimeError(f"the schema history has {len(heads)} heads: {sorted(heads)}")
    return History(parents=parents, head=heads.pop())


@dataclass(frozen=True, slots=True)
class SchemaState:
    """Where a database stands: its recorded revisions (empty: none) and the hub tables it has."""

    current: tuple[str, ...]
    head: str
    hub_tables: frozenset[str]
    unknown: tuple[str, ...]

    @property
    def at_head(self) -> bool:
        return self.current == (self.head,)

    @property
    def status(self) -> str:
        if self.unknown:
            return "unknown revision: migrated by a newer xds-hub, which this one refuses to run on"
        if self.at_head:
            return "up to date"
        if self.current:
            return "behind: `xds-hub db upgrade` (or the next start) migrates it"
        if self.hub_tables:
            return "created before migrations: `xds-hub db upgrade` (or the next start) stamps it"
        return "empty: `xds-hub db upgrade` (or the next start) creates the schema"


def _metadata() -> MetaData:
    from xds_hub.storage import tables  # noqa: F401  (registers every table on the metadata)
    from xds_hub.storage.schema import metadata

    return metadata


def read_state(conn: Connection) -> SchemaState:
    """The schema state that ``conn`` sees (a few catalogue reads; no Alembic)."""
    names = set(inspect(conn).get_table_names())
    current: tuple[str, ...] = ()
    if _alembic_version.name in names:
        current = tuple(sorted(r[0] for r in conn.execute(_SELECT_VERSION)))
    hist = history()
    return SchemaState(
        current=current,
        head=hist.head,
        hub_tables=frozenset(names) & frozenset(_metadata().tables),
        unknown=tuple(rev for rev in current if rev not in hist.parents),
    )


def _at_head(conn: Connection) -> bool:
    """The check at every start: one SELECT (it fails on a database without ``alembic_version``)."""
    try:
        with conn.begin():
            rows = conn.execute(_SELECT_VERSION).all()
    except Exception:
        return False
    return [r[0] for r in rows] == [history().head]


@contextmanager
def _locked(engine: Engine) -> Iterator[Connection]:
    """A connection in a transaction that no other migrating process can enter at the same time."""
    if is_sqlite(engine):
        with writer_gate(engine).turn(), engine.connect() as conn:
            raw = conn.connection.dbapi_connection
            assert raw is not None
            raw.execute("PRAGMA foreign_keys=OFF")  # a no-op inside a transaction: before BEGIN
            try:
                with conn.execution_options(sqlite_begin="BEGIN IMMEDIATE").begin():
                    yield conn
                    broken = conn.exec_driver_sql("PRAGMA foreign_key_check").all()
                    if broken:
                        raise RuntimeError(f"the migration broke foreign keys: {broken[:5]}")
            finally:
                raw.execute("PRAGMA foreign_keys=ON")
        return
    with engine.connect() as conn, conn.begin():
        if engine.dialect.name == "postgresql":
            conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": MIGRATE_LOCK})
        yield conn


def alembic_config(conn: Connection | None = None) -> Any:
    """An Alembic ``Config`` on the hub's history (``conn``: the connection ``env.py`` runs on)."""
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    if conn is not None:
        cfg.attributes["connection"] = conn
    return cfg


def upgrade(engine: Engine) -> SchemaState | None:
    """Create, stamp or migrate the schema to head; idempotent, and safe from several processes at
    once.  Returns the state found before the work (None: at head already, nothing was done)."""
    with engine.connect() as conn:
        if _at_head(conn):
            return None
    with _locked(engine) as conn:
        state = read_state(conn)  # again: another process may have migrated while we waited
        if state.unknown:
            raise SchemaVersionError(
                f"the database is at schema revision {', '.join(state.unknown)}, which this xds-hub "
                f"does not know (its newest is {state.head}): a newer xds-hub has migrated it. Run that "
                "version, or restore the backup taken before the upgrade."
            )
        if state.at_head:
            return state
        if not state.current and not state.hub_tables:
            _metadata().create_all(conn)
            _alembic_version.create(conn)
            conn.execute(_alembic_version.insert(), {"version_num": state.head})
            log.info("database schema created", extra={"revision": state.head})
            return state
        from alembic import command

        cfg = alembic_config(conn)
        if not state.current:
            log.warning("stamping a database created before migrations", extra={"revision": BASELINE})
            command.stamp(cfg, BASELINE)
        command.upgrade(cfg, "head")
        log.warning("database schema upgraded", extra={"from": list(state.current), "to": state.head})
        return state


def differences(engine: Engine) -> list[Any]:
    """Alembic's ``compare_metadata`` of the database against the tables' metadata (empty: none)."""
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext

    with engine.connect() as conn:
        context = MigrationContext.configure(conn, opts={"compare_type": True})
        diffs: list[Any] = compare_metadata(context, _metadata())
    return diffs
