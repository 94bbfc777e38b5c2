"""The coded values of the audit messages: DICOM (DCM) codes of PS3.16 CID 400-404, RFC 3881 codes, and
the IHE transaction codes (EventTypeCode, codeSystemName "IHE Transactions")."""

from __future__ import annotations

from typing import Final

from xds_hub.audit.model import Coded

DCM: Final = "DCM"
RFC3881: Final = "RFC-3881"
IHE_TX: Final = "IHE Transactions"
IHE_XDS: Final = "IHE XDS Metadata"


class EventId:
    """EventID values (PS3.16 CID 400 Audit Event ID)."""

    APPLICATION_ACTIVITY = Coded("110100", DCM, "Application Activity")
    BEGIN_TRANSFERRING = Coded("110102", DCM, "Begin Transferring DICOM Instances")
    INSTANCES_ACCESSED = Coded("110103", DCM, "DICOM Instances Accessed")
    INSTANCES_TRANSFERRED = Coded("110104", DCM, "DICOM Instances Transferred")
    STUDY_DELETED = Coded("110105", DCM, "DICOM Study Deleted")
    EXPORT = Coded("110106", DCM, "Export")
    IMPORT = Coded("110107", DCM, "Import")
    PATIENT_RECORD = Coded("110110", DCM, "Patient Record")
    QUERY = Coded("110112", DCM, "Query")
    SECURITY_ALERT = Coded("110113", DCM, "Security Alert")


class EventType:
    """DCM EventTypeCode values (PS3.16 CID 401 Audit Event Type Code)."""

    APPLICATION_START = Coded("110120", DCM, "Application Start")
    APPLICATION_STOP = Coded("110121", DCM, "Application Stop")
    NODE_AUTHENTICATION = Coded("110126", DCM, "Node Authentication")
    USE_OF_RESTRICTED_FUNCTION = Coded("110132", DCM, "Use of Restricted Function")


class Role:
    """RoleIDCode values (PS3.16 CID 402 Audit Active Participant Role ID Code)."""

    APPLICATION = Coded("110150", DCM, "Application")
    APPLICATION_LAUNCHER = Coded("110151", DCM, "Application Launcher")
    DESTINATION = Coded("110152", DCM, "Destination Role ID")
    SOURCE = Coded("110153", DCM, "Source Role ID")


class IdType:
    """ParticipantObjectIDTypeCode values."""

    PATIENT = Coded("2", RFC3881, "Patient Number")
    REPORT = Coded("9", RFC3881, "Report Number")
    URI = Coded("12", RFC3881, "URI")
    SUBMISSION_SET = Coded(
        "urn:uuid:a54d6aa5-d40d-43f9-88c5-b4633d873bdd", IHE_XDS, "submission set classificationNode"
    )
    OBJECT_REF = Coded("urn:ihe:iti:2017:ObjectRef", IHE_XDS, "registry object reference")
    STUDY = Coded("110180", DCM, "Study Instance UID")
    SOP_CLASS = Coded("110181", DCM, "SOP Class UID")
    NODE = Coded("110182", DCM, "Node ID")


#: IHE transaction code -> its name (EventTypeCode originalText, and the query ID type code text).
TRANSACTIONS: Final[dict[str, str]] = {
    "ITI-8": "Patient Identity Feed",
    "ITI-9": "PIX Query",
    "ITI-10": "PIX Update Notification",
    "ITI-18": "Registry Stored Query",
    "ITI-41": "Provide and Register Document Set-b",
    "ITI-42": "Register Document Set-b",
    "ITI-43": "Retrieve Document Set",
    "ITI-44": "Patient Identity Feed HL7 V3",
    "ITI-45": "PIXV3 Query",
    "ITI-57": "Update Document Set",
    "ITI-62": "Remove Metadata",
    "ITI-86": "Remove Documents",
    "RAD-55": "WADO Retrieve",
    "RAD-68": "Provide and Register Imaging Document Set - MTOM/XOP",
    "RAD-69": "Retrieve Imaging Document Set",
    "RAD-107": "WADO-RS Retrieve",
}


def transaction(code: str) -> Coded:
    """EV(code, "IHE Transactions", name) of an IHE transaction, e.g. ``transaction("ITI-41")``."""
    return Coded(code, IHE_TX, TRANSACTIONS[code])


#: Repository Unique Id detail of a document object (ITI TF-2 3.43.5.1.2, 3.86.5).
REPOSITORY_UNIQUE_ID: Final = "Repository Unique Id"
#: Home community id detail (ITI TF-2 3.18.5.1, 3.43.5.1).
HOME_COMMUNITY_ID: Final = "ihe:homeCommunityID"
#: Query encoding detail of an ITI-18 query object.
QUERY_ENCODING: Final = "QueryEncoding"
#: AuditSourceTypeCode 4: "Application Server process tier in a multi-tier system" (PS3.15 A.5.1.2.1).
SOURCE_TYPE_APPLICATION_SERVER = Coded("4", DCM, "Application Server process tier in a multi-tier system")
