"""The single access check of the administrative transactions: Update Document Set [ITI-57],
Delete Document Set [ITI-62] (Document Registry) and Remove Documents [ITI-86] (Document
Repository).

Their handlers call :func:`authorize_admin` first, before reading the request.  The rule itself
is :func:`xds_hub.security.access.require_admin` (a SOAP Sender fault with subcode
``wsse:FailedAuthentication`` unless the peer is one of ``[security] admin_subjects``), applied by
:func:`xds_hub.security.guard.authorize_admin`, which also records the refusal's Security Alert.
The authenticated peer is ``SoapRequest.identity`` (TLS client certificate, see
:mod:`xds_hub.security.tls`); whenever mutual TLS is off there is no identity and the check passes.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from xds_hub.security import guard
from xds_hub.soap.types import SoapRequest

if TYPE_CHECKING:
    from xds_hub.config import Settings
    from xds_hub.storage.stores import Stores


def authorize_admin(
    request: SoapRequest,
    settings: Settings | None = None,
    stores: Stores | None = None,
    transaction: str = "",
) -> None:
    """Raise SoapFault (wsse:FailedAuthentication) unless the requester may administer metadata;
    with ``settings`` and ``stores``, a refusal is also audited (Security Alert)."""
    guard.authorize_admin(request, settings, stores, transaction)
