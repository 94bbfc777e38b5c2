"""From a study's local patient ID to the affinity-domain patient ID its manifest is registered under.

XDS-I.b (RAD TF-3 4.68.4.1.2.3.2): DocumentEntry.patientId is the affinity-domain ID of the
patient, sourcePatientId the ID the establishment uses (DICOM Patient ID (0010,0020) with its
issuer).  The issuer is, in order: Issuer of Patient ID (0010,0021) when it is an establishment's
assigning-authority OID or a namespace of ``[pix] namespaces``; otherwise the assigning authority of
the establishment whose AE title sent the study.  The PIX cross-reference (:mod:`xds_hub.pix.xref`)
then gives the affinity-domain ID, which must also be known to the registry.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import Connection

from xds_hub.config import AffinityDomain
from xds_hub.errors import Hl7Error
from xds_hub.pix.model import PixQuery, RawId
from xds_hub.pix.xref import CrossReference
from xds_hub.registry.patients import is_known


@dataclass(frozen=True, slots=True)
class LocalPatient:
    """A patient as an establishment identifies it: ID and the OID of its assigning authority."""

    patient_id: str
    authority: str

    @property
    def cx(self) -> str:
        return f"{self.patient_id}^^^&{self.authority}&ISO"


def local_patient(
    domain: AffinityDomain, patient_id: str, issuer: str | None, establishment: str
) -> LocalPatient | None:
    """The local identity of a study's patient, or None when its domain cannot be told."""
    if not patient_id:
        return None
    authorities = {e.assigning_authority for e in domain.establishments} | {domain.assigning_authority}
    if issuer:
        if issuer in authorities:
            return LocalPatient(patient_id, issuer)
        mapped = domain.pix.namespaces.get(issuer)
        if mapped:
            return LocalPatient(patient_id, mapped)
    est = next((e for e in domain.establishments if e.name == establishment), None)
    return LocalPatient(patient_id, est.assigning_authority) if est else None


def affinity_patient_id(conn: Connection, domain: AffinityDomain, local: LocalPatient) -> str | None:
    """The registry-known affinity-domain ID (CX) cross-referenced with ``local``, or None."""
    if local.authority == domain.assigning_authority:
        return local.cx if is_known(conn, local.cx) else None
    query = PixQuery(
        RawId(local.patient_id, universal_id=local.authority, universal_id_type="ISO"),
        domains=(RawId("", universal_id=domain.assigning_authority, universal_id_type="ISO"),),
    )
    try:
        answer = CrossReference(domain).query(conn, query)
    except Hl7Error:  # the PIX Manager does not know this identifier
        return None
    for ident in answer.identifiers:
        if ident.authority == domain.assigning_authority and is_known(conn, ident.cx):
            return ident.cx
    return None
