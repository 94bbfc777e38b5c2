"""Writing an :class:`~xds_hub.audit.model.AuditMessage` as the DICOM audit message XML (PS3.15 A.5.1).

The message has no namespace.  Element order follows the schema: EventIdentification (EventID,
EventTypeCode*, EventOutcomeDescription?), ActiveParticipant+ (RoleIDCode*), AuditSourceIdentification
(AuditSourceTypeCode*), ParticipantObjectIdentification* (ParticipantObjectIDTypeCode,
ParticipantObjectName | ParticipantObjectQuery, ParticipantObjectDetail*, ParticipantObjectDescription*).
All ParticipantObjectDetail values and ParticipantObjectQuery are base64 (xsd:base64Binary).
"""

from __future__ import annotations

import base64

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


def _coded(parent: etree._Element, tag: str, value: Coded) -> None:
    el = etree.SubElement(parent, tag)
    el.set("csd-code", value.code)
    el.set("codeSystemName", value.system)
    el.set("originalText", value.text)


def _event(root: etree._Element, event: EventIdentification) -> None:
    el = etree.SubElement(root, "EventIdentification")
    el.set("EventActionCode", event.action.value)
    el.set("EventDateTime", event.time.isoformat(timespec="milliseconds"))
    el.set("EventOutcomeIndicator", str(int(event.outcome)))
    _coded(el, "EventID", event.event_id)
    for code in event.type_codes:
        _coded(el, "EventTypeCode", code)
    if event.outcome_description:
        etree.SubElement(el, "EventOutcomeDescription").text = event.outcome_description


def _participant(root: etree._Element, p: ActiveParticipant) -> None:
    el = etree.SubElement(root, "ActiveParticipant")
    el.set("UserID", p.user_id)
    if p.alternative_user_id:
        el.set("AlternativeUserID", p.alternative_user_id)
    if p.user_name:
        el.set("UserName", p.user_name)
    el.set("UserIsRequestor", "true" if p.requestor else "false")
    if p.network_access_point:
        el.set("NetworkAccessPointID", p.network_access_point)
        if p.network_access_point_type is not None:
            el.set("NetworkAccessPointTypeCode", str(int(p.network_access_point_type)))
    for role in p.roles:
        _coded(el, "RoleIDCode", role)


def _source(root: etree._Element, source: AuditSource) -> None:
    el = etree.SubElement(root, "AuditSourceIdentification")
    if source.enterprise_site_id:
        el.set("AuditEnterpriseSiteID", source.enterprise_site_id)
    el.set("AuditSourceID", source.source_id)
    for code in source.type_codes:
        _coded(el, "AuditSourceTypeCode", code)


def _description(parent: etree._Element, d: DicomDescription) -> None:
    el = etree.SubElement(parent, "ParticipantObjectDescription")
    for uid in d.mpps:
        etree.SubElement(el, "MPPS").set("UID", uid)
    for number in d.accessions:
        etree.SubElement(el, "Accession").set("Number", number)
    for sop in d.sop_classes:
        sop_el = etree.SubElement(el, "SOPClass")
        sop_el.set("UID", sop.uid)
        sop_el.set("NumberOfInstances", str(sop.number_of_instances))
        for uid in sop.instances:
            etree.SubElement(sop_el, "Instance").set("UID", uid)
    if d.encrypted is not None:
        etree.SubElement(el, "Encrypted").text = "true" if d.encrypted else "false"
    if d.anonymized is not None:
        etree.SubElement(el, "Anonymized").text = "true" if d.anonymized else "false"


def _object(root: etree._Element, o: ParticipantObject) -> None:
    el = etree.SubElement(root, "ParticipantObjectIdentification")
    el.set("ParticipantObjectID", o.object_id)
    if o.object_type is not None:
        el.set("ParticipantObjectTypeCode", str(int(o.object_type)))
    if o.role is not None:
        el.set("ParticipantObjectTypeCodeRole", str(int(o.role)))
    if o.life_cycle is not None:
        el.set("ParticipantObjectDataLifeCycle", str(int(o.life_cycle)))
    if o.sensitivity:
        el.set("ParticipantObjectSensitivity", o.sensitivity)
    _coded(el, "ParticipantObjectIDTypeCode", o.id_type)
    if o.query is not None:
        etree.SubElement(el, "ParticipantObjectQuery").text = _b64(o.query)
    elif o.name is not None:
        etree.SubElement(el, "ParticipantObjectName").text = o.name
    for kind, value in o.details:
        detail = etree.SubElement(el, "ParticipantObjectDetail")
        detail.set("type", kind)
        detail.set("value", _b64(value))
    for d in o.descriptions:
        _description(el, d)


def to_element(message: AuditMessage) -> etree._Element:
    """The AuditMessage element of ``message``."""
    root = etree.Element("AuditMessage")
    _event(root, message.event)
    for p in message.participants:
        _participant(root, p)
    _source(root, message.source)
    for o in message.objects:
        _object(root, o)
    return root


def to_xml(message: AuditMessage) -> bytes:
    """``message`` as a UTF-8 XML document (with declaration), ready for the syslog MSG part."""
    return bytes(etree.tostring(to_element(message), xml_declaration=True, encoding="UTF-8"))
