"""Keeping what C-STORE delivers (DICOM PS3.4 Annex B, Storage Service Class, SCP behaviour).

:meth:`Ingest.store` is the hot path: read the index attributes of the data set (never its pixel
data), write the Part-10 file to the blob store (fsynced), then index it in one SQL transaction;
only after the commit does the caller answer the C-STORE with Success, so an acknowledged instance
survives a crash.  An instance already held (same SOP Instance UID) is answered Success and the
first copy is kept: a re-send is idempotent.  The hot path makes one SQL transaction per instance
(no look-up first: the INSERT tells a duplicate, whose blob is then dropped unless it is the same
content).

That transaction runs on a raw DB-API connection with statements compiled once per dialect
(:class:`_IndexStatements`), serialised like :func:`~xds_hub.storage.db.write_transaction`: on
SQLite behind the hub's writer gate with ``BEGIN IMMEDIATE``; on PostgreSQL under the registry's
transaction-scoped advisory lock, the lock, the inserts and the study's ``last_received`` update
sent in one pipelined round trip (one statement for instance + update), then the commit.  The
blob's presence is checked inside the transaction (a sweep holding the same lock may have dropped
it between the write and the lock).  The study and series rows are only inserted for UIDs this
process has not indexed yet.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass
from functools import cache
from typing import TYPE_CHECKING, Any, cast

from sqlalchemy import (
    ClauseElement,
    Connection,
    Dialect,
    Engine,
    Executable,
    Table,
    bindparam,
    exists,
    func,
    literal_column,
    select,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.sql.compiler import SQLCompiler

from xds_hub.imaging.dicomfile import DatasetProblem, InstanceAttributes, file_meta_bytes, read_attributes
from xds_hub.imaging.status import Status
from xds_hub.imaging.tables import dicom_instance, dicom_series, dicom_study
from xds_hub.log import get_logger
from xds_hub.storage.db import REGISTRY_LOCK, writer_gate

if TYPE_CHECKING:
    from xds_hub.config import Settings
    from xds_hub.storage.ports import BlobStore
    from xds_hub.storage.stores import Stores

log = get_logger("xds_hub.imaging.ingest")

_STUDY_COLUMNS = (
    "patient_id",
    "issuer",
    "patient_name",
    "patient_birth_date",
    "patient_sex",
    "accession",
    "accession_issuer",
    "study_date",
    "study_time",
    "study_description",
    "study_id",
    "referring_physician",
    "charset",
)


@dataclass(frozen=True, slots=True)
class StoreOutcome:
    """The C-STORE response status for one instance and, for a failure, the Error Comment."""

    status: Status
    comment: str = ""
    duplicate: bool = False


@cache
def _insert_ignore_stmt(table: Table, dialect_name: str) -> Executable:
    if dialect_name == "postgresql":
        return postgresql.insert(table).on_conflict_do_nothing()
    return sqlite.insert(table).on_conflict_do_nothing()


def insert_ignore(conn: Connection, table: Table, values: dict[str, Any]) -> bool:
    """INSERT unless the primary key exists; True if a row was inserted (statement built once)."""
    return bool(conn.execute(_insert_ignore_stmt(table, conn.dialect.name), values).rowcount)


@dataclass(frozen=True, slots=True)
class _Sql:
    """A statement compiled once for a dialect, run on a DB-API cursor."""

    text: str
    #: Bind names in order for a positional paramstyle (SQLite ``?``); None for named ones.
    order: tuple[str, ...] | None

    @classmethod
    def of(cls, stmt: ClauseElement, dialect: Dialect) -> _Sql:
        compiled = cast(SQLCompiler, stmt.compile(dialect=dialect))
        order = tuple(compiled.positiontup or ()) if dialect.positional else None
        return cls(str(compiled), order)

    def params(self, values: Mapping[str, Any]) -> Any:
        return values if self.order is None else tuple(values[name] for name in self.order)


_STUDY_ROW = (
    *_STUDY_COLUMNS,
    *("study_uid", "establishment", "calling_ae", "created", "last_received", "published_seq", "state"),
)
_SERIES_ROW = (
    "series_uid",
    "study_uid",
    "modality",
    "series_number",
    "series_description",
    "body_part",
    "created",
)


def _insert_ignore(table: Table, names: Iterable[str], dialect: Dialect) -> Any:
    insert = postgresql.insert if dialect.name == "postgresql" else sqlite.insert
    return insert(table).values({name: bindparam(name) for name in names}).on_conflict_do_nothing()


class _IndexStatements:
    """The C-STORE index statements of one dialect (SQLite or PostgreSQL)."""

    def __init__(self, dialect: Dialect) -> None:
        self.postgresql = dialect.name == "postgresql"
        self.study = _Sql.of(_insert_ignore(dicom_study, _STUDY_ROW, dialect), dialect)
        self.series = _Sql.of(_insert_ignore(dicom_series, _SERIES_ROW, dialect), dialect)
        instance = _insert_ignore(dicom_instance, (c.name for c in dicom_instance.c), dialect)
        touch = (
            update(dicom_study)
            .where(dicom_study.c.study_uid == bindparam("study_uid"))
            .values(last_received=bindparam("received"))
        )
        if self.postgresql:
            # INSERT ... ON CONFLICT DO NOTHING and, if it inserted, the study's last_received: one
            # statement, whose single row says whether the instance was new.
            ins = instance.returning(literal_column("1").label("one")).cte("ins")
            touched = touch.where(exists(select(ins.c.one))).cte("touch")
            self.instance = _Sql.of(select(func.count()).select_from(ins).add_cte(touched), dialect)
            self.lock = _Sql.of(select(func.pg_advisory_xact_lock(bindparam("k"))), dialect)
        else:
            self.instance = _Sql.of(instance, dialect)
            self.touch = _Sql.of(touch, dialect)


_STATEMENTS: dict[str, _IndexStatements] = {}


def _statements(dialect: Dialect) -> _IndexStatements:
    sql = _STATEMENTS.get(dialect.name)
    if sql is None:
        sql = _STATEMENTS[dialect.name] = _IndexStatements(dialect)
    return sql


@dataclass(frozen=True, slots=True)
class _Rows:
    """The rows one instance adds: its study and series (None when already indexed) and itself."""

    study: dict[str, Any] | None
    series: dict[str, Any] | None
    instance: dict[str, Any]


def _index(engine: Engine, blobs: BlobStore, blob_key: str, rows: _Rows) -> bool:
    """Insert the rows in one serialised transaction; True if the instance was new.

    Raises OSError when the blob vanished before the transaction took the lock.
    """
    sql = _statements(engine.dialect)
    raw = engine.raw_connection()
    try:
        if not sql.postgresql:
            with writer_gate(engine).turn():
                return _index_sqlite(raw, sql, blobs, blob_key, rows)
        return _index_postgresql(raw, sql, blobs, blob_key, rows)
    finally:
        raw.close()


def _index_sqlite(raw: Any, sql: _IndexStatements, blobs: BlobStore, blob_key: str, rows: _Rows) -> bool:
    cur = raw.cursor()
    try:
        cur.execute("BEGIN IMMEDIATE")
        try:
            if not blobs.exists(blob_key):
                raise OSError("the blob vanished before it was indexed")
            if rows.study is not None:
                cur.execute(sql.study.text, sql.study.params(rows.study))
            if rows.series is not None:
                cur.execute(sql.series.text, sql.series.params(rows.series))
            cur.execute(sql.instance.text, sql.instance.params(rows.instance))
            inserted = bool(cur.rowcount == 1)
            if inserted:
                cur.execute(sql.touch.text, sql.touch.params(rows.instance))
            cur.execute("COMMIT")
            return inserted
        except BaseException:
            if raw.dbapi_connection.in_transaction:
                cur.execute("ROLLBACK")
            raise
    finally:
        cur.close()


def _index_postgresql(raw: Any, sql: _IndexStatements, blobs: BlobStore, blob_key: str, rows: _Rows) -> bool:
    conn = raw.dbapi_connection
    try:
        with conn.cursor() as cur:
            with conn.pipeline():
                cur.execute(sql.lock.text, sql.lock.params({"k": REGISTRY_LOCK}))
                if rows.study is not None:
                    cur.execute(sql.study.text, sql.study.params(rows.study))
                if rows.series is not None:
                    cur.execute(sql.series.text, sql.series.params(rows.series))
                cur.execute(sql.instance.text, sql.instance.params(rows.instance))
            row = cur.fetchone()
        inserted = bool(row and row[0])
        if not blobs.exists(blob_key):  # still under the lock: no sweep can drop it now
            raise OSError("the blob vanished before it was indexed")
        conn.commit()
        return inserted
    except BaseException:
        try:
            conn.rollback()
        except Exception:
            raw.invalidate()  # the connection is broken: do not give it back to the pool
        raise


class Ingest:
    """Stores received instances and indexes them; one per DICOM actor, shared by its associations."""

    #: Studies / series known to have their row (saves an INSERT per instance); bounded.
    _KNOWN_MAX = 100_000

    def __init__(self, stores: Stores, settings: Settings) -> None:
        self.stores = stores
        self.settings = settings
        self._known: set[str] = set()
        self._lock = threading.Lock()

    def _remember(self, *uids: str) -> None:
        with self._lock:
            if len(self._known) > self._KNOWN_MAX:
                self._known.clear()
            self._known.update(uids)

    def store(
        self,
        *,
        calling_ae: str,
        sop_class_uid: str,
        sop_instance_uid: str,
        transfer_syntax: str,
        dataset: bytes | memoryview,
    ) -> StoreOutcome:
        """Keep one instance received on a C-STORE; the status to answer with."""
        try:
            attrs = read_attributes(dataset, transfer_syntax)
        except DatasetProblem as exc:
            status = Status.DATASET_DOES_NOT_MATCH_SOP_CLASS if exc.missing else Status.CANNOT_UNDERSTAND
            log.warning("C-STORE refused", extra={"ae": calling_ae, "status": hex(status), "why": str(exc)})
            return StoreOutcome(status, str(exc))
        if attrs.sop_instance_uid != sop_instance_uid or attrs.sop_class_uid != sop_class_uid:
            comment = (
                f"the data set's SOP Class/Instance UID ({attrs.sop_class_uid}/{attrs.sop_instance_uid}) "
                f"differ from the request's ({sop_class_uid}/{sop_instance_uid})"
            )
            return StoreOutcome(Status.DATASET_DOES_NOT_MATCH_SOP_CLASS, comment)
        if sop_instance_uid in self._known:  # re-sent to this process: nothing to write
            return StoreOutcome(Status.SUCCESS, duplicate=True)
        try:
            return self._keep(calling_ae, transfer_syntax, dataset, attrs)
        except OSError as exc:
            log.error("C-STORE could not write the instance", extra={"why": str(exc)})
            return StoreOutcome(Status.OUT_OF_RESOURCES, "the instance could not be written to storage")

    def _keep(
        self, calling_ae: str, transfer_syntax: str, dataset: bytes | memoryview, attrs: InstanceAttributes
    ) -> StoreOutcome:
        meta = file_meta_bytes(attrs.sop_class_uid, attrs.sop_instance_uid, transfer_syntax, calling_ae)
        writer = self.stores.blobs.writer()
        try:
            writer.write(meta)
            writer.write(dataset)  # type: ignore[arg-type]  # memoryview is accepted by file writes
            info = writer.finish()
        except BaseException:
            writer.abort()
            raise
        now = time.time_ns()
        study: dict[str, Any] | None = None
        if attrs.study_uid not in self._known:
            establishment = self.settings.domain.establishment_for_ae(calling_ae)
            values = {k: v for k, v in asdict(attrs).items() if k in _STUDY_COLUMNS}
            study = {
                **values,
                "study_uid": attrs.study_uid,
                "establishment": establishment.name if establishment else "",
                "calling_ae": calling_ae,
                "created": now,
                "last_received": now,
                "published_seq": 0,
                "state": "receiving",
            }
        series = None
        if attrs.series_uid not in self._known:
            series = {
                "series_uid": attrs.series_uid,
                "study_uid": attrs.study_uid,
                "modality": attrs.modality,
                "series_number": attrs.series_number,
                "series_description": attrs.series_description,
                "body_part": attrs.body_part,
                "created": now,
            }
        instance = {
            "sop_instance_uid": attrs.sop_instance_uid,
            "series_uid": attrs.series_uid,
            "study_uid": attrs.study_uid,
            "sop_class_uid": attrs.sop_class_uid,
            "transfer_syntax": transfer_syntax,
            "instance_number": attrs.instance_number,
            "number_of_frames": attrs.number_of_frames,
            "rows": attrs.rows,
            "columns": attrs.columns,
            "blob_key": info.key,
            "size": info.size,
            "dataset_offset": len(meta),
            "received": now,
        }
        inserted = _index(self.stores.engine, self.stores.blobs, info.key, _Rows(study, series, instance))
        self._remember(attrs.study_uid, attrs.series_uid, attrs.sop_instance_uid)
        if not inserted:  # held already (the first copy is kept): drop ours unless it is the same
            from xds_hub.repository.sweep import discard_blobs

            discard_blobs(self.stores, [info.key])
        return StoreOutcome(Status.SUCCESS, duplicate=not inserted)
