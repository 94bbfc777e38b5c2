"""The access rules applied to a SOAP request, with the Security Alert of each refusal (ITI-20).

The SOAP transactions call these (the rules themselves are in :mod:`xds_hub.security.access`):

- :func:`authorize_submission`: ITI-41 / RAD-68 (repository) and ITI-42 (registry), once the
  submission is parsed and before anything is stored; a refusal is an ``XdsError``
  (XDSRegistryMetadataError naming the sourceId or sourcePatientId the node may not use;
  XDSUnknownPatientId for a patient outside the affinity domain) that the handler answers as a
  RegistryResponse Failure;
- :func:`authorize_admin`: ITI-57, ITI-62, ITI-86, before the request is read; a refusal is a SOAP
  Sender fault with subcode ``wsse:FailedAuthentication``.

Each refusal notes its reason on the request (``request.notes.refused``, so the transaction's own
audit message knows) and queues a Security Alert (110113, type 110132 "Use of Restricted
Function") naming the transaction and the reason.  Without an identity (TLS off, or no client
certificate asked for: the demo mode) every check passes.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from xds_hub.audit.codes import TRANSACTIONS
from xds_hub.errors import SoapFault, XdsError
from xds_hub.log import get_logger
from xds_hub.security.access import check_submission, require_admin

if TYPE_CHECKING:
    from xds_hub.config import Settings
    from xds_hub.domain.metadata import Submission
    from xds_hub.soap.types import SoapRequest
    from xds_hub.storage.stores import Stores

log = get_logger("xds_hub.security")


def _refused(request: SoapRequest, settings: Settings, stores: Stores, transaction: str, reason: str) -> None:
    from xds_hub.audit.soap import record_refusal

    request.notes.refused = reason
    identity = request.identity
    log.warning(
        "request refused by the access rules",
        extra={
            "transaction": transaction,
            "node": identity.label if identity else None,
            "peer": request.remote_addr,
            "reason": reason,
        },
    )
    record_refusal(
        request, settings, stores, f"{transaction} {TRANSACTIONS.get(transaction, '')}".strip(), reason
    )


def authorize_submission(
    request: SoapRequest, submission: Submission, settings: Settings, stores: Stores, transaction: str
) -> None:
    """Raise XdsError unless the calling node may submit ``submission`` (see the module docstring)."""
    if request.identity is None:
        return
    try:
        check_submission(request.identity, submission, settings.domain)
    except XdsError as exc:
        _refused(request, settings, stores, transaction, "; ".join(p.context for p in exc.problems))
        raise


def authorize_admin(
    request: SoapRequest, settings: Settings | None, stores: Stores | None, transaction: str = ""
) -> None:
    """Raise SoapFault (wsse:FailedAuthentication) unless the calling node is an admin identity."""
    identity = getattr(request, "identity", None)
    if identity is None:
        return
    try:
        require_admin(identity)
    except SoapFault as fault:
        if settings is not None and stores is not None:
            _refused(request, settings, stores, transaction, fault.reason)
        raise
