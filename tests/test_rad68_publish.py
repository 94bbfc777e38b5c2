"""Publishing a study's KOS manifest by RAD-68 semantics (RAD TF-3 4.68): metadata, RPLC, unknown
patients kept and reported, the quiet-time publisher (SQLite and PostgreSQL)."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
from sqlalchemy import select

from tests.imaging_helpers import ingest, link_patient, make_instance, make_study, region_settings
from xds_hub.config import Settings
from xds_hub.domain.metadata import DocumentEntry
from xds_hub.domain.vocabulary import Status
from xds_hub.imaging.kos import check_kos_against_metadata, kos_problems, parse_kos
from xds_hub.imaging.publisher import Outcome, StudyPublisher, publish_study
from xds_hub.imaging.tables import dicom_study, imaging_manifest, imaging_report
from xds_hub.storage import codec
from xds_hub.storage.schema import (
    document_entry,
    object_code,
    object_reference_id,
    registry_object,
    repository_document,
)
from xds_hub.storage.stores import Stores

HOPA = "1.2.3.100"


@pytest.fixture
def region(tmp_path: Path) -> Settings:
    return region_settings(tmp_path / "data", quiet=0.5)


def _entry(stores: Stores, kos_uid: str) -> dict[str, object]:
    with stores.engine.connect() as conn:
        row = conn.execute(select(document_entry).where(document_entry.c.unique_id == kos_uid)).one()
        body = json.loads(
            conn.execute(select(registry_object.c.body).where(registry_object.c.id == row.id)).scalar_one()
        )
        codes = conn.execute(
            select(object_code.c.kind, object_code.c.code, object_code.c.scheme).where(
                object_code.c.object_id == row.id
            )
        ).all()
        refs = conn.execute(
            select(object_reference_id.c.value).where(object_reference_id.c.object_id == row.id)
        ).all()
    return {"row": row, "body": body, "codes": {tuple(c) for c in codes}, "refs": {r[0] for r in refs}}


def _kos_blob(stores: Stores, kos_uid: str) -> bytes:
    with stores.engine.connect() as conn:
        key = conn.execute(
            select(repository_document.c.blob_key).where(repository_document.c.unique_id == kos_uid)
        ).scalar_one()
    with stores.blobs.open(key) as fp:
        return fp.read()


def test_rad68_publishes_the_manifest_with_xdsi_metadata(region: Settings, stores: Stores) -> None:
    study = make_study(n_series=2, per_series=3, patient_id="LOC-100")
    ingest(stores, region, study.instances)
    affinity = link_patient(stores, region, "LOC-100", HOPA)
    result = publish_study(stores, region, study.study_uid)
    assert result.outcome is Outcome.PUBLISHED and result.instances == 6 and result.patient_id == affinity
    entry = _entry(stores, result.kos_uid or "")
    row = entry["row"]
    assert row.patient_id == affinity and row.mime_type == "application/dicom"  # type: ignore[attr-defined]
    assert row.status == Status.APPROVED and row.repository_unique_id == region.domain.repository_unique_id  # type: ignore[attr-defined]
    assert ("formatCode", "1.2.840.10008.5.1.4.1.1.88.59", "1.2.840.10008.2.6.1") in entry["codes"]  # type: ignore[operator]
    assert {("eventCodeList", m, "1.2.840.10008.2.16.4") for m in ("CT", "MR")} <= entry["codes"]  # type: ignore[operator]
    assert entry["refs"] == {
        f"{study.accession}^^^&{HOPA}&ISO^urn:ihe:iti:xds:2013:accession",
        f"{study.study_uid}^^^^urn:ihe:iti:xds:2016:studyInstanceUID",
    }
    assert entry["body"]["source_patient_id"] == f"LOC-100^^^&{HOPA}&ISO"
    blob = _kos_blob(stores, result.kos_uid or "")
    kos = parse_kos(blob)
    assert kos_problems(kos) == []
    with stores.engine.connect() as conn:
        text = conn.execute(select(registry_object.c.body).where(registry_object.c.id == row.id)).scalar_one()
    assert check_kos_against_metadata(blob, codec.loads(DocumentEntry, text)) == []  # what RAD-68 checks
    assert kos.sop_instance_uid == result.kos_uid and kos.accessions == (study.accession,)
    assert kos.title == ("113030", "DCM")
    assert kos.studies == {
        study.study_uid: {
            s: [(ds.SOPClassUID, ds.SOPInstanceUID) for ds in items] for s, items in study.series.items()
        }
    }
    assert set(kos.retrieve_locations.values()) == {region.domain.imaging_source_unique_id}
    assert publish_study(stores, region, study.study_uid).outcome is Outcome.UP_TO_DATE


def test_rad68_later_instances_replace_the_manifest_rplc(region: Settings, stores: Stores) -> None:
    study = make_study(n_series=1, per_series=2, patient_id="LOC-200")
    ingest(stores, region, study.instances)
    link_patient(stores, region, "LOC-200", HOPA)
    first = publish_study(stores, region, study.study_uid)
    assert first.outcome is Outcome.PUBLISHED
    series_uid = next(iter(study.series))
    late = make_instance(
        study_uid=study.study_uid,
        series_uid=series_uid,
        patient_id="LOC-200",
        accession=study.accession,
        number=3,
    )
    ingest(stores, region, [late])
    second = publish_study(stores, region, study.study_uid)
    assert second.outcome is Outcome.PUBLISHED and second.instances == 3
    assert _entry(stores, first.kos_uid or "")["row"].status == Status.DEPRECATED  # type: ignore[attr-defined]
    assert _entry(stores, second.kos_uid or "")["row"].status == Status.APPROVED  # type: ignore[attr-defined]
    with stores.engine.connect() as conn:
        replaced_by = conn.execute(
            select(imaging_manifest.c.replaced_by).where(imaging_manifest.c.kos_uid == first.kos_uid)
        ).scalar_one()
    assert replaced_by == second.kos_uid
    kos = parse_kos(_kos_blob(stores, second.kos_uid or ""))
    assert late.SOPInstanceUID in {u for _c, u in kos.studies[study.study_uid][series_uid]}


def test_rad68_unknown_patient_is_kept_reported_and_published_once_known(
    region: Settings, stores: Stores
) -> None:
    study = make_study(n_series=1, per_series=2, patient_id="LOC-300")
    ingest(stores, region, study.instances)
    result = publish_study(stores, region, study.study_uid)
    assert result.outcome is Outcome.UNRESOLVED and "LOC-300" in result.detail
    with stores.engine.connect() as conn:
        state = conn.execute(
            select(dicom_study.c.state).where(dicom_study.c.study_uid == study.study_uid)
        ).scalar_one()
        kinds = [
            k
            for (k,) in conn.execute(
                select(imaging_report.c.kind).where(imaging_report.c.study_uid == study.study_uid)
            )
        ]
    assert state == "unresolved" and kinds == ["unknown-patient"]
    link_patient(stores, region, "LOC-300", HOPA)
    assert publish_study(stores, region, study.study_uid).outcome is Outcome.PUBLISHED


def test_rad68_unknown_study_is_reported(region: Settings, stores: Stores) -> None:
    assert publish_study(stores, region, "1.2.3.999").outcome is Outcome.UNKNOWN_STUDY


def test_rad68_publisher_waits_for_the_quiet_time(region: Settings, stores: Stores) -> None:
    study = make_study(n_series=1, per_series=1, patient_id="LOC-400")
    link_patient(stores, region, "LOC-400", HOPA)
    ingest(stores, region, study.instances)
    publisher = StudyPublisher(region, stores)
    assert publisher.run_once() == []  # received just now: not quiet yet
    time.sleep(region.domain.study_quiet_seconds + 0.1)
    results = publisher.run_once()
    assert [r.outcome for r in results] == [Outcome.PUBLISHED]
    assert publisher.run_once() == []
