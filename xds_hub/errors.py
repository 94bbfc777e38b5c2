"""Error codes and the problems that carry them: the ONLY place an error-code string is written.

IHE XDS error codes come from ITI TF-3 4.2.4.1 (Table 4.2.4.1-2), ITI TF-2 3.18.4.1.3 and the
Metadata Update / Remove Metadata supplements; ebRS codes from OASIS ebRS 3.0.  Other modules
refer to :class:`ErrorCode` members, never to the strings.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum


class ErrorCode(StrEnum):
    """IHE / ebRS error codes carried in RegistryError/@errorCode."""

    # ITI TF-3 Table 4.2.4.1-2
    MISSING_DOCUMENT = "XDSMissingDocument"
    MISSING_DOCUMENT_METADATA = "XDSMissingDocumentMetadata"
    REGISTRY_NOT_AVAILABLE = "XDSRegistryNotAvailable"
    REGISTRY_ERROR = "XDSRegistryError"
    REPOSITORY_ERROR = "XDSRepositoryError"
    REGISTRY_DUPLICATE_UNIQUE_ID_IN_MESSAGE = "XDSRegistryDuplicateUniqueIdInMessage"
    REPOSITORY_DUPLICATE_UNIQUE_ID_IN_MESSAGE = "XDSRepositoryDuplicateUniqueIdInMessage"
    DUPLICATE_UNIQUE_ID_IN_REGISTRY = "XDSDuplicateUniqueIdInRegistry"
    NON_IDENTICAL_HASH = "XDSNonIdenticalHash"
    NON_IDENTICAL_SIZE = "XDSNonIdenticalSize"
    REGISTRY_BUSY = "XDSRegistryBusy"
    REPOSITORY_BUSY = "XDSRepositoryBusy"
    REGISTRY_OUT_OF_RESOURCES = "XDSRegistryOutOfResources"
    REPOSITORY_OUT_OF_RESOURCES = "XDSRepositoryOutOfResources"
    REGISTRY_METADATA_ERROR = "XDSRegistryMetadataError"
    REPOSITORY_METADATA_ERROR = "XDSRepositoryMetadataError"
    TOO_MANY_RESULTS = "XDSTooManyResults"
    EXTRA_METADATA_NOT_SAVED = "XDSExtraMetadataNotSaved"
    UNKNOWN_PATIENT_ID = "XDSUnknownPatientId"
    PATIENT_ID_DOES_NOT_MATCH = "XDSPatientIdDoesNotMatch"
    UNKNOWN_STORED_QUERY = "XDSUnknownStoredQuery"
    STORED_QUERY_MISSING_PARAM = "XDSStoredQueryMissingParam"
    STORED_QUERY_PARAM_NUMBER = "XDSStoredQueryParamNumber"
    REGISTRY_DEPRECATED_DOCUMENT_ERROR = "XDSRegistryDeprecatedDocumentError"
    UNKNOWN_REPOSITORY_ID = "XDSUnknownRepositoryId"
    DOCUMENT_UNIQUE_ID_ERROR = "XDSDocumentUniqueIdError"
    RESULT_NOT_SINGLE_PATIENT = "XDSResultNotSinglePatient"
    PARTIAL_FOLDER_CONTENT_NOT_PROCESSED = "PartialFolderContentNotProcessed"
    PARTIAL_REPLACE_CONTENT_NOT_PROCESSED = "PartialReplaceContentNotProcessed"
    PARTIAL_TRANSFORM_NOT_PROCESSED = "PartialTransformNotProcessed"
    PARTIAL_APPENDED_CONTENT_NOT_PROCESSED = "PartialAppendContentNotProcessed"
    PARTIAL_TRANSFORM_REPLACE_NOT_PROCESSED = "PartialTransformReplaceNotProcessed"
    UNKNOWN_COMMUNITY = "XDSUnknownCommunity"
    MISSING_HOME_COMMUNITY_ID = "XDSMissingHomeCommunityId"
    UNAVAILABLE_COMMUNITY = "XDSUnavailableCommunity"
    # Metadata Update (ITI-57) supplement
    METADATA_UPDATE_ERROR = "XDSMetadataUpdateError"
    METADATA_VERSION_ERROR = "XDSMetadataVersionError"
    METADATA_UPDATE_OPERATION_ERROR = "XDSMetadataUpdateOperationError"
    PATIENT_ID_RECONCILIATION_ERROR = "XDSPatientIDReconciliationError"
    # ebRS 3.0 / Remove Metadata (ITI-62) and Remove Documents (ITI-86)
    UNRESOLVED_REFERENCE = "UnresolvedReferenceException"
    REFERENCES_EXIST = "ReferencesExistException"
    #: Remove Metadata [ITI-62]: the removal would leave an object that nothing references
    #: (spelled with the XDS prefix, as the NIST registry simulator and its RMD tests do).
    UNREFERENCED_OBJECT = "XDSUnreferencedObjectException"
    # XDS-I.b (RAD TF-3 4.69)
    XDSI_REQUEST_ERROR = "XDSIRequestError"


class Severity(StrEnum):
    ERROR = "urn:oasis:names:tc:ebxml-regrep:ErrorSeverityType:Error"
    WARNING = "urn:oasis:names:tc:ebxml-regrep:ErrorSeverityType:Warning"


@dataclass(frozen=True, slots=True)
class Problem:
    """One RegistryError: what went wrong (code), in words (context), and where (location)."""

    code: ErrorCode
    context: str
    location: str = ""
    severity: Severity = Severity.ERROR


class XdsError(Exception):
    """A transaction failed with one or more IHE problems; becomes a RegistryResponse Failure."""

    def __init__(self, problems: Iterable[Problem]) -> None:
        self.problems: tuple[Problem, ...] = tuple(problems)
        if not self.problems:
            raise ValueError("XdsError needs at least one problem")
        super().__init__("; ".join(f"{p.code}: {p.context}" for p in self.problems))

    @classmethod
    def one(cls, code: ErrorCode, context: str, location: str = "") -> XdsError:
        return cls([Problem(code, context, location)])


class FaultCode(StrEnum):
    """SOAP 1.2 fault codes (SOAP 1.2 Part 1, 5.4.6)."""

    SENDER = "Sender"
    RECEIVER = "Receiver"
    VERSION_MISMATCH = "VersionMismatch"
    MUST_UNDERSTAND = "MustUnderstand"


class FaultSubcode(StrEnum):
    """Subcodes the hub puts under a SOAP fault; WS-Addressing ones from WS-Addr SOAP Binding 6.4."""

    ACTION_NOT_SUPPORTED = "wsa:ActionNotSupported"
    INVALID_ADDRESSING_HEADER = "wsa:InvalidAddressingHeader"
    MESSAGE_ADDRESSING_HEADER_REQUIRED = "wsa:MessageAddressingHeaderRequired"
    DESTINATION_UNREACHABLE = "wsa:DestinationUnreachable"
    #: WS-Security 1.1 (SOAP Message Security, 12): "The security token could not be authenticated or
    #: authorized"; XUA (ITI TF-2b 3.40) uses it for refused requests.  The prefix ``wsse`` stands for
    #: http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-secext-1.0.xsd.
    FAILED_AUTHENTICATION = "wsse:FailedAuthentication"
    ENDPOINT_UNAVAILABLE = "wsa:EndpointUnavailable"
    # [Subsubcode]s under wsa:InvalidAddressingHeader (WS-Addr SOAP Binding 6.4.1; WS-Addr Metadata 4.1)
    INVALID_ADDRESS = "wsa:InvalidAddress"
    INVALID_EPR = "wsa:InvalidEPR"
    INVALID_CARDINALITY = "wsa:InvalidCardinality"
    MISSING_ADDRESS_IN_EPR = "wsa:MissingAddressInEPR"
    ACTION_MISMATCH = "wsa:ActionMismatch"
    ONLY_ANONYMOUS_ADDRESS_SUPPORTED = "wsa:OnlyAnonymousAddressSupported"


class SoapFault(Exception):
    """The message cannot be understood as a transaction: answered with a SOAP 1.2 Fault."""

    def __init__(
        self,
        code: FaultCode,
        reason: str,
        subcode: FaultSubcode | None = None,
        http_status: int | None = None,
    ) -> None:
        super().__init__(reason)
        self.code = code
        self.reason = reason
        self.subcode = subcode
        # SOAP 1.2 Part 2, 7.5.2.2 (Table 20): env:Sender -> 400, every other fault code -> 500.
        self.http_status = http_status or (400 if code is FaultCode.SENDER else 500)


class ConfigError(Exception):
    """The configuration (CLI, TOML) is invalid; the message says which key and why."""


class ParseError(ValueError):
    """A parser met input it cannot read (ebRIM, HL7 v2/v3, MTOM, DICOM, query params).

    Parsers raise this (or XdsError/SoapFault where the protocol dictates a specific answer),
    never another exception type.
    """


# ---------------------------------------------------------------------------------------------
# HL7 (PIX Manager: ITI-8, ITI-9, ITI-10 over MLLP; ITI-44, ITI-45 over SOAP)
# ---------------------------------------------------------------------------------------------


class Hl7ErrorCode(StrEnum):
    """HL7 v2.5 Table 0357 (message error condition codes): ERR-3 of an ACK / RSP (ITI TF-2a 3.8,
    3.9, C.2.3), and ``acknowledgementDetail/code`` (code system 2.16.840.1.113883.12.357) of the
    HL7 v3 acknowledgements of ITI TF-2b 3.44 / 3.45."""

    SEGMENT_SEQUENCE_ERROR = "100"
    REQUIRED_FIELD_MISSING = "101"
    DATA_TYPE_ERROR = "102"
    TABLE_VALUE_NOT_FOUND = "103"
    UNSUPPORTED_MESSAGE_TYPE = "200"
    UNSUPPORTED_EVENT_CODE = "201"
    UNSUPPORTED_PROCESSING_ID = "202"
    UNSUPPORTED_VERSION_ID = "203"
    UNKNOWN_KEY_IDENTIFIER = "204"
    DUPLICATE_KEY_IDENTIFIER = "205"
    APPLICATION_RECORD_LOCKED = "206"
    APPLICATION_INTERNAL_ERROR = "207"

    @property
    def display(self) -> str:
        """The HL7 Table 0357 description of this code (ERR-3.2)."""
        return _HL7_ERROR_TEXT[self]


_HL7_ERROR_TEXT: dict[Hl7ErrorCode, str] = {
    Hl7ErrorCode.SEGMENT_SEQUENCE_ERROR: "Segment sequence error",
    Hl7ErrorCode.REQUIRED_FIELD_MISSING: "Required field missing",
    Hl7ErrorCode.DATA_TYPE_ERROR: "Data type error",
    Hl7ErrorCode.TABLE_VALUE_NOT_FOUND: "Table value not found",
    Hl7ErrorCode.UNSUPPORTED_MESSAGE_TYPE: "Unsupported message type",
    Hl7ErrorCode.UNSUPPORTED_EVENT_CODE: "Unsupported event code",
    Hl7ErrorCode.UNSUPPORTED_PROCESSING_ID: "Unsupported processing id",
    Hl7ErrorCode.UNSUPPORTED_VERSION_ID: "Unsupported version id",
    Hl7ErrorCode.UNKNOWN_KEY_IDENTIFIER: "Unknown key identifier",
    Hl7ErrorCode.DUPLICATE_KEY_IDENTIFIER: "Duplicate key identifier",
    Hl7ErrorCode.APPLICATION_RECORD_LOCKED: "Application record locked",
    Hl7ErrorCode.APPLICATION_INTERNAL_ERROR: "Application internal error",
}


class AckCode(StrEnum):
    """HL7 Table 0008 acknowledgement codes (MSA-1; v3 ``acknowledgement/typeCode``)."""

    ACCEPT = "AA"
    ERROR = "AE"
    REJECT = "AR"


@dataclass(frozen=True, slots=True)
class Hl7Problem:
    """One ERR segment / acknowledgementDetail: its code, where it is, and what went wrong.

    ``location`` is an HL7 v2 ERL (``PID^1^3^2^4``) for v2 messages, an XPath for v3 ones.
    """

    code: Hl7ErrorCode
    text: str
    location: str = ""


class Hl7Error(Exception):
    """An HL7 message is answered with AE (bad content) or AR (rejected) and these problems."""

    def __init__(self, problems: Iterable[Hl7Problem], ack: AckCode = AckCode.ERROR) -> None:
        self.problems: tuple[Hl7Problem, ...] = tuple(problems)
        if not self.problems:
            raise ValueError("Hl7Error needs at least one problem")
        self.ack = ack
        super().__init__("; ".join(f"{p.code} {p.location}: {p.text}" for p in self.problems))

    @classmethod
    def one(cls, code: Hl7ErrorCode, text: str, location: str = "", ack: AckCode = AckCode.ERROR) -> Hl7Error:
        return cls([Hl7Problem(code, text, location)], ack)
