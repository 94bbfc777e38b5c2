"""Writing an :class:`~xds_hub.audit.model.AuditMessage` as the DICOM audit message XML (PS3.15 A.5.1).

The message has no namespace.  Element order follows the schema: EventIdentification (EventID,
EventTypeCode*, EventOutcomeDescription?), ActiveParticipant+ (RoleIDCode*), AuditSourceIdentification
(AuditSourceTypeCode*), ParticipantObjectIdentification* (ParticipantObjectIDTypeCode,
ParticipantObjectName | ParticipantObjectQuery, ParticipantObjectDetail*, ParticipantObjectDescription*).
All ParticipantObjectDetail values and ParticipantObjectQuery are base64 (xsd:base64Binary).

The XML is written as text, escaped as lxml escapes it (a character XML 1.0 cannot carry, which a
reason quoting hostile input may hold, becomes U+FFFD), and the parts that repeat from message to
message (coded values, the hub's participant, the audit source) are rendered once and reused:
every transaction of the hub writes one or two of these messages.
"""

from __future__ import annotations

import base64
import re
from functools import lru_cache

from lxml import etree

from xds_hub.audit.model import (
    ActiveParticipant,
    AuditMessage,
    AuditSource,
    Coded,
    DicomDescription,
    EventIdentification,
    ParticipantObject,
)


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


#: Characters XML 1.0 does not allow (2.2 Char), and those an attribute / text must escape.
_NOT_XML = re.compile("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")
_SPECIAL = re.compile('[&<>"\t\n\r]')
_ATTR = str.maketrans(
    {"&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "\n": "&#10;", "\r": "&#13;", "\t": "&#9;"}
)
_TEXT = str.maketrans({"&": "&amp;", "<": "&lt;", ">": "&gt;", "\r": "&#13;"})


def _attr(value: str) -> str:
    if _NOT_XML.search(value):
        value = _NOT_XML.sub("\ufffd", value)
    return value.translate(_ATTR) if _SPECIAL.search(value) else value


def _text(tag: str, value: str) -> str:
    if _NOT_XML.search(value):
        value = _NOT_XML.sub("\ufffd", value)
    return f"<{tag}>{value.translate(_TEXT)}</{tag}>"


def _element(tag: str, attrs: tuple[tuple[str, str | None], ...], children: str = "") -> str:
    parts = "".join(f' {name}="{_attr(value)}"' for name, value in attrs if value is not None)
    return f"<{tag}{parts}>{children}</{tag}>" if children else f"<{tag}{parts}/>"


@lru_cache(maxsize=4096)
def _coded(tag: str, value: Coded) -> str:
    return _element(
        tag, (("csd-code", value.code), ("codeSystemName", value.system), ("originalText", value.text))
    )


def _event(event: EventIdentification) -> str:
    children = _coded("EventID", event.event_id) + "".join(
        _coded("EventTypeCode", c) for c in event.type_codes
    )
    if event.outcome_description:
        children += _text("EventOutcomeDescription", event.outcome_description)
    attrs = (
        ("EventActionCode", event.action.value),
        ("EventDateTime", event.time.isoformat(timespec="milliseconds")),
        ("EventOutcomeIndicator", str(int(event.outcome))),
    )
    return _element("EventIdentification", attrs, children)


@lru_cache(maxsize=1024)
def _participant(p: ActiveParticipant) -> str:
    nap = p.network_access_point or None
    nap_type = p.network_access_point_type
    attrs = (
        ("UserID", p.user_id),
        ("AlternativeUserID", p.alternative_user_id or None),
        ("UserName", p.user_name or None),
        ("UserIsRequestor", "true" if p.requestor else "false"),
        ("NetworkAccessPointID", nap),
        ("NetworkAccessPointTypeCode", str(int(nap_type)) if nap and nap_type is not None else None),
    )
    return _element("ActiveParticipant", attrs, "".join(_coded("RoleIDCode", r) for r in p.roles))


@lru_cache(maxsize=64)
def _source(source: AuditSource) -> str:
    attrs = (
        ("AuditEnterpriseSiteID", source.enterprise_site_id or None),
        ("AuditSourceID", source.source_id),
    )
    codes = "".join(_coded("AuditSourceTypeCode", c) for c in source.type_codes)
    return _element("AuditSourceIdentification", attrs, codes)


def _description(d: DicomDescription) -> str:
    parts = [_element("MPPS", (("UID", uid),)) for uid in d.mpps]
    parts += [_element("Accession", (("Number", number),)) for number in d.accessions]
    for sop in d.sop_classes:
        instances = "".join(_element("Instance", (("UID", uid),)) for uid in sop.instances)
        attrs = (("UID", sop.uid), ("NumberOfInstances", str(sop.number_of_instances)))
        parts.append(_element("SOPClass", attrs, instances))
    if d.encrypted is not None:
        parts.append(_text("Encrypted", "true" if d.encrypted else "false"))
    if d.anonymized is not None:
        parts.append(_text("Anonymized", "true" if d.anonymized else "false"))
    return f"<ParticipantObjectDescription>{''.join(parts)}</ParticipantObjectDescription>"


def _object(o: ParticipantObject) -> str:
    parts = [_coded("ParticipantObjectIDTypeCode", o.id_type)]
    if o.query is not None:
        parts.append(_text("ParticipantObjectQuery", _b64(o.query)))
    elif o.name is not None:
        parts.append(_text("ParticipantObjectName", o.name))
    parts += [_element("ParticipantObjectDetail", (("type", k), ("value", _b64(v)))) for k, v in o.details]
    parts += [_description(d) for d in o.descriptions]
    attrs = (
        ("ParticipantObjectID", o.object_id),
        ("ParticipantObjectTypeCode", str(int(o.object_type)) if o.object_type is not None else None),
        ("ParticipantObjectTypeCodeRole", str(int(o.role)) if o.role is not None else None),
        ("ParticipantObjectDataLifeCycle", str(int(o.life_cycle)) if o.life_cycle is not None else None),
        ("ParticipantObjectSensitivity", o.sensitivity or None),
    )
    return _element("ParticipantObjectIdentification", attrs, "".join(parts))


def to_xml(message: AuditMessage) -> bytes:
    """``message`` as a UTF-8 XML document (with declaration), ready for the syslog MSG part."""
    return "".join(
        (
            "<?xml version='1.0' encoding='UTF-8'?>\n<AuditMessage>",
            _event(message.event),
            *(_participant(p) for p in message.participants),
            _source(message.source),
            *(_object(o) for o in message.objects),
            "</AuditMessage>",
        )
    ).encode("utf-8")


def to_element(message: AuditMessage) -> etree._Element:
    """The AuditMessage element of ``message``."""
    return etree.fromstring(to_xml(message))
