"""SQL tables of the PIX Manager (on the shared :data:`xds_hub.storage.schema.metadata`).

- ``pix_person``: one row per cross-reference set (a person as the PIX Manager knows it); its id
  also numbers the affinity-domain IDs the hub allocates.
- ``pix_identity``: every patient identifier fed (``authority`` = assigning-authority OID), the
  person it belongs to, the source's demographics, and ``merged_into`` once a merge retired it.
- ``pix_notification``: the ITI-10 outbox: one ADT^A31 per subscriber and link change, written in
  the feed's transaction and sent (and retried) by the MLLP actor.
"""

from __future__ import annotations

from sqlalchemy import BigInteger, Column, Float, Index, Integer, String, Table, Text

from xds_hub.storage.schema import OID, metadata

#: SQLite only auto-increments an INTEGER PRIMARY KEY.
_SERIAL = BigInteger().with_variant(Integer(), "sqlite")

pix_person = Table(
    "pix_person",
    metadata,
    Column("id", _SERIAL, primary_key=True, autoincrement=True),
    Column("created", String(32), nullable=False),
)

pix_identity = Table(
    "pix_identity",
    metadata,
    Column("authority", OID, primary_key=True),
    Column("value", String(256), primary_key=True),
    Column("person_id", BigInteger, nullable=False),
    #: "value^^^&authority&ISO" of the surviving identifier once a merge retired this one.
    Column("merged_into", String(400)),
    #: The source's demographics (JSON), last fed.
    Column("demographics", Text),
    Column("updated", String(32), nullable=False),
    Index("ix_pix_identity_person", "person_id"),
)

pix_notification = Table(
    "pix_notification",
    metadata,
    Column("id", _SERIAL, primary_key=True, autoincrement=True),
    Column("subscriber", String(128), nullable=False),
    Column("message", Text, nullable=False),
    Column("created", String(32), nullable=False),
    #: "pending", "sent" (acknowledged AA/CA) or "rejected" (AE/AR: not retried).
    Column("status", String(16), nullable=False),
    Column("attempts", Integer, nullable=False),
    #: Epoch seconds of the next delivery attempt.
    Column("next_attempt", Float, nullable=False),
    Column("last_error", Text),
    Index("ix_pix_notification_pending", "status", "subscriber", "id"),
)
