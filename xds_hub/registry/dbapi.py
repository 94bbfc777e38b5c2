"""The hot statements of a registration, run on the DB-API cursor of a SQLAlchemy connection.

Registering one ITI-41 / ITI-42 submission (ITI TF-2 3.42.4.1.3) takes a lookup and one insert per
table, inside :func:`xds_hub.storage.db.write_transaction`.  Through SQLAlchemy Core each statement
cost 50-160 µs of Python (cache-key generation, compilation lookup, result set-up) for a
sub-10 µs SQLite call, and that time was spent holding the registry's writer lock.  Here the SQL
text is built once per table and dialect from the :mod:`xds_hub.storage.schema` tables, and the
statements run on the connection's own DB-API cursor, inside the transaction that SQLAlchemy
began.  Driver errors are re-raised as the SQLAlchemy exceptions callers already handle
(``sqlalchemy.exc.IntegrityError`` ...).

Only the two dialects of the hub are supported: SQLite (``?`` parameters, ``IN (?, ...)``) and
PostgreSQL through psycopg (``%s`` parameters, ``= ANY(%s)`` with an array, so the statement text
does not depend on the number of values and psycopg can prepare it).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from functools import cache
from typing import Any, Final

from sqlalchemy import Connection, Table
from sqlalchemy.exc import DBAPIError


@dataclass(frozen=True, slots=True)
class Flavor:
    """How one dialect spells parameters."""

    name: str
    param: str

    def in_list(self, column: str, count: int) -> str:
        """``column IN (...)`` for ``count`` values passed one parameter each (SQLite), or
        ``column = ANY(%s)`` for one list parameter (PostgreSQL); see :meth:`in_params`."""
        if self.name == "postgresql":
            return f"{column} = ANY({self.param})"
        return f"{column} IN ({', '.join([self.param] * max(count, 1))})"

    def in_params(self, values: Sequence[Any]) -> list[Any]:
        if self.name == "postgresql":
            return [list(values)]
        return list(values) if values else [None]


SQLITE: Final = Flavor("sqlite", "?")
POSTGRESQL: Final = Flavor("postgresql", "%s")
_FLAVORS: Final = {"sqlite": SQLITE, "postgresql": POSTGRESQL}


def flavor(conn: Connection) -> Flavor:
    try:
        return _FLAVORS[conn.dialect.name]
    except KeyError:
        raise NotImplementedError(f"no raw SQL for dialect {conn.dialect.name!r}") from None


@cache
def insert_sql(table: Table, columns: tuple[str, ...], style: Flavor) -> str:
    """``INSERT INTO table (columns) VALUES (...)`` with one parameter per column."""
    missing = [name for name in columns if name not in table.c]
    if missing:
        raise KeyError(f"{table.name} has no column {missing}")
    values = ", ".join([style.param] * len(columns))
    return f"INSERT INTO {table.name} ({', '.join(columns)}) VALUES ({values})"


@contextmanager
def cursor(conn: Connection) -> Iterator[Any]:
    """A DB-API cursor of ``conn`` (in its transaction); driver errors become SQLAlchemy's."""
    dbapi_conn = conn.connection.dbapi_connection
    assert dbapi_conn is not None
    base: type[Exception] = conn.dialect.loaded_dbapi.Error
    cur = dbapi_conn.cursor()
    try:
        yield cur
    except base as exc:
        raise DBAPIError.instance(None, None, exc, base, dialect=conn.dialect) from exc
    finally:
        cur.close()
