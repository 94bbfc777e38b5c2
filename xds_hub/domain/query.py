"""Registry Stored Query [ITI-18]: the fourteen stored queries and their parameters (ITI TF-2 3.18.4.1.2.3).

Pure: :func:`parse_request` turns what the XML edge (:mod:`xds_hub.registry.iti18`) read from a
query:AdhocQueryRequest (query id, ResponseOption, the name and Value texts of every rim:Slot) into
one typed, frozen parameter object per stored query (ITI TF-2 3.18.4.1.2.3.7.1-14); the SQL in
:mod:`xds_hub.registry.sqlquery` runs it.

Value coding (ITI TF-2 3.18.4.1.2.3.5):

- a string is quoted, ``'value'``, a quote inside it doubled (``'O''Brien'``); numbers, DTM times
  (and, leniently, strings without blanks, commas, quotes or parentheses) may stand unquoted; a
  single-valued parameter whose quotes do not pair up (``'abc''x``) is taken literally;
- a multi-valued parameter is a parenthesised list ``('a','b')``; the lists of all Value elements
  of one Slot are one list of alternatives (OR); a lone value stands for a list of one;
- a code is ``'code^^scheme'`` (a bare ``'code'`` matches that code in any scheme);
- $XDSDocumentEntryEventCodeList, $XDSDocumentEntryConfidentialityCode, $XDSFolderCodeList and
  $XDSDocumentEntryReferenceIdList may be given in several Slots of the same name: each Slot is an
  OR-list and the Slots are ANDed ("AND/OR semantics").

Errors (ITI TF-3 Table 4.2.4.1-2): an unknown query id is XDSUnknownStoredQuery; a missing required
parameter (or none of an "either/or" group) XDSStoredQueryMissingParam; a single-valued parameter
with several values, any other parameter in several Slots, or both members of an either/or group
XDSStoredQueryParamNumber; a value that cannot be read (syntax, DTM, code, number, $MetadataLevel
other than 1 or 2, unknown $XDSDocumentEntryType, returnType other than LeafClass / ObjectRef)
XDSRegistryMetadataError.  Parameters a query does not define are ignored (ebRS 3.0 6.3.2.1), and
so are status values the registry does not know (ITI TF-2 3.18.4.1.2.3.6).  Parameter names are
matched without regard to case.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from enum import Enum, StrEnum
from typing import Any, ClassVar, Final

from xds_hub.domain.vocabulary import ObjectType, Status, StoredQuery
from xds_hub.errors import ErrorCode, Problem, XdsError


class ReturnType(StrEnum):
    """ResponseOption/@returnType values of ITI-18 (ITI TF-2 3.18.4.1.2.1)."""

    LEAF_CLASS = "LeafClass"
    OBJECT_REF = "ObjectRef"


@dataclass(frozen=True, slots=True)
class CodeValue:
    """One 'code^^scheme' alternative; ``scheme`` None matches the code in any scheme."""

    code: str
    scheme: str | None = None


#: AND of ORs: every inner tuple (one Slot) must have a match.  ``()`` means no filter.
CodeQuery = tuple[tuple[CodeValue, ...], ...]
TextQuery = tuple[tuple[str, ...], ...]

STABLE_ONLY: Final = frozenset({ObjectType.STABLE_DOCUMENT})


@dataclass(frozen=True, slots=True, kw_only=True)
class StoredQueryParams:
    """Parameters every stored query takes: $MetadataLevel (Metadata Update, ITI TF-2
    3.18.4.1.2.3.5.1) and $homeCommunityId (3.18.4.1.2.3.8)."""

    query_id: ClassVar[StoredQuery]
    metadata_level: int = 1
    home_community_id: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class FindDocuments(StoredQueryParams):
    """ITI TF-2 3.18.4.1.2.3.7.1.  Times: ``*_from`` inclusive, ``*_to`` exclusive (see :func:`time_key`)."""

    query_id: ClassVar[StoredQuery] = StoredQuery.FIND_DOCUMENTS
    patient_id: str
    statuses: frozenset[Status]
    class_codes: CodeQuery = ()
    type_codes: CodeQuery = ()
    practice_setting_codes: CodeQuery = ()
    healthcare_facility_type_codes: CodeQuery = ()
    format_codes: CodeQuery = ()
    event_codes: CodeQuery = ()
    confidentiality_codes: CodeQuery = ()
    #: SQL LIKE patterns (% and _ wildcards) on authorPerson, ORed.
    author_persons: tuple[str, ...] = ()
    creation_time_from: str | None = None
    creation_time_to: str | None = None
    service_start_time_from: str | None = None
    service_start_time_to: str | None = None
    service_stop_time_from: str | None = None
    service_stop_time_to: str | None = None
    #: $XDSDocumentEntryType; stable DocumentEntries only when absent (ITI TF-2 3.18.4.1.2.5).
    entry_types: frozenset[ObjectType] = STABLE_ONLY


@dataclass(frozen=True, slots=True, kw_only=True)
class FindDocumentsByReferenceId(FindDocuments):
    """ITI TF-2 3.18.4.1.2.3.7.14: FindDocuments plus referenceIdList values (AND of ORs, exact match)."""

    query_id: ClassVar[StoredQuery] = StoredQuery.FIND_DOCUMENTS_BY_REFERENCE_ID
    reference_ids: TextQuery


@dataclass(frozen=True, slots=True, kw_only=True)
class FindSubmissionSets(StoredQueryParams):
    """ITI TF-2 3.18.4.1.2.3.7.2."""

    query_id: ClassVar[StoredQuery] = StoredQuery.FIND_SUBMISSION_SETS
    patient_id: str
    statuses: frozenset[Status]
    source_ids: tuple[str, ...] = ()
    submission_time_from: str | None = None
    submission_time_to: str | None = None
    #: One SQL LIKE pattern on authorPerson.
    author_person: str | None = None
    content_type_codes: CodeQuery = ()


@dataclass(frozen=True, slots=True, kw_only=True)
class FindFolders(StoredQueryParams):
    """ITI TF-2 3.18.4.1.2.3.7.3."""

    query_id: ClassVar[StoredQuery] = StoredQuery.FIND_FOLDERS
    patient_id: str
    statuses: frozenset[Status]
    last_update_time_from: str | None = None
    last_update_time_to: str | None = None
    codes: CodeQuery = ()


@dataclass(frozen=True, slots=True, kw_only=True)
class GetAll(StoredQueryParams):
    """ITI TF-2 3.18.4.1.2.3.7.4: a patient's SubmissionSets, DocumentEntries, Folders and Associations."""

    query_id: ClassVar[StoredQuery] = StoredQuery.GET_ALL
    patient_id: str
    document_statuses: frozenset[Status]
    submission_set_statuses: frozenset[Status]
    folder_statuses: frozenset[Status]
    format_codes: CodeQuery = ()
    confidentiality_codes: CodeQuery = ()
    entry_types: frozenset[ObjectType] = STABLE_ONLY


@dataclass(frozen=True, slots=True, kw_only=True)
class GetDocuments(StoredQueryParams):
    """ITI TF-2 3.18.4.1.2.3.7.5: exactly one of the three lists is given."""

    query_id: ClassVar[StoredQuery] = StoredQuery.GET_DOCUMENTS
    entry_uuids: tuple[str, ...] = ()
    unique_ids: tuple[str, ...] = ()
    logical_ids: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True, kw_only=True)
class GetFolders(StoredQueryParams):
    """ITI TF-2 3.18.4.1.2.3.7.6: exactly one of the three lists is given."""

    query_id: ClassVar[StoredQuery] = StoredQuery.GET_FOLDERS
    entry_uuids: tuple[str, ...] = ()
    unique_ids: tuple[str, ...] = ()
    logical_ids: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True, kw_only=True)
class GetAssociations(StoredQueryParams):
    """ITI TF-2 3.18.4.1.2.3.7.7: Associations whose source or target is one of ``uuids``."""

    query_id: ClassVar[StoredQuery] = StoredQuery.GET_ASSOCIATIONS
    uuids: tuple[str, ...]


@dataclass(frozen=True, slots=True, kw_only=True)
class GetDocumentsAndAssociations(StoredQueryParams):
    """ITI TF-2 3.18.4.1.2.3.7.8: exactly one of the two lists is given."""

    query_id: ClassVar[StoredQuery] = StoredQuery.GET_DOCUMENTS_AND_ASSOCIATIONS
    entry_uuids: tuple[str, ...] = ()
    unique_ids: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True, kw_only=True)
class GetSubmissionSets(StoredQueryParams):
    """ITI TF-2 3.18.4.1.2.3.7.9: the SubmissionSets having ``uuids`` as members, and those HasMembers."""

    query_id: ClassVar[StoredQuery] = StoredQuery.GET_SUBMISSION_SETS
    uuids: tuple[str, ...]


@dataclass(frozen=True, slots=True, kw_only=True)
class GetSubmissionSetAndContents(StoredQueryParams):
    """ITI TF-2 3.18.4.1.2.3.7.10: exactly one of ``entry_uuid`` / ``unique_id``."""

    query_id: ClassVar[StoredQuery] = StoredQuery.GET_SUBMISSION_SET_AND_CONTENTS
    entry_uuid: str | None = None
    unique_id: str | None = None
    format_codes: CodeQuery = ()
    confidentiality_codes: CodeQuery = ()
    entry_types: frozenset[ObjectType] = STABLE_ONLY


@dataclass(frozen=True, slots=True, kw_only=True)
class GetFolderAndContents(StoredQueryParams):
    """ITI TF-2 3.18.4.1.2.3.7.11: exactly one of ``entry_uuid`` / ``unique_id``."""

    query_id: ClassVar[StoredQuery] = StoredQuery.GET_FOLDER_AND_CONTENTS
    entry_uuid: str | None = None
    unique_id: str | None = None
    format_codes: CodeQuery = ()
    confidentiality_codes: CodeQuery = ()
    entry_types: frozenset[ObjectType] = STABLE_ONLY


@dataclass(frozen=True, slots=True, kw_only=True)
class GetFoldersForDocument(StoredQueryParams):
    """ITI TF-2 3.18.4.1.2.3.7.12: exactly one of ``entry_uuid`` / ``unique_id`` (of the document)."""

    query_id: ClassVar[StoredQuery] = StoredQuery.GET_FOLDERS_FOR_DOCUMENT
    entry_uuid: str | None = None
    unique_id: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class GetRelatedDocuments(StoredQueryParams):
    """ITI TF-2 3.18.4.1.2.3.7.13: documents related to one document by ``association_types``, both ways."""

    query_id: ClassVar[StoredQuery] = StoredQuery.GET_RELATED_DOCUMENTS
    association_types: tuple[str, ...]
    entry_uuid: str | None = None
    unique_id: str | None = None
    entry_types: frozenset[ObjectType] = STABLE_ONLY


# ---------------------------------------------------------------------------------------------
# Parameter tables
# ---------------------------------------------------------------------------------------------


class Kind(Enum):
    """How a parameter's values are coded and what they become."""

    STRING = "one string"
    NUMBER = "one number"
    TIME = "one DTM time (YYYY[MM[DD[hh[mm[ss]]]]])"
    STRINGS = "a list of strings"
    CODES = "a list of codes 'code^^scheme'"
    STATUSES = "a list of status URNs"
    ENTRY_TYPES = "a list of DocumentEntry objectType UUIDs"


_SINGLE: Final = frozenset({Kind.STRING, Kind.NUMBER, Kind.TIME})


@dataclass(frozen=True, slots=True)
class Param:
    """One parameter of one stored query: its Slot name, the dataclass field it fills, its coding."""

    name: str
    field: str
    kind: Kind
    required: bool = False
    #: May be given in several Slots, which are ANDed (ITI TF-2 3.18.4.1.2.3.5).
    and_or: bool = False


@dataclass(frozen=True, slots=True)
class QuerySpec:
    cls: type[StoredQueryParams]
    params: tuple[Param, ...]
    #: Groups of parameter names of which exactly one must be given.
    one_of: tuple[str, ...] = ()


P = Param
_COMMON: Final = (
    P("$MetadataLevel", "metadata_level", Kind.NUMBER),
    P("$homeCommunityId", "home_community_id", Kind.STRING),
)
_DE = "$XDSDocumentEntry"
_DOCUMENT_FILTERS: Final = (
    P(f"{_DE}PatientId", "patient_id", Kind.STRING, required=True),
    P(f"{_DE}ClassCode", "class_codes", Kind.CODES),
    P(f"{_DE}TypeCode", "type_codes", Kind.CODES),
    P(f"{_DE}PracticeSettingCode", "practice_setting_codes", Kind.CODES),
    P(f"{_DE}CreationTimeFrom", "creation_time_from", Kind.TIME),
    P(f"{_DE}CreationTimeTo", "creation_time_to", Kind.TIME),
    P(f"{_DE}ServiceStartTimeFrom", "service_start_time_from", Kind.TIME),
    P(f"{_DE}ServiceStartTimeTo", "service_start_time_to", Kind.TIME),
    P(f"{_DE}ServiceStopTimeFrom", "service_stop_time_from", Kind.TIME),
    P(f"{_DE}ServiceStopTimeTo", "service_stop_time_to", Kind.TIME),
    P(f"{_DE}HealthcareFacilityTypeCode", "healthcare_facility_type_codes", Kind.CODES),
    P(f"{_DE}EventCodeList", "event_codes", Kind.CODES, and_or=True),
    P(f"{_DE}ConfidentialityCode", "confidentiality_codes", Kind.CODES, and_or=True),
    P(f"{_DE}AuthorPerson", "author_persons", Kind.STRINGS),
    P(f"{_DE}FormatCode", "format_codes", Kind.CODES),
    P(f"{_DE}Status", "statuses", Kind.STATUSES, required=True),
    P(f"{_DE}Type", "entry_types", Kind.ENTRY_TYPES),
)
_CONTENT_FILTERS: Final = (
    P(f"{_DE}FormatCode", "format_codes", Kind.CODES),
    P(f"{_DE}ConfidentialityCode", "confidentiality_codes", Kind.CODES, and_or=True),
    P(f"{_DE}Type", "entry_types", Kind.ENTRY_TYPES),
)
_DOC_UUID = P(f"{_DE}EntryUUID", "entry_uuid", Kind.STRING)
_DOC_UID = P(f"{_DE}UniqueId", "unique_id", Kind.STRING)
_DOC_UUIDS = P(f"{_DE}EntryUUID", "entry_uuids", Kind.STRINGS)
_DOC_UIDS = P(f"{_DE}UniqueId", "unique_ids", Kind.STRINGS)
_DOC_LIDS = P(f"{_DE}LogicalID", "logical_ids", Kind.STRINGS)
_FOL_UUIDS = P("$XDSFolderEntryUUID", "entry_uuids", Kind.STRINGS)
_FOL_UIDS = P("$XDSFolderUniqueId", "unique_ids", Kind.STRINGS)
_FOL_LIDS = P("$XDSFolderLogicalID", "logical_ids", Kind.STRINGS)
_FOL_UUID = P("$XDSFolderEntryUUID", "entry_uuid", Kind.STRING)
_FOL_UID = P("$XDSFolderUniqueId", "unique_id", Kind.STRING)
_SS_UUID = P("$XDSSubmissionSetEntryUUID", "entry_uuid", Kind.STRING)
_SS_UID = P("$XDSSubmissionSetUniqueId", "unique_id", Kind.STRING)


def _spec(cls: type[StoredQueryParams], *params: Param, one_of: tuple[str, ...] = ()) -> QuerySpec:
    return QuerySpec(cls, (*params, *_COMMON), one_of)


def _names(*params: Param) -> tuple[str, ...]:
    return tuple(p.name for p in params)


#: Stored query id -> its parameters (ITI TF-2 3.18.4.1.2.3.7.1-14).  The dispatch table.
SPECS: Final[dict[str, QuerySpec]] = {
    StoredQuery.FIND_DOCUMENTS: _spec(FindDocuments, *_DOCUMENT_FILTERS),
    StoredQuery.FIND_DOCUMENTS_BY_REFERENCE_ID: _spec(
        FindDocumentsByReferenceId,
        *_DOCUMENT_FILTERS,
        P(f"{_DE}ReferenceIdList", "reference_ids", Kind.STRINGS, required=True, and_or=True),
    ),
    StoredQuery.FIND_SUBMISSION_SETS: _spec(
        FindSubmissionSets,
        P("$XDSSubmissionSetPatientId", "patient_id", Kind.STRING, required=True),
        P("$XDSSubmissionSetSourceId", "source_ids", Kind.STRINGS),
        P("$XDSSubmissionSetSubmissionTimeFrom", "submission_time_from", Kind.TIME),
        P("$XDSSubmissionSetSubmissionTimeTo", "submission_time_to", Kind.TIME),
        P("$XDSSubmissionSetAuthorPerson", "author_person", Kind.STRING),
        P("$XDSSubmissionSetContentType", "content_type_codes", Kind.CODES),
        P("$XDSSubmissionSetStatus", "statuses", Kind.STATUSES, required=True),
    ),
    StoredQuery.FIND_FOLDERS: _spec(
        FindFolders,
        P("$XDSFolderPatientId", "patient_id", Kind.STRING, required=True),
        P("$XDSFolderLastUpdateTimeFrom", "last_update_time_from", Kind.TIME),
        P("$XDSFolderLastUpdateTimeTo", "last_update_time_to", Kind.TIME),
        P("$XDSFolderCodeList", "codes", Kind.CODES, and_or=True),
        P("$XDSFolderStatus", "statuses", Kind.STATUSES, required=True),
    ),
    StoredQuery.GET_ALL: _spec(
        GetAll,
        P("$patientId", "patient_id", Kind.STRING, required=True),
        P(f"{_DE}Status", "document_statuses", Kind.STATUSES, required=True),
        P("$XDSSubmissionSetStatus", "submission_set_statuses", Kind.STATUSES, required=True),
        P("$XDSFolderStatus", "folder_statuses", Kind.STATUSES, required=True),
        *_CONTENT_FILTERS,
    ),
    StoredQuery.GET_DOCUMENTS: _spec(
        GetDocuments,
        _DOC_UUIDS,
        _DOC_UIDS,
        _DOC_LIDS,
        one_of=_names(_DOC_UUIDS, _DOC_UIDS, _DOC_LIDS),
    ),
    StoredQuery.GET_FOLDERS: _spec(
        GetFolders,
        _FOL_UUIDS,
        _FOL_UIDS,
        _FOL_LIDS,
        one_of=_names(_FOL_UUIDS, _FOL_UIDS, _FOL_LIDS),
    ),
    StoredQuery.GET_ASSOCIATIONS: _spec(GetAssociations, P("$uuid", "uuids", Kind.STRINGS, required=True)),
    StoredQuery.GET_DOCUMENTS_AND_ASSOCIATIONS: _spec(
        GetDocumentsAndAssociations, _DOC_UUIDS, _DOC_UIDS, one_of=_names(_DOC_UUIDS, _DOC_UIDS)
    ),
    StoredQuery.GET_SUBMISSION_SETS: _spec(
        GetSubmissionSets, P("$uuid", "uuids", Kind.STRINGS, required=True)
    ),
    StoredQuery.GET_SUBMISSION_SET_AND_CONTENTS: _spec(
        GetSubmissionSetAndContents,
        _SS_UUID,
        _SS_UID,
        *_CONTENT_FILTERS,
        one_of=_names(_SS_UUID, _SS_UID),
    ),
    StoredQuery.GET_FOLDER_AND_CONTENTS: _spec(
        GetFolderAndContents,
        _FOL_UUID,
        _FOL_UID,
        *_CONTENT_FILTERS,
        one_of=_names(_FOL_UUID, _FOL_UID),
    ),
    StoredQuery.GET_FOLDERS_FOR_DOCUMENT: _spec(
        GetFoldersForDocument, _DOC_UUID, _DOC_UID, one_of=_names(_DOC_UUID, _DOC_UID)
    ),
    StoredQuery.GET_RELATED_DOCUMENTS: _spec(
        GetRelatedDocuments,
        _DOC_UUID,
        _DOC_UID,
        P("$AssociationTypes", "association_types", Kind.STRINGS, required=True),
        # The same parameter as some clients spell it.
        P("$XDSAssociationTypes", "association_types", Kind.STRINGS),
        P(f"{_DE}Type", "entry_types", Kind.ENTRY_TYPES),
        one_of=_names(_DOC_UUID, _DOC_UID),
    ),
}


# ---------------------------------------------------------------------------------------------
# Value syntax
# ---------------------------------------------------------------------------------------------


class _Bad(Exception):
    """One problem found while reading parameters (collected into an XdsError)."""

    def __init__(self, code: ErrorCode, context: str) -> None:
        super().__init__(context)
        self.problem = Problem(code, context)


_ITEM = re.compile(r"\s*(?:'((?:[^']|'')*)'|([^\s,()']+))\s*")
_DTM = re.compile(r"\d{4}(?:\d\d){0,5}")
_INT = re.compile(r"[+-]?\d{1,9}")


def parse_value(text: str) -> list[str]:
    """The values of one rim:Value: ``'a'``, ``12``, ``('a', 'b')`` (ITI TF-2 3.18.4.1.2.3.5).

    Raises XdsError (XDSRegistryMetadataError) when the text is not of that syntax.
    """
    try:
        return _items(text)
    except _Bad as bad:
        raise XdsError([bad.problem]) from None


def _items(text: str) -> list[str]:
    body = text.strip()
    listed = body.startswith("(")
    if listed:
        if not body.endswith(")") or len(body) < 2:
            raise _Bad(ErrorCode.REGISTRY_METADATA_ERROR, f"unbalanced parentheses in {text!r}")
        body = body[1:-1]
        if not body.strip():
            raise _Bad(ErrorCode.REGISTRY_METADATA_ERROR, f"empty list {text!r}")
    items: list[str] = []
    pos = 0
    while True:
        m = _ITEM.match(body, pos)
        if m is None or m.end() == pos:
            raise _Bad(ErrorCode.REGISTRY_METADATA_ERROR, f"cannot read {body[pos:]!r} of {text!r}")
        quoted, bare = m.group(1), m.group(2)
        items.append(quoted.replace("''", "'") if quoted is not None else bare)
        pos = m.end()
        if pos == len(body):
            return items
        if not listed or body[pos] != ",":
            raise _Bad(ErrorCode.REGISTRY_METADATA_ERROR, f"unexpected {body[pos:]!r} in {text!r}")
        pos += 1


def parse_code(value: str) -> CodeValue:
    """'code^^scheme' (or 'code' alone) as a :class:`CodeValue`."""
    parts = value.split("^")
    if len(parts) == 1 and parts[0]:
        return CodeValue(parts[0])
    if len(parts) == 3 and parts[0] and parts[2]:
        return CodeValue(parts[0], parts[2])
    raise _Bad(ErrorCode.REGISTRY_METADATA_ERROR, f"code {value!r} is not of the form code^^scheme")


def time_key(dtm: str) -> str:
    """The bound to compare stored DTM strings with, for a DTM query parameter of any precision.

    A DTM stands for the first instant it covers: '2022' is 2022-01-01T00:00:00, so shorter values
    are compared as if padded with zeros.  For any stored DTM ``t``, ``pad(t) >= pad(dtm)`` exactly
    when ``t >= time_key(dtm)`` compared as plain strings, so a From parameter (inclusive) selects
    ``t >= key`` and a To parameter (exclusive) ``t < key``, and an index on the column serves both.
    """
    return dtm.rstrip("0")


# ---------------------------------------------------------------------------------------------
# Conversion
# ---------------------------------------------------------------------------------------------


def _one(param: Param, groups: list[list[str]]) -> str:
    if len(groups[0]) != 1:
        raise _Bad(ErrorCode.STORED_QUERY_PARAM_NUMBER, f"{param.name} takes one value, got {len(groups[0])}")
    value = groups[0][0]
    if not value.strip():
        raise _Bad(ErrorCode.REGISTRY_METADATA_ERROR, f"{param.name} is empty")
    return value


def _strings(param: Param, groups: list[list[str]]) -> Any:
    for value in (v for g in groups for v in g):
        if not value.strip():
            raise _Bad(ErrorCode.REGISTRY_METADATA_ERROR, f"{param.name} has an empty value")
    lists = tuple(tuple(dict.fromkeys(g)) for g in groups)
    return lists if param.and_or else lists[0]


def _number(param: Param, groups: list[list[str]]) -> int:
    value = _one(param, groups).strip()
    if not _INT.fullmatch(value):
        raise _Bad(ErrorCode.REGISTRY_METADATA_ERROR, f"{param.name} must be a number, not {value!r}")
    return int(value)


def _time(param: Param, groups: list[list[str]]) -> str:
    value = _one(param, groups).strip()
    if not _DTM.fullmatch(value):
        raise _Bad(
            ErrorCode.REGISTRY_METADATA_ERROR,
            f"{param.name} must be a DTM time YYYY[MM[DD[hh[mm[ss]]]]] (UTC), not {value!r}",
        )
    return value


def _codes(param: Param, groups: list[list[str]]) -> CodeQuery:
    return tuple(tuple(dict.fromkeys(parse_code(v.strip()) for v in g)) for g in groups)


_STATUSES: Final = {s.value: s for s in Status}
_ENTRY_TYPES: Final = {t.value: t for t in (ObjectType.STABLE_DOCUMENT, ObjectType.ON_DEMAND_DOCUMENT)}


def _statuses(param: Param, groups: list[list[str]]) -> frozenset[Status]:
    # Values the registry does not understand are ignored (ITI TF-2 3.18.4.1.2.3.6).
    return frozenset(_STATUSES[v.strip()] for v in groups[0] if v.strip() in _STATUSES)


def _entry_types(param: Param, groups: list[list[str]]) -> frozenset[ObjectType]:
    unknown = [v for v in groups[0] if v.strip() not in _ENTRY_TYPES]
    if unknown:
        raise _Bad(ErrorCode.REGISTRY_METADATA_ERROR, f"{param.name}: unknown objectType {unknown[0]!r}")
    return frozenset(_ENTRY_TYPES[v.strip()] for v in groups[0])


_CONVERTERS: Final[dict[Kind, Callable[[Param, list[list[str]]], Any]]] = {
    Kind.STRING: lambda p, g: _one(p, g).strip(),
    Kind.NUMBER: _number,
    Kind.TIME: _time,
    Kind.STRINGS: _strings,
    Kind.CODES: _codes,
    Kind.STATUSES: _statuses,
    Kind.ENTRY_TYPES: _entry_types,
}


def _lenient_single(text: str) -> list[str]:
    """A single-valued parameter whose quotes do not pair up, e.g. ``'ab''c`` (a quote left open):
    taken literally, without its opening (and closing) quote, as IPF reads such values; the value
    is only ever a bound SQL parameter, so whatever it holds is a string to compare with."""
    try:
        return _items(text)
    except _Bad:
        body = text.strip()
        if not body.startswith("'") or len(body) < 2:
            raise
        body = body[1:-1] if body.endswith("'") and not body.endswith("''") else body[1:]
        return [body.replace("''", "'")]


def _slot_values(param: Param, values: Sequence[str]) -> list[str]:
    if not values:
        raise _Bad(ErrorCode.REGISTRY_METADATA_ERROR, f"{param.name} has no value")
    if param.kind in _SINGLE and len(values) == 1:
        return _lenient_single(values[0])
    items = [item for text in values for item in _items(text)]
    if param.kind in _SINGLE and len(items) > 1:
        raise _Bad(ErrorCode.STORED_QUERY_PARAM_NUMBER, f"{param.name} takes one value, got {len(items)}")
    return items


def parse_stored_query(query_id: str, slots: Sequence[tuple[str, Sequence[str]]]) -> StoredQueryParams:
    """The typed parameters of stored query ``query_id`` given its Slots (name, Value texts)."""
    spec = SPECS.get(query_id.strip())
    if spec is None:
        raise XdsError.one(ErrorCode.UNKNOWN_STORED_QUERY, f"unknown stored query id {query_id!r}")
    by_name = {p.name.lower(): p for p in spec.params}
    problems: list[Problem] = []
    found: dict[str, list[list[str]]] = {}
    for name, values in slots:
        param = by_name.get(name.strip().lower())
        if param is None:
            continue  # ebRS 3.0 6.3.2.1: parameters the stored query does not define are ignored
        try:
            items = _slot_values(param, values)
        except _Bad as bad:
            problems.append(bad.problem)
            items = []  # reported; keeps it from also being reported missing
        found.setdefault(param.name, []).append(items)
    kwargs: dict[str, Any] = {}
    for param in spec.params:
        groups = found.get(param.name)
        if groups is None:
            if param.required and param.field not in kwargs and not _alias_given(spec, param, found):
                problems.append(Problem(ErrorCode.STORED_QUERY_MISSING_PARAM, f"{param.name} is required"))
            continue
        if len(groups) > 1 and not param.and_or:
            problems.append(
                Problem(ErrorCode.STORED_QUERY_PARAM_NUMBER, f"{param.name} is given in {len(groups)} Slots")
            )
            continue
        if not all(groups):
            continue
        if param.field in kwargs:
            problems.append(Problem(ErrorCode.STORED_QUERY_PARAM_NUMBER, f"{param.name} is given twice"))
            continue
        try:
            kwargs[param.field] = _CONVERTERS[param.kind](param, groups)
        except _Bad as bad:
            problems.append(bad.problem)
    problems.extend(_check_one_of(spec, found))
    level = kwargs.get("metadata_level", 1)
    if level not in (1, 2):
        problems.append(Problem(ErrorCode.REGISTRY_METADATA_ERROR, f"$MetadataLevel {level} is not 1 or 2"))
    if problems:
        raise XdsError(problems)
    return spec.cls(**kwargs)


def _alias_given(spec: QuerySpec, param: Param, found: dict[str, list[list[str]]]) -> bool:
    return any(p.field == param.field and p.name in found for p in spec.params)


def _check_one_of(spec: QuerySpec, found: dict[str, list[list[str]]]) -> list[Problem]:
    if not spec.one_of:
        return []
    given = [name for name in spec.one_of if name in found]
    if not given:
        return [Problem(ErrorCode.STORED_QUERY_MISSING_PARAM, f"one of {', '.join(spec.one_of)} is required")]
    if len(given) > 1:
        return [Problem(ErrorCode.STORED_QUERY_PARAM_NUMBER, f"only one of {', '.join(given)} may be given")]
    return []


# ---------------------------------------------------------------------------------------------
# The request
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class AdhocQuery:
    """What the XML edge reads from a query:AdhocQueryRequest (ebRS 3.0 6.3; ITI TF-2 3.18.4.1.2)."""

    query_id: str
    slots: tuple[tuple[str, tuple[str, ...]], ...] = ()
    return_type: str = "LeafClass"
    return_composed_objects: bool = True
    #: rim:AdhocQuery/@home
    home: str | None = None


@dataclass(frozen=True, slots=True)
class StoredQueryRequest:
    params: StoredQueryParams
    return_type: ReturnType
    return_composed_objects: bool = True
    home: str | None = None

    def communities(self) -> set[str]:
        """The homeCommunityIds the request names (AdhocQuery/@home and $homeCommunityId)."""
        named = {self.home, self.params.home_community_id}
        return {h for h in named if h}


_RETURN_TYPES: Final = {t.value: t for t in ReturnType}


def parse_request(raw: AdhocQuery) -> StoredQueryRequest:
    """Typed stored query request; raises XdsError with the ITI-18 error codes (module docstring)."""
    params = parse_stored_query(raw.query_id, raw.slots)
    return_type = _RETURN_TYPES.get(raw.return_type.strip())
    if return_type is None:
        raise XdsError.one(
            ErrorCode.REGISTRY_METADATA_ERROR,
            f"returnType {raw.return_type!r} is not supported; use LeafClass or ObjectRef",
        )
    home = raw.home.strip() if raw.home and raw.home.strip() else None
    return StoredQueryRequest(params, return_type, raw.return_composed_objects, home)
