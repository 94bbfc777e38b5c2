"""The single access check of the administrative transactions: Update Document Set [ITI-57],
Delete Document Set [ITI-62] (Document Registry) and Remove Documents [ITI-86] (Document
Repository).

Their handlers call :func:`authorize_admin` first, before reading the request.  The rule itself
is :func:`xds_hub.security.access.require_admin` (a SOAP Sender fault with subcode
``wsse:FailedAuthentication`` unless the peer is one of ``[security] admin_subjects``).  The
authenticated peer reaches a handler as ``SoapRequest.identity`` once the SOAP edge sets it
(TLS peer certificate, see :mod:`xds_hub.security.tls`); until then, and whenever TLS is off,
there is no identity and the check passes, as every check of :mod:`xds_hub.security.access` does.
"""

from __future__ import annotations

from xds_hub.security.access import NodeIdentity, require_admin
from xds_hub.soap.types import SoapRequest


def authorize_admin(request: SoapRequest) -> None:
    """Raise SoapFault (wsse:FailedAuthentication) unless the requester may administer metadata."""
    identity = getattr(request, "identity", None)
    require_admin(identity if isinstance(identity, NodeIdentity) else None)
