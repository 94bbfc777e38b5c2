"""Update Document Set [ITI-57]: the Document Registry side of XDS Metadata Update (ITI TF-2 3.57).

A Document Administrator sends an ``lcm:SubmitObjectsRequest`` to ``/xds/registry`` with
wsa:Action ``urn:ihe:iti:2010:UpdateDocumentSet``.  The handler checks that the requester may
administer metadata (:func:`xds_hub.registry.admin.authorize_admin`), parses the request
(:mod:`xds_hub.ebxml.parse`), reads it as metadata update operations
(:func:`xds_hub.registry.update_request.read_update_request`), applies them in one serialised
write transaction (:func:`xds_hub.registry.update.apply_update`) and answers an
``rs:RegistryResponse`` (ITI TF-2 3.57.4.2): Success, or Failure with a RegistryErrorList naming
every problem, in which case nothing changed.  The error codes of each rule are in those modules.

A body that is not a SubmitObjectsRequest is answered with a SOAP Sender fault.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from xds_hub.domain.vocabulary import SoapAction
from xds_hub.ebxml.parse import parse_submit_objects_request
from xds_hub.errors import FaultCode, ParseError, SoapFault, XdsError
from xds_hub.log import get_logger
from xds_hub.registry.admin import authorize_admin
from xds_hub.registry.responses import REGISTRY_INTERNAL_ERROR, database_errors, registry_response
from xds_hub.registry.update import UpdateResult, apply_update
from xds_hub.registry.update_request import read_update_request
from xds_hub.soap.types import SoapRequest, SoapResponse
from xds_hub.storage.db import write_transaction

if TYPE_CHECKING:
    from xds_hub.config import Settings
    from xds_hub.domain.metadata import Submission
    from xds_hub.storage.stores import Stores

log = get_logger("xds_hub.registry.iti57")


def update_document_set(stores: Stores, settings: Settings, submission: Submission) -> UpdateResult:
    """Read ``submission`` as an ITI-57 request and apply it, atomically.  Raises XdsError."""
    request = read_update_request(submission, settings.domain)
    with (
        database_errors(
            log,
            "ITI-57",
            "the registry cannot update metadata now; please retry later",
            "the registry could not store the update",
        ),
        write_transaction(stores.engine) as conn,
    ):
        return apply_update(conn, request, settings)


def handle(request: SoapRequest, stores: Stores, settings: Settings) -> SoapResponse:
    """ITI-57: apply the metadata updates of ``request``; answer rs:RegistryResponse."""
    authorize_admin(request, settings, stores, "ITI-57")
    try:
        submission = parse_submit_objects_request(request.body)
    except ParseError as exc:
        raise SoapFault(FaultCode.SENDER, f"not a SubmitObjectsRequest: {exc}") from None
    except XdsError as exc:
        return registry_response(SoapAction.ITI57_RESPONSE, exc.problems)
    try:
        result = update_document_set(stores, settings, submission)
    except XdsError as exc:
        log.info("ITI-57 rejected", extra={"codes": sorted({p.code.value for p in exc.problems})})
        return registry_response(SoapAction.ITI57_RESPONSE, exc.problems)
    except Exception:
        log.exception("ITI-57 failed unexpectedly")
        return registry_response(SoapAction.ITI57_RESPONSE, (REGISTRY_INTERNAL_ERROR,))
    log.info(
        "ITI-57 applied",
        extra={
            "submission_set": result.submission.submission_set.entry_uuid,
            "new_versions": len(result.superseded),
            "status_changes": len(result.status_changes),
        },
    )
    return registry_response(SoapAction.ITI57_RESPONSE, result.warnings)
