"""Publishing studies: a KOS manifest per study, registered by RAD-68 semantics (RAD TF-3 4.68).

A study is published once no instance has arrived for ``study_quiet_seconds`` (the
:class:`StudyPublisher` actor looks every second), or at once by ``xds-hub publish-study UID``
(:func:`publish_study` acting on the store; the running hub sees the result in its registry).
Instances that arrive after a publication make the study due again: the new manifest lists every
instance and replaces the previous one (RPLC).

A study whose patient the PIX cross-reference cannot map to a registered affinity-domain ID is
kept, marked ``unresolved`` and reported (``imaging_report``, the log, ``xds-hub studies``); it is
retried every :data:`RETRY_SECONDS`, so a later Patient Identity Feed lets it through.  A
publication the registry refuses is reported the same way (``failed``) and retried.

Two publishers never publish the same study at once: each claims it first (``claim`` column).
The manifest row is written before the registration (``pending``) and confirmed after it, so a
crash in between is recognised on the next attempt (the registry already holds the uniqueId).
"""

from __future__ import annotations

import threading
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from typing import TYPE_CHECKING, Any

from pydicom.uid import generate_uid
from sqlalchemy import Connection, insert, or_, select, update
from sqlalchemy.exc import InterfaceError, OperationalError

from xds_hub.errors import XdsError
from xds_hub.imaging.kos import ManifestStudy, ReferencedSeries, build_kos
from xds_hub.imaging.patients import affinity_patient_id, local_patient
from xds_hub.imaging.rad68 import ManifestMetadata, build_submission
from xds_hub.imaging.tables import dicom_instance, dicom_series, dicom_study, imaging_manifest, imaging_report
from xds_hub.log import get_logger
from xds_hub.storage.schema import registry_object

if TYPE_CHECKING:
    from xds_hub.config import Settings
    from xds_hub.storage.stores import Stores

log = get_logger("xds_hub.imaging.publisher")

#: A study that could not be published is tried again after this many seconds.
RETRY_SECONDS = 60.0
#: A claim older than this is considered abandoned (its publisher died).
CLAIM_SECONDS = 300.0
_NS = 1_000_000_000


class Outcome(StrEnum):
    PUBLISHED = "published"
    UP_TO_DATE = "up-to-date"
    UNRESOLVED = "unresolved"
    FAILED = "failed"
    BUSY = "busy"
    UNKNOWN_STUDY = "unknown-study"


@dataclass(frozen=True, slots=True)
class PublishResult:
    outcome: Outcome
    detail: str = ""
    kos_uid: str | None = None
    patient_id: str | None = None
    instances: int = 0


def _uid() -> str:
    return generate_uid(prefix=None)  # 2.25.<UUID>: no registered root needed (PS3.5 B.2)


def _report(conn: Connection, study_uid: str, kind: str, detail: str) -> None:
    conn.execute(
        insert(imaging_report).values(study_uid=study_uid, kind=kind, detail=detail, created=time.time_ns())
    )


def _claim(stores: Stores, study_uid: str, token: str) -> bool:
    now = time.time_ns()
    with stores.engine.begin() as conn:
        result = conn.execute(
            update(dicom_study)
            .where(
                dicom_study.c.study_uid == study_uid,
                or_(dicom_study.c.claim.is_(None), dicom_study.c.claim_until < now),
            )
            .values(claim=token, claim_until=now + int(CLAIM_SECONDS * _NS))
        )
        return bool(result.rowcount)


def _release(conn: Connection, study_uid: str, token: str, **values: Any) -> None:
    conn.execute(
        update(dicom_study)
        .where(dicom_study.c.study_uid == study_uid, dicom_study.c.claim == token)
        .values(claim=None, claim_until=None, **values)
    )


def _confirm_pending(conn: Connection, study_uid: str) -> None:
    """Manifests left ``pending`` by a crash: registered if the registry holds them, else failed."""
    pending = conn.execute(
        select(imaging_manifest.c.kos_uid).where(
            imaging_manifest.c.study_uid == study_uid, imaging_manifest.c.status == "pending"
        )
    ).all()
    for (kos_uid,) in pending:
        registered = conn.execute(
            select(registry_object.c.id).where(
                registry_object.c.unique_id == kos_uid, registry_object.c.kind == "D"
            )
        ).first()
        status = "registered" if registered else "failed"
        conn.execute(
            update(imaging_manifest).where(imaging_manifest.c.kos_uid == kos_uid).values(status=status)
        )
        if registered:
            _mark_replaced(conn, study_uid, kos_uid)


def _mark_replaced(conn: Connection, study_uid: str, kos_uid: str) -> None:
    conn.execute(
        update(imaging_manifest)
        .where(
            imaging_manifest.c.study_uid == study_uid,
            imaging_manifest.c.kos_uid != kos_uid,
            imaging_manifest.c.status == "registered",
            imaging_manifest.c.replaced_by.is_(None),
        )
        .values(replaced_by=kos_uid)
    )


def publish_study(
    stores: Stores, settings: Settings, study_uid: str, force: bool = False, wait: float = 0.0
) -> PublishResult:
    """Publish (or re-publish) the manifest of ``study_uid`` now.

    Without ``force`` nothing happens when the newest manifest already lists every instance.
    When another publisher holds the study, wait up to ``wait`` seconds for it to finish.
    """
    token = uuid.uuid4().hex
    with stores.engine.connect() as conn:
        exists = conn.execute(
            select(dicom_study.c.study_uid).where(dicom_study.c.study_uid == study_uid)
        ).first()
    if exists is None:
        return PublishResult(Outcome.UNKNOWN_STUDY, f"no study {study_uid} has been received")
    deadline = time.monotonic() + wait
    while not _claim(stores, study_uid, token):
        if time.monotonic() >= deadline:
            return PublishResult(Outcome.BUSY, "another publisher is publishing this study")
        time.sleep(0.2)
    try:
        return _publish_claimed(stores, settings, study_uid, token, force)
    except BaseException:
        with stores.engine.begin() as conn:
            _release(conn, study_uid, token, retry_after=time.time_ns() + int(RETRY_SECONDS * _NS))
        raise


def _publish_claimed(
    stores: Stores, settings: Settings, study_uid: str, token: str, force: bool
) -> PublishResult:
    domain = settings.domain
    with stores.engine.begin() as conn:
        _confirm_pending(conn, study_uid)
        study = conn.execute(select(dicom_study).where(dicom_study.c.study_uid == study_uid)).one()
        rows = conn.execute(
            select(
                dicom_instance.c.series_uid,
                dicom_instance.c.sop_class_uid,
                dicom_instance.c.sop_instance_uid,
                dicom_instance.c.received,
            )
            .where(dicom_instance.c.study_uid == study_uid)
            .order_by(
                dicom_instance.c.series_uid,
                dicom_instance.c.instance_number,
                dicom_instance.c.sop_instance_uid,
            )
        ).all()
        modalities = [
            m
            for (m,) in conn.execute(
                select(dicom_series.c.modality).where(dicom_series.c.study_uid == study_uid).distinct()
            )
            if m
        ]
        previous = [
            entry
            for (entry,) in conn.execute(
                select(imaging_manifest.c.entry_uuid).where(
                    imaging_manifest.c.study_uid == study_uid,
                    imaging_manifest.c.status == "registered",
                    imaging_manifest.c.replaced_by.is_(None),
                )
            )
        ]
        covers = max((r.received for r in rows), default=0)
        if covers <= study.published_seq and previous and not force:
            _release(conn, study_uid, token)
            return PublishResult(Outcome.UP_TO_DATE, "the newest manifest already lists every instance")
        local = local_patient(domain, study.patient_id, study.issuer, study.establishment)
        affinity = affinity_patient_id(conn, domain, local) if local else None
        if local is None or affinity is None:
            who = local.cx if local else f"{study.patient_id!r} (no assigning authority)"
            detail = f"patient {who} has no registered affinity-domain ID in the PIX cross-reference"
            _report(conn, study_uid, "unknown-patient", detail)
            retry = time.time_ns() + int(RETRY_SECONDS * _NS)
            _release(conn, study_uid, token, state="unresolved", retry_after=retry)
            log.warning(
                "study kept unpublished: unknown patient", extra={"study": study_uid, "detail": detail}
            )
            return PublishResult(Outcome.UNRESOLVED, detail)
    series: dict[str, list[tuple[str, str]]] = {}
    for r in rows:
        series.setdefault(r.series_uid, []).append((r.sop_class_uid, r.sop_instance_uid))
    now = datetime.now(UTC)
    kos_uid = _uid()
    est = next((e for e in domain.establishments if e.name == study.establishment), None)
    accession_authority = study.accession_issuer or (est.assigning_authority if est else None)
    kos = build_kos(
        ManifestStudy(
            study_uid=study_uid,
            patient_id=study.patient_id,
            issuer=study.issuer,
            patient_authority=local.authority,
            patient_name=study.patient_name,
            patient_birth_date=study.patient_birth_date,
            patient_sex=study.patient_sex,
            accession=study.accession,
            accession_issuer=accession_authority,
            study_date=study.study_date,
            study_time=study.study_time,
            study_id=study.study_id,
            study_description=study.study_description,
            referring_physician=study.referring_physician,
        ),
        [ReferencedSeries(uid, tuple(items)) for uid, items in series.items()],
        kos_uid=kos_uid,
        kos_series_uid=_uid(),
        retrieve_location_uid=domain.imaging_source_unique_id,
        retrieve_ae_title=settings.ae_title,
        when=now,
    )
    writer = stores.blobs.writer()
    try:
        writer.write(kos)
        blob = writer.finish()
    except BaseException:
        writer.abort()
        raise
    meta = ManifestMetadata(
        kos_uid=kos_uid,
        study_uid=study_uid,
        patient_id=affinity,
        local=local,
        source_id=(est.source_ids[0] if est and est.source_ids else domain.imaging_source_unique_id),
        submission_set_uid=_uid(),
        doc_id=f"urn:uuid:{uuid.uuid4()}",
        set_id=f"urn:uuid:{uuid.uuid4()}",
        modalities=tuple(modalities),
        created=now,
        accession=study.accession,
        accession_authority=accession_authority,
        patient_name=study.patient_name,
        patient_birth_date=study.patient_birth_date,
        patient_sex=study.patient_sex,
        study_date=study.study_date,
        study_time=study.study_time,
        title=study.study_description,
        replaces=tuple(previous),
    )
    submission = build_submission(meta, domain, lambda: f"urn:uuid:{uuid.uuid4()}")
    with stores.engine.begin() as conn:
        conn.execute(
            insert(imaging_manifest).values(
                kos_uid=kos_uid,
                study_uid=study_uid,
                entry_uuid=meta.doc_id,
                submission_set_uid=meta.submission_set_uid,
                patient_id=affinity,
                instance_count=len(rows),
                covers_seq=covers,
                published=time.time_ns(),
                status="pending",
            )
        )
    from xds_hub.repository.iti41 import provide_and_register

    try:
        provide_and_register(stores, settings, submission, {meta.doc_id: blob})
    except XdsError as exc:
        detail = "; ".join(f"{p.code}: {p.context}" for p in exc.problems)
        with stores.engine.begin() as conn:
            conn.execute(
                update(imaging_manifest).where(imaging_manifest.c.kos_uid == kos_uid).values(status="failed")
            )
            _report(conn, study_uid, "publish-failed", detail)
            retry = time.time_ns() + int(RETRY_SECONDS * _NS)
            _release(conn, study_uid, token, state="failed", retry_after=retry)
        log.warning("study manifest refused by the registry", extra={"study": study_uid, "detail": detail})
        return PublishResult(Outcome.FAILED, detail, kos_uid=kos_uid, patient_id=affinity)
    with stores.engine.begin() as conn:
        conn.execute(
            update(imaging_manifest).where(imaging_manifest.c.kos_uid == kos_uid).values(status="registered")
        )
        _mark_replaced(conn, study_uid, kos_uid)
        detail = f"manifest {kos_uid} ({len(rows)} instances) registered for {affinity}"
        _report(conn, study_uid, "published", detail)
        _release(
            conn,
            study_uid,
            token,
            state="published",
            published_seq=covers,
            affinity_patient_id=affinity,
            retry_after=None,
        )
    log.info("study published", extra={"study": study_uid, "kos": kos_uid, "instances": len(rows)})
    return PublishResult(Outcome.PUBLISHED, detail, kos_uid=kos_uid, patient_id=affinity, instances=len(rows))


def due_studies(conn: Connection, quiet_seconds: float, limit: int = 50) -> list[str]:
    """Studies with instances not yet in a manifest and none received for ``quiet_seconds``."""
    now = time.time_ns()
    quiet_before = now - int(quiet_seconds * _NS)
    stmt = (
        select(dicom_study.c.study_uid)
        .where(
            dicom_study.c.last_received > dicom_study.c.published_seq,
            dicom_study.c.last_received <= quiet_before,
            or_(dicom_study.c.retry_after.is_(None), dicom_study.c.retry_after <= now),
            or_(dicom_study.c.claim.is_(None), dicom_study.c.claim_until < now),
        )
        .order_by(dicom_study.c.last_received)
        .limit(limit)
    )
    return [uid for (uid,) in conn.execute(stmt)]


#: Errors that mean the database cannot be reached (down, restarting, locked): an outage, not a bug.
_OUTAGE_ERRORS = (OperationalError, InterfaceError, ConnectionError)


class StudyPublisher:
    """The publisher :class:`~xds_hub.server.Actor`: publishes studies once they are quiet.

    While the database is unreachable every pass fails; that is logged once when the outage begins
    (a warning with the error, no traceback) and once when a pass succeeds again (with how long it
    lasted and how many passes failed), not every ``interval``.  A failure that is not an outage
    (a bug) is logged with its traceback, also once until a pass succeeds.
    """

    def __init__(self, settings: Settings, stores: Stores, interval: float | None = None) -> None:
        self.settings = settings
        self.stores = stores
        quiet = settings.domain.study_quiet_seconds
        self.interval = interval if interval is not None else max(0.2, min(1.0, quiet / 4))
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        #: When the passes began failing (monotonic), and how many have failed since.
        self._failing_since: float | None = None
        self._failed_passes = 0

    def run_once(self) -> list[PublishResult]:
        with self.stores.engine.connect() as conn:
            due = due_studies(conn, self.settings.domain.study_quiet_seconds)
        results = []
        for study_uid in due:
            if self._stop.is_set():
                break
            try:
                results.append(publish_study(self.stores, self.settings, study_uid))
            except _OUTAGE_ERRORS:
                raise  # the database went away: the pass fails (logged once per outage)
            except Exception:  # one study's failure must not stop the others
                log.exception("publishing a study failed", extra={"study": study_uid})
        return results

    def run_pass(self) -> bool:
        """One pass of the loop, its failures logged once per outage; True if it succeeded."""
        try:
            self.run_once()
        except Exception as exc:
            self._failed_passes += 1
            if self._failing_since is None:
                self._failing_since = time.monotonic()
                fields = {
                    "error": f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"[:300]
                }
                if isinstance(exc, _OUTAGE_ERRORS):
                    log.warning("study publisher: database unavailable, retrying quietly", extra=fields)
                else:
                    log.exception("study publisher pass failed, retrying quietly", extra=fields)
            return False
        if self._failing_since is not None:
            log.warning(
                "study publisher: recovered",
                extra={
                    "down_seconds": round(time.monotonic() - self._failing_since, 1),
                    "failed_passes": self._failed_passes,
                },
            )
            self._failing_since, self._failed_passes = None, 0
        return True

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self.run_pass()

    def start(self) -> None:
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="xds-hub-publisher", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop after the publication in progress (an acknowledged instance is already durable)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=120)
            self._thread = None


def make_publisher(settings: Settings, stores: Stores) -> StudyPublisher:
    """ActorSpec factory (``xds_hub.server.ACTORS``)."""
    return StudyPublisher(settings, stores)
