"""SQL tables of the registry and repository (SQLAlchemy Core), shared by SQLite and PostgreSQL.

Each registry object keeps its full typed form as JSON in ``registry_object.body`` (see
:mod:`xds_hub.storage.codec`); the other tables are indexes that the stored queries search.
Columns that can change after registration (status, folder lastUpdateTime, patient after a merge)
live in index columns, which win over the JSON body when the object is read back.

Other areas (PIX, imaging, audit) define their tables in their own modules on the same
``metadata`` object, so one Alembic history covers them all.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import (
    BigInteger,
    Column,
    ColumnElement,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
    and_,
    or_,
    text,
)

metadata = MetaData(
    naming_convention={
        "ix": "ix_%(column_0_label)s",
        "uq": "uq_%(table_name)s_%(column_0_name)s",
        "pk": "pk_%(table_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    }
)

ID = String(64)  # "urn:uuid:..." is 45 characters
OID = String(128)  # uniqueIds: OIDs, OID^extension (<= 128 + 16)
CX = String(256)

#: Every registry object: DocumentEntry ('D'), SubmissionSet ('S'), Folder ('F'), Association ('A').
registry_object = Table(
    "registry_object",
    metadata,
    Column("id", ID, primary_key=True),
    Column("kind", String(1), nullable=False),
    Column("lid", ID, nullable=False),
    Column("version", Integer, nullable=False, default=1),
    Column("status", String(64), nullable=False),
    Column("patient_id", CX),
    Column("unique_id", String(160)),
    Column("body", Text, nullable=False),
    #: Registration time in nanoseconds since the epoch; a submission's objects share one value.
    Column("seq", BigInteger, nullable=False),
    Index("ix_registry_object_unique_id", "unique_id"),
    # Only the later versions (Metadata Update, ITI-57): a first version's lid is its own id, which
    # the primary key finds; see versions_of.
    Index(
        "ix_registry_object_lid", "lid", sqlite_where=text("lid <> id"), postgresql_where=text("lid <> id")
    ),
)


def versions_of(obj: Any, lids: Sequence[str] | ColumnElement[Any]) -> ColumnElement[bool]:
    """``obj`` (``registry_object`` or an alias of it) is a version of one of ``lids`` (logical ids,
    or a column holding one): its first version, whose id is the logical id, or a later one, whose
    lid is (and differs from its id).  Written so that each half has an index: the primary key, and
    ``ix_registry_object_lid``, which holds only the later versions (``lid <> id``)."""
    if isinstance(lids, ColumnElement):
        first, later = obj.c.id == lids, obj.c.lid == lids
    else:
        first, later = obj.c.id.in_(lids), obj.c.lid.in_(lids)
    return or_(and_(first, obj.c.lid == obj.c.id), and_(later, obj.c.lid != obj.c.id))


document_entry = Table(
    "document_entry",
    metadata,
    Column("id", ID, primary_key=True),
    Column("patient_id", CX, nullable=False),
    Column("status", String(64), nullable=False),
    Column("object_type", String(64), nullable=False),
    Column("unique_id", String(160), nullable=False),
    Column("creation_time", String(14)),
    Column("service_start_time", String(14)),
    Column("service_stop_time", String(14)),
    Column("repository_unique_id", OID),
    Column("hash", String(40)),
    Column("size", BigInteger),
    Column("mime_type", String(128)),
    Index("ix_document_entry_patient", "patient_id", "status", "creation_time"),
    # (by uniqueId: through ix_registry_object_unique_id)
)

submission_set = Table(
    "submission_set",
    metadata,
    Column("id", ID, primary_key=True),
    Column("patient_id", CX, nullable=False),
    Column("status", String(64), nullable=False),
    Column("source_id", OID, nullable=False),
    Column("submission_time", String(14)),
    Column("unique_id", String(160), nullable=False),
    Index("ix_submission_set_patient", "patient_id", "status", "submission_time"),
)

folder = Table(
    "folder",
    metadata,
    Column("id", ID, primary_key=True),
    Column("patient_id", CX, nullable=False),
    Column("status", String(64), nullable=False),
    Column("last_update_time", String(14)),
    Column("unique_id", String(160), nullable=False),
    Index("ix_folder_patient", "patient_id", "status", "last_update_time"),
)

association = Table(
    "association",
    metadata,
    Column("id", ID, primary_key=True),
    Column("type", String(80), nullable=False),
    Column("source_id", ID, nullable=False),
    Column("target_id", ID, nullable=False),
    Column("status", String(64), nullable=False),
    Index("ix_association_source", "source_id", "type"),
    Index("ix_association_target", "target_id", "type"),
)

#: Coded attributes of documents, submission sets and folders, one row per code.
#: kind: the [codes] key of the config (classCode, typeCode, formatCode, healthcareFacilityTypeCode,
#: practiceSettingCode, confidentialityCode, eventCodeList, contentTypeCode, folderCodeList).
object_code = Table(
    "object_code",
    metadata,
    Column("object_id", ID, nullable=False),
    Column("kind", String(32), nullable=False),
    Column("code", String(256), nullable=False),
    Column("scheme", String(256), nullable=False),
    #: The only index: every stored query tests codes per object (an EXISTS on object_id, kind).
    Index("ix_object_code_object", "object_id", "kind"),
)

#: authorPerson values (documents and submission sets), for the $...AuthorPerson LIKE parameters.
object_author = Table(
    "object_author",
    metadata,
    Column("object_id", ID, nullable=False),
    Column("person", String(512), nullable=False),
    Index("ix_object_author_object", "object_id"),
)

#: referenceIdList values (CXi) of documents, for FindDocumentsByReferenceId.
object_reference_id = Table(
    "object_reference_id",
    metadata,
    Column("object_id", ID, nullable=False),
    Column("value", String(512), nullable=False),
    Index("ix_object_reference_id_value", "value"),
    Index("ix_object_reference_id_object", "object_id"),
)

#: Affinity-domain patient IDs the registry accepts (fed by PIX, or `xds-hub patient add`).
#: merged_into: the surviving ID after a merge (the subsumed ID is no longer accepted).
patient = Table(
    "patient",
    metadata,
    Column("patient_id", CX, primary_key=True),
    Column("created", String(32), nullable=False),
    Column("merged_into", CX),
)

#: Documents held by this hub's Document Repository (and the Imaging Document Source's KOS).
repository_document = Table(
    "repository_document",
    metadata,
    Column("unique_id", String(160), primary_key=True),
    Column("repository_unique_id", OID, nullable=False),
    Column("blob_key", String(128), nullable=False),
    Column("hash", String(40), nullable=False),
    Column("size", BigInteger, nullable=False),
    Column("mime_type", String(128), nullable=False),
    Column("created", String(32), nullable=False),
    Index("ix_repository_document_blob", "blob_key"),
)

#: Small documents kept in the database (see :mod:`xds_hub.repository.inline`), by blob key
#: (``db:<SHA-256>``); created: UNIX time in nanoseconds (for the orphan sweep's grace period).
inline_blob = Table(
    "inline_blob",
    metadata,
    Column("key", String(80), primary_key=True),
    Column("data", LargeBinary, nullable=False),
    Column("created", BigInteger, nullable=False),
)
