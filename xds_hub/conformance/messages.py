"""Builders of the SOAP payloads other than submissions, and XML templates.

- ``[steps.query]`` (ITI-18, ITI TF-2 3.18.4.1.2): ``id`` (a stored-query name such as
  ``FindDocuments``, or its urn:uuid), ``return_type``, ``home``, ``params``: name -> value, where a
  string is one rim:Value, a list of strings several Values in one Slot, and a list of lists several
  Slots of the same name (AND/OR semantics).
- ``[steps.retrieve]`` (ITI-43, 3.43.4.1.2) and ``[steps.remove_documents]`` (ITI-86):
  ``documents = [{ unique_id, repository, home }]``.
- ``[steps.remove]`` (ITI-62, 3.62.4.1.2): ``ids = [...]``.
- ``[steps.imaging_retrieve]`` (RAD-69, RAD TF-3 4.69.4.1.2): ``studies = [{ uid, series = [{ uid,
  instances = [...] }] }]``, ``transfer_syntaxes``, ``repository`` (default: the imaging source).
- ``template = "file.xml"`` (next to the scenario) or ``xml = "..."``: a payload given verbatim,
  placeholders expanded.
- ``[[steps.mutate]]``: ``remove = XPATH`` | ``set = XPATH, value = ...`` | ``append = XPATH,
  xml = "<fragment/>"``, applied to the payload before it is sent.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from lxml import etree

from xds_hub import ns
from xds_hub.conformance.submission import BuildError
from xds_hub.conformance.template import Context
from xds_hub.domain.vocabulary import StoredQuery

#: Prefixes usable in scenario XPaths (mutations, expectations, captures).
XPATH_NS: dict[str, str] = {
    "soap": ns.SOAP12,
    "wsa": ns.WSA,
    "xop": ns.XOP,
    "rim": ns.RIM,
    "rs": ns.RS,
    "lcm": ns.LCM,
    "query": ns.QUERY,
    "xdsb": ns.XDSB,
    "rmd": ns.RMD,
    "xdsi": ns.XDSI,
    "hl7": ns.HL7V3,
}

#: Stored-query names (as in ITI TF-2 Table 3.18.4.1.2.3.7-1, without spaces) -> query id.
QUERY_IDS: dict[str, str] = {"".join(w.capitalize() for w in q.name.split("_")): q.value for q in StoredQuery}

_PARSER = etree.XMLParser(resolve_entities=False, no_network=True, remove_blank_text=True)


def _q(namespace: str, local: str) -> str:
    return ns.qn(namespace, local)


def build_query(desc: Mapping[str, Any]) -> etree._Element:
    """query:AdhocQueryRequest of a stored query (ITI TF-2 3.18.4.1.2)."""
    query_id = str(desc.get("id", ""))
    query_id = QUERY_IDS.get(query_id, query_id)
    req = etree.Element(_q(ns.QUERY, "AdhocQueryRequest"), nsmap={"query": ns.QUERY, "rim": ns.RIM})
    etree.SubElement(
        req,
        _q(ns.QUERY, "ResponseOption"),
        returnComposedObjects="true",
        returnType=str(desc.get("return_type", "LeafClass")),
    )
    attrs = {"id": query_id}
    if desc.get("home"):
        attrs["home"] = str(desc["home"])
    adhoc = etree.SubElement(req, _q(ns.RIM, "AdhocQuery"), attrs)
    params = desc.get("params", {})
    if not isinstance(params, Mapping):
        raise BuildError("query.params must be a table")
    for name, value in params.items():
        slots: list[Sequence[str]]
        if isinstance(value, str):
            slots = [[value]]
        elif isinstance(value, list) and value and all(isinstance(v, list) for v in value):
            slots = [[str(x) for x in v] for v in value]
        elif isinstance(value, list):
            slots = [[str(x) for x in value]]
        else:
            slots = [[str(value)]]
        for values in slots:
            slot = etree.SubElement(adhoc, _q(ns.RIM, "Slot"), name=str(name))
            value_list = etree.SubElement(slot, _q(ns.RIM, "ValueList"))
            for v in values:
                etree.SubElement(value_list, _q(ns.RIM, "Value")).text = v
    return req


def _document_requests(parent: etree._Element, docs: Sequence[Mapping[str, Any]], default_repo: str) -> None:
    for doc in docs:
        dr = etree.SubElement(parent, _q(ns.XDSB, "DocumentRequest"))
        if doc.get("home"):
            etree.SubElement(dr, _q(ns.XDSB, "HomeCommunityId")).text = str(doc["home"])
        if doc.get("repository", default_repo) is not None and "no_repository" not in doc:
            etree.SubElement(dr, _q(ns.XDSB, "RepositoryUniqueId")).text = str(
                doc.get("repository", default_repo)
            )
        etree.SubElement(dr, _q(ns.XDSB, "DocumentUniqueId")).text = str(doc.get("unique_id", ""))


def build_retrieve(desc: Mapping[str, Any], ctx: Context) -> etree._Element:
    """xdsb:RetrieveDocumentSetRequest (ITI TF-2 3.43.4.1.2)."""
    req = etree.Element(_q(ns.XDSB, "RetrieveDocumentSetRequest"), nsmap={"xdsb": ns.XDSB})
    _document_requests(req, desc.get("documents", []), ctx.target.domain.repository_unique_id)
    return req


def build_remove_documents(desc: Mapping[str, Any], ctx: Context) -> etree._Element:
    """rmd:RemoveDocumentsRequest (ITI TF-2b 3.86.4.1.2)."""
    req = etree.Element(_q(ns.RMD, "RemoveDocumentsRequest"), nsmap={"rmd": ns.RMD, "xdsb": ns.XDSB})
    _document_requests(req, desc.get("documents", []), ctx.target.domain.repository_unique_id)
    return req


def build_remove_metadata(desc: Mapping[str, Any]) -> etree._Element:
    """lcm:RemoveObjectsRequest listing the objects to delete (ITI TF-2b 3.62.4.1.2)."""
    req = etree.Element(_q(ns.LCM, "RemoveObjectsRequest"), nsmap={"lcm": ns.LCM, "rim": ns.RIM})
    refs = etree.SubElement(req, _q(ns.RIM, "ObjectRefList"))
    for obj_id in desc.get("ids", []):
        etree.SubElement(refs, _q(ns.RIM, "ObjectRef"), id=str(obj_id))
    return req


def studies_of_manifest(data: bytes) -> tuple[list[dict[str, Any]], str]:
    """The studies/series/instances a KOS manifest lists, and its first Retrieve Location UID."""
    from io import BytesIO

    from pydicom import dcmread
    from pydicom.errors import InvalidDicomError

    try:
        ds = dcmread(BytesIO(data))
    except (InvalidDicomError, ValueError, EOFError, OSError) as exc:
        raise BuildError(f"the manifest is not a DICOM file: {exc}") from exc
    studies: list[dict[str, Any]] = []
    location = ""
    for study in ds.get("CurrentRequestedProcedureEvidenceSequence") or []:
        series_list = []
        for series in study.get("ReferencedSeriesSequence") or []:
            location = location or str(series.get("RetrieveLocationUID", ""))
            instances = [str(r.ReferencedSOPInstanceUID) for r in series.get("ReferencedSOPSequence") or []]
            series_list.append({"uid": str(series.SeriesInstanceUID), "instances": instances})
        studies.append({"uid": str(study.StudyInstanceUID), "series": series_list})
    return studies, location


def build_imaging_retrieve(desc: Mapping[str, Any], ctx: Context) -> etree._Element:
    """xdsi:RetrieveImagingDocumentSetRequest (RAD TF-3 4.69.4.1.2).

    ``manifest = UNIQUEID`` asks for every instance of a KOS retrieved by an earlier step.
    """
    req = etree.Element(
        _q(ns.XDSI, "RetrieveImagingDocumentSetRequest"), nsmap={"xdsi": ns.XDSI, "xdsb": ns.XDSB}
    )
    repo = str(desc.get("repository", ctx.target.domain.imaging_source_unique_id))
    studies = desc.get("studies", [])
    if "manifest" in desc:
        data = ctx.blobs.get(str(desc["manifest"]))
        if data is None:
            raise BuildError(f"manifest {desc['manifest']} was not retrieved by an earlier step")
        studies, location = studies_of_manifest(data)
        repo = str(desc.get("repository", location or repo))
    for study in studies:
        s = etree.SubElement(req, _q(ns.XDSI, "StudyRequest"), studyInstanceUID=str(study["uid"]))
        for series in study.get("series", []):
            se = etree.SubElement(s, _q(ns.XDSI, "SeriesRequest"), seriesInstanceUID=str(series["uid"]))
            instances = [{"unique_id": i, "repository": repo} for i in series.get("instances", [])]
            _document_requests(se, instances, repo)
    tsl = etree.SubElement(req, _q(ns.XDSI, "TransferSyntaxUIDList"))
    for ts in desc.get("transfer_syntaxes", ["1.2.840.10008.1.2.1"]):
        etree.SubElement(tsl, _q(ns.XDSI, "TransferSyntaxUID")).text = str(ts)
    return req


def template_text(name: str, base: Path | None) -> str:
    path = (base / name) if base is not None else Path(name)
    try:
        return path.read_text(encoding="utf-8")
    except OSError as exc:
        raise BuildError(f"cannot read template {name}: {exc}") from exc


def parse_xml(text: str, what: str) -> etree._Element:
    try:
        return etree.fromstring(text.encode("utf-8"), _PARSER)
    except etree.XMLSyntaxError as exc:
        raise BuildError(f"{what} is not well-formed XML: {exc}") from exc


def from_template(desc: Mapping[str, Any], ctx: Context, base: Path | None) -> etree._Element:
    """The payload of ``template = FILE`` or ``xml = TEXT``, placeholders expanded."""
    if "xml" in desc:
        return parse_xml(str(desc["xml"]), "xml")
    return parse_xml(ctx.expand(template_text(str(desc["template"]), base)), str(desc["template"]))


def _xpath(root: etree._Element, path: str) -> list[Any]:
    try:
        found = root.xpath(path, namespaces=XPATH_NS)
    except etree.XPathError as exc:
        raise BuildError(f"bad XPath {path!r}: {exc}") from exc
    return found if isinstance(found, list) else [found]


def mutate(root: etree._Element, edits: Sequence[Mapping[str, Any]]) -> etree._Element:
    """Apply scenario edits to a built payload; an edit matching nothing is a scenario bug."""
    for edit in edits:
        path = str(edit.get("remove") or edit.get("set") or edit.get("append") or "")
        found = _xpath(root, path)
        if not found:
            raise BuildError(f"mutate: {path!r} matches nothing in the message")
        for item in found:
            if "remove" in edit:
                if isinstance(item, etree._Element):
                    parent = item.getparent()
                    if parent is not None:
                        parent.remove(item)
                elif getattr(item, "is_attribute", False):
                    del item.getparent().attrib[item.attrname]
            elif "set" in edit:
                value = str(edit.get("value", ""))
                if isinstance(item, etree._Element):
                    item.text = value
                elif getattr(item, "is_attribute", False):
                    item.getparent().set(item.attrname, value)
                elif getattr(item, "is_text", False):
                    item.getparent().text = value
            elif "append" in edit and isinstance(item, etree._Element):
                item.append(parse_xml(str(edit["xml"]), "mutate.xml"))
    return root
