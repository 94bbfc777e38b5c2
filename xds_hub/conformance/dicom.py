"""DICOM steps (DICOM-ECHO, -STORE, -FIND, -MOVE, -GET) as a modality / PACS would run them.

Messages (``[[steps]]`` keys):

- ``calling_ae``: the calling AE title (default: the target config's ``calling_ae``);
- DICOM-STORE: ``instances = [{ name, study, series, patient_id, issuer, modality, rows, count }]``:
  small synthetic images made here; ``study`` / ``series`` name UIDs shared between instances (fresh
  per run); ``count = N`` makes N instances NAME1..NAMEN.  Recorded:
  ``steps.<step>.<name>.uid|study|series|sop_class``;
- DICOM-FIND captures: ``[steps.capture] name = "Keyword"`` records that attribute of the first match;
- DICOM-FIND / -MOVE / -GET: ``model`` (``study`` default, or ``patient``), ``level`` (``STUDY``,
  ``SERIES``, ``IMAGE``, ``PATIENT``), ``keys`` (attribute keyword -> value; "" asks for it);
  DICOM-MOVE: ``destination`` (an AE title of the target config's ``dicom_nodes``: a storage SCP is
  started on that node's port for the step).

Expectations: ``rejected`` (true: the association must be refused), ``status`` (final DIMSE
status, default 0), ``matches`` (C-FIND), ``values`` (keyword -> the exact set of values over the
matches), ``completed``, ``failed``, ``received`` (instances received by C-GET / the C-MOVE
destination), ``received_uids`` (their SOPInstanceUIDs).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping
from typing import Any

from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import UID, ExplicitVRLittleEndian, generate_uid

from xds_hub.conformance.checks import Check, _check
from xds_hub.conformance.transactions import Call, StepRun
from xds_hub.conformance.wire import Exchange

CT_IMAGE = "1.2.840.10008.5.1.4.1.1.2"
SECONDARY_CAPTURE = "1.2.840.10008.5.1.4.1.1.7"
_SOP_CLASSES = {"CT": CT_IMAGE, "OT": SECONDARY_CAPTURE, "SC": SECONDARY_CAPTURE}
_MODELS = {
    ("study", "find"): "1.2.840.10008.5.1.4.1.2.2.1",
    ("study", "move"): "1.2.840.10008.5.1.4.1.2.2.2",
    ("study", "get"): "1.2.840.10008.5.1.4.1.2.2.3",
    ("patient", "find"): "1.2.840.10008.5.1.4.1.2.1.1",
    ("patient", "move"): "1.2.840.10008.5.1.4.1.2.1.2",
    ("patient", "get"): "1.2.840.10008.5.1.4.1.2.1.3",
}


def make_instance(call: Call, spec: Mapping[str, Any]) -> Dataset:
    """A small, valid image instance (CT or Secondary Capture) with fresh UIDs."""
    ctx, step = call.ctx, call.step.name
    name = str(spec.get("name", "i1"))
    modality = str(spec.get("modality", "CT"))
    rows = int(spec.get("rows", 16))
    ds = Dataset()
    ds.SOPClassUID = _SOP_CLASSES.get(modality, SECONDARY_CAPTURE)
    ds.SOPInstanceUID = ctx.uid(f"dicom.{step}.{name}")
    ds.StudyInstanceUID = ctx.uid(f"dicom.study.{spec.get('study', 'study1')}")
    ds.SeriesInstanceUID = ctx.uid(f"dicom.series.{spec.get('series', 'series1')}")
    ds.PatientID = str(spec.get("patient_id", ctx.local_id("main", 0)))
    ds.IssuerOfPatientID = str(
        spec.get(
            "issuer",
            ctx.target.domain.establishments[0].assigning_authority
            if ctx.target.domain.establishments
            else "",
        )
    )
    ds.PatientName = str(spec.get("patient_name", "Conformance^Patient"))
    ds.PatientBirthDate = "19700101"
    ds.PatientSex = "O"
    ds.StudyDate = ctx.resolve("today")
    ds.StudyTime = "120000"
    ds.AccessionNumber = str(spec.get("accession", ctx.short_id(f"acc.{spec.get('study', 'study1')}")))[:16]
    ds.StudyID = "1"
    ds.ReferringPhysicianName = ""
    ds.Modality = modality
    ds.SeriesNumber = int(spec.get("series_number", 1))
    ds.InstanceNumber = int(spec.get("instance_number", 1))
    ds.StudyDescription = "Conformance study"
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.Rows = rows
    ds.Columns = rows
    ds.BitsAllocated = 16
    ds.BitsStored = 12
    ds.HighBit = 11
    ds.PixelRepresentation = 0
    if modality == "CT":
        ds.ImageType = ["ORIGINAL", "PRIMARY", "AXIAL"]
        ds.RescaleIntercept = "-1024"
        ds.RescaleSlope = "1"
        ds.KVP = "120"
        ds.ImagePositionPatient = [0, 0, ds.InstanceNumber]
        ds.ImageOrientationPatient = [1, 0, 0, 0, 1, 0]
        ds.PixelSpacing = [1, 1]
        ds.SliceThickness = "1"
        ds.FrameOfReferenceUID = ctx.uid(f"dicom.for.{spec.get('study', 'study1')}")
        ds.PositionReferenceIndicator = ""
    ds.PixelData = bytes((i * 7) % 251 for i in range(rows * rows * 2))
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.file_meta.MediaStorageSOPClassUID = ds.SOPClassUID
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    ds.file_meta.ImplementationClassUID = generate_uid(prefix="1.2.826.0.1.3680043.10.543.")
    for key, value in spec.get("attributes", {}).items():
        setattr(ds, key, value)
    ctx.record(step, f"{name}.uid", ds.SOPInstanceUID)
    ctx.record(step, f"{name}.study", ds.StudyInstanceUID)
    ctx.record(step, f"{name}.series", ds.SeriesInstanceUID)
    ctx.record(step, f"{name}.sop_class", ds.SOPClassUID)
    ctx.blobs[f"sent:{ds.SOPInstanceUID}"] = encode(ds)
    return ds


def _identifier(message: Mapping[str, Any]) -> Dataset:
    ds = Dataset()
    ds.QueryRetrieveLevel = str(message.get("level", "STUDY"))
    for key, value in message.get("keys", {}).items():
        setattr(ds, key, value)
    return ds


def _show(ds: Dataset) -> str:
    return "\n".join(str(elem) for elem in ds if elem.keyword != "PixelData")


def encode(ds: Dataset) -> bytes:
    """``ds`` without its file meta, in Explicit VR Little Endian: what a byte comparison compares."""
    from io import BytesIO

    from pydicom.filewriter import dcmwrite

    copy = Dataset({elem.tag: elem for elem in ds if elem.tag.group != 2})
    buf = BytesIO()
    dcmwrite(buf, copy, little_endian=True, implicit_vr=False)
    return buf.getvalue()


class _Received:
    """Instances received by a C-GET requestor or a C-MOVE destination (kept in ``ctx.blobs``)."""

    def __init__(self, call: Call, expected: int = 0) -> None:
        self.uids: list[str] = []
        self.lock = threading.Lock()
        self.call = call
        self.expected = expected

    def on_store(self, event: Any) -> int:
        ds = event.dataset
        data = encode(ds)
        with self.lock:
            uid = str(ds.SOPInstanceUID)
            self.uids.append(uid)
            self.call.ctx.blobs[f"received:{self.call.step.name}:{uid}"] = data
            if self.call.ctx.progress is not None:
                self.call.ctx.progress(self.call.step.transaction, len(self.uids), self.expected)
        return 0x0000


def _ae(call: Call) -> Any:
    from pynetdicom import AE

    ae = AE(ae_title=str(call.message.get("calling_ae") or call.ctx.target.calling_ae))
    ae.acse_timeout = ae.dimse_timeout = ae.network_timeout = call.ctx.target.timeout
    return ae


def run(operation: str, call: Call) -> StepRun:
    target = call.ctx.target
    if target.dicom is None:
        return StepRun(error="this step needs the target's DICOM address (--dicom HOST:PORT)")
    exchange = Exchange("dicom", f"{call.step.transaction} {call.step.name}", "")
    run_result = StepRun(exchanges=[exchange])
    started = time.monotonic()
    try:
        outcome = _OPERATIONS[operation](call, exchange)
    except AssociationRefused as exc:
        exchange.response = str(exc)
        if call.expect.get("rejected"):
            run_result.checks = [Check("association rejected", True, str(exc))]
        else:
            run_result.checks = [Check("association", False, str(exc))]
        return run_result
    except (OSError, RuntimeError, ValueError) as exc:
        exchange.error = f"{type(exc).__name__}: {exc}"
        return run_result
    finally:
        exchange.elapsed = time.monotonic() - started
    run_result.checks = _checks(outcome, call.expect)
    matches: list[Dataset] = outcome.get("matches", [])
    for name, keyword in call.step.capture.items():
        if matches and keyword in matches[0]:
            call.ctx.record(call.step.name, name, str(matches[0].get(keyword)))
    return run_result


class AssociationRefused(RuntimeError):
    """The target rejected or aborted the association request."""


def _associate(call: Call, ae: Any, **kwargs: Any) -> Any:
    t = call.ctx.target
    assert t.dicom is not None
    tls = t.ssl_context()
    if tls is not None:
        kwargs["tls_args"] = (tls, t.dicom.host)
    assoc = ae.associate(t.dicom.host, t.dicom.port, ae_title=t.called_ae, **kwargs)
    if not assoc.is_established:
        raise AssociationRefused(f"association with {t.called_ae}@{t.dicom} rejected or aborted")
    return assoc


def _echo(call: Call, exchange: Exchange) -> dict[str, Any]:
    ae = _ae(call)
    ae.add_requested_context("1.2.840.10008.1.1")
    exchange.request = "C-ECHO"
    assoc = _associate(call, ae)
    try:
        status = assoc.send_c_echo()
    finally:
        assoc.release()
    code = int(status.Status) if status else -1
    exchange.response = f"status 0x{code:04X}"
    return {"status": code}


def _expand(specs: list[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    """``count = N`` in an instance spec stands for N instances NAME1..NAMEN of the same series."""
    out: list[Mapping[str, Any]] = []
    for spec in specs:
        count = int(spec.get("count", 1))
        if count == 1:
            out.append(spec)
            continue
        base = str(spec.get("name", "i"))
        out.extend({**spec, "name": f"{base}{n}", "instance_number": n} for n in range(1, count + 1))
    return out


def _store(call: Call, exchange: Exchange) -> dict[str, Any]:
    instances = [make_instance(call, spec) for spec in _expand(list(call.message.get("instances", [{}])))]
    ae = _ae(call)
    for sop_class in {str(ds.SOPClassUID) for ds in instances}:
        ae.add_requested_context(sop_class, [ExplicitVRLittleEndian])
    exchange.request = "\n\n".join(f"C-STORE\n{_show(ds)}" for ds in instances)
    assoc = _associate(call, ae)
    statuses: list[int] = []
    try:
        for n, ds in enumerate(instances, start=1):
            status = assoc.send_c_store(ds)
            statuses.append(int(status.Status) if status else -1)
            if call.ctx.progress is not None:
                call.ctx.progress(call.step.transaction, n, len(instances))
    finally:
        assoc.release()
    exchange.response = "\n".join(
        f"{ds.SOPInstanceUID}: status 0x{s:04X}" for ds, s in zip(instances, statuses, strict=True)
    )
    worst = next((s for s in statuses if s != 0), 0)
    return {"status": worst, "completed": statuses.count(0), "failed": sum(1 for s in statuses if s != 0)}


def _find(call: Call, exchange: Exchange) -> dict[str, Any]:
    model = _MODELS[(str(call.message.get("model", "study")), "find")]
    ae = _ae(call)
    ae.add_requested_context(model)
    identifier = _identifier(call.message)
    exchange.request = f"C-FIND {model}\n{_show(identifier)}"
    assoc = _associate(call, ae)
    matches: list[Dataset] = []
    final = -1
    try:
        for status, found in assoc.send_c_find(identifier, model):
            if not status:
                break
            final = int(status.Status)
            if final in (0xFF00, 0xFF01) and found is not None:
                matches.append(found)
    finally:
        assoc.release()
    exchange.response = f"final status 0x{final:04X}, {len(matches)} matches\n\n" + "\n\n".join(
        _show(m) for m in matches
    )
    return {"status": final, "matches": matches}


def _retrieve(call: Call, exchange: Exchange, kind: str) -> dict[str, Any]:
    from pynetdicom import AE, StoragePresentationContexts, build_role, evt

    model = _MODELS[(str(call.message.get("model", "study")), kind)]
    identifier = _identifier(call.message)
    received = _Received(call, int(call.expect.get("received", len(call.expect.get("received_uids", [])))))
    ae = _ae(call)
    ae.add_requested_context(model)
    server = None
    if kind == "get":
        sop_classes = [CT_IMAGE, SECONDARY_CAPTURE, "1.2.840.10008.5.1.4.1.1.88.59"]
        roles = []
        for sop_class in sop_classes:
            ae.add_requested_context(sop_class)
            roles.append(build_role(sop_class, scp_role=True))
        assoc = _associate(call, ae, ext_neg=roles, evt_handlers=[(evt.EVT_C_STORE, received.on_store)])
        destination = ""
    else:
        destination = str(call.message.get("destination", ""))
        node = call.ctx.target.domain.dicom_node(destination)
        if node is not None:  # an unknown destination is sent as is: the target must refuse it
            scp = AE(ae_title=destination)
            scp.supported_contexts = StoragePresentationContexts
            # A secure target opens its C-MOVE sub-association over TLS (ITI-19): the runner's
            # receiver then speaks TLS too, with the runner's certificate.
            tls = call.ctx.target.tls
            server = scp.start_server(
                ("127.0.0.1", node.port),
                block=False,
                evt_handlers=[(evt.EVT_C_STORE, received.on_store)],
                ssl_context=tls.server_context() if tls is not None else None,
            )
        assoc = _associate(call, ae)
    exchange.request = f"C-{kind.upper()} {model} {destination}\n{_show(identifier)}"
    final, completed, failed = -1, 0, 0
    try:
        responses = (
            assoc.send_c_get(identifier, model)
            if kind == "get"
            else assoc.send_c_move(identifier, destination, model)
        )
        for status, _ in responses:
            if not status:
                break
            final = int(status.Status)
            completed = int(getattr(status, "NumberOfCompletedSuboperations", completed) or completed)
            failed = int(getattr(status, "NumberOfFailedSuboperations", failed) or failed)
    finally:
        assoc.release()
        if server is not None:
            server.shutdown()
    exchange.response = (
        f"final status 0x{final:04X}, completed {completed}, failed {failed}, received {len(received.uids)}\n"
        + "\n".join(received.uids)
    )
    return {"status": final, "completed": completed, "failed": failed, "received": received.uids}


def _move(call: Call, exchange: Exchange) -> dict[str, Any]:
    return _retrieve(call, exchange, "move")


def _get(call: Call, exchange: Exchange) -> dict[str, Any]:
    return _retrieve(call, exchange, "get")


_OPERATIONS: dict[str, Callable[[Call, Exchange], dict[str, Any]]] = {
    "echo": _echo,
    "store": _store,
    "find": _find,
    "move": _move,
    "get": _get,
}


def _checks(outcome: Mapping[str, Any], expect: Mapping[str, Any]) -> list[Check]:
    if expect.get("rejected"):
        return [Check("association rejected", False, "the association was accepted")]
    checks: list[Check] = []
    want_status = int(expect.get("status", 0))
    checks.append(
        _check(
            "DIMSE status",
            outcome.get("status") == want_status,
            f"0x{want_status:04X}",
            f"0x{int(outcome.get('status', -1)) & 0xFFFF:04X}",
        )
    )
    matches: list[Dataset] = outcome.get("matches", [])
    if "matches" in expect:
        checks.append(
            _check(
                "C-FIND matches", len(matches) == int(expect["matches"]), int(expect["matches"]), len(matches)
            )
        )
    for keyword, values in expect.get("values", {}).items():
        got = {str(getattr(m, keyword, "")) for m in matches}
        want = {str(v) for v in (values if isinstance(values, list) else [values])}
        checks.append(_check(f"C-FIND {keyword}", got == want, sorted(want), sorted(got)))
    for key in ("completed", "failed"):
        if key in expect:
            checks.append(
                _check(
                    f"{key} sub-operations",
                    outcome.get(key) == int(expect[key]),
                    int(expect[key]),
                    outcome.get(key),
                )
            )
    received: list[str] = outcome.get("received", [])
    if "received" in expect:
        checks.append(
            _check(
                "instances received",
                len(received) == int(expect["received"]),
                int(expect["received"]),
                len(received),
            )
        )
    if "received_uids" in expect:
        want_set = set(expect["received_uids"])
        checks.append(
            _check("received SOPInstanceUIDs", set(received) == want_set, sorted(want_set), sorted(received))
        )
    return checks


def make_kos(ctx: Any, spec: Mapping[str, Any]) -> bytes:
    """An XDS-I.b manifest (Key Object Selection, RAD TF-3 4.68.4.1.2.3) referencing ``spec``'s images.

    ``spec``: ``study``, ``patient_id``, ``issuer``, ``retrieve_location`` (default: the target's
    imaging source uniqueId), ``series = [{ uid, instances = [{ uid, sop_class }] }]``.
    """
    from io import BytesIO

    from pydicom.filewriter import dcmwrite

    kos_class = UID("1.2.840.10008.5.1.4.1.1.88.59")
    study = str(spec["study"])
    location = str(spec.get("retrieve_location", ctx.target.domain.imaging_source_unique_id))
    ds = Dataset()
    ds.SOPClassUID = kos_class
    ds.SOPInstanceUID = str(spec.get("uid", generate_uid()))
    ds.StudyInstanceUID = study
    ds.SeriesInstanceUID = generate_uid()
    ds.Modality = "KO"
    ds.PatientID = str(spec.get("patient_id", ""))
    ds.IssuerOfPatientID = str(spec.get("issuer", ""))
    if spec.get("issuer"):
        qualifiers = Dataset()
        qualifiers.UniversalEntityID = str(spec["issuer"])
        qualifiers.UniversalEntityIDType = "ISO"
        ds.IssuerOfPatientIDQualifiersSequence = [qualifiers]
    ds.PatientName = "Conformance^Patient"
    ds.PatientBirthDate = "19700101"
    ds.PatientSex = "O"
    ds.StudyDate = ds.ContentDate = ctx.resolve("today")
    ds.StudyTime = ds.ContentTime = "120000"
    ds.AccessionNumber = ""
    ds.StudyID = "1"
    ds.ReferringPhysicianName = ""
    ds.SeriesNumber = 99
    ds.InstanceNumber = 1
    ds.Manufacturer = "xds-hub conformance"
    ds.ValueType = "CONTAINER"
    concept = Dataset()
    concept.CodeValue, concept.CodingSchemeDesignator, concept.CodeMeaning = "113030", "DCM", "Manifest"
    ds.ConceptNameCodeSequence = [concept]
    template = Dataset()
    template.MappingResource, template.TemplateIdentifier = "DCMR", "2010"
    ds.ContentTemplateSequence = [template]
    ds.ContinuityOfContent = "SEPARATE"
    series_items, content = [], []
    for series in spec.get("series", []):
        s = Dataset()
        s.SeriesInstanceUID = str(series["uid"])
        s.RetrieveLocationUID = location
        refs = []
        for inst in series.get("instances", []):
            r = Dataset()
            r.ReferencedSOPClassUID = str(inst.get("sop_class", CT_IMAGE))
            r.ReferencedSOPInstanceUID = str(inst["uid"])
            refs.append(r)
            item = Dataset()
            item.RelationshipType, item.ValueType = "CONTAINS", "IMAGE"
            item.ReferencedSOPSequence = [r]
            content.append(item)
        s.ReferencedSOPSequence = refs
        series_items.append(s)
    evidence = Dataset()
    evidence.StudyInstanceUID = study
    evidence.ReferencedSeriesSequence = series_items
    ds.CurrentRequestedProcedureEvidenceSequence = [evidence]
    ds.ContentSequence = content
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.file_meta.MediaStorageSOPClassUID = ds.SOPClassUID
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    out = BytesIO()
    dcmwrite(out, ds, enforce_file_format=True)
    return out.getvalue()
