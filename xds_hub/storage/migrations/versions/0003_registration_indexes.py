"""Indexes that every registration paid for: two dropped, one made partial.

- ``ix_object_code_value`` (kind, code, scheme): every stored query filters codes with an EXISTS
  correlated on the object (``ix_object_code_object``: object_id, kind), and each of the queries
  that take codes also takes a patient ID, so this index was never the better path.  Each coded
  attribute of a new object put one more entry into it, in a leaf of its own: about 10 of the ~49
  pages one ITI-41 submission wrote to the SQLite WAL (bench/RESULTS.md, "Sixth session").
- ``ix_document_entry_unique_id``: the same uniqueIds are in ``ix_registry_object_unique_id``,
  which the look-ups by uniqueId now use for every kind of object.
- ``ix_registry_object_lid`` now holds only the later versions of objects (``lid <> id``, Metadata
  Update): a first version's logical id is its own id, which the primary key finds
  (:func:`xds_hub.storage.schema.versions_of`).  Every new object of a submission had put an entry
  with a random key into it.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-02
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # IF EXISTS: a database made by create_all after the indexes left the metadata has neither.
    op.drop_index("ix_object_code_value", table_name="object_code", if_exists=True)
    op.drop_index("ix_document_entry_unique_id", table_name="document_entry", if_exists=True)
    op.drop_index("ix_registry_object_lid", table_name="registry_object")
    later = sa.text("lid <> id")
    op.create_index(
        "ix_registry_object_lid", "registry_object", ["lid"], sqlite_where=later, postgresql_where=later
    )


def downgrade() -> None:
    op.drop_index("ix_registry_object_lid", table_name="registry_object")
    op.create_index("ix_registry_object_lid", "registry_object", ["lid"])
    op.create_index("ix_document_entry_unique_id", "document_entry", ["unique_id"])
    op.create_index("ix_object_code_value", "object_code", ["kind", "code", "scheme"])
