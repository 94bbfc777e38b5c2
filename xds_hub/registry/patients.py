"""Affinity-domain patient identities known to the registry (ITI TF-2 3.42.4.1.3: XDSUnknownPatientId).

The PIX Manager feeds this table; until a feed has named a patient, `xds-hub patient add` does.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime

from sqlalchemy import Connection, select
from sqlalchemy.dialects import postgresql, sqlite

from xds_hub.config import AffinityDomain
from xds_hub.errors import ErrorCode, XdsError
from xds_hub.storage.schema import patient

_AFFINITY_CX = re.compile(r"^(?P<id>[^^&~\\|]+)\^\^\^&(?P<oid>[0-2](\.(0|[1-9][0-9]*))+)&ISO$")


def check_affinity_patient_id(pid: str, domain: AffinityDomain) -> None:
    """Raise XDSUnknownPatientId unless ``pid`` is ID^^^&OID&ISO in the affinity domain's authority."""
    m = _AFFINITY_CX.match(pid)
    if not m:
        raise XdsError.one(
            ErrorCode.UNKNOWN_PATIENT_ID, f"patient ID {pid!r} is not of the form ID^^^&OID&ISO"
        )
    if m["oid"] != domain.assigning_authority:
        raise XdsError.one(
            ErrorCode.UNKNOWN_PATIENT_ID,
            f"patient ID {pid!r} is not in the affinity domain (assigning authority "
            f"{domain.assigning_authority})",
        )


def add_patient(conn: Connection, pid: str, domain: AffinityDomain) -> bool:
    """Register ``pid``; True if it was new.  Raises XdsError for a malformed or foreign ID."""
    check_affinity_patient_id(pid, domain)
    values = {"patient_id": pid, "created": datetime.now(UTC).isoformat()}
    insert = (postgresql if conn.dialect.name == "postgresql" else sqlite).insert(patient)
    stmt = insert.values(**values).on_conflict_do_nothing(index_elements=["patient_id"])
    return conn.execute(stmt.returning(patient.c.patient_id)).first() is not None


def is_known(conn: Connection, pid: str) -> bool:
    """True if ``pid`` is a registered, not merged-away affinity-domain patient."""
    row = conn.execute(select(patient.c.merged_into).where(patient.c.patient_id == pid)).first()
    return row is not None and row.merged_into is None
