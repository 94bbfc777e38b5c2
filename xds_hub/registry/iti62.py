"""Delete Document Set [ITI-62]: the Document Registry side of Remove Metadata (ITI TF-2 3.62,
Remove Metadata and Documents profile).

A Document Administrator sends an ``lcm:RemoveObjectsRequest`` listing entryUUIDs in an
``rim:ObjectRefList`` to ``/xds/registry`` with wsa:Action ``urn:ihe:iti:2010:DeleteDocumentSet``.
The handler checks that the requester may administer metadata
(:func:`xds_hub.registry.admin.authorize_admin`), reads the request
(:func:`xds_hub.ebxml.parse.parse_remove_objects_request`: ObjectRefList only, deletionScope
DeleteAll), removes the objects in one serialised write transaction
(:func:`xds_hub.registry.remove.remove_objects`, which lists the rules and their error codes) and
answers an ``rs:RegistryResponse`` (ITI TF-2 3.62.4.2): Success, or Failure with every problem,
in which case nothing was removed.  The documents themselves stay in the Document Repository;
Remove Documents [ITI-86] removes those.

A body that is not a RemoveObjectsRequest is answered with a SOAP Sender fault.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from xds_hub.audit.soap import patients_of_objects
from xds_hub.domain.vocabulary import SoapAction
from xds_hub.ebxml.parse import parse_remove_objects_request
from xds_hub.errors import FaultCode, ParseError, SoapFault, XdsError
from xds_hub.log import get_logger
from xds_hub.registry.admin import authorize_admin
from xds_hub.registry.register import KIND_NAMES
from xds_hub.registry.remove import RemovalResult, remove_objects
from xds_hub.registry.responses import REGISTRY_INTERNAL_ERROR, database_errors, registry_response
from xds_hub.soap.types import SoapRequest, SoapResponse
from xds_hub.storage.db import write_transaction

if TYPE_CHECKING:
    from collections.abc import Sequence

    from xds_hub.config import Settings
    from xds_hub.storage.stores import Stores

log = get_logger("xds_hub.registry.iti62")


def delete_document_set(stores: Stores, ids: Sequence[str]) -> RemovalResult:
    """Remove the registry objects ``ids``, atomically.  Raises XdsError."""
    with (
        database_errors(
            log,
            "ITI-62",
            "the registry cannot remove metadata now; please retry later",
            "the registry could not remove the metadata",
        ),
        write_transaction(stores.engine) as conn,
    ):
        return remove_objects(conn, ids)


def _patients(stores: Stores, ids: Sequence[str]) -> tuple[str, ...]:
    """The patients of the objects about to be removed, for the audit message (best effort)."""
    try:
        return patients_of_objects(stores, ids)
    except Exception:
        log.warning("ITI-62: the patients of the removed objects could not be read for the audit trail")
        return ()


def handle(request: SoapRequest, stores: Stores, settings: Settings) -> SoapResponse:
    """ITI-62: remove the objects named by ``request``; answer rs:RegistryResponse."""
    authorize_admin(request, settings, stores, "ITI-62")
    try:
        refs = parse_remove_objects_request(request.body)
    except ParseError as exc:
        raise SoapFault(FaultCode.SENDER, f"not a RemoveObjectsRequest: {exc}") from None
    except XdsError as exc:
        return registry_response(SoapAction.ITI62_RESPONSE, exc.problems)
    request.notes.patient_ids = _patients(stores, [r.id for r in refs])
    try:
        result = delete_document_set(stores, [r.id for r in refs])
    except XdsError as exc:
        log.info("ITI-62 rejected", extra={"codes": sorted({p.code.value for p in exc.problems})})
        return registry_response(SoapAction.ITI62_RESPONSE, exc.problems)
    except Exception:
        log.exception("ITI-62 failed unexpectedly")
        return registry_response(SoapAction.ITI62_RESPONSE, (REGISTRY_INTERNAL_ERROR,))
    log.info("ITI-62 removed", extra={"removed": {KIND_NAMES[k]: len(v) for k, v in result.removed.items()}})
    return registry_response(SoapAction.ITI62_RESPONSE)
