"""Registry Stored Query [ITI-18]: the Document Registry side (ITI TF-2 3.18).

A Document Consumer sends a ``query:AdhocQueryRequest`` to ``/xds/registry`` with wsa:Action
``urn:ihe:iti:2007:RegistryStoredQuery``.  This module is the XML edge: it reads the
ResponseOption (returnType, returnComposedObjects) and the rim:AdhocQuery (@id, @home, each Slot's
name and Value texts) into a :class:`~xds_hub.domain.query.AdhocQuery`, which
:func:`~xds_hub.domain.query.parse_request` types; :func:`xds_hub.registry.sqlquery.execute` runs it
in one read transaction (a consistent snapshot) and the answer is a ``query:AdhocQueryResponse``
(ITI TF-2 3.18.4.2, action ``urn:ihe:iti:2007:RegistryStoredQueryResponse``):

- Success with the RegistryObjectList (LeafClass objects or ObjectRefs), each object's ``home``
  set to this hub's homeCommunityId (ITI TF-2 3.18.4.1.2.3.8);
- Failure with a RegistryErrorList: XDSUnknownStoredQuery, XDSStoredQueryMissingParam,
  XDSStoredQueryParamNumber, XDSRegistryMetadataError (see :mod:`xds_hub.domain.query`),
  XDSUnknownCommunity (a $homeCommunityId or AdhocQuery/@home that is not this hub's),
  XDSTooManyResults, XDSResultNotSinglePatient, XDSRegistryBusy / XDSRegistryError.

A registry answers for itself only, so PartialSuccess (which ITI-18 reserves for Initiating
Gateways that could reach some communities only) is never returned.  A body that is not an
AdhocQueryRequest is answered with a SOAP Sender fault.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal

from lxml import etree

from xds_hub import ns
from xds_hub.domain.metadata import ObjectRef, RegistryObject
from xds_hub.domain.query import AdhocQuery, ReturnType, StoredQueryRequest, parse_request
from xds_hub.domain.vocabulary import ResponseStatus, SoapAction
from xds_hub.ebxml.render import render_adhoc_query_response
from xds_hub.ebxml.render_bytes import Unsupported, adhoc_query_response_xml
from xds_hub.errors import ErrorCode, FaultCode, Problem, SoapFault, XdsError
from xds_hub.log import get_logger
from xds_hub.registry.responses import REGISTRY_INTERNAL_ERROR, database_errors
from xds_hub.registry.sqlquery import execute
from xds_hub.soap.types import SoapRequest, SoapResponse
from xds_hub.storage.db import read_transaction

if TYPE_CHECKING:
    from xds_hub.config import Settings
    from xds_hub.storage.stores import Stores

log = get_logger("xds_hub.registry.iti18")

_REQUEST = ns.qn(ns.QUERY, "AdhocQueryRequest")
_OPTION = ns.qn(ns.QUERY, "ResponseOption")
_QUERY = ns.qn(ns.RIM, "AdhocQuery")
_SLOT = ns.qn(ns.RIM, "Slot")
_VALUES = f"{ns.qn(ns.RIM, 'ValueList')}/{ns.qn(ns.RIM, 'Value')}"


def read_adhoc_query(body: etree._Element) -> AdhocQuery:
    """The stored query request in a query:AdhocQueryRequest element (ebRS 3.0 6.3.1).

    Raises SoapFault when ``body`` is not an AdhocQueryRequest, XdsError (XDSRegistryMetadataError)
    when it lacks its ResponseOption or rim:AdhocQuery or has a Slot without a name.
    """
    if body.tag != _REQUEST:
        raise SoapFault(
            FaultCode.SENDER,
            f"the body of a RegistryStoredQuery must be query:AdhocQueryRequest, not {body.tag}",
        )
    option = body.find(_OPTION)
    query = body.find(_QUERY)
    if option is None or query is None:
        missing = "query:ResponseOption" if option is None else "rim:AdhocQuery"
        raise XdsError.one(ErrorCode.REGISTRY_METADATA_ERROR, f"the AdhocQueryRequest has no {missing}")
    slots: list[tuple[str, tuple[str, ...]]] = []
    for slot in query.iterfind(_SLOT):
        name = slot.get("name")
        if not name:
            raise XdsError.one(ErrorCode.REGISTRY_METADATA_ERROR, "a Slot of the AdhocQuery has no name")
        slots.append((name, tuple(v.text or "" for v in slot.iterfind(_VALUES))))
    return AdhocQuery(
        query_id=query.get("id", ""),
        slots=tuple(slots),
        # The schema default of returnType is RegistryObject, which ITI-18 does not offer.
        return_type=option.get("returnType", "RegistryObject"),
        return_composed_objects=option.get("returnComposedObjects", "false").strip() in ("true", "1"),
        home=query.get("home"),
    )


def _check_community(request: StoredQueryRequest, settings: Settings) -> None:
    foreign = sorted(request.communities() - {settings.domain.home_community_id})
    if foreign:
        raise XdsError.one(
            ErrorCode.UNKNOWN_COMMUNITY,
            f"homeCommunityId {foreign[0]} is not this registry's ({settings.domain.home_community_id})",
        )


def run(stores: Stores, settings: Settings, request: StoredQueryRequest) -> list[RegistryObject | ObjectRef]:
    """Run a typed stored query request against the registry.  Raises XdsError."""
    _check_community(request, settings)
    with (
        database_errors(
            log,
            "ITI-18",
            "the registry cannot answer now; please retry later",
            "the registry could not run the query",
        ),
        read_transaction(stores.engine) as conn,
    ):
        return execute(
            conn,
            request.params,
            request.return_type,
            max_results=settings.max_query_results,
            home_community_id=settings.domain.home_community_id,
        )


def _wire_type(return_type: ReturnType) -> Literal["LeafClass", "ObjectRef"]:
    return "ObjectRef" if return_type is ReturnType.OBJECT_REF else "LeafClass"


def _failure(problems: tuple[Problem, ...]) -> SoapResponse:
    body = render_adhoc_query_response(ResponseStatus.FAILURE, (), problems)
    return SoapResponse(action=SoapAction.ITI18_RESPONSE, body=body)


def handle(request: SoapRequest, stores: Stores, settings: Settings) -> SoapResponse:
    """ITI-18: answer the stored query in ``request`` with a query:AdhocQueryResponse."""
    try:
        query = parse_request(read_adhoc_query(request.body))
        objects = run(stores, settings, query)
    except XdsError as exc:
        log.info("ITI-18 failed", extra={"codes": sorted({p.code.value for p in exc.problems})})
        return _failure(exc.problems)
    except SoapFault:
        raise
    except Exception:
        log.exception("ITI-18 failed unexpectedly")
        return _failure((REGISTRY_INTERNAL_ERROR,))
    log.info(
        "ITI-18 answered",
        extra={"query": query.params.query_id.name, "objects": len(objects)},
    )
    return _success(objects, _wire_type(query.return_type))


def _success(
    objects: list[RegistryObject | ObjectRef], return_type: Literal["LeafClass", "ObjectRef"]
) -> SoapResponse:
    """The Success answer, written straight to bytes where :mod:`xds_hub.ebxml.render_bytes` can
    (the same bytes as serialising the tree; the tree then carries no objects), else as a tree."""
    try:
        xml = adhoc_query_response_xml(objects, return_type)
    except Unsupported:
        body = render_adhoc_query_response(ResponseStatus.SUCCESS, objects, (), return_type)
        return SoapResponse(action=SoapAction.ITI18_RESPONSE, body=body)
    body = render_adhoc_query_response(ResponseStatus.SUCCESS, (), (), return_type)
    return SoapResponse(action=SoapAction.ITI18_RESPONSE, body=body, body_xml=xml)
