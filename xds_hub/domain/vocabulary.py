"""XDS vocabulary: the UUIDs and URNs of ITI TF-3 4.2.5 (classification schemes, object types,
external identifiers), association types, statuses and the stored-query ids of ITI TF-2 3.18.4.1.2.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Final


class ObjectType(StrEnum):
    STABLE_DOCUMENT = "urn:uuid:7edca82f-054d-47f2-a032-9b2a5b5186c1"
    ON_DEMAND_DOCUMENT = "urn:uuid:34268e47-fdf5-41a6-ba33-82133c465248"
    REGISTRY_PACKAGE = "urn:oasis:names:tc:ebxml-regrep:ObjectType:RegistryObject:RegistryPackage"
    ASSOCIATION = "urn:oasis:names:tc:ebxml-regrep:ObjectType:RegistryObject:Association"


#: ClassificationNodes that mark a RegistryPackage as a SubmissionSet or a Folder.
SUBMISSION_SET_NODE: Final = "urn:uuid:a54d6aa5-d40d-43f9-88c5-b4633d873bdd"
FOLDER_NODE: Final = "urn:uuid:d9d542f3-6cc4-48b6-8870-ea235fbc94c2"


class Status(StrEnum):
    APPROVED = "urn:oasis:names:tc:ebxml-regrep:StatusType:Approved"
    DEPRECATED = "urn:oasis:names:tc:ebxml-regrep:StatusType:Deprecated"
    SUBMITTED = "urn:oasis:names:tc:ebxml-regrep:StatusType:Submitted"


class DocumentEntryScheme(StrEnum):
    """ClassificationScheme / IdentificationScheme UUIDs of a DocumentEntry."""

    AUTHOR = "urn:uuid:93606bcf-9494-43ec-9b4e-a7748d1a838d"
    CLASS_CODE = "urn:uuid:41a5887f-8865-4c09-adf7-e362475b143a"
    CONFIDENTIALITY_CODE = "urn:uuid:f4f85eac-e6cb-4883-b524-f2705394840f"
    EVENT_CODE = "urn:uuid:2c6b8cb7-8b2a-4051-b291-b1ae6a575ef4"
    FORMAT_CODE = "urn:uuid:a09d5840-386c-46f2-b5ad-9c3699a4309d"
    HEALTHCARE_FACILITY_TYPE_CODE = "urn:uuid:f33fb8ac-18af-42cc-ae0e-ed0b0bdb91e1"
    PRACTICE_SETTING_CODE = "urn:uuid:cccf5598-8b07-4b77-a05e-ae952c785ead"
    TYPE_CODE = "urn:uuid:f0306f51-975f-434e-a61c-c59651d33983"
    PATIENT_ID = "urn:uuid:58a6f841-87b3-4a3e-92fd-a8ffeff98427"
    UNIQUE_ID = "urn:uuid:2e82c1f6-a085-4c72-9da3-8640a32e42ab"
    LIMITED_METADATA = "urn:uuid:ab9b591b-83ab-4d03-8f5d-f93b1fb92e85"
    REFERENCE_ID_LIST = "urn:ihe:iti:xds:2013:referenceIdList"


class SubmissionSetScheme(StrEnum):
    AUTHOR = "urn:uuid:a7058bb9-b4e4-4307-ba5b-e3f0ab85e12d"
    CONTENT_TYPE_CODE = "urn:uuid:aa543740-bdda-424e-8c96-df4873be8500"
    PATIENT_ID = "urn:uuid:6b5aea1a-874d-4603-a4bc-96a0a7b38446"
    SOURCE_ID = "urn:uuid:554ac39e-e3fe-47fe-b233-965d2a147832"
    UNIQUE_ID = "urn:uuid:96fdda7c-d067-4183-912e-bf5ee74998a8"
    LIMITED_METADATA = "urn:uuid:5003a9db-8d8d-49e6-bf0c-990e34ac7707"


class FolderScheme(StrEnum):
    CODE_LIST = "urn:uuid:1ba97051-7806-41a8-a48b-8fce7af683c5"
    PATIENT_ID = "urn:uuid:f64ffdf0-4b97-4e06-b79f-a52b38ec2f8a"
    UNIQUE_ID = "urn:uuid:75df8f67-9973-4fbe-a900-df66cefecc5a"
    LIMITED_METADATA = "urn:uuid:2c144a76-29a9-4b7c-af54-b25409fe7d03"


class AssociationType(StrEnum):
    HAS_MEMBER = "urn:oasis:names:tc:ebxml-regrep:AssociationType:HasMember"
    RPLC = "urn:ihe:iti:2007:AssociationType:RPLC"
    XFRM = "urn:ihe:iti:2007:AssociationType:XFRM"
    APND = "urn:ihe:iti:2007:AssociationType:APND"
    XFRM_RPLC = "urn:ihe:iti:2007:AssociationType:XFRM_RPLC"
    SIGNS = "urn:ihe:iti:2007:AssociationType:signs"
    IS_SNAPSHOT_OF = "urn:ihe:iti:2010:AssociationType:IsSnapshotOf"
    UPDATE_AVAILABILITY_STATUS = "urn:ihe:iti:2010:AssociationType:UpdateAvailabilityStatus"
    SUBMIT_ASSOCIATION = "urn:ihe:iti:2010:AssociationType:SubmitAssociation"


#: Association types whose target document the source document replaces (target -> Deprecated).
REPLACING_ASSOCIATIONS: Final = frozenset({AssociationType.RPLC, AssociationType.XFRM_RPLC})
#: Document relationship associations (ITI TF-3 4.2.2.2): source is a new document, target an existing one.
RELATIONSHIP_ASSOCIATIONS: Final = frozenset(
    {
        AssociationType.RPLC,
        AssociationType.XFRM,
        AssociationType.APND,
        AssociationType.XFRM_RPLC,
        AssociationType.SIGNS,
        AssociationType.IS_SNAPSHOT_OF,
    }
)


class StoredQuery(StrEnum):
    """Stored-query ids of ITI TF-2 3.18.4.1.2.3.7 (Table 3.18.4.1.2.3.7-1 ff.)."""

    FIND_DOCUMENTS = "urn:uuid:14d4debf-8f97-4251-9a74-a90016b0af0d"
    FIND_SUBMISSION_SETS = "urn:uuid:f26abbcb-ac74-4422-8a30-edb644bbc1a9"
    FIND_FOLDERS = "urn:uuid:958f3006-baad-4929-a4de-ff1114824431"
    GET_ALL = "urn:uuid:10b545ea-725c-446d-9b95-8aeb444eddf3"
    GET_DOCUMENTS = "urn:uuid:5c4f972b-d56b-40ac-a5fc-c8ca9b40b9d4"
    GET_FOLDERS = "urn:uuid:5737b14c-8a1a-4539-b659-e03a34a5e1e4"
    GET_ASSOCIATIONS = "urn:uuid:a7ae438b-4bc2-4642-93e9-be891f7bb155"
    GET_DOCUMENTS_AND_ASSOCIATIONS = "urn:uuid:bab9529a-4a10-40b3-a01f-f68a615d247a"
    GET_SUBMISSION_SETS = "urn:uuid:51224314-5390-4169-9b91-b1980040715a"
    GET_SUBMISSION_SET_AND_CONTENTS = "urn:uuid:e8e3cb2c-e39c-46b9-99e4-c12f57260b83"
    GET_FOLDER_AND_CONTENTS = "urn:uuid:b909a503-523d-4517-8acf-8e5834dfc4c7"
    GET_FOLDERS_FOR_DOCUMENT = "urn:uuid:10cae35a-c7f9-4cf5-b61e-fc3278ffb578"
    GET_RELATED_DOCUMENTS = "urn:uuid:d90e5407-b356-4d91-a89f-873917b4b0e6"
    FIND_DOCUMENTS_BY_REFERENCE_ID = "urn:uuid:12941a89-e02e-4be5-967c-ce4bfc8fe492"


class ResponseStatus(StrEnum):
    SUCCESS = "urn:oasis:names:tc:ebxml-regrep:ResponseStatusType:Success"
    FAILURE = "urn:oasis:names:tc:ebxml-regrep:ResponseStatusType:Failure"
    PARTIAL_SUCCESS = "urn:ihe:iti:2007:ResponseStatusType:PartialSuccess"


class SoapAction(StrEnum):
    """wsa:Action values of the transactions the hub serves (and their responses)."""

    ITI41 = "urn:ihe:iti:2007:ProvideAndRegisterDocumentSet-b"
    ITI41_RESPONSE = "urn:ihe:iti:2007:ProvideAndRegisterDocumentSet-bResponse"
    ITI42 = "urn:ihe:iti:2007:RegisterDocumentSet-b"
    ITI42_RESPONSE = "urn:ihe:iti:2007:RegisterDocumentSet-bResponse"
    ITI43 = "urn:ihe:iti:2007:RetrieveDocumentSet"
    ITI43_RESPONSE = "urn:ihe:iti:2007:RetrieveDocumentSetResponse"
    ITI18 = "urn:ihe:iti:2007:RegistryStoredQuery"
    ITI18_RESPONSE = "urn:ihe:iti:2007:RegistryStoredQueryResponse"
    ITI57 = "urn:ihe:iti:2010:UpdateDocumentSet"
    ITI57_RESPONSE = "urn:ihe:iti:2010:UpdateDocumentSetResponse"
    ITI62 = "urn:ihe:iti:2010:DeleteDocumentSet"
    ITI62_RESPONSE = "urn:ihe:iti:2010:DeleteDocumentSetResponse"
    ITI86 = "urn:ihe:iti:2017:RemoveDocuments"
    ITI86_RESPONSE = "urn:ihe:iti:2017:RemoveDocumentsResponse"
    RAD69 = "urn:ihe:rad:2009:RetrieveImagingDocumentSet"
    RAD69_RESPONSE = "urn:ihe:iti:2007:RetrieveDocumentSetResponse"
    ITI44_ADD = "urn:hl7-org:v3:PRPA_IN201301UV02"
    ITI44_REVISE = "urn:hl7-org:v3:PRPA_IN201302UV02"
    ITI44_MERGE = "urn:hl7-org:v3:PRPA_IN201304UV02"
    ITI44_RESPONSE = "urn:hl7-org:v3:MCCI_IN000002UV01"
    ITI45 = "urn:hl7-org:v3:PRPA_IN201309UV02"
    ITI45_RESPONSE = "urn:hl7-org:v3:PRPA_IN201310UV02"


#: formatCode of an XDS-I.b KOS manifest (RAD TF-3 4.68.4.1.2.3.2) and its scheme.
KOS_FORMAT_CODE: Final = "1.2.840.10008.5.1.4.1.1.88.59"
KOS_FORMAT_SCHEME: Final = "1.2.840.10008.2.6.1"


#: ClassificationScheme of the documentation of a relationship association (ITI TF-3 4.2.2.2.3).
ASSOCIATION_DOCUMENTATION_SCHEME: Final = "urn:uuid:abd807a3-4432-4053-87b4-fd82c643d1f3"


class SubmissionSetStatus(StrEnum):
    """Values of the SubmissionSetStatus slot on a HasMember from a SubmissionSet (ITI TF-3 4.2.2.1.1)."""

    ORIGINAL = "Original"
    REFERENCE = "Reference"


class DocumentAvailability(StrEnum):
    """Values of DocumentEntry.documentAvailability (ITI TF-3 4.2.3.2.29)."""

    ONLINE = "urn:ihe:iti:2010:DocumentAvailability:Online"
    OFFLINE = "urn:ihe:iti:2010:DocumentAvailability:Offline"


class MetadataUpdateSlot(StrEnum):
    """Slots on the associations of Update Document Set [ITI-57] (ITI TF-2 3.57.4.1.3.3)."""

    #: On the HasMember SubmissionSet -> new version: the version the update replaces.
    PREVIOUS_VERSION = "PreviousVersion"
    #: On that HasMember: "yes" (default) / "no", copy the previous version's associations.
    ASSOCIATION_PROPAGATION = "AssociationPropagation"
    #: On an UpdateAvailabilityStatus association: the status the target has, and the one it gets.
    ORIGINAL_STATUS = "OriginalStatus"
    NEW_STATUS = "NewStatus"


#: lcm:RemoveObjectsRequest/@deletionScope default, the only scope of Delete Document Set [ITI-62]
#: (ITI TF-2 3.62.4.1.2; ebRS 3.0 5.3.4): remove the objects themselves.
DELETION_SCOPE_DELETE_ALL: Final = "urn:oasis:names:tc:ebxml-regrep:DeletionScopeType:DeleteAll"
