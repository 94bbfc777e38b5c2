"""Schema migrations (xds_hub.storage.migrate), on SQLite and PostgreSQL.

- the revision chain (`alembic upgrade head` on an empty database) gives exactly the tables' metadata,
  and so does the fast path for a new database (create_all + stamp): both reflect to the same schema;
- a database created by the pre-Alembic `create_all` code is stamped, its rows kept;
- concurrent starts on one new (or pre-Alembic) database: exactly one process migrates;
- a database at an unknown (newer) revision: `upgrade` refuses, `xds-hub serve` exits 2 saying why;
- a later revision runs through Alembic, on SQLite in batch mode without firing ON DELETE CASCADE;
- at head, a start costs one SELECT.
"""

from __future__ import annotations

import multiprocessing
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, event, inspect, text

from tests.hubproc import db_url_for, drop_pg_database, free_port
from xds_hub.cli import main
from xds_hub.storage import migrate
from xds_hub.storage.db import make_engine
from xds_hub.storage.schema import metadata


@pytest.fixture
def db_url(db_backend: str, tmp_path: Path) -> Iterator[str]:
    url = db_url_for(db_backend, tmp_path)
    yield url
    if db_backend == "postgresql":
        drop_pg_database(url)


@pytest.fixture
def engine(db_url: str) -> Iterator[Engine]:
    eng = make_engine(db_url)
    yield eng
    eng.dispose()


def _versions(engine: Engine) -> list[str]:
    with engine.connect() as conn:
        return [r[0] for r in conn.execute(text("SELECT version_num FROM alembic_version"))]


def _schema(engine: Engine) -> dict[str, Any]:
    """Everything reflection tells about the hub's tables (types as DDL strings, named indexes and keys)."""
    insp = inspect(engine)
    names = sorted(metadata.tables)
    columns, pks = (
        insp.get_multi_columns(filter_names=names),
        insp.get_multi_pk_constraint(filter_names=names),
    )
    fks, indexes = insp.get_multi_foreign_keys(filter_names=names), insp.get_multi_indexes(filter_names=names)
    return {
        table: {
            "columns": [(c["name"], str(c["type"]), c["nullable"]) for c in columns[key]],
            "pk": pks[key],
            "fks": fks[key],
            "indexes": sorted((i["name"], tuple(i["column_names"]), bool(i["unique"])) for i in indexes[key]),
        }
        for key in columns
        for table in [key[1]]
    }


#: Tables added by revisions after the baseline (a database made before migrations lacks them).
AFTER_BASELINE = {"inline_blob"}


def create_pre_migration_schema(engine: Engine) -> None:
    """What xds_hub.storage.migrate did before Alembic (``create_all``), with the tables of then."""
    metadata.create_all(engine, tables=[t for t in metadata.sorted_tables if t.name not in AFTER_BASELINE])


def _alembic_upgrade(engine: Engine, target: str = "head") -> None:
    from alembic import command

    with engine.connect() as conn, conn.begin():
        command.upgrade(migrate.alembic_config(conn), target)


def test_cheap_history_agrees_with_alembic() -> None:
    from alembic.script import ScriptDirectory

    script = ScriptDirectory.from_config(migrate.alembic_config())
    assert script.get_heads() == [migrate.history().head]
    assert {r.revision: r._all_down_revisions for r in script.walk_revisions()} == migrate.history().parents
    assert migrate.BASELINE in migrate.history().parents


def test_revision_chain_and_new_database_path_give_exactly_the_metadata(
    db_backend: str, engine: Engine, tmp_path: Path
) -> None:
    (tmp_path / "b").mkdir()
    other_url = db_url_for(db_backend, tmp_path / "b")
    engines = [engine, make_engine(other_url)]
    try:
        _alembic_upgrade(engines[0])  # every revision, as an old database would run them
        before = migrate.upgrade(engines[1])  # a new database: create_all + stamp
        assert before is not None and before.current == () and not before.hub_tables
        for eng in engines:
            assert migrate.differences(eng) == []
            assert _versions(eng) == [migrate.history().head]
        schemas = [_schema(eng) for eng in engines]
        assert sorted(schemas[0]) == sorted(metadata.tables)
        assert schemas[0] == schemas[1]
        assert migrate.upgrade(engines[0]) is None  # the alembic-made database is at head too
    finally:
        engines[1].dispose()
        if db_backend == "postgresql":
            drop_pg_database(other_url)


def test_downgrade_to_base_and_back(engine: Engine) -> None:
    from alembic import command

    migrate.upgrade(engine)
    with engine.connect() as conn, conn.begin():
        command.downgrade(migrate.alembic_config(conn), "base")
    assert set(inspect(engine).get_table_names()) & set(metadata.tables) == set()
    _alembic_upgrade(engine)
    assert migrate.differences(engine) == []


def test_database_created_by_create_all_is_stamped_and_keeps_its_rows(engine: Engine) -> None:
    create_pre_migration_schema(engine)
    with engine.begin() as conn:
        conn.execute(text("INSERT INTO patient (patient_id, created) VALUES ('P1^^^&1.2&ISO', 'now')"))
    before = migrate.upgrade(engine)
    assert before is not None and before.current == ()
    assert before.hub_tables == frozenset(metadata.tables) - AFTER_BASELINE
    assert _versions(engine) == [migrate.history().head]
    assert migrate.differences(engine) == []
    with engine.connect() as conn:
        assert conn.execute(text("SELECT patient_id FROM patient")).scalar_one() == "P1^^^&1.2&ISO"
        if engine.dialect.name == "sqlite":  # turned off for the migration, on again afterwards
            assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar_one() == 1


def test_start_at_head_is_one_select(engine: Engine) -> None:
    migrate.upgrade(engine)
    statements: list[str] = []

    @event.listens_for(engine, "before_cursor_execute")
    def _count(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        statements.append(statement)

    assert migrate.upgrade(engine) is None
    assert statements == ["SELECT version_num FROM alembic_version"]


def _race(url: str, barrier: Any, results: Any) -> None:
    eng = make_engine(url)
    barrier.wait()
    try:
        before = migrate.upgrade(eng)
        results.put("migrated" if before is not None and not before.at_head else "nothing to do")
    except Exception as exc:
        results.put(f"failed: {exc!r}")
    finally:
        eng.dispose()


@pytest.mark.parametrize("start", ["empty", "created by create_all"])
def test_concurrent_starts_migrate_once(start: str, db_url: str, engine: Engine) -> None:
    if start != "empty":
        create_pre_migration_schema(engine)
    engine.dispose()
    ctx = multiprocessing.get_context("fork")
    n = 4
    barrier, results = ctx.Barrier(n), ctx.Queue()
    procs = [ctx.Process(target=_race, args=(db_url, barrier, results)) for _ in range(n)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(120)
    outcomes = sorted(results.get(timeout=5) for _ in procs)
    assert outcomes == ["migrated"] + ["nothing to do"] * (n - 1)
    assert _versions(engine) == [migrate.history().head]
    assert migrate.differences(engine) == []


def test_unknown_newer_revision_is_refused(
    db_url: str, engine: Engine, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    migrate.upgrade(engine)
    with engine.begin() as conn:
        conn.execute(text("UPDATE alembic_version SET version_num = '0999_from_the_future'"))
    with pytest.raises(migrate.SchemaVersionError, match=r"0999_from_the_future.*newer xds-hub"):
        migrate.upgrade(engine)
    ports = [str(free_port()) for _ in range(3)]
    result = subprocess.run(
        [sys.executable, "-m", "xds_hub", "serve", "--db", db_url, "--data", str(tmp_path / "data"),
         "--http-port", ports[0], "--dicom-port", ports[1], "--mllp-port", ports[2]],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert result.returncode == 2
    assert "schema revision 0999_from_the_future, which this xds-hub does not know" in result.stderr
    code, out, _ = _cli(capsys, "db", "current", "--db", db_url, "--data", str(tmp_path / "data"))
    assert code == 1
    assert "revision: 0999_from_the_future" in out and "unknown revision" in out
    assert main(["db", "upgrade", "--db", db_url, "--data", str(tmp_path / "data")]) == 2
    assert _versions(engine) == ["0999_from_the_future"]  # left alone


def _cli(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    """An `xds-hub` verb, in process (the serve test above runs a real process): (status, out, err)."""
    capsys.readouterr()
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


def test_db_verbs(db_url: str, engine: Engine, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    store = ["--db", db_url, "--data", str(tmp_path / "data")]
    head = migrate.history().head
    create_pre_migration_schema(engine)
    code, out, _ = _cli(capsys, "db", "current", *store)
    assert code == 1 and "revision: none" in out and "created before migrations" in out
    code, out, err = _cli(capsys, "db", "upgrade", *store)
    assert code == 0, err
    assert f"stamped and upgraded to revision {head}" in out
    code, out, _ = _cli(capsys, "db", "upgrade", *store)
    assert code == 0 and f"already at revision {head}" in out
    code, out, _ = _cli(capsys, "db", "current", *store)
    assert code == 0 and f"revision: {head} (head {head})" in out and "status:   up to date" in out
    code, out, _ = _cli(capsys, "db", "check", *store)
    assert code == 0 and "matches" in out
    with engine.begin() as conn:
        conn.execute(text("DROP INDEX ix_folder_patient"))
    code, out, err = _cli(capsys, "db", "check", *store)
    assert code == 1 and "ix_folder_patient" in out and "1 difference(s)" in err


def test_db_verbs_on_a_new_data_folder(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    store = ["--data", str(tmp_path / "data")]  # the default database: SQLite under --data
    code, out, _ = _cli(capsys, "db", "current", *store)
    assert code == 1 and "no database yet" in out
    assert not (tmp_path / "data").exists()  # looking does not create it
    code, out, _ = _cli(capsys, "db", "upgrade", *store)
    assert code == 0 and f"schema created at revision {migrate.history().head}" in out
    assert (tmp_path / "data" / "xds-hub.sqlite").exists()


REVISION_TEST = '''"""test: a later revision that recreates a table other tables reference"""
import sqlalchemy as sa
from alembic import op

revision = "9999"
down_revision = "{head}"


def upgrade() -> None:  # SQLite recreates the table (ALTER COLUMN), PostgreSQL alters it
    with op.batch_alter_table("audit_record") as batch:
        batch.add_column(sa.Column("note", sa.Text()))
        batch.alter_column("event_type_name", existing_type=sa.String(128), type_=sa.String(200))


def downgrade() -> None:
    with op.batch_alter_table("audit_record") as batch:
        batch.alter_column("event_type_name", existing_type=sa.String(200), type_=sa.String(128))
        batch.drop_column("note")
'''


def test_later_revision_runs_through_alembic(
    engine: Engine, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    migrate.upgrade(engine)
    with engine.begin() as conn:
        conn.execute(text(
            "INSERT INTO audit_record (id, event_ns, event_id, event_name, action, outcome, objects, message,"
            " attempts) VALUES (1, 1, '110112', 'Query', 'E', 0, '[]', '<x/>', 0)"
        ))  # fmt: skip
        conn.execute(text("INSERT INTO audit_patient (record_id, patient_id) VALUES (1, 'P1')"))
    copy = tmp_path / "migrations"
    shutil.copytree(migrate.MIGRATIONS, copy, ignore=shutil.ignore_patterns("__pycache__"))
    head = migrate.history().head
    (copy / "versions" / "9999_test.py").write_text(REVISION_TEST.replace("{head}", head))
    monkeypatch.setattr(migrate, "MIGRATIONS", copy)
    migrate.history.cache_clear()
    try:
        before = migrate.upgrade(engine)
        assert before is not None and before.current == (head,)
        assert _versions(engine) == ["9999"]
        columns = {c["name"]: c["type"] for c in inspect(engine).get_columns("audit_record")}
        assert "note" in columns and getattr(columns["event_type_name"], "length", None) == 200
        with engine.connect() as conn:  # the recreated parent table did not cascade-delete its children
            assert conn.execute(text("SELECT patient_id FROM audit_patient")).scalar_one() == "P1"
    finally:
        migrate.history.cache_clear()
