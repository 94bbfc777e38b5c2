"""SQL tables of the Imaging Document Source (XDS-I.b, RAD TF-1 18): the DICOM index and the
publication state of each study.

- ``dicom_study`` / ``dicom_series`` / ``dicom_instance``: what C-STORE received (PS3.4 B), the
  attributes that C-FIND / QIDO-RS match on (PS3.4 C.6 / PS3.18 10.6) and where each instance's
  Part-10 file is in the blob store.  Patient ID and issuer are the *establishment's* (local) ones;
  the affinity-domain ID is resolved when the study is published.
- ``imaging_manifest``: every KOS manifest published by RAD-68 for a study (the newest one is the
  Approved DocumentEntry, the older ones were replaced by RPLC).
- ``imaging_report``: what kept a study from being published (unknown patient, registry refusal),
  so that no study is dropped silently; ``xds-hub studies --problems`` lists it.
- ``dicom_derived``: instances transcoded for a consumer that did not accept the stored transfer
  syntax (RAD-69 TransferSyntaxUIDList, WADO), kept so the next request streams them.

Times are nanoseconds since the UNIX epoch (BigInteger), like ``registry_object.seq``.
"""

from __future__ import annotations

from sqlalchemy import BigInteger, Column, Index, Integer, String, Table, Text

from xds_hub.repository.sweep import register_blob_referrer
from xds_hub.storage.schema import metadata

UID = String(64)  # DICOM UI: at most 64 characters (PS3.5 6.2)
LO = String(64)
PN = String(324)  # three component groups of 64 characters, with separators

dicom_study = Table(
    "dicom_study",
    metadata,
    Column("study_uid", UID, primary_key=True),
    Column("patient_id", LO, nullable=False, default=""),
    Column("issuer", LO),
    Column("patient_name", PN),
    Column("patient_birth_date", String(16)),
    Column("patient_sex", String(16)),
    Column("accession", LO),
    #: OID of the issuer of the accession number (IssuerOfAccessionNumberSequence), if given.
    Column("accession_issuer", LO),
    Column("study_date", String(16)),
    Column("study_time", String(32)),
    Column("study_description", LO),
    Column("study_id", String(16)),
    Column("referring_physician", PN),
    Column("charset", LO),
    #: The establishment (config name) whose AE sent the study, and that AE title.
    Column("establishment", String(128), nullable=False),
    Column("calling_ae", String(16), nullable=False),
    Column("created", BigInteger, nullable=False),
    #: Time of the last instance received (updated with every instance).
    Column("last_received", BigInteger, nullable=False),
    #: ``last_received`` of the instances covered by the newest manifest (0: never published).
    Column("published_seq", BigInteger, nullable=False, default=0),
    #: receiving | published | unresolved (patient unknown) | failed (registry refused).
    Column("state", String(16), nullable=False, default="receiving"),
    #: The affinity-domain patient ID of the last publication.
    Column("affinity_patient_id", String(256)),
    #: A publisher holding the study (token, and until when in ns): keeps two from publishing it.
    Column("claim", String(64)),
    Column("claim_until", BigInteger),
    #: A study that could not be published is retried after this time (ns).
    Column("retry_after", BigInteger),
    Index("ix_dicom_study_patient", "patient_id"),
    Index("ix_dicom_study_accession", "accession"),
    Index("ix_dicom_study_pending", "last_received", "published_seq"),
)

dicom_series = Table(
    "dicom_series",
    metadata,
    Column("series_uid", UID, primary_key=True),
    Column("study_uid", UID, nullable=False),
    Column("modality", String(16)),
    Column("series_number", Integer),
    Column("series_description", LO),
    Column("body_part", String(16)),
    Column("created", BigInteger, nullable=False),
    Index("ix_dicom_series_study", "study_uid"),
)

dicom_instance = Table(
    "dicom_instance",
    metadata,
    Column("sop_instance_uid", UID, primary_key=True),
    Column("series_uid", UID, nullable=False),
    Column("study_uid", UID, nullable=False),
    Column("sop_class_uid", UID, nullable=False),
    Column("transfer_syntax", UID, nullable=False),
    Column("instance_number", Integer),
    Column("number_of_frames", Integer),
    Column("rows", Integer),
    Column("columns", Integer),
    #: The Part-10 file (preamble, file meta, data set as received) in the blob store.
    Column("blob_key", String(128), nullable=False),
    Column("size", BigInteger, nullable=False),
    #: Offset of the data set (after the file meta) inside the blob.
    Column("dataset_offset", Integer, nullable=False),
    Column("received", BigInteger, nullable=False),
    Index("ix_dicom_instance_series", "series_uid"),
    Index("ix_dicom_instance_study", "study_uid", "received"),
    Index("ix_dicom_instance_blob", "blob_key"),
)

dicom_derived = Table(
    "dicom_derived",
    metadata,
    Column("sop_instance_uid", UID, primary_key=True),
    Column("transfer_syntax", UID, primary_key=True),
    Column("blob_key", String(128), nullable=False),
    Column("size", BigInteger, nullable=False),
    Column("dataset_offset", Integer, nullable=False),
    Index("ix_dicom_derived_blob", "blob_key"),
)

imaging_manifest = Table(
    "imaging_manifest",
    metadata,
    #: The KOS SOP Instance UID, which is the DocumentEntry uniqueId (RAD TF-3 4.68.4.1.2.3.2).
    Column("kos_uid", UID, primary_key=True),
    Column("study_uid", UID, nullable=False),
    Column("entry_uuid", String(64), nullable=False),
    Column("submission_set_uid", UID, nullable=False),
    Column("patient_id", String(256), nullable=False),
    Column("instance_count", Integer, nullable=False),
    Column("covers_seq", BigInteger, nullable=False),
    Column("published", BigInteger, nullable=False),
    #: pending (written before registration) | registered | failed
    Column("status", String(16), nullable=False),
    #: The kos_uid of the manifest that replaced this one (RPLC), if any.
    Column("replaced_by", UID),
    Index("ix_imaging_manifest_study", "study_uid", "published"),
)

imaging_report = Table(
    "imaging_report",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("study_uid", UID, nullable=False),
    #: unknown-patient | publish-failed | published
    Column("kind", String(32), nullable=False),
    Column("detail", Text, nullable=False),
    Column("created", BigInteger, nullable=False),
    Index("ix_imaging_report_study", "study_uid", "created"),
)

register_blob_referrer(dicom_instance, "blob_key")
register_blob_referrer(dicom_derived, "blob_key")
