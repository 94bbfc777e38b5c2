"""Initial schema: every table of the registry, repository, imaging source, PIX manager and audit trail.

Generated with ``alembic revision --autogenerate`` from the tables' metadata, then reviewed by hand:
every constraint and index is named (the naming convention of :mod:`xds_hub.storage.schema`), no
server defaults, and only CREATE TABLE / CREATE INDEX, which SQLite and PostgreSQL both run inside
the migration's transaction.  A database made by ``metadata.create_all`` before migrations existed
has exactly this schema: :mod:`xds_hub.storage.migrate` stamps it with this revision.

Revision ID: 0001
Revises:
Create Date: 2026-12-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "association",
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("type", sa.String(length=80), nullable=False),
        sa.Column("source_id", sa.String(length=64), nullable=False),
        sa.Column("target_id", sa.String(length=64), nullable=False),
        sa.Column("status", sa.String(length=64), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_association")),
    )
    op.create_index("ix_association_source", "association", ["source_id", "type"])
    op.create_index("ix_association_target", "association", ["target_id", "type"])

    op.create_table(
        "audit_record",
        sa.Column(
            "id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False
        ),
        sa.Column("event_ns", sa.BigInteger(), nullable=False),
        sa.Column("event_id", sa.String(length=32), nullable=False),
        sa.Column("event_name", sa.String(length=64), nullable=False),
        sa.Column("action", sa.String(length=1), nullable=False),
        sa.Column("outcome", sa.SmallInteger(), nullable=False),
        sa.Column("event_type", sa.String(length=32), nullable=True),
        sa.Column("event_type_name", sa.String(length=128), nullable=True),
        sa.Column("requestor", sa.String(length=512), nullable=True),
        sa.Column("requestor_name", sa.String(length=512), nullable=True),
        sa.Column("requestor_address", sa.String(length=256), nullable=True),
        sa.Column("objects", sa.Text(), nullable=False),
        sa.Column("outcome_description", sa.Text(), nullable=True),
        sa.Column("message", sa.Text(), nullable=False),
        sa.Column("sent_ns", sa.BigInteger(), nullable=True),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_audit_record")),
    )
    op.create_index("ix_audit_record_event_ns", "audit_record", ["event_ns"])
    op.create_index("ix_audit_record_pending", "audit_record", ["sent_ns", "id"])

    op.create_table(
        "dicom_derived",
        sa.Column("sop_instance_uid", sa.String(length=64), nullable=False),
        sa.Column("transfer_syntax", sa.String(length=64), nullable=False),
        sa.Column("blob_key", sa.String(length=128), nullable=False),
        sa.Column("size", sa.BigInteger(), nullable=False),
        sa.Column("dataset_offset", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("sop_instance_uid", "transfer_syntax", name=op.f("pk_dicom_derived")),
    )
    op.create_index("ix_dicom_derived_blob", "dicom_derived", ["blob_key"])

    op.create_table(
        "dicom_instance",
        sa.Column("sop_instance_uid", sa.String(length=64), nullable=False),
        sa.Column("series_uid", sa.String(length=64), nullable=False),
        sa.Column("study_uid", sa.String(length=64), nullable=False),
        sa.Column("sop_class_uid", sa.String(length=64), nullable=False),
        sa.Column("transfer_syntax", sa.String(length=64), nullable=False),
        sa.Column("instance_number", sa.Integer(), nullable=True),
        sa.Column("number_of_frames", sa.Integer(), nullable=True),
        sa.Column("rows", sa.Integer(), nullable=True),
        sa.Column("columns", sa.Integer(), nullable=True),
        sa.Column("blob_key", sa.String(length=128), nullable=False),
        sa.Column("size", sa.BigInteger(), nullable=False),
        sa.Column("dataset_offset", sa.Integer(), nullable=False),
        sa.Column("received", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("sop_instance_uid", name=op.f("pk_dicom_instance")),
    )
    op.create_index("ix_dicom_instance_blob", "dicom_instance", ["blob_key"])
    op.create_index("ix_dicom_instance_series", "dicom_instance", ["series_uid"])
    op.create_index("ix_dicom_instance_study", "dicom_instance", ["study_uid", "received"])

    op.create_table(
        "dicom_series",
        sa.Column("series_uid", sa.String(length=64), nullable=False),
        sa.Column("study_uid", sa.String(length=64), nullable=False),
        sa.Column("modality", sa.String(length=16), nullable=True),
        sa.Column("series_number", sa.Integer(), nullable=True),
        sa.Column("series_description", sa.String(length=64), nullable=True),
        sa.Column("body_part", sa.String(length=16), nullable=True),
        sa.Column("created", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("series_uid", name=op.f("pk_dicom_series")),
    )
    op.create_index("ix_dicom_series_study", "dicom_series", ["study_uid"])

    op.create_table(
        "dicom_study",
        sa.Column("study_uid", sa.String(length=64), nullable=False),
        sa.Column("patient_id", sa.String(length=64), nullable=False),
        sa.Column("issuer", sa.String(length=64), nullable=True),
        sa.Column("patient_name", sa.String(length=324), nullable=True),
        sa.Column("patient_birth_date", sa.String(length=16), nullable=True),
        sa.Column("patient_sex", sa.String(length=16), nullable=True),
        sa.Column("accession", sa.String(length=64), nullable=True),
        sa.Column("accession_issuer", sa.String(length=64), nullable=True),
        sa.Column("study_date", sa.String(length=16), nullable=True),
        sa.Column("study_time", sa.String(length=32), nullable=True),
        sa.Column("study_description", sa.String(length=64), nullable=True),
        sa.Column("study_id", sa.String(length=16), nullable=True),
        sa.Column("referring_physician", sa.String(length=324), nullable=True),
        sa.Column("charset", sa.String(length=64), nullable=True),
        sa.Column("establishment", sa.String(length=128), nullable=False),
        sa.Column("calling_ae", sa.String(length=16), nullable=False),
        sa.Column("created", sa.BigInteger(), nullable=False),
        sa.Column("last_received", sa.BigInteger(), nullable=False),
        sa.Column("published_seq", sa.BigInteger(), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("affinity_patient_id", sa.String(length=256), nullable=True),
        sa.Column("claim", sa.String(length=64), nullable=True),
        sa.Column("claim_until", sa.BigInteger(), nullable=True),
        sa.Column("retry_after", sa.BigInteger(), nullable=True),
        sa.PrimaryKeyConstraint("study_uid", name=op.f("pk_dicom_study")),
    )
    op.create_index("ix_dicom_study_accession", "dicom_study", ["accession"])
    op.create_index("ix_dicom_study_patient", "dicom_study", ["patient_id"])
    op.create_index("ix_dicom_study_pending", "dicom_study", ["last_received", "published_seq"])

    op.create_table(
        "document_entry",
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("patient_id", sa.String(length=256), nullable=False),
        sa.Column("status", sa.String(length=64), nullable=False),
        sa.Column("object_type", sa.String(length=64), nullable=False),
        sa.Column("unique_id", sa.String(length=160), nullable=False),
        sa.Column("creation_time", sa.String(length=14), nullable=True),
        sa.Column("service_start_time", sa.String(length=14), nullable=True),
        sa.Column("service_stop_time", sa.String(length=14), nullable=True),
        sa.Column("repository_unique_id", sa.String(length=128), nullable=True),
        sa.Column("hash", sa.String(length=40), nullable=True),
        sa.Column("size", sa.BigInteger(), nullable=True),
        sa.Column("mime_type", sa.String(length=128), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_document_entry")),
    )
    op.create_index("ix_document_entry_patient", "document_entry", ["patient_id", "status", "creation_time"])
    op.create_index("ix_document_entry_unique_id", "document_entry", ["unique_id"])

    op.create_table(
        "folder",
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("patient_id", sa.String(length=256), nullable=False),
        sa.Column("status", sa.String(length=64), nullable=False),
        sa.Column("last_update_time", sa.String(length=14), nullable=True),
        sa.Column("unique_id", sa.String(length=160), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_folder")),
    )
    op.create_index("ix_folder_patient", "folder", ["patient_id", "status", "last_update_time"])

    op.create_table(
        "imaging_manifest",
        sa.Column("kos_uid", sa.String(length=64), nullable=False),
        sa.Column("study_uid", sa.String(length=64), nullable=False),
        sa.Column("entry_uuid", sa.String(length=64), nullable=False),
        sa.Column("submission_set_uid", sa.String(length=64), nullable=False),
        sa.Column("patient_id", sa.String(length=256), nullable=False),
        sa.Column("instance_count", sa.Integer(), nullable=False),
        sa.Column("covers_seq", sa.BigInteger(), nullable=False),
        sa.Column("published", sa.BigInteger(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("replaced_by", sa.String(length=64), nullable=True),
        sa.PrimaryKeyConstraint("kos_uid", name=op.f("pk_imaging_manifest")),
    )
    op.create_index("ix_imaging_manifest_study", "imaging_manifest", ["study_uid", "published"])

    op.create_table(
        "imaging_report",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("study_uid", sa.String(length=64), nullable=False),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("detail", sa.Text(), nullable=False),
        sa.Column("created", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_imaging_report")),
    )
    op.create_index("ix_imaging_report_study", "imaging_report", ["study_uid", "created"])

    op.create_table(
        "object_author",
        sa.Column("object_id", sa.String(length=64), nullable=False),
        sa.Column("person", sa.String(length=512), nullable=False),
    )
    op.create_index("ix_object_author_object", "object_author", ["object_id"])

    op.create_table(
        "object_code",
        sa.Column("object_id", sa.String(length=64), nullable=False),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("code", sa.String(length=256), nullable=False),
        sa.Column("scheme", sa.String(length=256), nullable=False),
    )
    op.create_index("ix_object_code_object", "object_code", ["object_id", "kind"])
    op.create_index("ix_object_code_value", "object_code", ["kind", "code", "scheme"])

    op.create_table(
        "object_reference_id",
        sa.Column("object_id", sa.String(length=64), nullable=False),
        sa.Column("value", sa.String(length=512), nullable=False),
    )
    op.create_index("ix_object_reference_id_object", "object_reference_id", ["object_id"])
    op.create_index("ix_object_reference_id_value", "object_reference_id", ["value"])

    op.create_table(
        "patient",
        sa.Column("patient_id", sa.String(length=256), nullable=False),
        sa.Column("created", sa.String(length=32), nullable=False),
        sa.Column("merged_into", sa.String(length=256), nullable=True),
        sa.PrimaryKeyConstraint("patient_id", name=op.f("pk_patient")),
    )
    op.create_table(
        "pix_identity",
        sa.Column("authority", sa.String(length=128), nullable=False),
        sa.Column("value", sa.String(length=256), nullable=False),
        sa.Column("person_id", sa.BigInteger(), nullable=False),
        sa.Column("merged_into", sa.String(length=400), nullable=True),
        sa.Column("demographics", sa.Text(), nullable=True),
        sa.Column("updated", sa.String(length=32), nullable=False),
        sa.PrimaryKeyConstraint("authority", "value", name=op.f("pk_pix_identity")),
    )
    op.create_index("ix_pix_identity_person", "pix_identity", ["person_id"])

    op.create_table(
        "pix_notification",
        sa.Column(
            "id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False
        ),
        sa.Column("subscriber", sa.String(length=128), nullable=False),
        sa.Column("message", sa.Text(), nullable=False),
        sa.Column("created", sa.String(length=32), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("next_attempt", sa.Float(), nullable=False),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_pix_notification")),
    )
    op.create_index("ix_pix_notification_pending", "pix_notification", ["status", "subscriber", "id"])

    op.create_table(
        "pix_person",
        sa.Column(
            "id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False
        ),
        sa.Column("created", sa.String(length=32), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_pix_person")),
    )
    op.create_table(
        "registry_object",
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("kind", sa.String(length=1), nullable=False),
        sa.Column("lid", sa.String(length=64), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("status", sa.String(length=64), nullable=False),
        sa.Column("patient_id", sa.String(length=256), nullable=True),
        sa.Column("unique_id", sa.String(length=160), nullable=True),
        sa.Column("body", sa.Text(), nullable=False),
        sa.Column("seq", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_registry_object")),
    )
    op.create_index("ix_registry_object_lid", "registry_object", ["lid"])
    op.create_index("ix_registry_object_unique_id", "registry_object", ["unique_id"])

    op.create_table(
        "repository_document",
        sa.Column("unique_id", sa.String(length=160), nullable=False),
        sa.Column("repository_unique_id", sa.String(length=128), nullable=False),
        sa.Column("blob_key", sa.String(length=128), nullable=False),
        sa.Column("hash", sa.String(length=40), nullable=False),
        sa.Column("size", sa.BigInteger(), nullable=False),
        sa.Column("mime_type", sa.String(length=128), nullable=False),
        sa.Column("created", sa.String(length=32), nullable=False),
        sa.PrimaryKeyConstraint("unique_id", name=op.f("pk_repository_document")),
    )
    op.create_index("ix_repository_document_blob", "repository_document", ["blob_key"])

    op.create_table(
        "submission_set",
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("patient_id", sa.String(length=256), nullable=False),
        sa.Column("status", sa.String(length=64), nullable=False),
        sa.Column("source_id", sa.String(length=128), nullable=False),
        sa.Column("submission_time", sa.String(length=14), nullable=True),
        sa.Column("unique_id", sa.String(length=160), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_submission_set")),
    )
    op.create_index(
        "ix_submission_set_patient", "submission_set", ["patient_id", "status", "submission_time"]
    )

    op.create_table(
        "audit_patient",
        sa.Column("record_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("patient_id", sa.String(length=256), nullable=False),
        sa.ForeignKeyConstraint(
            ["record_id"],
            ["audit_record.id"],
            name=op.f("fk_audit_patient_record_id_audit_record"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("record_id", "patient_id", name=op.f("pk_audit_patient")),
    )
    op.create_index("ix_audit_patient_patient", "audit_patient", ["patient_id"])


def downgrade() -> None:
    op.drop_table("audit_patient")
    op.drop_table("submission_set")
    op.drop_table("repository_document")
    op.drop_table("registry_object")
    op.drop_table("pix_person")
    op.drop_table("pix_notification")
    op.drop_table("pix_identity")
    op.drop_table("patient")
    op.drop_table("object_reference_id")
    op.drop_table("object_code")
    op.drop_table("object_author")
    op.drop_table("imaging_report")
    op.drop_table("imaging_manifest")
    op.drop_table("folder")
    op.drop_table("document_entry")
    op.drop_table("dicom_study")
    op.drop_table("dicom_series")
    op.drop_table("dicom_instance")
    op.drop_table("dicom_derived")
    op.drop_table("audit_record")
    op.drop_table("association")
