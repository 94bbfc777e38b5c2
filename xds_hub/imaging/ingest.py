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
    from xds_hub.storage.ports import BlobInfo, BlobStore
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
    #: The instance's index attributes, when it could be read.
    attrs: InstanceAttributes | None = None


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


@dataclass(slots=True)
class _Job:
    """One instance waiting for the transaction that indexes it."""

    blob_key: str
    rows: _Rows
    done: bool = False
    inserted: bool = False
    error: BaseException | None = None

    def result(self) -> bool:
        if self.error is not None:
            raise self.error
        return self.inserted


class _Indexer:
    """The index transactions of C-STORE, with group commit across concurrent associations.

    Each caller queues its instance's rows and waits.  The first caller finding no transaction in
    progress becomes the leader: it takes every queued instance, indexes them all in one
    transaction (one commit: one flush of the database log), marks each done and wakes the others;
    a caller returns only once the transaction holding its instance has committed, so every
    C-STORE is still answered after its own instance is durable.  One association alone (the SCU
    waits for each response before sending the next instance) always leads, with nothing added.
    A transaction that fails is retried instance by instance, so one bad instance fails alone.

    ``keep`` DB-API connections stay checked out between calls (no pool checkout, no pre-ping);
    one that turns out broken is dropped and the work retried once on a fresh one.
    """

    def __init__(self, engine: Engine, blobs: BlobStore, keep: int = 0) -> None:
        self.engine = engine
        self.blobs = blobs
        self.sql = _statements(engine.dialect)
        self._keep = keep
        self._idle: list[Any] = []
        self._cv = threading.Condition()
        self._queue: list[_Job] = []
        self._busy = False

    def index(self, blob_key: str, rows: _Rows) -> bool:
        """Index one instance; True if it was new.  OSError when its blob vanished first."""
        job = _Job(blob_key, rows)
        with self._cv:
            self._queue.append(job)
            while self._busy and not job.done:
                self._cv.wait()
            if job.done:
                return job.result()
            self._busy = True
            batch, self._queue = self._queue, []
        try:
            self._run(batch)
        finally:
            with self._cv:
                self._busy = False
                self._cv.notify_all()
        return job.result()

    def close(self) -> None:
        """Give the kept connections back to the pool."""
        with self._cv:
            idle, self._idle = self._idle, []
        for raw in idle:
            raw.close()

    # ------------------------------------------------------------------ transactions

    def _run(self, batch: list[_Job]) -> None:
        try:
            self._transaction(batch)
        except Exception as exc:
            if len(batch) == 1:
                batch[0].error = exc
            else:  # one instance's problem must not fail the others: each on its own
                for job in batch:
                    try:
                        self._transaction([job])
                    except Exception as single:
                        job.error = single
        except BaseException as exc:
            for job in batch:
                job.error = exc
            raise
        finally:
            for job in batch:
                job.done = True

    def _transaction(self, batch: list[_Job]) -> None:
        raw, kept = self._connection()
        try:
            try:
                self._once(raw, batch)
            except self.engine.dialect.loaded_dbapi.OperationalError:
                if not kept:
                    raise
                raw.invalidate()  # a kept connection the server dropped: once more on a fresh one
                raw = self.engine.raw_connection()
                self._once(raw, batch)
        except BaseException:
            if raw.is_valid and _broken(raw):
                raw.invalidate()
            self._release(raw)
            raise
        self._release(raw)

    def _once(self, raw: Any, batch: list[_Job]) -> None:
        if self.sql.postgresql:
            _index_postgresql(raw, self.sql, self.blobs, batch)
        else:
            with writer_gate(self.engine).turn():
                _index_sqlite(raw, self.sql, self.blobs, batch)

    def _connection(self) -> tuple[Any, bool]:
        with self._cv:
            if self._idle:
                return self._idle.pop(), True
        return self.engine.raw_connection(), False

    def _release(self, raw: Any) -> None:
        if raw.is_valid:
            with self._cv:
                if len(self._idle) < self._keep:
                    self._idle.append(raw)
                    return
        raw.close()


def _broken(raw: Any) -> bool:
    """True when a connection can no longer be used (PostgreSQL: closed or in a failed state)."""
    closed = getattr(raw.dbapi_connection, "closed", False)
    return bool(closed)


def _index_sqlite(raw: Any, sql: _IndexStatements, blobs: BlobStore, batch: list[_Job]) -> None:
    cur = raw.cursor()
    try:
        cur.execute("BEGIN IMMEDIATE")
        try:
            results: list[tuple[_Job, bool | None]] = []
            for job in batch:
                if not blobs.exists(job.blob_key):  # under the lock: a sweep cannot drop it now
                    results.append((job, None))
                    continue
                rows = job.rows
                if rows.study is not None:
                    cur.execute(sql.study.text, sql.study.params(rows.study))
                if rows.series is not None:
                    cur.execute(sql.series.text, sql.series.params(rows.series))
                cur.execute(sql.instance.text, sql.instance.params(rows.instance))
                inserted = bool(cur.rowcount == 1)
                if inserted:
                    cur.execute(sql.touch.text, sql.touch.params(rows.instance))
                results.append((job, inserted))
            cur.execute("COMMIT")
        except BaseException:
            if raw.dbapi_connection.in_transaction:
                cur.execute("ROLLBACK")
            raise
    finally:
        cur.close()
    _settle(results)


def _index_postgresql(raw: Any, sql: _IndexStatements, blobs: BlobStore, batch: list[_Job]) -> None:
    conn = raw.dbapi_connection
    try:
        cursors = []
        with conn.pipeline():  # one round trip: BEGIN, the lock, every insert
            conn.execute(sql.lock.text, sql.lock.params({"k": REGISTRY_LOCK}))
            for job in batch:
                rows = job.rows
                if rows.study is not None:
                    conn.execute(sql.study.text, sql.study.params(rows.study))
                if rows.series is not None:
                    conn.execute(sql.series.text, sql.series.params(rows.series))
                cursors.append(conn.execute(sql.instance.text, sql.instance.params(rows.instance)))
        results: list[tuple[_Job, bool | None]] = []
        for job, cur in zip(batch, cursors, strict=True):
            row = cur.fetchone()
            results.append((job, bool(row and row[0])))
        if not all(blobs.exists(job.blob_key) for job in batch):  # under the lock, as for SQLite
            if len(batch) > 1:
                raise _Retry  # indexed one by one, so only the instance whose blob is gone fails
            results = [(batch[0], None)]
            conn.rollback()
        else:
            conn.commit()
    except BaseException:
        if not conn.closed:
            conn.rollback()
        raise
    _settle(results)


class _Retry(Exception):
    """A batch to be indexed instance by instance."""


def _settle(results: list[tuple[_Job, bool | None]]) -> None:
    for job, inserted in results:
        if inserted is None:
            job.error = OSError("the blob vanished before it was indexed")
        else:
            job.inserted = inserted


class Ingest:
    """Stores received instances and indexes them; one per DICOM actor, shared by its associations."""

    #: Studies / series known to have their row (saves an INSERT per instance); bounded.
    _KNOWN_MAX = 100_000

    def __init__(self, stores: Stores, settings: Settings, keep_connections: int = 0) -> None:
        """``keep_connections``: DB-API connections kept between instances (a long-lived actor)."""
        self.stores = stores
        self.settings = settings
        self._known: set[str] = set()
        self._lock = threading.Lock()
        self._indexer = _Indexer(stores.engine, stores.blobs, keep_connections)

    def close(self) -> None:
        """Give back the connections kept for the hot path."""
        self._indexer.close()

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
            return StoreOutcome(Status.DATASET_DOES_NOT_MATCH_SOP_CLASS, comment, attrs=attrs)
        if sop_instance_uid in self._known:  # re-sent to this process: nothing to write
            return StoreOutcome(Status.SUCCESS, duplicate=True, attrs=attrs)
        try:
            return self._keep(calling_ae, transfer_syntax, dataset, attrs)
        except OSError as exc:
            log.error("C-STORE could not write the instance", extra={"why": str(exc)})
            return StoreOutcome(
                Status.OUT_OF_RESOURCES, "the instance could not be written to storage", attrs=attrs
            )

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
        rows = self.rows(calling_ae, transfer_syntax, attrs, info, len(meta), time.time_ns())
        inserted = self._indexer.index(info.key, rows)
        self._remember(attrs.study_uid, attrs.series_uid, attrs.sop_instance_uid)
        if not inserted:  # held already (the first copy is kept): drop ours unless it is the same
            from xds_hub.repository.sweep import discard_blobs

            discard_blobs(self.stores, [info.key])
        return StoreOutcome(Status.SUCCESS, duplicate=not inserted, attrs=attrs)

    def rows(
        self,
        calling_ae: str,
        transfer_syntax: str,
        attrs: InstanceAttributes,
        blob: BlobInfo,
        dataset_offset: int,
        now: int,
    ) -> _Rows:
        """The index rows of an instance kept as ``blob``; study and series only when not yet known."""
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
            "blob_key": blob.key,
            "size": blob.size,
            "dataset_offset": dataset_offset,
            "received": now,
        }
        return _Rows(study, series, instance)
