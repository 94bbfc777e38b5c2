"""Register Document Set-b [ITI-42]: the Document Registry side (ITI TF-2 3.42).

A Document Repository (another vendor's; the hub's own repository registers in-process) sends an
``lcm:SubmitObjectsRequest`` to ``/xds/registry`` with wsa:Action
``urn:ihe:iti:2007:RegisterDocumentSet-b``.  The handler parses it (:mod:`xds_hub.ebxml.parse`),
validates it as an ITI-42 submission (:func:`xds_hub.domain.validate.validate_submission` with
``for_repository=False``: Stable DocumentEntries must carry hash, size and repositoryUniqueId, set by
the repository, ITI TF-2 3.41.4.1.3.2 / 3.42.4.1.3), registers it in one serialised write
transaction (:func:`xds_hub.registry.register.register_prepared`) and answers an
``rs:RegistryResponse`` (ITI TF-2 3.42.4.2): Success (with any warnings), or Failure with a
RegistryErrorList naming every problem, in which case nothing was registered.

A body that is not a SubmitObjectsRequest is answered with a SOAP Sender fault.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from xds_hub.domain.validate import validate_submission
from xds_hub.domain.vocabulary import SoapAction
from xds_hub.ebxml.parse import parse_submit_objects_request
from xds_hub.errors import FaultCode, ParseError, SoapFault, XdsError
from xds_hub.log import get_logger
from xds_hub.registry.group_commit import group_commit
from xds_hub.registry.register import RegistrationResult, prepare_submission, register_prepared
from xds_hub.registry.responses import REGISTRY_INTERNAL_ERROR, database_errors, registry_response
from xds_hub.security.guard import authorize_submission
from xds_hub.soap.types import SoapRequest, SoapResponse

if TYPE_CHECKING:
    from xds_hub.config import Settings
    from xds_hub.domain.metadata import Submission
    from xds_hub.storage.stores import Stores

log = get_logger("xds_hub.registry.iti42")


def register_document_set(stores: Stores, settings: Settings, submission: Submission) -> RegistrationResult:
    """Validate (as ITI-42) and register ``submission``, atomically.  Raises XdsError."""
    validated = validate_submission(submission, settings.domain, for_repository=False)
    with database_errors(
        log,
        "ITI-42",
        "the registry cannot register now; please retry later",
        "the registry could not store the submission",
    ):
        prepared = prepare_submission(validated)  # before the writer lock: only checks and inserts under it
        return group_commit(stores.engine).run(lambda conn: register_prepared(conn, prepared))


def handle(request: SoapRequest, stores: Stores, settings: Settings) -> SoapResponse:
    """ITI-42: register the metadata of ``request``; answer rs:RegistryResponse."""
    try:
        submission = parse_submit_objects_request(request.body)
    except ParseError as exc:
        raise SoapFault(FaultCode.SENDER, f"not a SubmitObjectsRequest: {exc}") from None
    except XdsError as exc:
        return registry_response(SoapAction.ITI42_RESPONSE, exc.problems)
    try:
        authorize_submission(request, submission, settings, stores, "ITI-42")
    except XdsError as exc:
        return registry_response(SoapAction.ITI42_RESPONSE, exc.problems)
    try:
        result = register_document_set(stores, settings, submission)
    except XdsError as exc:
        log.info("ITI-42 rejected", extra={"codes": sorted({p.code.value for p in exc.problems})})
        return registry_response(SoapAction.ITI42_RESPONSE, exc.problems)
    except Exception:
        log.exception("ITI-42 failed unexpectedly")
        return registry_response(SoapAction.ITI42_RESPONSE, (REGISTRY_INTERNAL_ERROR,))
    log.info(
        "ITI-42 registered",
        extra={
            "submission_set": result.submission_set_id,
            "documents": len(result.document_ids),
            "deprecated": len(result.deprecated_ids),
        },
    )
    return registry_response(SoapAction.ITI42_RESPONSE, result.warnings)
