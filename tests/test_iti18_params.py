"""ITI-18 parameter parsing (pure): value coding, cardinalities, required and either/or parameters,
and the exact error code of each kind of mistake (ITI TF-2 3.18.4.1.2.3, ITI TF-3 Table 4.2.4.1-2).
"""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.iti18_data import APPROVED, DEPRECATED, ON_DEMAND, STABLE, adhoc, error_codes, q, ql
from xds_hub.domain.query import (
    SPECS,
    CodeValue,
    FindDocuments,
    FindDocumentsByReferenceId,
    FindFolders,
    FindSubmissionSets,
    GetAll,
    GetDocuments,
    GetRelatedDocuments,
    GetSubmissionSetAndContents,
    ReturnType,
    parse_code,
    parse_request,
    parse_stored_query,
    parse_value,
    time_key,
)
from xds_hub.domain.vocabulary import ObjectType, Status, StoredQuery
from xds_hub.errors import ErrorCode, XdsError

FD = StoredQuery.FIND_DOCUMENTS
PID = "P1^^^&1.3.6.1.4.1.21367.13.20.1000&ISO"
BASE = [("$XDSDocumentEntryPatientId", q(PID)), ("$XDSDocumentEntryStatus", ql(APPROVED))]


def parse(query: StoredQuery | str, slots: list[tuple[str, str | list[str]]]) -> object:
    return parse_stored_query(str(query), [(n, [v] if isinstance(v, str) else v) for n, v in slots])


def codes_of(query: StoredQuery | str, slots: list[tuple[str, str | list[str]]]) -> list[ErrorCode]:
    with pytest.raises(XdsError) as exc:
        parse(query, slots)
    return error_codes(exc.value)


# ---------------------------------------------------------------------------------------------
# Query ids and parameter tables
# ---------------------------------------------------------------------------------------------

TF_QUERY_IDS = {
    "FIND_DOCUMENTS": "urn:uuid:14d4debf-8f97-4251-9a74-a90016b0af0d",
    "FIND_SUBMISSION_SETS": "urn:uuid:f26abbcb-ac74-4422-8a30-edb644bbc1a9",
    "FIND_FOLDERS": "urn:uuid:958f3006-baad-4929-a4de-ff1114824431",
    "GET_ALL": "urn:uuid:10b545ea-725c-446d-9b95-8aeb444eddf3",
    "GET_DOCUMENTS": "urn:uuid:5c4f972b-d56b-40ac-a5fc-c8ca9b40b9d4",
    "GET_FOLDERS": "urn:uuid:5737b14c-8a1a-4539-b659-e03a34a5e1e4",
    "GET_ASSOCIATIONS": "urn:uuid:a7ae438b-4bc2-4642-93e9-be891f7bb155",
    "GET_DOCUMENTS_AND_ASSOCIATIONS": "urn:uuid:bab9529a-4a10-40b3-a01f-f68a615d247a",
    "GET_SUBMISSION_SETS": "urn:uuid:51224314-5390-4169-9b91-b1980040715a",
    "GET_SUBMISSION_SET_AND_CONTENTS": "urn:uuid:e8e3cb2c-e39c-46b9-99e4-c12f57260b83",
    "GET_FOLDER_AND_CONTENTS": "urn:uuid:b909a503-523d-4517-8acf-8e5834dfc4c7",
    "GET_FOLDERS_FOR_DOCUMENT": "urn:uuid:10cae35a-c7f9-4cf5-b61e-fc3278ffb578",
    "GET_RELATED_DOCUMENTS": "urn:uuid:d90e5407-b356-4d91-a89f-873917b4b0e6",
    "FIND_DOCUMENTS_BY_REFERENCE_ID": "urn:uuid:12941a89-e02e-4be5-967c-ce4bfc8fe492",
}


def test_iti18_stored_query_ids_are_those_of_the_tf() -> None:
    assert {m.name: m.value for m in StoredQuery} == TF_QUERY_IDS
    assert set(SPECS) == set(StoredQuery)
    for query_id, spec in SPECS.items():
        assert spec.cls.query_id == query_id


DOC_FILTERS = {
    "$XDSDocumentEntryPatientId",
    "$XDSDocumentEntryClassCode",
    "$XDSDocumentEntryTypeCode",
    "$XDSDocumentEntryPracticeSettingCode",
    "$XDSDocumentEntryCreationTimeFrom",
    "$XDSDocumentEntryCreationTimeTo",
    "$XDSDocumentEntryServiceStartTimeFrom",
    "$XDSDocumentEntryServiceStartTimeTo",
    "$XDSDocumentEntryServiceStopTimeFrom",
    "$XDSDocumentEntryServiceStopTimeTo",
    "$XDSDocumentEntryHealthcareFacilityTypeCode",
    "$XDSDocumentEntryEventCodeList",
    "$XDSDocumentEntryConfidentialityCode",
    "$XDSDocumentEntryAuthorPerson",
    "$XDSDocumentEntryFormatCode",
    "$XDSDocumentEntryStatus",
    "$XDSDocumentEntryType",
}
CONTENTS = {"$XDSDocumentEntryFormatCode", "$XDSDocumentEntryConfidentialityCode", "$XDSDocumentEntryType"}
COMMON = {"$MetadataLevel", "$homeCommunityId"}
TF_PARAMETERS = {
    StoredQuery.FIND_DOCUMENTS: DOC_FILTERS,
    StoredQuery.FIND_DOCUMENTS_BY_REFERENCE_ID: DOC_FILTERS | {"$XDSDocumentEntryReferenceIdList"},
    StoredQuery.FIND_SUBMISSION_SETS: {
        "$XDSSubmissionSetPatientId",
        "$XDSSubmissionSetSourceId",
        "$XDSSubmissionSetSubmissionTimeFrom",
        "$XDSSubmissionSetSubmissionTimeTo",
        "$XDSSubmissionSetAuthorPerson",
        "$XDSSubmissionSetContentType",
        "$XDSSubmissionSetStatus",
    },
    StoredQuery.FIND_FOLDERS: {
        "$XDSFolderPatientId",
        "$XDSFolderLastUpdateTimeFrom",
        "$XDSFolderLastUpdateTimeTo",
        "$XDSFolderCodeList",
        "$XDSFolderStatus",
    },
    StoredQuery.GET_ALL: {
        "$patientId",
        "$XDSDocumentEntryStatus",
        "$XDSSubmissionSetStatus",
        "$XDSFolderStatus",
    }
    | CONTENTS,
    StoredQuery.GET_DOCUMENTS: {
        "$XDSDocumentEntryEntryUUID",
        "$XDSDocumentEntryUniqueId",
        "$XDSDocumentEntryLogicalID",
    },
    StoredQuery.GET_FOLDERS: {"$XDSFolderEntryUUID", "$XDSFolderUniqueId", "$XDSFolderLogicalID"},
    StoredQuery.GET_ASSOCIATIONS: {"$uuid"},
    StoredQuery.GET_DOCUMENTS_AND_ASSOCIATIONS: {"$XDSDocumentEntryEntryUUID", "$XDSDocumentEntryUniqueId"},
    StoredQuery.GET_SUBMISSION_SETS: {"$uuid"},
    StoredQuery.GET_SUBMISSION_SET_AND_CONTENTS: {"$XDSSubmissionSetEntryUUID", "$XDSSubmissionSetUniqueId"}
    | CONTENTS,
    StoredQuery.GET_FOLDER_AND_CONTENTS: {"$XDSFolderEntryUUID", "$XDSFolderUniqueId"} | CONTENTS,
    StoredQuery.GET_FOLDERS_FOR_DOCUMENT: {"$XDSDocumentEntryEntryUUID", "$XDSDocumentEntryUniqueId"},
    StoredQuery.GET_RELATED_DOCUMENTS: {
        "$XDSDocumentEntryEntryUUID",
        "$XDSDocumentEntryUniqueId",
        "$AssociationTypes",
        "$XDSAssociationTypes",
        "$XDSDocumentEntryType",
    },
}


@pytest.mark.parametrize("query", list(StoredQuery), ids=lambda s: s.name)
def test_iti18_every_query_takes_the_parameters_of_its_tf_table(query: StoredQuery) -> None:
    assert {p.name for p in SPECS[query].params} == TF_PARAMETERS[query] | COMMON


def test_iti18_rejects_unknown_stored_query_id() -> None:
    assert codes_of("urn:uuid:00000000-0000-0000-0000-000000000000", BASE) == [ErrorCode.UNKNOWN_STORED_QUERY]


# ---------------------------------------------------------------------------------------------
# Value syntax
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "values"),
    [
        ("'a'", ["a"]),
        ("  'a b'  ", ["a b"]),
        ("'O''Brien'", ["O'Brien"]),
        ("''''", ["'"]),
        ("('a','b')", ["a", "b"]),
        ("( 'a' , 'b,c' ,'(d)' )", ["a", "b,c", "(d)"]),
        ("20041225", ["20041225"]),
        ("(1, 2)", ["1", "2"]),
        ("urn:oasis:names:tc:ebxml-regrep:StatusType:Approved", [APPROVED]),
        (
            "'593603^^^&2.16.756.5.33.2.5.1.5.1&ISO''%20and%20611%3d611--%20'",
            ["593603^^^&2.16.756.5.33.2.5.1.5.1&ISO'%20and%20611%3d611--%20"],
        ),
    ],
)
def test_iti18_value_syntax(text: str, values: list[str]) -> None:
    assert parse_value(text) == values


@pytest.mark.parametrize(
    "text", ["", "   ", "'a", "a'", "('a'", "'a')", "()", "( )", "('a' 'b')", "('a',)", "'a','b'", "'a' x"]
)
def test_iti18_malformed_value_is_metadata_error(text: str) -> None:
    with pytest.raises(XdsError) as exc:
        parse_value(text)
    assert error_codes(exc.value) == [ErrorCode.REGISTRY_METADATA_ERROR]


@given(st.text(alphabet=st.sampled_from("'(), ab^&%_1\\\"\n"), max_size=30))
def test_iti18_value_parser_returns_values_or_raises_xds_error(text: str) -> None:
    try:
        values = parse_value(text)
    except XdsError as exc:
        assert error_codes(exc)[0] is ErrorCode.REGISTRY_METADATA_ERROR
    else:
        assert isinstance(values, list) and values


@settings(max_examples=200)
@given(
    st.sampled_from([*SPECS, "urn:uuid:bad"]),
    st.lists(
        st.tuples(
            st.sampled_from(sorted({p.name for s in SPECS.values() for p in s.params} | {"$other"})),
            st.lists(st.text(alphabet=st.sampled_from("'(),a1^:U-"), max_size=12), max_size=3),
        ),
        max_size=6,
    ),
)
def test_iti18_parameter_parser_returns_params_or_raises_xds_error(
    query_id: str, slots: list[tuple[str, list[str]]]
) -> None:
    try:
        parse_stored_query(query_id, slots)
    except XdsError as exc:
        assert exc.problems


def test_iti18_code_values() -> None:
    assert parse_code("34108-1^^2.16.840.1.113883.6.1") == CodeValue("34108-1", "2.16.840.1.113883.6.1")
    assert parse_code("34108-1^Outpatient Note^LOINC") == CodeValue("34108-1", "LOINC")
    assert parse_code("REPORTS") == CodeValue("REPORTS")


@pytest.mark.parametrize("value", ["c^s", "^^s", "c^^", "c^^s^x", ""])
def test_iti18_rejects_malformed_code(value: str) -> None:
    slots = [*BASE, ("$XDSDocumentEntryClassCode", ql(value))]
    assert codes_of(FD, slots) == [ErrorCode.REGISTRY_METADATA_ERROR]


# ---------------------------------------------------------------------------------------------
# Cardinalities and required parameters
# ---------------------------------------------------------------------------------------------


def test_iti18_find_documents_parses_every_parameter() -> None:
    slots = [
        *BASE,
        ("$XDSDocumentEntryClassCode", ql("C1^^S1", "C2^^S2")),
        ("$XDSDocumentEntryTypeCode", ql("T^^S")),
        ("$XDSDocumentEntryPracticeSettingCode", ql("P^^S")),
        ("$XDSDocumentEntryHealthcareFacilityTypeCode", ql("H^^S")),
        ("$XDSDocumentEntryFormatCode", ql("F^^S")),
        ("$XDSDocumentEntryCreationTimeFrom", "200412252300"),
        ("$XDSDocumentEntryCreationTimeTo", q("20050101")),
        ("$XDSDocumentEntryServiceStartTimeFrom", "2004"),
        ("$XDSDocumentEntryServiceStartTimeTo", "2005"),
        ("$XDSDocumentEntryServiceStopTimeFrom", "200401"),
        ("$XDSDocumentEntryServiceStopTimeTo", "20050102030405"),
        ("$XDSDocumentEntryEventCodeList", ql("E1^^S", "E2^^S")),
        ("$XDSDocumentEntryEventCodeList", ql("E3^^S")),
        ("$XDSDocumentEntryConfidentialityCode", [ql("N^^S"), ql("R^^S")]),
        ("$XDSDocumentEntryAuthorPerson", ql("%Smith%", "Jo_n%")),
        ("$XDSDocumentEntryType", ql(STABLE, ON_DEMAND)),
        ("$MetadataLevel", "2"),
    ]
    fd = parse(FD, slots)
    assert isinstance(fd, FindDocuments)
    assert fd.patient_id == PID and fd.statuses == {Status.APPROVED}
    assert fd.class_codes == ((CodeValue("C1", "S1"), CodeValue("C2", "S2")),)
    assert fd.event_codes == ((CodeValue("E1", "S"), CodeValue("E2", "S")), (CodeValue("E3", "S"),))
    # Two Value elements of one Slot are one OR list.
    assert fd.confidentiality_codes == ((CodeValue("N", "S"), CodeValue("R", "S")),)
    assert (fd.creation_time_from, fd.creation_time_to) == ("200412252300", "20050101")
    assert (fd.service_start_time_from, fd.service_stop_time_to) == ("2004", "20050102030405")
    assert fd.author_persons == ("%Smith%", "Jo_n%")
    assert fd.entry_types == {ObjectType.STABLE_DOCUMENT, ObjectType.ON_DEMAND_DOCUMENT}
    assert fd.metadata_level == 2


def test_iti18_find_documents_defaults() -> None:
    fd = parse(FD, BASE)
    assert isinstance(fd, FindDocuments)
    assert fd.entry_types == {ObjectType.STABLE_DOCUMENT}  # ITI TF-2 3.18.4.1.2.5
    assert fd.metadata_level == 1 and fd.class_codes == () and fd.creation_time_from is None


@pytest.mark.parametrize("missing", ["$XDSDocumentEntryPatientId", "$XDSDocumentEntryStatus"])
def test_iti18_find_documents_requires_patient_and_status(missing: str) -> None:
    slots = [s for s in BASE if s[0] != missing]
    assert codes_of(FD, slots) == [ErrorCode.STORED_QUERY_MISSING_PARAM]


def test_iti18_reports_every_missing_parameter() -> None:
    assert (
        codes_of(StoredQuery.GET_ALL, [("$patientId", q(PID))]) == [ErrorCode.STORED_QUERY_MISSING_PARAM] * 3
    )


@pytest.mark.parametrize(
    "extra",
    [
        [("$XDSDocumentEntryPatientId", q(PID))],  # a second Slot
        [("$XDSDocumentEntryClassCode", ql("a")), ("$XDSDocumentEntryClassCode", ql("b"))],
        [("$XDSDocumentEntryStatus", ql(DEPRECATED))],
        [("$XDSDocumentEntryCreationTimeFrom", "(2004, 2005)")],
        [("$XDSDocumentEntryCreationTimeFrom", ["2004", "2005"])],  # two Value elements
        [("$MetadataLevel", ["1", "2"])],
    ],
)
def test_iti18_single_valued_or_repeated_parameter_is_param_number(
    extra: list[tuple[str, str | list[str]]],
) -> None:
    assert codes_of(FD, [*BASE, *extra]) == [ErrorCode.STORED_QUERY_PARAM_NUMBER]


def test_iti18_patient_id_list_is_param_number() -> None:
    slots = [
        ("$XDSDocumentEntryPatientId", ql(PID, "P2^^^&1.2&ISO")),
        ("$XDSDocumentEntryStatus", ql(APPROVED)),
    ]
    assert codes_of(FD, slots) == [ErrorCode.STORED_QUERY_PARAM_NUMBER]


def test_iti18_single_value_in_parentheses_is_accepted() -> None:
    fd = parse(FD, [("$XDSDocumentEntryPatientId", f"({q(PID)})"), ("$XDSDocumentEntryStatus", q(APPROVED))])
    assert isinstance(fd, FindDocuments) and fd.patient_id == PID and fd.statuses == {Status.APPROVED}


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("$XDSDocumentEntryCreationTimeFrom", "20201"),
        ("$XDSDocumentEntryCreationTimeTo", q("2020-01-01")),
        ("$XDSDocumentEntryServiceStartTimeFrom", "'yesterday'"),
        ("$XDSDocumentEntryServiceStopTimeTo", "2020010112000000"),
        ("$MetadataLevel", "3"),
        ("$MetadataLevel", "'one'"),
        ("$XDSDocumentEntryType", ql("urn:uuid:00000000-0000-0000-0000-000000000000")),
        ("$XDSDocumentEntryAuthorPerson", ql("")),
    ],
)
def test_iti18_malformed_parameter_value_is_metadata_error(name: str, value: str) -> None:
    assert codes_of(FD, [*BASE, (name, value)]) == [ErrorCode.REGISTRY_METADATA_ERROR]


def test_iti18_single_string_with_an_open_quote_is_taken_literally() -> None:
    """The public sample iti18request.xml carries an SQL-injection attempt in the patient ID."""
    value = "'593603^^^&2.16.756.5.33.2.5.1.5.1&ISO''%20and%20611%3d611--%20"
    fd = parse(FD, [("$XDSDocumentEntryPatientId", value), ("$XDSDocumentEntryStatus", ql(APPROVED))])
    assert isinstance(fd, FindDocuments)
    assert fd.patient_id == "593603^^^&2.16.756.5.33.2.5.1.5.1&ISO'%20and%20611%3d611--%20"
    fd = parse(FD, [*BASE, ("$XDSDocumentEntryCreationTimeFrom", "'2020")])
    assert isinstance(fd, FindDocuments) and fd.creation_time_from == "2020"
    assert codes_of(FD, [*BASE, ("$XDSDocumentEntryCreationTimeFrom", "'")]) == [
        ErrorCode.REGISTRY_METADATA_ERROR
    ]


def test_iti18_unknown_status_values_are_ignored() -> None:
    fd = parse(
        FD,
        [("$XDSDocumentEntryPatientId", q(PID)), ("$XDSDocumentEntryStatus", ql("Approved", APPROVED, "x"))],
    )
    assert isinstance(fd, FindDocuments) and fd.statuses == {Status.APPROVED}
    fd = parse(FD, [("$XDSDocumentEntryPatientId", q(PID)), ("$XDSDocumentEntryStatus", ql("Approved"))])
    assert isinstance(fd, FindDocuments) and fd.statuses == frozenset()


def test_iti18_unknown_parameters_are_ignored_and_names_are_case_insensitive() -> None:
    fd = parse(
        FD,
        [("$XDSDocumentEntryPatientID", q(PID)), ("$xdsdocumententrystatus", ql(APPROVED)), ("$Foo", "'x'")],
    )
    assert isinstance(fd, FindDocuments) and fd.patient_id == PID


def test_iti18_find_documents_by_reference_id_requires_reference_ids() -> None:
    query = StoredQuery.FIND_DOCUMENTS_BY_REFERENCE_ID
    assert codes_of(query, BASE) == [ErrorCode.STORED_QUERY_MISSING_PARAM]
    ref = "A1^^^&1.2.3&ISO^urn:ihe:iti:xds:2013:accession"
    fd = parse(
        query,
        [
            *BASE,
            ("$XDSDocumentEntryReferenceIdList", ql(ref, "B")),
            ("$XDSDocumentEntryReferenceIdList", ql("C")),
        ],
    )
    assert isinstance(fd, FindDocumentsByReferenceId)
    assert fd.reference_ids == ((ref, "B"), ("C",))


def test_iti18_find_submission_sets_and_folders() -> None:
    fss = parse(
        StoredQuery.FIND_SUBMISSION_SETS,
        [
            ("$XDSSubmissionSetPatientId", q(PID)),
            ("$XDSSubmissionSetStatus", ql(APPROVED)),
            ("$XDSSubmissionSetSourceId", ql("1.2.3", "1.2.4")),
            ("$XDSSubmissionSetAuthorPerson", q("%Smitty%")),
            ("$XDSSubmissionSetContentType", ql("CT^^S")),
            ("$XDSSubmissionSetSubmissionTimeFrom", "2004"),
        ],
    )
    assert isinstance(fss, FindSubmissionSets)
    assert fss.source_ids == ("1.2.3", "1.2.4") and fss.author_person == "%Smitty%"
    assert codes_of(
        StoredQuery.FIND_SUBMISSION_SETS,
        [
            ("$XDSSubmissionSetPatientId", q(PID)),
            ("$XDSSubmissionSetStatus", ql(APPROVED)),
            ("$XDSSubmissionSetAuthorPerson", ql("a", "b")),
        ],
    ) == [ErrorCode.STORED_QUERY_PARAM_NUMBER]
    ff = parse(
        StoredQuery.FIND_FOLDERS,
        [
            ("$XDSFolderPatientId", q(PID)),
            ("$XDSFolderStatus", ql(APPROVED, DEPRECATED)),
            ("$XDSFolderCodeList", ql("a^^S")),
            ("$XDSFolderCodeList", ql("b^^S")),
            ("$XDSFolderLastUpdateTimeTo", "20301231"),
        ],
    )
    assert isinstance(ff, FindFolders)
    assert ff.codes == ((CodeValue("a", "S"),), (CodeValue("b", "S"),))
    assert ff.statuses == {Status.APPROVED, Status.DEPRECATED}


def test_iti18_get_all() -> None:
    ga = parse(
        StoredQuery.GET_ALL,
        [
            ("$patientId", q(PID)),
            ("$XDSDocumentEntryStatus", ql(APPROVED)),
            ("$XDSSubmissionSetStatus", ql(APPROVED)),
            ("$XDSFolderStatus", ql(APPROVED, DEPRECATED)),
            ("$XDSDocumentEntryConfidentialityCode", ql("N^^S")),
            ("$XDSDocumentEntryConfidentialityCode", ql("R^^S")),
        ],
    )
    assert isinstance(ga, GetAll) and len(ga.confidentiality_codes) == 2


@pytest.mark.parametrize(
    ("query", "one_of"),
    [
        (
            StoredQuery.GET_DOCUMENTS,
            ["$XDSDocumentEntryEntryUUID", "$XDSDocumentEntryUniqueId", "$XDSDocumentEntryLogicalID"],
        ),
        (StoredQuery.GET_FOLDERS, ["$XDSFolderEntryUUID", "$XDSFolderUniqueId", "$XDSFolderLogicalID"]),
        (
            StoredQuery.GET_DOCUMENTS_AND_ASSOCIATIONS,
            ["$XDSDocumentEntryEntryUUID", "$XDSDocumentEntryUniqueId"],
        ),
        (
            StoredQuery.GET_SUBMISSION_SET_AND_CONTENTS,
            ["$XDSSubmissionSetEntryUUID", "$XDSSubmissionSetUniqueId"],
        ),
        (StoredQuery.GET_FOLDER_AND_CONTENTS, ["$XDSFolderEntryUUID", "$XDSFolderUniqueId"]),
        (StoredQuery.GET_FOLDERS_FOR_DOCUMENT, ["$XDSDocumentEntryEntryUUID", "$XDSDocumentEntryUniqueId"]),
        (StoredQuery.GET_RELATED_DOCUMENTS, ["$XDSDocumentEntryEntryUUID", "$XDSDocumentEntryUniqueId"]),
    ],
)
def test_iti18_either_or_parameters(query: StoredQuery, one_of: list[str]) -> None:
    extra = [("$AssociationTypes", ql("urn:ihe:iti:2007:AssociationType:RPLC"))]
    extra = extra if query is StoredQuery.GET_RELATED_DOCUMENTS else []
    assert codes_of(query, extra) == [ErrorCode.STORED_QUERY_MISSING_PARAM]
    assert codes_of(query, [*extra, *((n, ql("x")) for n in one_of[:2])]) == [
        ErrorCode.STORED_QUERY_PARAM_NUMBER
    ]
    for name in one_of:
        parse(query, [*extra, (name, ql("urn:uuid:1"))])


def test_iti18_get_documents_takes_lists_and_contents_queries_one_id() -> None:
    gd = parse(StoredQuery.GET_DOCUMENTS, [("$XDSDocumentEntryEntryUUID", ql("urn:uuid:1", "urn:uuid:2"))])
    assert isinstance(gd, GetDocuments) and gd.entry_uuids == ("urn:uuid:1", "urn:uuid:2")
    slots: list[tuple[str, str | list[str]]] = [
        ("$XDSSubmissionSetEntryUUID", ql("urn:uuid:1", "urn:uuid:2"))
    ]
    assert codes_of(StoredQuery.GET_SUBMISSION_SET_AND_CONTENTS, slots) == [
        ErrorCode.STORED_QUERY_PARAM_NUMBER
    ]
    gssc = parse(StoredQuery.GET_SUBMISSION_SET_AND_CONTENTS, [("$XDSSubmissionSetUniqueId", q("1.2.3"))])
    assert isinstance(gssc, GetSubmissionSetAndContents) and gssc.unique_id == "1.2.3"


def test_iti18_get_related_documents_association_types() -> None:
    query = StoredQuery.GET_RELATED_DOCUMENTS
    assert codes_of(query, [("$XDSDocumentEntryEntryUUID", q("urn:uuid:1"))]) == [
        ErrorCode.STORED_QUERY_MISSING_PARAM
    ]
    for name in ("$AssociationTypes", "$XDSAssociationTypes"):
        grd = parse(
            query,
            [
                ("$XDSDocumentEntryEntryUUID", q("urn:uuid:1")),
                (name, ql("urn:ihe:iti:2007:AssociationType:RPLC")),
            ],
        )
        assert isinstance(grd, GetRelatedDocuments) and grd.association_types == (
            "urn:ihe:iti:2007:AssociationType:RPLC",
        )


@pytest.mark.parametrize("query", [StoredQuery.GET_ASSOCIATIONS, StoredQuery.GET_SUBMISSION_SETS])
def test_iti18_uuid_parameter_is_required(query: StoredQuery) -> None:
    assert codes_of(query, []) == [ErrorCode.STORED_QUERY_MISSING_PARAM]
    parse(query, [("$uuid", ql("urn:uuid:1", "urn:uuid:2"))])


def test_iti18_request_return_type_and_home() -> None:
    req = parse_request(adhoc(FD, BASE, "ObjectRef", home="urn:oid:1.2.3"))
    assert req.return_type is ReturnType.OBJECT_REF and req.communities() == {"urn:oid:1.2.3"}
    req = parse_request(adhoc(FD, [*BASE, ("$homeCommunityId", q("urn:oid:9"))]))
    assert req.return_type is ReturnType.LEAF_CLASS and req.communities() == {"urn:oid:9"}
    for bad in ("RegistryObject", "LeafClassWithRepositoryItem", ""):
        with pytest.raises(XdsError) as exc:
            parse_request(adhoc(FD, BASE, bad))
        assert error_codes(exc.value) == [ErrorCode.REGISTRY_METADATA_ERROR]


# ---------------------------------------------------------------------------------------------
# Time ranges
# ---------------------------------------------------------------------------------------------

dtm = st.builds(
    lambda digits, n: digits[: 4 + 2 * n],
    st.from_regex(r"[12]\d{3}(0[1-9]|1[0-2])(0[1-9]|[12]\d)([01]\d|2[0-3])[0-5]\d[0-5]\d", fullmatch=True),
    st.integers(0, 5),
)


@given(dtm, dtm)
def test_iti18_time_key_compares_as_zero_padded_dtm(stored: str, bound: str) -> None:
    padded = stored.ljust(14, "0") >= bound.ljust(14, "0")
    assert (stored >= time_key(bound)) == padded
    assert (stored < time_key(bound)) == (not padded)
