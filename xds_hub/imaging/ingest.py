"""Keeping what C-STORE delivers (DICOM PS3.4 Annex B, Storage Service Class, SCP behaviour).

:meth:`Ingest.store` is the hot path: read the index attributes of the data set (never its pixel
data), write the Part-10 file to the blob store (fsynced), then index it in one SQL transaction;
only after the commit does the caller answer the C-STORE with Success, so an acknowledged instance
survives a crash.  An instance already held (same SOP Instance UID) is answered Success and the
first copy is kept: a re-send is idempotent.  The hot path makes one SQL transaction per instance
(no look-up first: the INSERT tells a duplicate, whose blob is then dropped unless it is the same
content).
"""

from __future__ import annotations

import threading
import time
from dataclasses import asdict, dataclass
from functools import cache
from typing import TYPE_CHECKING, Any

from sqlalchemy import Connection, Executable, Table, bindparam, update
from sqlalchemy.dialects import postgresql, sqlite

from xds_hub.imaging.dicomfile import DatasetProblem, InstanceAttributes, file_meta_bytes, read_attributes
from xds_hub.imaging.status import Status
from xds_hub.imaging.tables import dicom_instance, dicom_series, dicom_study
from xds_hub.log import get_logger
from xds_hub.storage.db import write_transaction

if TYPE_CHECKING:
    from xds_hub.config import Settings
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
    """INSERT unless the primary key exists; True if a row was inserted.

    The statement is built once per table and dialect (SQLAlchemy then reuses its compiled
    form), which matters on the C-STORE path.
    """
    return bool(conn.execute(_insert_ignore_stmt(table, conn.dialect.name), values).rowcount)


_TOUCH_STUDY = (
    update(dicom_study)
    .where(dicom_study.c.study_uid == bindparam("uid"))
    .values(last_received=bindparam("now"))
)


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
        establishment = self.settings.domain.establishment_for_ae(calling_ae)
        with write_transaction(self.stores.engine) as conn:
            if not self.stores.blobs.exists(info.key):  # swept between finish() and this lock
                raise OSError("the blob vanished before it was indexed")
            if attrs.study_uid not in self._known:
                values = {k: v for k, v in asdict(attrs).items() if k in _STUDY_COLUMNS}
                insert_ignore(
                    conn,
                    dicom_study,
                    {
                        **values,
                        "study_uid": attrs.study_uid,
                        "establishment": establishment.name if establishment else "",
                        "calling_ae": calling_ae,
                        "created": now,
                        "last_received": now,
                        "published_seq": 0,
                        "state": "receiving",
                    },
                )
            if attrs.series_uid not in self._known:
                insert_ignore(
                    conn,
                    dicom_series,
                    {
                        "series_uid": attrs.series_uid,
                        "study_uid": attrs.study_uid,
                        "modality": attrs.modality,
                        "series_number": attrs.series_number,
                        "series_description": attrs.series_description,
                        "body_part": attrs.body_part,
                        "created": now,
                    },
                )
            inserted = insert_ignore(
                conn,
                dicom_instance,
                {
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
                },
            )
            if inserted:
                conn.execute(_TOUCH_STUDY, {"uid": attrs.study_uid, "now": now})
        self._remember(attrs.study_uid, attrs.series_uid, attrs.sop_instance_uid)
        if not inserted:  # held already (the first copy is kept): drop ours unless it is the same
            from xds_hub.repository.sweep import discard_blobs

            discard_blobs(self.stores, [info.key])
        return StoreOutcome(Status.SUCCESS, duplicate=not inserted)
