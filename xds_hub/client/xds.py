"""An XDS.b Document Source and Document Consumer client, usable against any XDS.b endpoint.

- Document Source: :meth:`XdsClient.provide_and_register` (ITI-41, MTOM with documents streamed
  from files, or inline base64), :meth:`XdsClient.register` (ITI-42).
- Document Consumer: :meth:`XdsClient.query` / :meth:`XdsClient.find_documents` (ITI-18 stored
  queries), :meth:`XdsClient.retrieve` (ITI-43, each document streamed to a file).

Metadata is typed (:mod:`xds_hub.domain.metadata`) and rendered / parsed by :mod:`xds_hub.ebxml`;
:mod:`xds_hub.client.metadata` builds it for plain files.  Endpoints may be given as URLs or
found in a WSDL with :func:`endpoint_from_wsdl` (zeep).
"""

from __future__ import annotations

import hashlib
import mimetypes
import os
import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import requests
from lxml import etree

from xds_hub import ns
from xds_hub.client.mtom import (
    FileSink,
    MultipartError,
    OutgoingPart,
    PartHeaders,
    PartSink,
    decode_base64_to_file,
    strip_cid,
)
from xds_hub.client.soap import SoapEndpoint, SoapReply, TransportError, XdsClientError
from xds_hub.domain.metadata import DocumentEntry, ObjectRef, RegistryObject, Submission
from xds_hub.domain.vocabulary import ResponseStatus, SoapAction, Status, StoredQuery
from xds_hub.ebxml.parse import parse_registry_object_list
from xds_hub.ebxml.render import render_provide_and_register, render_submit_objects_request
from xds_hub.errors import ParseError, XdsError

Content = Path | bytes
ERROR_SEVERITY = "urn:oasis:names:tc:ebxml-regrep:ErrorSeverityType:Error"


class ResponseError(XdsClientError):
    """The endpoint answered SOAP, but not the response the transaction defines."""


@dataclass(frozen=True, slots=True)
class RegistryError:
    """One rs:RegistryError of a response (codes are strings: peers may send codes we do not know)."""

    code: str
    context: str
    location: str = ""
    severity: str = ERROR_SEVERITY

    @property
    def is_error(self) -> bool:
        return self.severity.endswith(":Error")


@dataclass
class RegistryResult:
    """The status and errors of a RegistryResponse (or of the one inside a larger response)."""

    status: str
    errors: list[RegistryError] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.status == ResponseStatus.SUCCESS.value

    @property
    def status_name(self) -> str:
        return self.status.rsplit(":", 1)[-1]


@dataclass
class QueryResult(RegistryResult):
    objects: list[RegistryObject | ObjectRef] = field(default_factory=list)

    @property
    def documents(self) -> list[DocumentEntry]:
        return [o for o in self.objects if isinstance(o, DocumentEntry)]


@dataclass(frozen=True, slots=True)
class DocumentRequest:
    """One document to retrieve (ITI TF-2 3.43.4.1.2)."""

    repository_unique_id: str
    document_unique_id: str
    home_community_id: str | None = None


@dataclass(frozen=True, slots=True)
class RetrievedDocument:
    unique_id: str
    repository_unique_id: str
    mime_type: str
    path: Path
    size: int
    sha1: str
    home_community_id: str | None = None


@dataclass
class RetrieveResult(RegistryResult):
    documents: list[RetrievedDocument] = field(default_factory=list)


def registry_result(elem: etree._Element) -> RegistryResult:
    """Status and RegistryErrors of an rs:RegistryResponse / query:AdhocQueryResponse element."""
    errors = [
        RegistryError(
            code=e.get("errorCode", ""),
            context=e.get("codeContext", "") or (e.text or "").strip(),
            location=e.get("location", ""),
            severity=e.get("severity", ERROR_SEVERITY),
        )
        for e in elem.iter(ns.qn(ns.RS, "RegistryError"))
    ]
    status = elem.get("status")
    if not status:
        raise ResponseError(f"{elem.tag} has no status attribute")
    return RegistryResult(status=status, errors=errors)


def _expect(reply: SoapReply, namespace: str, local: str) -> etree._Element:
    if reply.body.tag != ns.qn(namespace, local):
        raise ResponseError(f"expected {local} in the response, got {reply.body.tag}")
    return reply.body


def encode_query_value(value: str | int | Sequence[str | int]) -> str:
    """A stored-query parameter value (ITI TF-2 3.18.4.1.2.3.5): 'text', 123, ('a','b')."""
    if isinstance(value, int):
        return str(value)
    if isinstance(value, str):
        return "'" + value.replace("'", "''") + "'"
    return "(" + ",".join(encode_query_value(v) for v in value) + ")"


def adhoc_query_request(
    query: StoredQuery | str,
    params: Mapping[str, str | int | Sequence[str | int]],
    return_type: str = "LeafClass",
    home_community_id: str | None = None,
    raw_params: Mapping[str, Sequence[str]] | None = None,
) -> etree._Element:
    """query:AdhocQueryRequest of a stored query (ITI TF-2 3.18.4.1.2); ``raw_params`` go verbatim."""
    req = etree.Element(ns.qn(ns.QUERY, "AdhocQueryRequest"), nsmap={"query": ns.QUERY, "rim": ns.RIM})
    etree.SubElement(
        req, ns.qn(ns.QUERY, "ResponseOption"), returnComposedObjects="true", returnType=return_type
    )
    adhoc = etree.SubElement(req, ns.qn(ns.RIM, "AdhocQuery"), id=str(query))
    if home_community_id:
        adhoc.set("home", home_community_id)
    values: dict[str, list[str]] = {k: [encode_query_value(v)] for k, v in params.items()}
    for name, raw in (raw_params or {}).items():
        values.setdefault(name, []).extend(raw)
    for name, vals in values.items():
        slot = etree.SubElement(adhoc, ns.qn(ns.RIM, "Slot"), name=name)
        value_list = etree.SubElement(slot, ns.qn(ns.RIM, "ValueList"))
        for v in vals:
            etree.SubElement(value_list, ns.qn(ns.RIM, "Value")).text = v
    return req


def retrieve_request(requests_: Sequence[DocumentRequest]) -> etree._Element:
    """xdsb:RetrieveDocumentSetRequest (ITI TF-2 3.43.4.1.2)."""
    req = etree.Element(ns.qn(ns.XDSB, "RetrieveDocumentSetRequest"), nsmap={"xdsb": ns.XDSB})
    for r in requests_:
        dr = etree.SubElement(req, ns.qn(ns.XDSB, "DocumentRequest"))
        if r.home_community_id:
            etree.SubElement(dr, ns.qn(ns.XDSB, "HomeCommunityId")).text = r.home_community_id
        etree.SubElement(dr, ns.qn(ns.XDSB, "RepositoryUniqueId")).text = r.repository_unique_id
        etree.SubElement(dr, ns.qn(ns.XDSB, "DocumentUniqueId")).text = r.document_unique_id
    return req


def endpoint_from_wsdl(wsdl_url: str, operation: str = "") -> str:
    """The SOAP 1.2 address of a WSDL's port (the one offering ``operation`` if given), via zeep."""
    from zeep import Client

    client = Client(wsdl_url)  # type: ignore[no-untyped-call]
    for service in client.wsdl.services.values():
        for port in service.ports.values():
            address = port.binding_options.get("address")
            if not address:
                continue
            if not operation or operation in port.binding._operations:
                return str(address)
    raise XdsClientError(
        f"{wsdl_url} declares no SOAP port" + (f" with operation {operation}" if operation else "")
    )


def _ext(mime_type: str) -> str:
    if mime_type in ("text/xml", "application/xml"):
        return ".xml"
    return mimetypes.guess_extension(mime_type) or ".bin"


def _safe_name(unique_id: str) -> str:
    return "".join(c if c.isalnum() or c in ".-_" else "_" for c in unique_id)[:200] or "document"


class _HashingFileSink(FileSink):
    def __init__(self, path: Path, on_progress: Any = None) -> None:
        super().__init__(path, on_progress)
        self.digest = hashlib.sha1()

    def write(self, data: bytes) -> int:
        self.digest.update(data)
        return super().write(data)


class XdsClient:
    """Talks to one Document Repository and/or one Document Registry."""

    def __init__(
        self,
        *,
        repository_url: str | None = None,
        registry_url: str | None = None,
        session: requests.Session | None = None,
        timeout: float = 300.0,
        verify: bool | str = True,
    ) -> None:
        self.session = session or requests.Session()
        self.repository = (
            SoapEndpoint(repository_url, session=self.session, timeout=timeout, verify=verify)
            if repository_url
            else None
        )
        self.registry = (
            SoapEndpoint(registry_url, session=self.session, timeout=timeout, verify=verify)
            if registry_url
            else None
        )

    def close(self) -> None:
        self.session.close()

    def __enter__(self) -> XdsClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _need(self, endpoint: SoapEndpoint | None, what: str) -> SoapEndpoint:
        if endpoint is None:
            raise XdsClientError(f"no {what} URL was given")
        return endpoint

    # -- Document Source -------------------------------------------------------------------------

    def provide_and_register(
        self,
        submission: Submission,
        contents: Mapping[str, Content],
        *,
        mtom: bool = True,
        on_upload: Any = None,
    ) -> RegistryResult:
        """ITI-41: send ``submission`` with ``contents`` (DocumentEntry id -> file or bytes).

        With ``mtom`` (the default, required by ITI TF-2 3.41.5) each document is an XOP part
        streamed from its file; otherwise documents travel inline as base64.
        """
        refs: dict[str, str | bytes] = {}
        parts: list[OutgoingPart] = []
        entries = {d.entry_uuid: d for d in submission.documents}
        for index, (doc_id, content) in enumerate(contents.items()):
            entry = entries.get(doc_id)
            mime = entry.mime_type if entry else "application/octet-stream"
            if mtom:
                cid = f"doc{index}.{uuid.uuid4().hex}@xds-hub-client"
                refs[doc_id] = cid
                parts.append(
                    OutgoingPart(cid, mime, path=content)
                    if isinstance(content, Path)
                    else OutgoingPart(cid, mime, data=content)
                )
            else:
                refs[doc_id] = content.read_bytes() if isinstance(content, Path) else content
        body = render_provide_and_register(submission, refs)
        return self.provide_and_register_element(body, parts, mtom=mtom, on_upload=on_upload)

    def provide_and_register_element(
        self,
        body: etree._Element,
        parts: Sequence[OutgoingPart] = (),
        *,
        mtom: bool = True,
        on_upload: Any = None,
    ) -> RegistryResult:
        """ITI-41 with a ready xdsb:ProvideAndRegisterDocumentSetRequest (xop:Includes naming ``parts``)."""
        endpoint = self._need(self.repository, "Document Repository")
        reply = endpoint.call(SoapAction.ITI41, body, parts=parts, mtom=mtom, on_upload=on_upload)
        return registry_result(_expect(reply, ns.RS, "RegistryResponse"))

    def register(self, submission: Submission) -> RegistryResult:
        """ITI-42 Register Document Set-b (to a Document Registry)."""
        endpoint = self._need(self.registry, "Document Registry")
        reply = endpoint.call(SoapAction.ITI42, render_submit_objects_request(submission))
        return registry_result(_expect(reply, ns.RS, "RegistryResponse"))

    # -- Document Consumer: ITI-18 -----------------------------------------------------------------

    def query(
        self,
        query: StoredQuery | str,
        params: Mapping[str, str | int | Sequence[str | int]],
        *,
        return_type: str = "LeafClass",
        home_community_id: str | None = None,
        raw_params: Mapping[str, Sequence[str]] | None = None,
    ) -> QueryResult:
        """ITI-18 Registry Stored Query; ``params`` are encoded, ``raw_params`` sent verbatim."""
        endpoint = self._need(self.registry, "Document Registry")
        req = adhoc_query_request(query, params, return_type, home_community_id, raw_params)
        reply = endpoint.call(SoapAction.ITI18, req)
        resp = _expect(reply, ns.QUERY, "AdhocQueryResponse")
        base = registry_result(resp)
        objects: list[RegistryObject | ObjectRef] = []
        object_list = resp.find(ns.qn(ns.RIM, "RegistryObjectList"))
        if object_list is not None and len(object_list):
            try:
                objects = parse_registry_object_list(object_list)
            except (XdsError, ParseError) as exc:
                raise ResponseError(f"the registry returned metadata that cannot be read: {exc}") from None
        return QueryResult(status=base.status, errors=base.errors, objects=objects)

    def find_documents(
        self,
        patient_id: str,
        statuses: Iterable[Status | str] = (Status.APPROVED,),
        *,
        return_type: str = "LeafClass",
        **more: str | int | Sequence[str | int],
    ) -> QueryResult:
        """FindDocuments (ITI TF-2 3.18.4.1.2.3.7.1) for a patient."""
        params: dict[str, str | int | Sequence[str | int]] = {
            "$XDSDocumentEntryPatientId": patient_id,
            "$XDSDocumentEntryStatus": [str(s) for s in statuses],
            **more,
        }
        return self.query(StoredQuery.FIND_DOCUMENTS, params, return_type=return_type)

    # -- Document Consumer: ITI-43 -----------------------------------------------------------------

    def retrieve(
        self,
        requests_: Sequence[DocumentRequest],
        out_dir: Path,
        *,
        on_download: Any = None,
    ) -> RetrieveResult:
        """ITI-43: fetch documents into ``out_dir`` (named ``<uniqueId><ext>``), streaming each."""
        endpoint = self._need(self.repository, "Document Repository")
        out_dir.mkdir(parents=True, exist_ok=True)
        req = retrieve_request(requests_)
        sinks: dict[str, _HashingFileSink] = {}

        def open_attachment(part: PartHeaders) -> PartSink:
            # unique per call: several threads of one process may retrieve into the same folder
            sink = _HashingFileSink(out_dir / f".xds-part-{uuid.uuid4().hex}", on_download)
            sinks[part.content_id] = sink
            return sink

        try:
            reply = endpoint.call(SoapAction.ITI43, req, mtom=True, open_attachment=open_attachment)
            resp = _expect(reply, ns.XDSB, "RetrieveDocumentSetResponse")
            registry_response = resp.find(ns.qn(ns.RS, "RegistryResponse"))
            if registry_response is None:
                raise ResponseError("RetrieveDocumentSetResponse has no rs:RegistryResponse")
            base = registry_result(registry_response)
            docs = [
                self._save(d, sinks, out_dir) for d in resp.iterchildren(ns.qn(ns.XDSB, "DocumentResponse"))
            ]
        finally:
            for sink in sinks.values():
                sink.close()
                sink.path.unlink(missing_ok=True)
        return RetrieveResult(status=base.status, errors=base.errors, documents=docs)

    @staticmethod
    def _save(
        elem: etree._Element, sinks: Mapping[str, _HashingFileSink], out_dir: Path
    ) -> RetrievedDocument:
        def text(local: str) -> str:
            return (elem.findtext(ns.qn(ns.XDSB, local)) or "").strip()

        unique_id, mime = text("DocumentUniqueId"), text("mimeType") or "application/octet-stream"
        target = out_dir / (_safe_name(unique_id) + _ext(mime))
        doc = elem.find(ns.qn(ns.XDSB, "Document"))
        if doc is None:
            raise ResponseError(f"DocumentResponse {unique_id} has no Document")
        include = doc.find(ns.qn(ns.XOP, "Include"))
        if include is not None:
            sink = sinks.get(strip_cid(include.get("href", "")))
            if sink is None:
                raise ResponseError(f"document {unique_id} refers to a MIME part that is not in the response")
            sink.close()
            os.replace(sink.path, target)
            size, sha1 = sink.size, sink.digest.hexdigest()
        else:  # inline base64 (a non-MTOM peer)
            try:
                size, sha1 = decode_base64_to_file(doc.text or "", target)
            except MultipartError as exc:
                raise ResponseError(f"document {unique_id}: {exc}") from None
        return RetrievedDocument(
            unique_id=unique_id,
            repository_unique_id=text("RepositoryUniqueId"),
            mime_type=mime,
            path=target,
            size=size,
            sha1=sha1,
            home_community_id=text("HomeCommunityId") or None,
        )


__all__ = [
    "DocumentRequest",
    "QueryResult",
    "RegistryError",
    "RegistryResult",
    "ResponseError",
    "RetrieveResult",
    "RetrievedDocument",
    "TransportError",
    "XdsClient",
    "XdsClientError",
    "adhoc_query_request",
    "encode_query_value",
    "endpoint_from_wsdl",
    "retrieve_request",
]
