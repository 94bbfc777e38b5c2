"""Expectations: what must come back from a step, checked one by one.

SOAP answers (``[steps.expect]``):

===================  =====================================================================================
``http_status``      the HTTP status
``fault``            true, or the SOAP 1.2 fault code (``Sender``, ``Receiver``, ...); ``fault_subcode``
``status``           ``Success`` | ``Failure`` | ``PartialSuccess`` (default ``Success`` unless a fault
                     is expected)
``errors``           the exact set of RegistryError codes of severity Error (``[]``: none)
``errors_include``   codes that must be among them; ``warnings``: the exact set of Warning codes
``count``            objects in the RegistryObjectList; ``documents``, ``submission_sets``, ``folders``,
                     ``associations``, ``object_refs``: per kind
``ids``              the exact set of returned object ids; ``ids_include``, ``ids_exclude``
``xpath``            a list of ``{ path, equals | count | exists | contains }``
``retrieved``        a list of ``{ unique_id, sha1, size, content, mime, repository, dicom }``, each must come
                     back; ``retrieved_count``: the number of DocumentResponses
``addressing``       (default true) the answer's wsa:Action is the transaction's response action and
                     its wsa:RelatesTo is the request's MessageID
===================  =====================================================================================

HL7 v2 answers: ``ack`` (MSA-1), ``err_codes`` (set of ERR-3.1), ``fields`` (``{"QAK-2" = "OK"}``: a
field's exact text), ``ids`` (the set of PID-3 identifiers, compared on ID and assigning authority),
``ids_count``, ``no_pid`` (true: no PID segment), ``message_type`` (MSH-9).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from lxml import etree

from xds_hub import ns
from xds_hub.conformance.messages import XPATH_NS
from xds_hub.conformance.wire import SoapResult
from xds_hub.domain.vocabulary import FOLDER_NODE, SUBMISSION_SET_NODE, ResponseStatus


@dataclass(frozen=True, slots=True)
class Check:
    name: str
    ok: bool
    detail: str


def _plain(value: Any) -> Any:
    return str(value) if isinstance(value, str) else value


def _check(name: str, ok: bool, expected: Any, got: Any) -> Check:
    return Check(name, ok, f"expected {_plain(expected)!r}, got {_plain(got)!r}")


_STATUS_NAMES = {
    "Success": ResponseStatus.SUCCESS.value,
    "Failure": ResponseStatus.FAILURE.value,
    "PartialSuccess": ResponseStatus.PARTIAL_SUCCESS.value,
}
#: Answers carrying an ebRS status (RegistryResponse, AdhocQueryResponse, RetrieveDocumentSetResponse).
_EBXML_NS = frozenset({ns.RS, ns.QUERY, ns.XDSB, ns.LCM})
_ERROR = "urn:oasis:names:tc:ebxml-regrep:ErrorSeverityType:Error"
_PACKAGE = "rim:RegistryPackage[rim:Classification/@classificationNode='{}']"
_KIND_XPATHS = {
    "documents": "rim:ExtrinsicObject",
    "submission_sets": _PACKAGE.format(SUBMISSION_SET_NODE),
    "folders": _PACKAGE.format(FOLDER_NODE),
    "associations": "rim:Association",
    "object_refs": "rim:ObjectRef",
}


def _short_status(value: str | None) -> str | None:
    for short, full in _STATUS_NAMES.items():
        if value == full:
            return short
    return value


def registry_errors(body: etree._Element) -> list[tuple[str, str]]:
    """(errorCode, severity) of every RegistryError under ``body``."""
    return [
        (e.get("errorCode", ""), e.get("severity", _ERROR)) for e in body.iter(ns.qn(ns.RS, "RegistryError"))
    ]


def _object_list(body: etree._Element) -> etree._Element | None:
    found = body.find(ns.qn(ns.RIM, "RegistryObjectList"))
    return found


def _xpath(root: etree._Element, path: str) -> Any:
    return root.xpath(path, namespaces=XPATH_NS)


def _xpath_check(root: etree._Element, spec: Mapping[str, Any]) -> Check:
    path = str(spec.get("path", ""))
    try:
        found = _xpath(root, path)
    except etree.XPathError as exc:
        return Check(f"xpath {path}", False, f"bad XPath: {exc}")
    values = [found] if not isinstance(found, list) else found
    texts = [v.text or "" if isinstance(v, etree._Element) else str(v) for v in values]
    if isinstance(found, float):
        texts = [str(int(found)) if found.is_integer() else str(found)]
    name = f"xpath {path}"
    if "count" in spec:
        n = int(found) if isinstance(found, float) else len(values)
        return _check(name + " count", n == int(spec["count"]), int(spec["count"]), n)
    if "equals" in spec:
        want = spec["equals"]
        if isinstance(want, list):
            return _check(name, sorted(texts) == sorted(str(w) for w in want), sorted(want), sorted(texts))
        return _check(
            name, texts[:1] == [str(want)] or (len(texts) == 1 and texts[0] == str(want)), want, texts
        )
    if "contains" in spec:
        return _check(name + " contains", str(spec["contains"]) in texts, spec["contains"], texts)
    exists = bool(spec.get("exists", True))
    present = bool(values) and found is not False
    return _check(name + (" exists" if exists else " absent"), present == exists, exists, present)


def soap_checks(result: SoapResult, expect: Mapping[str, Any], response_action: str | None) -> list[Check]:
    """Check a SOAP answer against a step's expectations."""
    checks: list[Check] = []
    if result.problem and result.body is None:
        return [Check("answer", False, result.problem)]
    if "http_status" in expect:
        checks.append(
            _check(
                "HTTP status",
                result.http_status == int(expect["http_status"]),
                expect["http_status"],
                result.http_status,
            )
        )
    want_fault = expect.get("fault", False)
    got_fault = result.fault
    if want_fault:
        if got_fault is None:
            checks.append(
                Check(
                    "SOAP fault",
                    False,
                    f"expected a SOAP Fault, got {result.body.tag if result.body is not None else None}",
                )
            )
            return checks
        if isinstance(want_fault, str):
            checks.append(_check("fault code", got_fault.code == want_fault, want_fault, got_fault.code))
        if "fault_subcode" in expect:
            want = str(expect["fault_subcode"]).split(":")[-1]
            subs = [s.split(":")[-1] for s in got_fault.subcodes]
            checks.append(
                _check("fault subcode", want in subs, expect["fault_subcode"], list(got_fault.subcodes))
            )
        if not checks:
            checks.append(Check("SOAP fault", True, f"{got_fault.code}: {got_fault.reason}"))
        return checks
    if got_fault is not None:
        checks.append(
            Check(
                "no SOAP fault",
                False,
                f"got Fault {got_fault.code} {list(got_fault.subcodes)}: {got_fault.reason}",
            )
        )
        return checks
    body = result.body
    assert body is not None
    if expect.get("addressing", True) and response_action:
        checks.append(
            _check("response wsa:Action", result.action == response_action, response_action, result.action)
        )
        checks.append(
            _check(
                "wsa:RelatesTo", result.relates_to == result.message_id, result.message_id, result.relates_to
            )
        )
    if etree.QName(body).namespace in _EBXML_NS or {"status", "errors", "errors_include", "warnings"} & set(
        expect
    ):
        checks.extend(_status_checks(body, expect))
    checks.extend(_object_checks(body, expect))
    for spec in expect.get("xpath", []):
        checks.append(_xpath_check(body, spec))
    checks.extend(_retrieve_checks(result, body, expect))
    return checks


def _registry_response(body: etree._Element) -> etree._Element:
    """The element carrying status and errors (a retrieve response nests a RegistryResponse)."""
    nested = body.find(ns.qn(ns.RS, "RegistryResponse"))
    return nested if nested is not None else body


def _status_checks(body: etree._Element, expect: Mapping[str, Any]) -> list[Check]:
    checks: list[Check] = []
    response = _registry_response(body)
    status = _short_status(response.get("status"))
    want = expect.get(
        "status", "Success" if "errors" not in expect and "errors_include" not in expect else None
    )
    if want is not None:
        checks.append(_check("status", status == want, want, status))
    errors = registry_errors(response)
    codes = {c for c, sev in errors if sev.endswith("Error")}
    warnings = {c for c, sev in errors if sev.endswith("Warning")}
    if "errors" in expect:
        want_set = set(expect["errors"])
        checks.append(_check("error codes", codes == want_set, sorted(want_set), sorted(codes)))
    if "errors_include" in expect:
        want_set = set(expect["errors_include"])
        checks.append(_check("error codes include", want_set <= codes, sorted(want_set), sorted(codes)))
    if "warnings" in expect:
        want_set = set(expect["warnings"])
        checks.append(_check("warning codes", warnings == want_set, sorted(want_set), sorted(warnings)))
    return checks


def _object_checks(body: etree._Element, expect: Mapping[str, Any]) -> list[Check]:
    checks: list[Check] = []
    keys = {"count", "ids", "ids_include", "ids_exclude", *_KIND_XPATHS}
    if not keys & set(expect):
        return checks
    objects = _object_list(body)
    if objects is None:
        return [Check("RegistryObjectList", False, "the answer has no rim:RegistryObjectList")]
    children = [c for c in objects if isinstance(c.tag, str)]
    if "count" in expect:
        checks.append(
            _check("object count", len(children) == int(expect["count"]), int(expect["count"]), len(children))
        )
    for kind, path in _KIND_XPATHS.items():
        if kind in expect:
            n = len(_xpath(objects, path))
            checks.append(_check(f"{kind} count", n == int(expect[kind]), int(expect[kind]), n))
    ids = {c.get("id", "") for c in children}
    if "ids" in expect:
        want = set(expect["ids"])
        checks.append(_check("returned ids", ids == want, sorted(want), sorted(ids)))
    if "ids_include" in expect:
        want = set(expect["ids_include"])
        checks.append(_check("returned ids include", want <= ids, sorted(want), sorted(ids)))
    if "ids_exclude" in expect:
        bad = set(expect["ids_exclude"]) & ids
        checks.append(
            Check("returned ids exclude", not bad, f"unexpected {sorted(bad)}" if bad else "none of them")
        )
    return checks


def _retrieve_checks(result: SoapResult, body: etree._Element, expect: Mapping[str, Any]) -> list[Check]:
    checks: list[Check] = []
    responses = body.findall(ns.qn(ns.XDSB, "DocumentResponse"))
    if "retrieved_count" in expect:
        n = int(expect["retrieved_count"])
        checks.append(_check("DocumentResponse count", len(responses) == n, n, len(responses)))
    by_uid = {r.findtext(ns.qn(ns.XDSB, "DocumentUniqueId")): r for r in responses}
    for spec in expect.get("retrieved", []):
        uid = str(spec.get("unique_id", ""))
        resp = by_uid.get(uid)
        if resp is None:
            checks.append(
                Check(f"document {uid}", False, f"not returned (got {sorted(k or '' for k in by_uid)})")
            )
            continue
        doc = resp.find(ns.qn(ns.XDSB, "Document"))
        data = result.part_for(doc) if doc is not None else None
        if data is None:
            checks.append(Check(f"document {uid} bytes", False, "no readable Document content"))
            continue
        checks.extend(_document_checks(uid, resp, data, spec))
    return checks


def _document_checks(uid: str, resp: etree._Element, data: bytes, spec: Mapping[str, Any]) -> list[Check]:
    checks: list[Check] = []
    if "sha1" in spec:
        got = hashlib.sha1(data).hexdigest()
        checks.append(_check(f"document {uid} sha1", got == str(spec["sha1"]).lower(), spec["sha1"], got))
    if "size" in spec:
        checks.append(
            _check(f"document {uid} size", len(data) == int(spec["size"]), int(spec["size"]), len(data))
        )
    if "content" in spec:
        got_text = data.decode("utf-8", errors="replace")
        checks.append(
            _check(
                f"document {uid} content", got_text == str(spec["content"]), spec["content"], got_text[:200]
            )
        )
    if spec.get("dicom"):
        checks.append(_dicom_check(uid, data))
    fields_ = {"mime": "mimeType", "repository": "RepositoryUniqueId", "home": "HomeCommunityId"}
    for key, local in fields_.items():
        if key in spec:
            got_value = resp.findtext(ns.qn(ns.XDSB, local))
            checks.append(
                _check(f"document {uid} {local}", got_value == str(spec[key]), spec[key], got_value)
            )
    return checks


def _dicom_check(uid: str, data: bytes) -> Check:
    """The retrieved bytes are a DICOM instance whose SOPInstanceUID is the requested uniqueId."""
    from io import BytesIO

    from pydicom import dcmread
    from pydicom.errors import InvalidDicomError

    try:
        ds = dcmread(BytesIO(data), stop_before_pixels=True)
    except (InvalidDicomError, ValueError, EOFError, OSError) as exc:
        return Check(f"document {uid} DICOM", False, f"not a DICOM instance: {exc}")
    got = str(getattr(ds, "SOPInstanceUID", ""))
    return _check(f"document {uid} SOPInstanceUID", got == uid, uid, got)


def capture_xpath(result: SoapResult, path: str) -> str | None:
    if result.body is None:
        return None
    try:
        found = _xpath(result.body, path)
    except etree.XPathError:
        return None
    values = found if isinstance(found, list) else [found]
    if not values:
        return None
    first = values[0]
    return (first.text or "") if isinstance(first, etree._Element) else str(first)


# ------------------------------------------------------------------------------------------------
# HL7 v2
# ------------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class V2:
    """A minimal HL7 v2 reader for answers (the tester does not reuse the hub's parser)."""

    segments: tuple[tuple[str, ...], ...]
    component: str = "^"
    repetition: str = "~"
    sub: str = "&"

    @classmethod
    def parse(cls, text: str) -> V2:
        lines = [s for s in text.replace("\n", "\r").split("\r") if s.strip()]
        if not lines or not lines[0].startswith("MSH"):
            return cls(())
        sep = lines[0][3]
        enc = lines[0][4:8]
        segs = []
        for line in lines:
            fields_ = line.split(sep)
            if fields_[0] == "MSH":  # MSH-1 is the separator itself
                fields_ = ["MSH", sep, *fields_[1:]]
            segs.append(tuple(fields_))
        return cls(tuple(segs), enc[0:1] or "^", enc[1:2] or "~", enc[3:4] or "&")

    def all(self, seg_id: str) -> list[tuple[str, ...]]:
        return [s for s in self.segments if s[0] == seg_id]

    def field(self, path: str) -> str:
        """``SEG-n`` or ``SEG-n.c`` of the first such segment; '' when absent."""
        seg_id, _, rest = path.partition("-")
        num, _, comp = rest.partition(".")
        segs = self.all(seg_id)
        if not segs or not num.isdigit() or int(num) >= len(segs[0]):
            return ""
        value = segs[0][int(num)]
        if comp:
            first = value.split(self.repetition)[0]
            parts = first.split(self.component)
            return parts[int(comp) - 1] if int(comp) - 1 < len(parts) else ""
        return value

    def identifiers(self) -> set[tuple[str, str]]:
        """(ID, assigning-authority universal ID or namespace) of every PID-3 repetition."""
        out: set[tuple[str, str]] = set()
        for pid in self.all("PID"):
            if len(pid) <= 3:
                continue
            for rep in pid[3].split(self.repetition):
                if rep:
                    out.add(_cx_key(rep, self.component, self.sub))
        return out


def _cx_key(value: str, comp: str = "^", sub: str = "&") -> tuple[str, str]:
    parts = value.split(comp)
    authority = parts[3] if len(parts) > 3 else ""
    subs = authority.split(sub)
    universal = subs[1] if len(subs) > 1 and subs[1] else subs[0]
    return parts[0], universal


def v2_checks(answer: str, sent_control_id: str, expect: Mapping[str, Any]) -> list[Check]:
    if not answer:
        return [Check("answer", False, "no HL7 answer")]
    msg = V2.parse(answer)
    if not msg.segments:
        return [Check("answer", False, "the answer is not an HL7 v2 message")]
    checks: list[Check] = []
    want_ack = expect.get("ack", "AA")
    checks.append(_check("MSA-1", msg.field("MSA-1") == want_ack, want_ack, msg.field("MSA-1")))
    if expect.get("control_id_echo", True):
        checks.append(
            _check("MSA-2", msg.field("MSA-2") == sent_control_id, sent_control_id, msg.field("MSA-2"))
        )
    if "message_type" in expect:
        got = msg.field("MSH-9")
        checks.append(_check("MSH-9", got == str(expect["message_type"]), expect["message_type"], got))
    if "err_codes" in expect:
        codes = set()
        for err in msg.all("ERR"):
            if len(err) > 3:
                codes.add(err[3].split(msg.component)[0])
        want = set(str(c) for c in expect["err_codes"])
        checks.append(_check("ERR-3 codes", codes == want, sorted(want), sorted(codes)))
    for path, value in expect.get("fields", {}).items():
        got = msg.field(path)
        checks.append(_check(path, got == str(value), value, got))
    got_ids = msg.identifiers()
    if "ids" in expect:
        want_ids = {_cx_key(str(v)) for v in expect["ids"]}
        checks.append(_check("PID-3 identifiers", got_ids == want_ids, sorted(want_ids), sorted(got_ids)))
    if "ids_include" in expect:
        want_ids = {_cx_key(str(v)) for v in expect["ids_include"]}
        checks.append(_check("PID-3 include", want_ids <= got_ids, sorted(want_ids), sorted(got_ids)))
    if "ids_count" in expect:
        checks.append(
            _check(
                "PID-3 count",
                len(got_ids) == int(expect["ids_count"]),
                int(expect["ids_count"]),
                len(got_ids),
            )
        )
    if "no_pid" in expect:
        has = bool(msg.all("PID"))
        checks.append(_check("no PID segment", has != bool(expect["no_pid"]), not expect["no_pid"], has))
    return checks


def v2_capture(answer: str, path: str) -> str | None:
    value = V2.parse(answer).field(path)
    return value or None


def all_ok(checks: Iterable[Check]) -> bool:
    return all(c.ok for c in checks)


CheckFn = Callable[..., Sequence[Check]]
