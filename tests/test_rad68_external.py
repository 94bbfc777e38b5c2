"""RAD-68 from outside: an establishment's Imaging Document Source submits its KOS manifest to the
hub's Document Repository over real HTTP (SQLite and PostgreSQL hubs).  The repository checks the
KOS against its DocumentEntry with :func:`xds_hub.imaging.kos.check_kos_against_metadata` (the code
that validates the public KOS sample); each disagreement is XDSRepositoryMetadataError (RAD TF-3
4.68.4.1.3, ITI TF-2 3.41.4.1.3.2) and nothing is registered."""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import pytest

from tests.hubproc import Hub
from tests.repository_support import counts, hub_patient, submission_for, with_entry
from xds_hub.client.xds import DocumentRequest, XdsClient
from xds_hub.domain.metadata import Code, Submission
from xds_hub.errors import ErrorCode
from xds_hub.imaging.kos import ACCESSION_TYPE, STUDY_UID_TYPE, ManifestStudy, ReferencedSeries, build_kos
from xds_hub.repository.sweep import referenced_keys
from xds_hub.storage.stores import Stores

REPOSITORY_ID = "1.3.6.1.4.1.21367.13.80.1"  # tests/hubproc.py TEST_CONFIG
KOS_FORMAT = Code("1.2.840.10008.5.1.4.1.1.88.59", "1.2.840.10008.2.6.1", "Key Object Selection Document")
CT = "1.2.840.10008.5.1.4.1.1.2"
LOCAL_AUTHORITY = "1.3.6.1.4.1.21367.13.20.3000"
SAMPLE = (
    Path(__file__).resolve().parents[1].parent / "shared" / "oracle" / "samples" / "xdsi" / "kos-sample.dcm"
)


def _uid() -> str:
    return f"2.25.{uuid.uuid4().int}"


class Manifest:
    """A fresh KOS of one study and the DocumentEntry fields that agree with it."""

    def __init__(self) -> None:
        self.kos_uid = _uid()
        self.study_uid = _uid()
        self.local_id = f"L{uuid.uuid4().hex[:8].upper()}"
        self.accession = f"ACC{uuid.uuid4().hex[:8].upper()}"
        study = ManifestStudy(
            study_uid=self.study_uid,
            patient_id=self.local_id,
            issuer="EST1",
            patient_authority=LOCAL_AUTHORITY,
            accession=self.accession,
            study_date="20261201",
            study_time="101500",
        )
        series = [ReferencedSeries(_uid(), ((CT, _uid()), (CT, _uid())))]
        self.data = build_kos(
            study,
            series,
            kos_uid=self.kos_uid,
            kos_series_uid=_uid(),
            retrieve_location_uid="1.3.6.1.4.1.21367.13.80.9",
            retrieve_ae_title="EST1PACS",
            when=datetime(2026, 12, 1, 10, 20, tzinfo=UTC),
        )

    def source_patient_id(self, pid: str | None = None) -> str:
        return f"{pid or self.local_id}^^^&{LOCAL_AUTHORITY}&ISO"

    def reference_ids(self, study: str | None = None, accession: str | None = None) -> tuple[str, ...]:
        return (
            f"{accession or self.accession}^^^&{LOCAL_AUTHORITY}&ISO^{ACCESSION_TYPE}",
            f"{study or self.study_uid}^^^^{STUDY_UID_TYPE}",
        )

    def submission(
        self, pid: str, content: bytes | None = None, **changes: object
    ) -> tuple[Submission, dict[str, bytes]]:
        sub, contents = submission_for(
            pid, [self.data if content is None else content], mime_type="application/dicom"
        )
        fields: dict[str, object] = {
            "unique_id": self.kos_uid,
            "format_code": KOS_FORMAT,
            "source_patient_id": self.source_patient_id(),
            "reference_ids": self.reference_ids(),
            "hash": None,
            "size": None,
        }
        fields.update(changes)
        return with_entry(sub, **fields), contents


def test_rad68_external_consistent_kos_is_registered_and_retrieved(
    hub: Hub, store: Stores, client: XdsClient, tmp_path: Path
) -> None:
    pid = hub_patient(hub, store)
    m = Manifest()
    sub, contents = m.submission(pid)
    result = client.provide_and_register(sub, contents, mtom=True)
    assert (result.status_name, result.errors) == ("Success", [])
    found = {d.unique_id: d for d in client.find_documents(pid).documents}
    assert found[m.kos_uid].format_code == KOS_FORMAT
    assert found[m.kos_uid].hash == hashlib.sha1(m.data).hexdigest()
    got = client.retrieve([DocumentRequest(REPOSITORY_ID, m.kos_uid)], tmp_path)
    assert [d.path.read_bytes() for d in got.documents] == [m.data]


def test_rad68_external_public_kos_sample_is_accepted(hub: Hub, store: Stores, client: XdsClient) -> None:
    if not SAMPLE.exists():
        pytest.skip("the public KOS sample is not available")
    pid = hub_patient(hub, store)
    sub, contents = submission_for(pid, [SAMPLE.read_bytes()], mime_type="application/dicom")
    sub = with_entry(
        sub,
        unique_id="2.25.264096862221500429694988291417299542916",
        format_code=KOS_FORMAT,
        source_patient_id="IDCDEPT001-a^^^&1.3.6.1.4.1.21367.13.20.3000&ISO",
        reference_ids=(
            f"IDC001-a^^^&1.3.6.1.4.1.21367.13.20.3000&ISO^{ACCESSION_TYPE}",
            f"1.3.6.1.4.1.21367.201599.1.201604021948007^^^^{STUDY_UID_TYPE}",
        ),
    )
    result = client.provide_and_register(sub, contents, mtom=False)
    assert (result.status_name, result.errors) == ("Success", [])


Breaker = Callable[[Manifest, str], tuple[Submission, dict[str, bytes]]]

BREAKERS: dict[str, tuple[Breaker, str]] = {
    "not-a-kos": (
        lambda m, pid: m.submission(pid, content=b"%PDF-1.4 not a manifest"),
        "not a readable DICOM",
    ),
    "dicom-but-not-a-kos": (
        lambda m, pid: m.submission(pid, content=_ct_image(m.kos_uid)),
        "not Key Object Selection Document",
    ),
    "study-uid-disagrees": (
        lambda m, pid: m.submission(pid, reference_ids=m.reference_ids(study=_uid())),
        "names study",
    ),
    "accession-disagrees": (
        lambda m, pid: m.submission(pid, reference_ids=m.reference_ids(accession="OTHER-ACC")),
        "names accession",
    ),
    "source-patient-disagrees": (
        lambda m, pid: m.submission(pid, source_patient_id=m.source_patient_id("SOMEONE-ELSE")),
        "does not match the KOS Patient ID",
    ),
    "patient-authority-disagrees": (
        lambda m, pid: m.submission(pid, source_patient_id=f"{m.local_id}^^^&1.2.3.999&ISO"),
        "assigning authority",
    ),
    "unique-id-is-not-the-sop-instance": (
        lambda m, pid: m.submission(pid, unique_id=_uid()),
        "is not the KOS SOP Instance UID",
    ),
    "kos-with-other-mime-type": (
        lambda m, pid: m.submission(pid, mime_type="application/octet-stream"),
        "must have mimeType application/dicom",
    ),
}


def _ct_image(sop_uid: str) -> bytes:
    from io import BytesIO

    from pydicom.dataset import FileDataset, FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian

    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = CT
    meta.MediaStorageSOPInstanceUID = sop_uid
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = FileDataset("", {}, file_meta=meta, preamble=b"\0" * 128)
    ds.SOPClassUID = CT
    ds.SOPInstanceUID = sop_uid
    ds.PatientID = "X"
    buf = BytesIO()
    ds.save_as(buf, enforce_file_format=True)
    return buf.getvalue()


@pytest.mark.parametrize("mtom", [True, False], ids=["mtom", "inline"])
@pytest.mark.parametrize("case", sorted(BREAKERS))
def test_rad68_external_inconsistent_kos_is_xds_repository_metadata_error(
    hub: Hub, store: Stores, client: XdsClient, case: str, mtom: bool
) -> None:
    breaker, fragment = BREAKERS[case]
    pid = hub_patient(hub, store)
    m = Manifest()
    sub, contents = breaker(m, pid)
    before = counts(store.engine, store.blobs)
    result = client.provide_and_register(sub, contents, mtom=mtom)
    assert result.status_name == "Failure"
    assert [e.code for e in result.errors] == [ErrorCode.REPOSITORY_METADATA_ERROR.value] * len(result.errors)
    assert any(fragment in (e.context or "") for e in result.errors), [e.context for e in result.errors]
    assert {e.location for e in result.errors} == {sub.documents[0].entry_uuid}
    after = counts(store.engine, store.blobs)
    assert (after.documents, after.registry_objects) == (before.documents, before.registry_objects)
    with store.engine.connect() as conn:
        assert referenced_keys(conn, [hashlib.sha256(c).hexdigest() for c in contents.values()]) == set()
    assert m.kos_uid not in {d.unique_id for d in client.find_documents(pid).documents}
