"""The audit trail of the imaging transactions the hub serves (ITI-20), off their hot paths.

Each transaction only gathers a few values and hands the building and storing of its message(s)
to the process's :class:`~xds_hub.audit.recorder.AuditRecorder` (the writer thread looks the
patients up and writes one batch per flush).  What is recorded, with the builders of
:mod:`xds_hub.audit.events`:

=================  ==============================================================================
C-STORE received   DICOM Instances Transferred (110104, C), one message per study and association
                   (not per instance): Source and requestor the calling AE, Destination the hub
C-FIND             Query (110112, E): the SOP class, the identifier as received, its PatientID
C-MOVE / C-GET     Begin Transferring (110102, E) when the sub-operations start, then Instances
                   Transferred (110104, R) per study with the outcome: Source the hub, Destination
                   the move destination (C-MOVE) or the C-GET SCU, requestor the C-MOVE/C-GET SCU
RAD-69, WADO       Instances Transferred (110104, R), EventTypeCode RAD-69 / RAD-55 / RAD-107
                   (:func:`~xds_hub.audit.events.imaging_export`), one message per patient
association        Security Alert (110113, 110132) when the calling AE title is not the
refused            certificate's establishment's (the TLS refusals are recorded by
                   :mod:`xds_hub.audit.alerts`)
=================  ==============================================================================

The patient of a study is its local identity, ``ID^^^&authority&ISO`` (the DICOM Patient ID with
the issuer :func:`~xds_hub.imaging.patients.local_patient` gives it), so that ``xds-hub audit
--patient ID`` lists who stored, queried and retrieved the patient's images.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from sqlalchemy import select

from xds_hub.audit import events
from xds_hub.audit.model import Action, AuditMessage, Outcome
from xds_hub.audit.recorder import recorder_for
from xds_hub.imaging.patients import local_patient
from xds_hub.imaging.tables import dicom_study
from xds_hub.log import get_logger

if TYPE_CHECKING:
    from xds_hub.config import AffinityDomain, Settings
    from xds_hub.imaging.query import StoredInstance
    from xds_hub.storage.stores import Stores

log = get_logger("xds_hub.imaging.audit")

_IN_CHUNK = 500
#: A refusal message names at most this many distinct reasons, and this many unreadable instances.
_MAX_REASONS = 5
_MAX_UNREAD_LISTED = 10


def patient_cx(domain: AffinityDomain, patient_id: str, issuer: str | None, establishment: str) -> str | None:
    """The audit trail's name for a study's patient: its local CX (``ID^^^`` when the domain is unknown)."""
    if not patient_id:
        return None
    local = local_patient(domain, patient_id, issuer, establishment)
    return local.cx if local is not None else f"{patient_id}^^^"


@dataclass(slots=True)
class _StudyStores:
    patient: str | None
    sop_classes: dict[str, list[str]] = field(default_factory=dict)


@dataclass(slots=True)
class StoreTally:
    """The instances one association stored, by study (filled on the C-STORE path: one dict append),
    and those it refused: by study when their data set could be read, else under the study ``""``."""

    studies: dict[str, _StudyStores] = field(default_factory=dict)
    refused: dict[str, _StudyStores] = field(default_factory=dict)
    #: The distinct reasons of the refusals (their Error Comments), in order of first occurrence.
    reasons: dict[str, None] = field(default_factory=dict)

    def add(self, study_uid: str, patient: str | None, sop_class: str, sop_instance: str) -> None:
        study = self.studies.get(study_uid)
        if study is None:
            study = self.studies[study_uid] = _StudyStores(patient)
        study.sop_classes.setdefault(sop_class, []).append(sop_instance)

    def refuse(
        self, study_uid: str, patient: str | None, sop_class: str, sop_instance: str, reason: str
    ) -> None:
        study = self.refused.get(study_uid)
        if study is None:
            study = self.refused[study_uid] = _StudyStores(patient)
        study.sop_classes.setdefault(sop_class, []).append(sop_instance)
        if len(self.reasons) < _MAX_REASONS:
            self.reasons[reason or "refused"] = None

    def __bool__(self) -> bool:
        return bool(self.studies or self.refused)


def _instances(study: _StudyStores) -> list[str]:
    return [uid for uids in study.sop_classes.values() for uid in uids]


def _listed(uids: list[str]) -> str:
    more = len(uids) - _MAX_UNREAD_LISTED
    return " ".join(uids[:_MAX_UNREAD_LISTED]) + (f" and {more} more" if more > 0 else "")


def _study_ref(study_uid: str, sop_classes: dict[str, list[str]]) -> events.StudyRef:
    return events.StudyRef(study_uid, {k: tuple(v) for k, v in sop_classes.items()})


def _submit(stores: Stores, work: Callable[[], Iterable[AuditMessage]]) -> None:
    try:
        recorder_for(stores.engine).submit(work)
    except Exception:  # audit never breaks the transaction
        log.exception("imaging audit work could not be queued")


def study_patients(stores: Stores, settings: Settings, study_uids: Iterable[str]) -> dict[str, str | None]:
    """Study Instance UID -> the patient CX of the study (studies the hub does not hold are absent)."""
    uids = list(dict.fromkeys(study_uids))
    found: dict[str, str | None] = {}
    st = dicom_study.c
    with stores.engine.connect() as conn:
        for start in range(0, len(uids), _IN_CHUNK):
            rows = conn.execute(
                select(st.study_uid, st.patient_id, st.issuer, st.establishment).where(
                    st.study_uid.in_(uids[start : start + _IN_CHUNK])
                )
            )
            for uid, pid, issuer, establishment in rows:
                found[uid] = patient_cx(settings.domain, pid or "", issuer, establishment or "")
    return found


def _by_patient(
    stores: Stores, settings: Settings, found: Sequence[StoredInstance]
) -> dict[str | None, list[events.StudyRef]]:
    """The instances as StudyRefs, grouped by their study's patient."""
    by_study: dict[str, dict[str, list[str]]] = {}
    for inst in found:
        by_study.setdefault(inst.study_uid, {}).setdefault(inst.sop_class_uid, []).append(
            inst.sop_instance_uid
        )
    patients = study_patients(stores, settings, by_study)
    grouped: dict[str | None, list[events.StudyRef]] = {}
    for uid, classes in by_study.items():
        grouped.setdefault(patients.get(uid), []).append(_study_ref(uid, classes))
    return grouped


# ---------------------------------------------------------------------------------------------
# DICOM
# ---------------------------------------------------------------------------------------------


def stored(settings: Settings, stores: Stores, sender: events.Node, tally: StoreTally) -> None:
    """C-STORE: one Instances Transferred (C) per study the association stored, and one with a
    serious-failure outcome per study of the instances it refused (their Error Comments as the
    description; the instances whose data set could not be read are listed without a study)."""
    if not tally:
        return
    studies, refused = dict(tally.studies), dict(tally.refused)
    why = "; ".join(tally.reasons)

    def build() -> list[AuditMessage]:
        source, hub = events.audit_source(settings), events.hub_dicom(settings)
        messages = [
            events.instances_transferred(
                source,
                sender,
                hub,
                [_study_ref(uid, s.sop_classes)],
                s.patient,
                Action.CREATE,
                requestor=sender,
            )
            for uid, s in studies.items()
        ]
        for uid, s in refused.items():
            count = sum(len(v) for v in s.sop_classes.values())
            unread = "" if uid else f", data set unreadable: {_listed(_instances(s))}"
            messages.append(
                events.instances_transferred(
                    source,
                    sender,
                    hub,
                    [_study_ref(uid, s.sop_classes)] if uid else [],
                    s.patient,
                    Action.CREATE,
                    requestor=sender,
                    outcome=Outcome.SERIOUS_FAILURE,
                    description=f"{count} instance(s) refused{unread}: {why}",
                )
            )
        return messages

    _submit(stores, build)


def queried(
    settings: Settings,
    stores: Stores,
    requestor: events.Node,
    sop_class_uid: str,
    identifier: bytes,
    transfer_syntax: str,
    patient: tuple[str, str | None] | None,
    outcome: Outcome,
    description: str | None,
    hub: events.Node | None = None,
    establishment: str | None = None,
) -> None:
    """C-FIND / QIDO-RS: Query (110112, E); ``patient`` (PatientID, IssuerOfPatientID) when the query
    names one, in the domain of ``establishment`` (default: the one of the calling AE title)."""
    if establishment is None:
        est = settings.domain.establishment_for_ae(requestor.user_id)
        establishment = est.name if est else ""

    def build() -> list[AuditMessage]:
        pid = None
        if patient is not None:
            pid = patient_cx(settings.domain, patient[0], patient[1], establishment)
        return [
            events.dicom_query(
                events.audit_source(settings),
                requestor,
                hub or events.hub_dicom(settings),
                sop_class_uid,
                identifier,
                transfer_syntax,
                pid,
                outcome,
                description,
            )
        ]

    _submit(stores, build)


def retrieve_started(
    settings: Settings,
    stores: Stores,
    requestor: events.Node,
    receiver: events.Node,
    found: Sequence[StoredInstance],
) -> None:
    """C-MOVE / C-GET: Begin Transferring DICOM Instances (110102, E) per patient."""
    found = list(found)

    def build() -> list[AuditMessage]:
        source, hub = events.audit_source(settings), events.hub_dicom(settings)
        return [
            events.begin_transferring(source, hub, receiver, refs, patient, requestor=requestor)
            for patient, refs in _by_patient(stores, settings, found).items()
        ]

    if found:
        _submit(stores, build)


def retrieved(
    settings: Settings,
    stores: Stores,
    requestor: events.Node,
    receiver: events.Node,
    sent: Sequence[StoredInstance],
    failed: Sequence[StoredInstance],
    description: str | None = None,
) -> None:
    """C-MOVE / C-GET done: Instances Transferred (110104, R) for the instances sent, and a failure
    message (outcome 4) for those that were not."""
    sent, failed = list(sent), list(failed)

    def build() -> list[AuditMessage]:
        source, hub = events.audit_source(settings), events.hub_dicom(settings)
        out: list[AuditMessage] = []
        for group, outcome, why in (
            (sent, Outcome.SUCCESS, None),
            (failed, Outcome.MINOR_FAILURE, description),
        ):
            for patient, refs in _by_patient(stores, settings, group).items():
                out.append(
                    events.instances_transferred(
                        source, hub, receiver, refs, patient, Action.READ, requestor, outcome, why
                    )
                )
        return out

    if sent or failed:
        _submit(stores, build)


def refused(settings: Settings, stores: Stores, requestor: events.Node, reason: str) -> None:
    """An association refused by the access rules: Security Alert (110113 / 110132)."""

    def build() -> list[AuditMessage]:
        hub = events.hub_dicom(settings)
        return [
            events.access_denied(events.audit_source(settings), requestor, hub, "DICOM association", reason)
        ]

    _submit(stores, build)


# ---------------------------------------------------------------------------------------------
# HTTP: RAD-69, WADO-URI, WADO-RS
# ---------------------------------------------------------------------------------------------


def exported(
    settings: Settings,
    stores: Stores,
    requestor: events.Node,
    hub: events.Node,
    transaction: str,
    found: Sequence[StoredInstance],
    outcome: Outcome = Outcome.SUCCESS,
    description: str | None = None,
) -> None:
    """RAD-69 / WADO: Instances Transferred (110104, R) with the transaction's EventTypeCode."""
    found = list(found)
    if not found and outcome is Outcome.SUCCESS:
        return

    def build() -> list[AuditMessage]:
        source = events.audit_source(settings)
        groups = _by_patient(stores, settings, found) if found else {None: []}
        return [
            events.imaging_export(source, requestor, hub, refs, patient, outcome, description, transaction)
            for patient, refs in groups.items()
        ]

    _submit(stores, build)
