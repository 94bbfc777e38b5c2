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

from sqlalchemy.exc import OperationalError, SQLAlchemyError

from xds_hub.audit.soap import patients_of_objects
from xds_hub.domain.vocabulary import ResponseStatus, SoapAction
from xds_hub.ebxml.parse import parse_remove_objects_request
from xds_hub.ebxml.render import render_registry_response
from xds_hub.errors import ErrorCode, FaultCode, ParseError, Problem, Severity, SoapFault, XdsError
from xds_hub.log import get_logger
from xds_hub.registry.admin import authorize_admin
from xds_hub.registry.register import KIND_NAMES
from xds_hub.registry.remove import RemovalResult, remove_objects
from xds_hub.soap.types import SoapRequest, SoapResponse
from xds_hub.storage.db import write_transaction

if TYPE_CHECKING:
    from collections.abc import Sequence

    from xds_hub.config import Settings
    from xds_hub.storage.stores import Stores

log = get_logger("xds_hub.registry.iti62")


def delete_document_set(stores: Stores, ids: Sequence[str]) -> RemovalResult:
    """Remove the registry objects ``ids``, atomically.  Raises XdsError."""
    try:
        with write_transaction(stores.engine) as conn:
            return remove_objects(conn, ids)
    except OperationalError:
        log.exception("ITI-62: the registry database is unavailable")
        raise XdsError.one(
            ErrorCode.REGISTRY_BUSY, "the registry cannot remove metadata now; please retry later"
        ) from None
    except SQLAlchemyError:
        log.exception("ITI-62: database failure")
        raise XdsError.one(ErrorCode.REGISTRY_ERROR, "the registry could not remove the metadata") from None


def _patients(stores: Stores, ids: Sequence[str]) -> tuple[str, ...]:
    """The patients of the objects about to be removed, for the audit message (best effort)."""
    try:
        return patients_of_objects(stores, ids)
    except Exception:
        log.warning("ITI-62: the patients of the removed objects could not be read for the audit trail")
        return ()


def _response(problems: tuple[Problem, ...] = ()) -> SoapResponse:
    failed = any(p.severity is Severity.ERROR for p in problems)
    status = ResponseStatus.FAILURE if failed else ResponseStatus.SUCCESS
    return SoapResponse(action=SoapAction.ITI62_RESPONSE, body=render_registry_response(status, problems))


def handle(request: SoapRequest, stores: Stores, settings: Settings) -> SoapResponse:
    """ITI-62: remove the objects named by ``request``; answer rs:RegistryResponse."""
    authorize_admin(request, settings, stores, "ITI-62")
    try:
        refs = parse_remove_objects_request(request.body)
    except ParseError as exc:
        raise SoapFault(FaultCode.SENDER, f"not a RemoveObjectsRequest: {exc}") from None
    except XdsError as exc:
        return _response(exc.problems)
    request.notes.patient_ids = _patients(stores, [r.id for r in refs])
    try:
        result = delete_document_set(stores, [r.id for r in refs])
    except XdsError as exc:
        log.info("ITI-62 rejected", extra={"codes": sorted({p.code.value for p in exc.problems})})
        return _response(exc.problems)
    except Exception:
        log.exception("ITI-62 failed unexpectedly")
        return _response((Problem(ErrorCode.REGISTRY_ERROR, "internal error of the Document Registry"),))
    log.info("ITI-62 removed", extra={"removed": {KIND_NAMES[k]: len(v) for k, v in result.removed.items()}})
    return _response()
