"""SQL tables of the local audit trail (ITI-20): every audit message the hub made, and its patients.

- ``audit_record``: one row per audit message: the summary columns `xds-hub audit` shows, the XML
  as sent to the Audit Record Repository, and the sending state (``sent_ns`` NULL: still queued).
- ``audit_patient``: the patients a record is about (its patient participant objects, plus
  aliases such as an imaging record's affinity-domain ID), so "who accessed this patient" is one
  indexed lookup.

Times are nanoseconds since the UNIX epoch (BigInteger), like ``registry_object.seq``.
"""

from __future__ import annotations

from sqlalchemy import BigInteger, Column, ForeignKey, Index, Integer, SmallInteger, String, Table, Text

from xds_hub.storage.schema import metadata

#: An auto-incrementing key on both SQLite (INTEGER PRIMARY KEY) and PostgreSQL (BIGSERIAL).
RecordId = BigInteger().with_variant(Integer(), "sqlite")

audit_record = Table(
    "audit_record",
    metadata,
    Column("id", RecordId, primary_key=True, autoincrement=True),
    #: EventDateTime, ns since the epoch.
    Column("event_ns", BigInteger, nullable=False),
    Column("event_id", String(32), nullable=False),  # e.g. "110112"
    Column("event_name", String(64), nullable=False),  # e.g. "Query"
    Column("action", String(1), nullable=False),
    Column("outcome", SmallInteger, nullable=False),
    #: The first EventTypeCode (an IHE transaction such as "ITI-18", or a DCM code) and its text.
    Column("event_type", String(32)),
    Column("event_type_name", String(128)),
    #: The requesting participant: its UserID, UserName (TLS identity) and network address.
    Column("requestor", String(512)),
    Column("requestor_name", String(512)),
    Column("requestor_address", String(256)),
    #: JSON list of {"kind", "id"} for the non-patient participant objects (documents, studies, ...).
    Column("objects", Text, nullable=False, default="[]"),
    Column("outcome_description", Text),
    #: The DICOM audit message XML (UTF-8).
    Column("message", Text, nullable=False),
    #: When it reached the Audit Record Repository (ns); NULL while queued.
    Column("sent_ns", BigInteger),
    Column("attempts", Integer, nullable=False, default=0),
    Index("ix_audit_record_pending", "sent_ns", "id"),
    Index("ix_audit_record_event_ns", "event_ns"),
)

audit_patient = Table(
    "audit_patient",
    metadata,
    Column("record_id", RecordId, ForeignKey("audit_record.id", ondelete="CASCADE"), primary_key=True),
    Column("patient_id", String(256), primary_key=True),
    Index("ix_audit_patient_patient", "patient_id"),
)
