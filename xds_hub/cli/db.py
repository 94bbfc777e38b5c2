"""Schema verbs: `xds-hub db upgrade`, `xds-hub db current`, `xds-hub db check`.

`serve` and every operator verb already bring the database to the current schema when they start;
these verbs let an operator do it (or look at it) on its own, e.g. before a rolling restart.
Exit status: 0 done / up to date / no differences, 1 not up to date / differences found,
2 configuration error (including a database migrated by a newer xds-hub).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from xds_hub.cli import add_store_options, settings_from

if TYPE_CHECKING:
    from sqlalchemy import Engine


def register(sub: Any) -> None:
    db = sub.add_parser("db", help="database schema: upgrade, current revision, check")
    verbs = db.add_subparsers(dest="db_command", metavar="VERB", required=True)
    up = verbs.add_parser("upgrade", help="create, stamp or migrate the database to this version's schema")
    current = verbs.add_parser(
        "current", help="show the database's schema revision and what a start would do"
    )
    check = verbs.add_parser("check", help="compare the database's schema with this version's tables")
    for parser, func in ((up, db_upgrade), (current, db_current), (check, db_check)):
        add_store_options(parser)
        parser.set_defaults(func=func)


def _engine(args: argparse.Namespace, create: bool) -> tuple[Engine | None, str]:
    """The engine of the hub's database (None: its SQLite file does not exist and ``create`` is false)."""
    from sqlalchemy import make_url

    from xds_hub.storage.db import make_engine

    settings = settings_from(args)
    url = make_url(settings.db_url)
    shown = url.render_as_string(hide_password=True)
    if url.get_backend_name() == "sqlite" and url.database and url.database != ":memory:":
        if not create and not Path(url.database).exists():
            return None, shown
        Path(url.database).parent.mkdir(parents=True, exist_ok=True)
    return make_engine(settings.db_url), shown


def db_upgrade(args: argparse.Namespace) -> int:
    from xds_hub.storage.migrate import history, upgrade

    engine, shown = _engine(args, create=True)
    assert engine is not None
    try:
        before = upgrade(engine)
    finally:
        engine.dispose()
    head = history().head
    if before is None or before.at_head:
        print(f"{shown}: already at revision {head}")
    elif before.current:
        print(f"{shown}: upgraded from revision {', '.join(before.current)} to {head}")
    elif before.hub_tables:
        print(f"{shown}: created before migrations; stamped and upgraded to revision {head}")
    else:
        print(f"{shown}: schema created at revision {head}")
    return 0


def db_current(args: argparse.Namespace) -> int:
    from xds_hub.storage.migrate import history, read_state

    engine, shown = _engine(args, create=False)
    if engine is None:
        print(f"database: {shown}\nrevision: none (no database yet; head {history().head})")
        print("status:   empty: `xds-hub db upgrade` (or the next start) creates the schema")
        return 1
    try:
        with engine.connect() as conn:
            state = read_state(conn)
    finally:
        engine.dispose()
    print(f"database: {shown}")
    print(f"revision: {', '.join(state.current) or 'none'} (head {state.head})")
    print(f"status:   {state.status}")
    return 0 if state.at_head else 1


def db_check(args: argparse.Namespace) -> int:
    from xds_hub.storage.migrate import differences

    engine, shown = _engine(args, create=False)
    if engine is None:
        print(f"{shown}: no database yet", file=sys.stderr)
        return 1
    try:
        diffs = differences(engine)
    finally:
        engine.dispose()
    for diff in diffs:
        print(diff)
    if diffs:
        print(f"{shown}: {len(diffs)} difference(s) from this version's schema", file=sys.stderr)
        return 1
    print(f"{shown}: the schema matches this version's tables")
    return 0
