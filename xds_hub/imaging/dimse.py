"""The hub's DICOM listener (with :mod:`.acceptor` and :mod:`.dicomnet`, the modules that import pynetdicom).

Services, as an SCP on ``settings.dicom_port`` with AE title ``settings.ae_title``:

- Verification (C-ECHO, PS3.4 A);
- Storage (C-STORE, PS3.4 B) for every storage SOP class of the standard, in the common
  uncompressed and compressed transfer syntaxes, each data set kept as received (:mod:`.ingest`);
- Query/Retrieve (PS3.4 C), Patient Root and Study Root: C-FIND at PATIENT / STUDY / SERIES /
  IMAGE level (:mod:`.query`), C-MOVE to the ``dicom_nodes`` of the affinity domain and C-GET.

The calling AE title says which member establishment is talking; an AE title that no
establishment lists is rejected at association (A-ASSOCIATE-RJ, "calling AE title not
recognised", PS3.8 9.3.4).  Every connection has TCP_NODELAY set.  A handler's exception becomes
a failure status, never a dropped association (pynetdicom turns it into one).

Security (ITI-19 / ITI-20): with ``tls_cert`` the listener speaks TLS 1.2+ (the handshake runs in
the connection's own thread, bounded by the context's timeout; a refused node is recorded as a
Security Alert); with ``tls_ca`` a client certificate from that CA is required, and the calling AE
title must belong to the establishment of that certificate (:func:`~xds_hub.security.access.check_ae`),
else A-ASSOCIATE-RJ (1, 1, 3) and a Security Alert.  At most :data:`MAX_ASSOCIATIONS` associations
are established at once (A-ASSOCIATE-RJ (2, 3, 2), local limit exceeded, past it); connections that
never send an A-ASSOCIATE-RQ do not count and are dropped after the ARTIM time-out
(:data:`ASSOCIATE_WAIT`).  Stores, queries and retrieves are audited (:mod:`.audit`).

Each association runs on :class:`.dicomnet.FastDUL` (no polling; C-STORE-RQs served straight from
the received PDUs, without pynetdicom's message decoding and dispatch) and on
:class:`LowLatencyAssociation` (a reactor that blocks on its queue); both end up in
:meth:`DicomActor.store`.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from pydicom import config as pydicom_config
from pydicom.datadict import dictionary_VR, tag_for_keyword
from pydicom.dataset import Dataset
from pydicom.uid import (
    UID,
    AllTransferSyntaxes,
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
)
from pynetdicom import AE, AllStoragePresentationContexts, _config, build_context, evt
from pynetdicom.association import Association
from pynetdicom.pdu_primitives import A_ASSOCIATE
from pynetdicom.transport import ThreadedAssociationServer

from xds_hub.audit import events
from xds_hub.audit.model import Outcome
from xds_hub.errors import ParseError
from xds_hub.imaging import audit, dicomnet, files
from xds_hub.imaging.acceptor import (
    HubServer,
    LowLatencyAssociation,
    hang_up,
    identity_of,
    nodelay,
    peer_node,
    request_handler,
)
from xds_hub.imaging.ingest import Ingest
from xds_hub.imaging.query import KEYS, UNIQUE_KEY, Level, Query, StoredInstance, instances, level_of, search
from xds_hub.imaging.status import Status
from xds_hub.log import get_logger
from xds_hub.security.access import AE_REJECT, AccessDenied, check_ae
from xds_hub.security.tls import dicom_tls_args, peer_identity, server_ssl_context

if TYPE_CHECKING:
    from xds_hub.config import Settings
    from xds_hub.storage.stores import Stores

log = get_logger("xds_hub.imaging.dimse")

#: Transfer syntaxes accepted for storage (PS3.5 Annex A): uncompressed, deflated, and the
#: JPEG, JPEG-LS, JPEG 2000, HTJ2K, RLE, MPEG-2/4 and HEVC families; the data set is kept as sent.
STORAGE_TRANSFER_SYNTAXES: tuple[UID, ...] = (
    ExplicitVRLittleEndian,  # first: pynetdicom accepts the first of these that the peer proposes
    ImplicitVRLittleEndian,
    *(
        ts
        for ts in AllTransferSyntaxes
        if ts not in (ExplicitVRLittleEndian, ImplicitVRLittleEndian)
        and not ts.startswith(("1.2.840.10008.1.2.7.", "1.2.840.10008.1.2.4.204", "1.2.840.10008.1.2.4.205"))
    ),
)

#: Largest P-DATA PDU the hub accepts (peers send up to this; bigger PDUs mean less per-PDU work);
#: a P-DATA-TF announcing more is answered with A-ABORT before it is read (:mod:`.dicomnet`).
MAX_PDU = 4 * 1024 * 1024
#: Associations established at once; more get A-ASSOCIATE-RJ (transient, local limit exceeded).
MAX_ASSOCIATIONS = 64
#: Seconds a connection has to send its A-ASSOCIATE-RQ (ARTIM, PS3.8 9.1.5); also the ACSE timeout.
ASSOCIATE_WAIT = 10
#: A-ASSOCIATE-RJ (result, source, reason) past MAX_ASSOCIATIONS (PS3.8 9.3.4: 2 rejected-transient,
#: 3 service-provider presentation related, 2 local-limit-exceeded).
LIMIT_REJECT = (2, 3, 2)

# SOP classes of PS3.4 Annex A and C (Table C.3-1 / C.3-2), by UID.
Verification = UID("1.2.840.10008.1.1")
PatientRootQueryRetrieveInformationModelFind = UID("1.2.840.10008.5.1.4.1.2.1.1")
PatientRootQueryRetrieveInformationModelMove = UID("1.2.840.10008.5.1.4.1.2.1.2")
PatientRootQueryRetrieveInformationModelGet = UID("1.2.840.10008.5.1.4.1.2.1.3")
StudyRootQueryRetrieveInformationModelFind = UID("1.2.840.10008.5.1.4.1.2.2.1")
StudyRootQueryRetrieveInformationModelMove = UID("1.2.840.10008.5.1.4.1.2.2.2")
StudyRootQueryRetrieveInformationModelGet = UID("1.2.840.10008.5.1.4.1.2.2.3")

_PATIENT_ROOT = {
    PatientRootQueryRetrieveInformationModelFind,
    PatientRootQueryRetrieveInformationModelMove,
    PatientRootQueryRetrieveInformationModelGet,
}
_LEVELS_PATIENT_ROOT = (Level.PATIENT, Level.STUDY, Level.SERIES, Level.IMAGE)
_LEVELS_STUDY_ROOT = (Level.STUDY, Level.SERIES, Level.IMAGE)


def _failure(status: int, comment: str) -> Dataset:
    ds = Dataset()
    ds.Status = int(status)
    ds.ErrorComment = comment[:64]  # LO
    return ds


def allowed_calling_aets(settings: Settings) -> list[str]:
    """The AE titles of the member establishments (their ae_titles and dicom_nodes)."""
    titles: list[str] = []
    for est in settings.domain.establishments:
        titles.extend(est.ae_titles)
        titles.extend(node.ae_title for node in est.dicom_nodes)
    return sorted(set(titles))


class DicomActor:
    """The DICOM :class:`~xds_hub.server.Actor`: start() returns once the port listens."""

    def __init__(self, settings: Settings, stores: Stores) -> None:
        self.settings = settings
        self.stores = stores
        self.ingest = Ingest(stores, settings, keep_connections=2)
        self.ae = self._build_ae()
        self._server: ThreadedAssociationServer | None = None
        #: True when peers present certificates from ``tls_ca`` (mutual TLS): AE titles are checked.
        self.mutual_tls = bool(settings.tls_cert and settings.tls_ca)

    # ----------------------------------------------------------------------------- set-up

    def _build_ae(self) -> AE:
        ae = AE(ae_title=self.settings.ae_title)
        ae.maximum_pdu_size = MAX_PDU
        ae.network_timeout = 60
        ae.acse_timeout = ASSOCIATE_WAIT
        ae.dimse_timeout = 60
        # pynetdicom counts every connection, associated or not; the hub counts established
        # associations itself (admit), so idle connections cannot lock members out.
        ae.maximum_associations = 100_000
        ae.require_called_aet = True
        # An empty list would let anyone in: keep a title nobody can send when no AE is configured.
        ae.require_calling_aet = allowed_calling_aets(self.settings) or ["NO-AE-ALLOWED"]
        syntaxes = list(STORAGE_TRANSFER_SYNTAXES)
        for cx in AllStoragePresentationContexts:
            assert cx.abstract_syntax is not None
            ae.add_supported_context(cx.abstract_syntax, syntaxes, scu_role=True, scp_role=True)
        ae.add_supported_context(Verification)
        for sop in (
            PatientRootQueryRetrieveInformationModelFind,
            StudyRootQueryRetrieveInformationModelFind,
            PatientRootQueryRetrieveInformationModelMove,
            StudyRootQueryRetrieveInformationModelMove,
            PatientRootQueryRetrieveInformationModelGet,
            StudyRootQueryRetrieveInformationModelGet,
        ):
            ae.add_supported_context(sop)
        return ae

    def handlers(self) -> list[Any]:
        return [
            (evt.EVT_CONN_OPEN, nodelay),
            (evt.EVT_C_ECHO, lambda _event: int(Status.SUCCESS)),
            (evt.EVT_C_STORE, self.on_store),
            (evt.EVT_C_FIND, self.on_find),
            (evt.EVT_C_MOVE, self.on_move),
            (evt.EVT_C_GET, self.on_get),
        ]

    def start(self) -> None:
        # Process-wide settings of the two libraries, for the actors process that runs us:
        # pynetdicom's per-message debug handlers and pydicom's per-value regex checks cost more
        # than the rest of a C-STORE; the hub logs what it needs itself.
        _config.LOG_HANDLER_LEVEL = "none"
        pydicom_config.settings.reading_validation_mode = pydicom_config.IGNORE
        pydicom_config.settings.writing_validation_mode = pydicom_config.IGNORE
        server = self.ae.make_server(
            (self.settings.host, self.settings.dicom_port),
            evt_handlers=self.handlers(),
            server_class=HubServer,
            request_handler=request_handler(self),
        )
        assert isinstance(server, HubServer)
        from xds_hub.audit.alerts import refusal_recorder

        server.tls = server_ssl_context(
            self.settings, on_refused=refusal_recorder(self.settings, "dicom", self.stores.engine)
        )
        thread = threading.Thread(target=server.serve_forever, name="xds-hub-dicom", daemon=True)
        thread.start()
        self.ae._servers.append(server)  # so that server.shutdown() can deregister it
        self._server = server

    def stop(self) -> None:
        """Stop listening, let open associations finish (up to 30 s), then abort the rest.

        An instance is acknowledged only once it is durable, so nothing acknowledged is lost.
        """
        if self._server is None:
            self.ingest.close()
            return
        server, self._server = self._server, None
        server.shutdown()  # stops accepting (the accept loop has ended) and closes the listening socket
        active = list(server.active_associations)
        for assoc in active:  # connections that never associated (e.g. port probes) have nothing to drain
            if not assoc.is_established:
                hang_up(assoc)
        deadline = time.monotonic() + 30
        while any(a.is_alive() for a in active) and time.monotonic() < deadline:
            time.sleep(0.05)
        for assoc in active:
            if assoc.is_alive():
                assoc.abort()
        self.ingest.close()

    # ----------------------------------------------------------------------------- associations

    def admit(self, assoc: Association, rq: A_ASSOCIATE) -> tuple[int, int, int] | None:
        """The hub's rules for an A-ASSOCIATE-RQ: None to go on, or the A-ASSOCIATE-RJ to answer.

        With mutual TLS the calling AE title must be the certificate's establishment's; then at
        most MAX_ASSOCIATIONS established associations (connections without one do not count).
        """
        calling = str(rq.calling_ae_title).strip()
        identity = None
        if self.mutual_tls:
            identity = peer_identity(getattr(assoc.dul.socket, "socket", None), self.settings.domain)
        if isinstance(assoc, LowLatencyAssociation):
            assoc.hub_identity = identity
        try:
            check_ae(identity, calling, self.settings.domain)
        except AccessDenied as exc:
            log.warning("DICOM association refused", extra={"ae": calling, "why": exc.reason})
            audit.refused(self.settings, self.stores, peer_node(assoc, calling, identity), exc.reason)
            return AE_REJECT
        established = sum(1 for a in self.ae.active_associations if a.is_acceptor and a.is_established)
        if established >= MAX_ASSOCIATIONS:
            log.warning(
                "DICOM association refused: too many", extra={"ae": calling, "established": established}
            )
            return LIMIT_REJECT
        return None

    def ended(self, assoc: LowLatencyAssociation) -> None:
        """The association's thread ends: audit what it stored (one message per study)."""
        tally = assoc.hub_tally
        if not tally:
            return
        assoc.hub_tally = None
        calling = str(assoc.requestor.ae_title or "").strip()
        audit.stored(self.settings, self.stores, peer_node(assoc, calling, assoc.hub_identity), tally)

    # ----------------------------------------------------------------------------- C-STORE

    def store_handler(self, tally: audit.StoreTally) -> dicomnet.StoreHandler:
        """The C-STORE handler of one association: stores, and notes what it stored for the audit."""

        def handle(
            calling_ae: str,
            sop_class_uid: str,
            sop_instance_uid: str,
            transfer_syntax: str,
            data: bytes | memoryview,
        ) -> tuple[int, str]:
            return self.store(calling_ae, sop_class_uid, sop_instance_uid, transfer_syntax, data, tally)

        return handle

    def store(
        self,
        calling_ae: str,
        sop_class_uid: str,
        sop_instance_uid: str,
        transfer_syntax: str,
        dataset: bytes | memoryview,
        tally: audit.StoreTally | None = None,
    ) -> tuple[int, str]:
        """C-STORE SCP (PS3.4 B.2.3): (status, error comment); Success only once the instance is durable."""
        outcome = self.ingest.store(
            calling_ae=calling_ae,
            sop_class_uid=sop_class_uid,
            sop_instance_uid=sop_instance_uid,
            transfer_syntax=transfer_syntax,
            dataset=dataset,
        )
        attrs = outcome.attrs
        if tally is None:
            return int(outcome.status), outcome.comment
        ok = outcome.status == Status.SUCCESS
        study_uid = attrs.study_uid if attrs is not None else ""
        patient = None
        if attrs is not None and study_uid not in (tally.studies if ok else tally.refused):
            est = self.settings.domain.establishment_for_ae(calling_ae)
            patient = audit.patient_cx(
                self.settings.domain, attrs.patient_id, attrs.issuer, est.name if est else ""
            )
        if ok:
            tally.add(study_uid, patient, sop_class_uid, sop_instance_uid)
        else:
            tally.refuse(study_uid, patient, sop_class_uid, sop_instance_uid, outcome.comment)
        return int(outcome.status), outcome.comment

    def on_store(self, event: Any) -> int | Dataset:
        """EVT_C_STORE: the C-STORE-RQs that the fast path of :mod:`.dicomnet` leaves to pynetdicom."""
        req = event.request
        with req.DataSet.getbuffer() as view:
            status, comment = self.store(
                str(event.assoc.requestor.ae_title),
                str(req.AffectedSOPClassUID),
                str(req.AffectedSOPInstanceUID),
                str(event.context.transfer_syntax),
                view,
                getattr(event.assoc, "hub_tally", None),
            )
        if status == Status.SUCCESS:
            return int(Status.SUCCESS)
        return _failure(status, comment)

    # ----------------------------------------------------------------------------- C-FIND

    def on_find(self, event: Any) -> Iterator[tuple[int | Dataset, Dataset | None]]:
        """C-FIND SCP (PS3.4 C.4.1.3): one Pending response per match, then Success; audited."""
        failure: str | None = None
        patient: tuple[str, str | None] | None = None
        try:
            try:
                identifier: Dataset = event.identifier
                pid = str(identifier.get("PatientID", "") or "").strip()
                if pid and "*" not in pid and "?" not in pid:
                    patient = (pid, str(identifier.get("IssuerOfPatientID", "") or "").strip() or None)
                level = level_of(str(identifier.get("QueryRetrieveLevel", "")), _levels(event))
                match, requested = _identifier_keys(identifier)
                with self.stores.engine.connect() as conn:
                    rows = list(search(conn, Query(level, match)))
            except (ParseError, ValueError, TypeError) as exc:
                failure = str(exc)
                yield _failure(Status.DATASET_DOES_NOT_MATCH_SOP_CLASS, failure), None
                return
            yield from self._matches(event, level, requested, rows)
        finally:
            audit.queried(
                self.settings,
                self.stores,
                peer_node(event.assoc, str(event.assoc.requestor.ae_title).strip(), identity_of(event.assoc)),
                str(event.request.AffectedSOPClassUID),
                _identifier_bytes(event),
                str(event.context.transfer_syntax),
                patient,
                Outcome.SERIOUS_FAILURE if failure else Outcome.SUCCESS,
                failure,
            )

    def _matches(
        self, event: Any, level: Level, requested: list[str], rows: list[dict[str, Any]]
    ) -> Iterator[tuple[int | Dataset, Dataset | None]]:
        for row in rows:
            if event.is_cancelled:
                yield int(Status.CANCEL), None
                return
            yield int(Status.PENDING), _response_identifier(level, requested, row, self.settings.ae_title)

    # ----------------------------------------------------------------------------- C-MOVE / C-GET

    def _retrieve_set(self, event: Any, allowed: tuple[Level, ...]) -> list[StoredInstance]:
        identifier: Dataset = event.identifier
        level = level_of(str(identifier.get("QueryRetrieveLevel", "")), allowed)
        uids: dict[str, list[str]] = {}
        for key in ("PatientID", "StudyInstanceUID", "SeriesInstanceUID", "SOPInstanceUID"):
            value = str(identifier.get(key, "") or "")
            uids[key] = [v for v in value.split("\\") if v]
        if not uids[UNIQUE_KEY[level]]:
            raise ParseError(f"a {level}-level retrieve needs {UNIQUE_KEY[level]}")
        with self.stores.engine.connect() as conn:
            return instances(
                conn,
                study_uids=uids["StudyInstanceUID"],
                series_uids=uids["SeriesInstanceUID"],
                sop_uids=uids["SOPInstanceUID"],
                patient_id=uids["PatientID"][0] if uids["PatientID"] else None,
            )

    def on_move(self, event: Any) -> Iterator[Any]:
        """C-MOVE SCP (PS3.4 C.4.2.3): C-STORE sub-operations to a configured dicom_node."""
        node = self.settings.domain.dicom_node(str(event.move_destination).strip())
        if node is None:
            log.warning("C-MOVE to an unknown destination", extra={"destination": event.move_destination})
            yield None, None
            return
        try:
            found = self._retrieve_set(event, _levels(event))
        except (ParseError, ValueError, TypeError) as exc:
            yield node.host, node.port, {"contexts": [build_context(Verification)]}
            yield 1
            yield _failure(Status.DATASET_DOES_NOT_MATCH_SOP_CLASS, str(exc)), None
            return
        options: dict[str, Any] = {
            "contexts": _store_contexts(found),
            "evt_handlers": [(evt.EVT_CONN_OPEN, nodelay)],
        }
        tls = dicom_tls_args(self.settings, node.host)  # the destination is a secure node too (ITI-19)
        if tls is not None:
            options["tls_args"] = tls
        yield node.host, node.port, options
        yield len(found)
        receiver = events.peer(node.ae_title, node.host)
        yield from self._audited_sub_operations(event, found, None, receiver)

    def on_get(self, event: Any) -> Iterator[Any]:
        """C-GET SCP (PS3.4 C.4.3.3): C-STORE sub-operations on the same association."""
        try:
            found = self._retrieve_set(event, _levels(event))
        except (ParseError, ValueError, TypeError) as exc:
            yield 1
            yield _failure(Status.DATASET_DOES_NOT_MATCH_SOP_CLASS, str(exc)), None
            return
        accepted: dict[str, set[str]] = {}
        for cx in event.assoc.accepted_contexts:
            if cx.as_scu or cx.as_scp:
                accepted.setdefault(str(cx.abstract_syntax), set()).update(str(t) for t in cx.transfer_syntax)
        yield len(found)
        yield from self._audited_sub_operations(event, found, accepted, None)

    def _audited_sub_operations(
        self,
        event: Any,
        found: list[StoredInstance],
        accepted: dict[str, set[str]] | None,
        receiver: events.Node | None,
    ) -> Iterator[tuple[int, Dataset | None]]:
        """The sub-operations, between a Begin Transferring and an Instances Transferred audit
        message (``receiver`` None: the C-GET SCU itself)."""
        requestor = peer_node(
            event.assoc, str(event.assoc.requestor.ae_title).strip(), identity_of(event.assoc)
        )
        to = receiver or requestor
        audit.retrieve_started(self.settings, self.stores, requestor, to, found)
        sent: list[StoredInstance] = []
        failed: list[StoredInstance] = []
        try:
            yield from self._sub_operations(event, found, accepted, sent, failed)
        finally:
            audit.retrieved(
                self.settings,
                self.stores,
                requestor,
                to,
                sent,
                [*failed, *found[len(sent) + len(failed) :]],
                "sub-operations failed or not performed",
            )

    def _sub_operations(
        self,
        event: Any,
        found: list[StoredInstance],
        accepted: dict[str, set[str]] | None,
        sent: list[StoredInstance],
        failed: list[StoredInstance],
    ) -> Iterator[tuple[int, Dataset | None]]:
        for inst in found:
            if event.is_cancelled:
                yield int(Status.CANCEL), None
                return
            try:
                dataset = self._dataset_for(inst, accepted)
            except (OSError, files.TranscodeError) as exc:
                log.warning(
                    "retrieve sub-operation skipped", extra={"sop": inst.sop_instance_uid, "why": str(exc)}
                )
                failed.append(inst)
                ds = Dataset()
                ds.SOPInstanceUID = inst.sop_instance_uid
                yield int(Status.PENDING), ds  # no SOP Class: pynetdicom counts a failed sub-operation
                continue
            sent.append(inst)
            yield int(Status.PENDING), dataset

    def _dataset_for(self, inst: StoredInstance, accepted: dict[str, set[str]] | None) -> Dataset:
        """The instance to send; transcoded when the peer accepted only other syntaxes (C-GET)."""
        target = inst.transfer_syntax
        if accepted is not None:
            syntaxes = accepted.get(inst.sop_class_uid, set())
            choice = files.choose_syntax(
                inst.transfer_syntax,
                [t for t in (ExplicitVRLittleEndian, ImplicitVRLittleEndian) if t in syntaxes]
                if inst.transfer_syntax not in syntaxes
                else [inst.transfer_syntax],
            )
            if choice is None:
                raise files.TranscodeError(f"the peer accepts no transfer syntax for {inst.sop_class_uid}")
            target = choice
        if target != inst.transfer_syntax:
            inst = files.derived(self.stores, inst, target)
        return files.read_instance(self.stores, inst)


def _identifier_bytes(event: Any) -> bytes:
    """The C-FIND identifier as received (its encoded data set)."""
    raw: Any = getattr(event.request, "Identifier", None)
    return bytes(raw.getvalue()) if raw is not None and hasattr(raw, "getvalue") else b""


def _levels(event: Any) -> tuple[Level, ...]:
    """The levels of the information model the request uses (PS3.4 C.6.1 / C.6.2)."""
    return _LEVELS_PATIENT_ROOT if event.request.AffectedSOPClassUID in _PATIENT_ROOT else _LEVELS_STUDY_ROOT


def _store_contexts(found: list[StoredInstance]) -> list[Any]:
    """Presentation contexts for a C-MOVE sub-association.

    Each (SOP class, stored transfer syntax) gets a context of its own, so that an instance goes
    as it was stored whenever the destination accepts that; an uncompressed instance also gets
    the other uncompressed syntax as a fallback (pynetdicom converts between them).
    """
    contexts: list[Any] = []
    seen: set[tuple[str, str]] = set()
    for inst in found:
        syntaxes = [inst.transfer_syntax]
        if inst.transfer_syntax in _UNCOMPRESSED:
            syntaxes = [inst.transfer_syntax, *(t for t in _UNCOMPRESSED if t != inst.transfer_syntax)]
        for syntax in syntaxes:
            if (inst.sop_class_uid, syntax) in seen:
                continue
            seen.add((inst.sop_class_uid, syntax))
            contexts.append(build_context(inst.sop_class_uid, [syntax]))
    # PS3.8 9.3.2.2: at most 128 presentation contexts in one association
    return contexts[:128] or [build_context(Verification)]


_UNCOMPRESSED = (ExplicitVRLittleEndian, ImplicitVRLittleEndian)


def _identifier_keys(identifier: Dataset) -> tuple[dict[str, str], list[str]]:
    """Matching values (keyword -> value) and the keywords asked for, from a C-FIND identifier."""
    match: dict[str, str] = {}
    requested: list[str] = []
    for elem in identifier:
        if elem.tag.group in (0x0000, 0x0002) or elem.keyword in (
            "QueryRetrieveLevel",
            "SpecificCharacterSet",
        ):
            continue
        keyword = elem.keyword or ""
        requested.append(keyword or f"{int(elem.tag):08X}")
        if keyword in KEYS and elem.VR != "SQ":
            value = elem.value
            if value is None:
                text = ""
            elif isinstance(value, list | tuple) or type(value).__name__ == "MultiValue":
                text = "\\".join(str(v) for v in value)
            else:
                text = str(value)
            match[keyword] = text
    return match, requested


def _response_identifier(level: Level, requested: list[str], row: dict[str, Any], ae_title: str) -> Dataset:
    """A C-FIND match: the requested keys with their values (empty when the hub has none)."""
    ds = Dataset()
    ds.SpecificCharacterSet = "ISO_IR 192"
    ds.QueryRetrieveLevel = level.value
    ds.RetrieveAETitle = ae_title
    for keyword in dict.fromkeys([*requested, UNIQUE_KEY[level]]):
        key = KEYS.get(keyword)
        if key is None:
            tag = tag_for_keyword(keyword)
            if tag is not None:
                ds.add_new(tag, dictionary_VR(tag), None)
            continue
        value = row.get(keyword)
        if value is None or value == []:
            ds.add_new(key.tag, key.vr, None)
        elif isinstance(value, list):
            ds.add_new(key.tag, key.vr, [str(v) for v in value])
        else:
            ds.add_new(key.tag, key.vr, int(value) if key.vr == "US" else str(value))
    return ds


def make_dicom_actor(settings: Settings, stores: Stores) -> DicomActor:
    """ActorSpec factory (``xds_hub.server.ACTORS``)."""
    return DicomActor(settings, stores)
