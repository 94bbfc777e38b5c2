"""Who may do what: the access rules of the affinity domain, per authenticated node (pure).

A member node is authenticated by its TLS client certificate (ITI TF-1 9, ATNA "Authenticate
Node", ITI TF-2 3.19); :func:`xds_hub.security.tls.peer_identity` turns that certificate into a
:class:`NodeIdentity`.  The rules here decide what that identity may do:

- a submission (ITI-41, ITI-42, RAD-68 from outside) uses only the submitting establishment's own
  ``source_ids``, affinity-domain patient IDs, and its own local patient IDs as sourcePatientId
  (:func:`check_submission`);
- a DICOM association's calling AE title belongs to the calling establishment (:func:`check_ae`);
- an identity feed (ITI-8, ITI-44) asserts identifiers of the feeding establishment's own assigning
  authority (:func:`check_feed_authority`);
- the administrative transactions (ITI-57 Update Document Set, ITI-62 Delete Document Set,
  ITI-86 Remove Documents) are run only by a configured admin identity (:func:`require_admin`);
- reading and querying (ITI-18, ITI-43, RAD-69, ITI-9, ITI-45, C-FIND/C-MOVE/C-GET, WADO) are open
  to every member; they are recorded by the audit trail, not refused here.

**When TLS is off** (no ``tls_ca``: no client certificate is asked for) there is no identity: every
check receives ``None`` and passes.  Access control then rests on the network (a closed VPN) and
the audit trail still records every access by network address.

How a refusal travels (the IHE profiles define no "access denied" code):

- submissions: an ``XdsError`` with ``XDSRegistryMetadataError`` (ITI TF-3 Table 4.2.4.1-2: "an
  error was detected in the metadata", the codeContext says which value): the sourceId or patient
  ID the node used is metadata it may not use, and the Document Source gets an ordinary
  RegistryResponse Failure it already knows how to read; a foreign patient domain is
  ``XDSUnknownPatientId`` as everywhere else in the registry;
- administrative transactions: a SOAP 1.2 Sender fault with subcode ``wsse:FailedAuthentication``
  ("the security token could not be authenticated or authorized", WS-Security 1.1 section 12), the
  answer XUA (ITI TF-2b 3.40) gives to a refused requester: the request is not processed at all;
- DICOM and HL7 v2: :class:`AccessDenied`, which the listeners turn into an A-ASSOCIATE-RJ
  (:data:`AE_REJECT`: rejected-permanent, service-user, calling-AE-title-not-recognized) or an
  ``AR`` acknowledgement with ERR-3 ``204`` (unknown key identifier) on the refused PID-3.
"""

from __future__ import annotations

from dataclasses import dataclass

from xds_hub.config import AffinityDomain, Establishment
from xds_hub.domain.hl7types import CX
from xds_hub.domain.metadata import Submission
from xds_hub.errors import ErrorCode, FaultCode, FaultSubcode, Problem, SoapFault, XdsError

#: A-ASSOCIATE-RJ (result, source, reason) for a calling AE title the node may not use
#: (PS3.8 9.3.4: 1 rejected-permanent, 1 DICOM UL service-user, 3 calling-AE-title-not-recognized).
AE_REJECT = (1, 1, 3)


@dataclass(frozen=True, slots=True)
class NodeIdentity:
    """An authenticated peer: its certificate's names and what the affinity domain makes of them."""

    #: Subject of the peer certificate, RFC 4514 ("CN=Hopital A,O=Region").
    subject: str
    #: Its subjectAltNames as "URI:...", "DNS:...", "IP:...", "email:...".
    alt_names: tuple[str, ...] = ()
    #: The member establishment the certificate belongs to (``tls_subjects``), if any.
    establishment: Establishment | None = None
    #: True when the certificate is one of ``[security] admin_subjects``.
    admin: bool = False

    @property
    def label(self) -> str:
        """A short human-readable name: the establishment's name, "admin", or the subject."""
        if self.establishment is not None:
            return self.establishment.name + (" (admin)" if self.admin else "")
        return "admin" if self.admin else self.subject


class AccessDenied(Exception):
    """A node asked for something its identity does not allow (DICOM / HL7 v2 listeners)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def _authority(cx: str) -> str:
    return CX.parse(cx).assigning_authority.universal_id


def check_submission(identity: NodeIdentity | None, submission: Submission, domain: AffinityDomain) -> None:
    """Raise XdsError unless ``identity`` may submit ``submission`` (ITI-41 / ITI-42 / RAD-68).

    The submitter must be a member establishment; the SubmissionSet's sourceId must be one of its
    ``source_ids``; every patientId must be in the affinity domain; a DocumentEntry's
    sourcePatientId, when given, must be in the establishment's own (or the affinity) domain.
    """
    if identity is None:
        return
    est = identity.establishment
    ss = submission.submission_set
    if est is None:
        raise XdsError.one(
            ErrorCode.REGISTRY_METADATA_ERROR,
            f"node {identity.subject!r} is not a member establishment of the affinity domain and may "
            "not submit",
            ss.entry_uuid,
        )
    problems: list[Problem] = []
    if ss.source_id not in est.source_ids:
        problems.append(
            Problem(
                ErrorCode.REGISTRY_METADATA_ERROR,
                f"sourceId {ss.source_id!r} is not one of {est.name!r}'s sourceIds "
                f"({', '.join(est.source_ids) or 'none configured'})",
                ss.entry_uuid,
            )
        )
    patients = [(ss.entry_uuid, ss.patient_id)]
    patients += [(d.entry_uuid, d.patient_id) for d in submission.documents]
    patients += [(f.entry_uuid, f.patient_id) for f in submission.folders]
    for location, pid in patients:
        if _authority(pid) != domain.assigning_authority:
            problems.append(
                Problem(
                    ErrorCode.UNKNOWN_PATIENT_ID,
                    f"patient ID {pid!r} is not in the affinity domain ({domain.assigning_authority})",
                    location,
                )
            )
    own = {est.assigning_authority, domain.assigning_authority}
    for doc in submission.documents:
        if doc.source_patient_id and _authority(doc.source_patient_id) not in own:
            problems.append(
                Problem(
                    ErrorCode.REGISTRY_METADATA_ERROR,
                    f"sourcePatientId {doc.source_patient_id!r} is not in {est.name!r}'s patient ID "
                    f"domain ({est.assigning_authority})",
                    doc.entry_uuid,
                )
            )
    if problems:
        raise XdsError(problems)


def check_ae(identity: NodeIdentity | None, calling_ae: str, domain: AffinityDomain) -> None:
    """Raise AccessDenied if ``identity`` may not use ``calling_ae`` (DICOM A-ASSOCIATE-RQ).

    An AE title that belongs to an establishment may be used only by that establishment's nodes.
    An AE title no establishment claims is left to the listener's own policy (a member's viewer
    may query and retrieve; C-STORE needs an establishment anyway).
    """
    if identity is None:
        return
    owner = domain.establishment_for_ae(calling_ae.strip())
    if owner is None:
        return
    if identity.establishment is None or identity.establishment.name != owner.name:
        raise AccessDenied(
            f"calling AE title {calling_ae.strip()!r} belongs to {owner.name!r}, not to {identity.label!r}"
        )


def check_feed_authority(
    identity: NodeIdentity | None, assigning_authority: str, domain: AffinityDomain
) -> None:
    """Raise AccessDenied if ``identity`` may not feed identifiers of ``assigning_authority``.

    ITI-8 / ITI-44: call it for every identifier a feed asserts.  An establishment feeds its own
    assigning authority (the regional MPI is the establishment whose authority is the affinity
    domain's); identifiers of a linking authority (e.g. a national health ID) may be carried by any
    member, since they only link; an admin identity may feed any domain.
    """
    if identity is None or identity.admin:
        return
    if assigning_authority in domain.linking_authorities:
        return
    est = identity.establishment
    if est is not None and est.assigning_authority == assigning_authority:
        return
    raise AccessDenied(
        f"{identity.label!r} may not feed identifiers of assigning authority {assigning_authority!r}"
        + (f" (its own is {est.assigning_authority})" if est is not None else "")
    )


def require_admin(identity: NodeIdentity | None) -> None:
    """Raise a SOAP Sender fault (wsse:FailedAuthentication) unless ``identity`` is an admin.

    ITI-57 Update Document Set, ITI-62 Delete Document Set, ITI-86 Remove Documents.
    """
    if identity is None or identity.admin:
        return
    raise SoapFault(
        FaultCode.SENDER,
        f"{identity.label!r} is not authorized for administrative transactions "
        "(not one of [security] admin_subjects)",
        FaultSubcode.FAILED_AUTHENTICATION,
    )
