"""validate_submission: ITI-42 / ITI-41 metadata rules (ITI TF-2 3.42.4.1.3, 3.41.4.1.3; ITI TF-3 4.2).

IPF style: start from a known-good submission, change one field, expect exactly one problem with
this exact error code, located at the object that is wrong.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace

import pytest

from tests.metadata_samples import (
    DOC_ID,
    FOLDER_ID,
    OTHER_PATIENT,
    SS_ID,
    good_submission,
    has_member,
    with_document,
    with_folder,
    with_submission_set,
)
from xds_hub.config import AffinityDomain, CodeEntry
from xds_hub.domain.metadata import Association, Author, Code, Slot, Submission
from xds_hub.domain.validate import code_allowed, is_uuid_urn, validate_submission
from xds_hub.domain.vocabulary import AssociationType, ObjectType, Status
from xds_hub.errors import ErrorCode, Problem, XdsError

DOMAIN = AffinityDomain()
META = ErrorCode.REGISTRY_METADATA_ERROR
EXISTING = "urn:uuid:e0985823-dc50-45a5-a6c8-a11a829893bd"
OTHER_EXISTING = "urn:uuid:7d3ab1e4-2b9c-4c8e-9f5a-6a1c2d3e4f50"


def problems_of(sub: Submission, *, for_repository: bool = False, **kwargs: object) -> list[Problem]:
    try:
        validate_submission(sub, DOMAIN, for_repository=for_repository, **kwargs)  # type: ignore[arg-type]
    except XdsError as exc:
        return list(exc.problems)
    return []


def with_association(sub: Submission, assoc: Association) -> Submission:
    return replace(sub, associations=(*sub.associations, assoc))


def repo(sub: Submission) -> Submission:
    return replace(sub, document_refs={DOC_ID: "part1@example.org"})


Mutation = Callable[[Submission], Submission]

ONE_PROBLEM: list[tuple[str, Mutation, ErrorCode, str]] = [
    # one patient per submission
    (
        "doc_patient",
        lambda s: with_document(s, patient_id=OTHER_PATIENT),
        ErrorCode.PATIENT_ID_DOES_NOT_MATCH,
        DOC_ID,
    ),
    (
        "folder_patient",
        lambda s: with_folder(s, patient_id=OTHER_PATIENT),
        ErrorCode.PATIENT_ID_DOES_NOT_MATCH,
        FOLDER_ID,
    ),
    # uniqueIds
    (
        "dup_unique_id",
        lambda s: with_document(s, unique_id=s.submission_set.unique_id),
        ErrorCode.REGISTRY_DUPLICATE_UNIQUE_ID_IN_MESSAGE,
        DOC_ID,
    ),
    (
        "dup_unique_id_folder",
        lambda s: with_folder(s, unique_id=s.documents[0].unique_id),
        ErrorCode.REGISTRY_DUPLICATE_UNIQUE_ID_IN_MESSAGE,
        FOLDER_ID,
    ),
    ("doc_unique_id_not_oid", lambda s: with_document(s, unique_id="abc"), META, DOC_ID),
    ("doc_unique_id_empty_ext", lambda s: with_document(s, unique_id="1.2.3^"), META, DOC_ID),
    ("doc_unique_id_long_ext", lambda s: with_document(s, unique_id="1.2.3^" + "x" * 17), META, DOC_ID),
    ("doc_unique_id_long_root", lambda s: with_document(s, unique_id="1." + "2" * 63), META, DOC_ID),
    ("ss_unique_id_ext", lambda s: with_submission_set(s, unique_id="1.2.3^ext"), META, SS_ID),
    ("folder_unique_id", lambda s: with_folder(s, unique_id="folder-1"), META, FOLDER_ID),
    # DocumentEntry required attributes and data types
    ("no_class_code", lambda s: with_document(s, class_code=None), META, DOC_ID),
    ("no_type_code", lambda s: with_document(s, type_code=None), META, DOC_ID),
    ("no_format_code", lambda s: with_document(s, format_code=None), META, DOC_ID),
    ("no_hcft_code", lambda s: with_document(s, healthcare_facility_type_code=None), META, DOC_ID),
    ("no_practice_code", lambda s: with_document(s, practice_setting_code=None), META, DOC_ID),
    ("no_confidentiality", lambda s: with_document(s, confidentiality_codes=()), META, DOC_ID),
    ("code_without_scheme", lambda s: with_document(s, class_code=Code("X", "")), META, DOC_ID),
    ("no_creation_time", lambda s: with_document(s, creation_time=None), META, DOC_ID),
    ("creation_time_7_digits", lambda s: with_document(s, creation_time="2005122"), META, DOC_ID),
    ("creation_time_month_13", lambda s: with_document(s, creation_time="20051324"), META, DOC_ID),
    ("creation_time_tz", lambda s: with_document(s, creation_time="20051224101010+0100"), META, DOC_ID),
    ("service_start_after_stop", lambda s: with_document(s, service_start_time="200501"), META, DOC_ID),
    ("no_language", lambda s: with_document(s, language_code=None), META, DOC_ID),
    ("bad_language", lambda s: with_document(s, language_code="en_US"), META, DOC_ID),
    ("no_mime_type", lambda s: with_document(s, mime_type=""), META, DOC_ID),
    ("bad_mime_type", lambda s: with_document(s, mime_type="text"), META, DOC_ID),
    ("no_hash", lambda s: with_document(s, hash=None), META, DOC_ID),
    ("bad_hash", lambda s: with_document(s, hash="xyz"), META, DOC_ID),
    ("no_size", lambda s: with_document(s, size=None), META, DOC_ID),
    ("negative_size", lambda s: with_document(s, size=-1), META, DOC_ID),
    ("no_repository", lambda s: with_document(s, repository_unique_id=None), META, DOC_ID),
    ("bad_repository", lambda s: with_document(s, repository_unique_id="repo"), META, DOC_ID),
    ("no_source_patient_id", lambda s: with_document(s, source_patient_id=None), META, DOC_ID),
    ("source_patient_id_no_iso", lambda s: with_document(s, source_patient_id="X^^^&1.2.3&L"), META, DOC_ID),
    (
        "source_patient_id_namespace",
        lambda s: with_document(s, source_patient_id="X^^^NS&1.2.3&ISO"),
        META,
        DOC_ID,
    ),
    ("source_patient_id_cx2", lambda s: with_document(s, source_patient_id="X^1^^&1.2.3&ISO"), META, DOC_ID),
    ("source_patient_info_pid2", lambda s: with_document(s, source_patient_info=("PID-2|x",)), META, DOC_ID),
    ("source_patient_info_form", lambda s: with_document(s, source_patient_info=("Doe^John",)), META, DOC_ID),
    ("legal_authenticator", lambda s: with_document(s, legal_authenticator="^^John"), META, DOC_ID),
    (
        "legal_authenticator_aa",
        lambda s: with_document(s, legal_authenticator="1^Doe^^^^^^^&1.2&L"),
        META,
        DOC_ID,
    ),
    ("reference_id_no_type", lambda s: with_document(s, reference_ids=("A1^^^&1.2.3&ISO",)), META, DOC_ID),
    ("availability", lambda s: with_document(s, document_availability="Online"), META, DOC_ID),
    ("title_too_long", lambda s: with_document(s, title="t" * 129), META, DOC_ID),
    (
        "slot_value_too_long",
        lambda s: with_document(s, extra_slots=(Slot("urn:x", ("v" * 257,)),)),
        META,
        DOC_ID,
    ),
    ("home_community", lambda s: with_document(s, home_community_id="1.2.3"), META, DOC_ID),
    ("limited_metadata", lambda s: with_document(s, limited_metadata=True), META, DOC_ID),
    ("lid_differs", lambda s: with_document(s, logical_id=EXISTING), META, DOC_ID),
    (
        "on_demand",
        lambda s: with_document(
            s,
            object_type=ObjectType.ON_DEMAND_DOCUMENT,
            hash=None,
            size=None,
            creation_time=None,
            legal_authenticator=None,
        ),
        META,
        DOC_ID,
    ),
    # authors
    ("empty_author", lambda s: with_document(s, authors=(Author(roles=("Attending",)),)), META, DOC_ID),
    (
        "author_institution_id",
        lambda s: with_document(s, authors=(Author(institutions=("H^^^^^^^^^x1",)),)),
        META,
        DOC_ID,
    ),
    (
        "author_institution_name",
        lambda s: with_document(s, authors=(Author(institutions=("^^^^^^^^^1.2",)),)),
        META,
        DOC_ID,
    ),
    ("author_telecom", lambda s: with_document(s, authors=(Author(telecoms=("^^Internet",)),)), META, DOC_ID),
    (
        "author_telecom_type",
        lambda s: with_document(s, authors=(Author(telecoms=("^^Pigeon^x",)),)),
        META,
        DOC_ID,
    ),
    ("author_person", lambda s: with_submission_set(s, authors=(Author(person="^^Sherry"),)), META, SS_ID),
    # SubmissionSet
    ("ss_source_id", lambda s: with_submission_set(s, source_id="3670984664"), META, SS_ID),
    ("ss_no_submission_time", lambda s: with_submission_set(s, submission_time=None), META, SS_ID),
    ("ss_bad_submission_time", lambda s: with_submission_set(s, submission_time="2004-12-25"), META, SS_ID),
    ("ss_no_content_type", lambda s: with_submission_set(s, content_type_code=None), META, SS_ID),
    ("ss_recipient", lambda s: with_submission_set(s, intended_recipients=("||",)), META, SS_ID),
    ("ss_recipient_telecom", lambda s: with_submission_set(s, intended_recipients=("||^^PH",)), META, SS_ID),
    # Folder
    ("folder_no_codes", lambda s: with_folder(s, codes=()), META, FOLDER_ID),
    ("folder_no_title", lambda s: with_folder(s, title=None), META, FOLDER_ID),
    ("folder_last_update", lambda s: with_folder(s, last_update_time="yesterday"), META, FOLDER_ID),
    # associations
    ("not_member", lambda s: replace(s, associations=s.associations[1:]), META, DOC_ID),
    (
        "folder_not_member",
        lambda s: replace(s, associations=(s.associations[0], *s.associations[2:])),
        META,
        FOLDER_ID,
    ),
    (
        "ss_status_missing",
        lambda s: replace(s, associations=(has_member("as01", SS_ID, DOC_ID), *s.associations[1:])),
        META,
        "as01",
    ),
    (
        "ss_status_reference",
        lambda s: replace(
            s, associations=(has_member("as01", SS_ID, DOC_ID, "Reference"), *s.associations[1:])
        ),
        META,
        "as01",
    ),
    (
        "ss_status_bogus",
        lambda s: replace(s, associations=(has_member("as01", SS_ID, DOC_ID, "Bogus"), *s.associations[1:])),
        META,
        "as01",
    ),
    (
        "ss_status_original_outside",
        lambda s: with_association(s, has_member("as09", SS_ID, EXISTING, "Original")),
        META,
        "as09",
    ),
    (
        "has_member_from_doc",
        lambda s: with_association(s, has_member("as09", DOC_ID, EXISTING)),
        META,
        "as09",
    ),
    (
        "folder_holds_folder",
        lambda s: with_association(s, has_member("as09", EXISTING, FOLDER_ID)),
        META,
        "as09",
    ),
    (
        "unresolved_target",
        lambda s: with_association(s, has_member("as09", SS_ID, "Nowhere", "Reference")),
        META,
        "as09",
    ),
    (
        "self_association",
        lambda s: with_association(s, Association("as09", AssociationType.APND, DOC_ID, DOC_ID)),
        META,
        "as09",
    ),
    (
        "rplc_source_outside",
        lambda s: with_association(s, Association("as09", AssociationType.RPLC, EXISTING, OTHER_EXISTING)),
        META,
        "as09",
    ),
    (
        "rplc_target_in_message",
        lambda s: with_association(s, Association("as09", AssociationType.RPLC, DOC_ID, FOLDER_ID)),
        META,
        "as09",
    ),
    (
        "xfrm_rplc_target_new_doc",
        lambda s: replace(
            s,
            documents=(*s.documents, replace(s.documents[0], entry_uuid="Doc2", unique_id="1.2.3.100.1.9")),
            associations=(
                *s.associations,
                has_member("as08", SS_ID, "Doc2", "Original"),
                Association("as09", AssociationType.XFRM_RPLC, DOC_ID, "Doc2"),
            ),
        ),
        META,
        "as09",
    ),
    (
        "update_only_type",
        lambda s: with_association(
            s, Association("as09", AssociationType.UPDATE_AVAILABILITY_STATUS, SS_ID, EXISTING)
        ),
        META,
        "as09",
    ),
    (
        "documentation_on_has_member",
        lambda s: with_association(
            s,
            replace(
                has_member("as09", SS_ID, EXISTING, "Reference"), extra_classifications=(Code("a", "b"),)
            ),
        ),
        META,
        "as09",
    ),
    ("duplicate_id", lambda s: with_association(s, has_member("as02", SS_ID, FOLDER_ID)), META, "as02"),
]


@pytest.mark.parametrize(
    ("mutate", "code", "location"),
    [pytest.param(m, c, loc, id=name) for name, m, c, loc in ONE_PROBLEM],
)
def test_iti42_rejects_one_broken_field_with_exactly_one_problem(
    mutate: Mutation, code: ErrorCode, location: str
) -> None:
    problems = problems_of(mutate(good_submission()))
    assert [(p.code, p.location) for p in problems] == [(code, location)], problems
    assert problems[0].context


def test_iti42_accepts_the_known_good_submission() -> None:
    assert problems_of(good_submission()) == []


def test_iti41_accepts_the_known_good_submission_without_hash_size_repository() -> None:
    sub = with_document(repo(good_submission()), hash=None, size=None, repository_unique_id=None)
    assert problems_of(sub, for_repository=True) == []


def test_iti41_duplicate_unique_id_uses_the_repository_code() -> None:
    sub = with_document(repo(good_submission()), unique_id=good_submission().folders[0].unique_id)
    problems = problems_of(sub, for_repository=True)
    assert [(p.code, p.location) for p in problems] == [
        (ErrorCode.REPOSITORY_DUPLICATE_UNIQUE_ID_IN_MESSAGE, FOLDER_ID)
    ]


def test_iti41_bad_hash_is_a_repository_metadata_error() -> None:
    problems = problems_of(with_document(repo(good_submission()), hash="12"), for_repository=True)
    assert [(p.code, p.location) for p in problems] == [(ErrorCode.REPOSITORY_METADATA_ERROR, DOC_ID)]


def test_iti41_rejects_document_entry_without_document() -> None:
    problems = problems_of(good_submission(), for_repository=True)
    assert [(p.code, p.location) for p in problems] == [(ErrorCode.MISSING_DOCUMENT, DOC_ID)]


def test_iti41_rejects_document_without_metadata() -> None:
    sub = replace(good_submission(), document_refs={DOC_ID: "a@x", "Orphan": "b@x"})
    problems = problems_of(sub, for_repository=True)
    assert [(p.code, p.location) for p in problems] == [(ErrorCode.MISSING_DOCUMENT_METADATA, "Orphan")]


def test_iti41_rejects_on_demand_entries() -> None:
    sub = with_document(
        repo(good_submission()),
        object_type=ObjectType.ON_DEMAND_DOCUMENT,
        hash=None,
        size=None,
        creation_time=None,
        legal_authenticator=None,
    )
    assert [p.code for p in problems_of(sub, for_repository=True)] == [META]


def test_on_demand_entries_when_allowed_must_not_carry_hash() -> None:
    sub = with_document(
        good_submission(),
        object_type=ObjectType.ON_DEMAND_DOCUMENT,
        size=None,
        creation_time=None,
        legal_authenticator=None,
    )
    problems = problems_of(sub, allow_on_demand=True)
    assert [(p.code, p.location) for p in problems] == [(META, DOC_ID)]
    assert "hash" in problems[0].context
    assert problems_of(with_document(sub, hash=None), allow_on_demand=True) == []


def test_iti42_collects_all_problems_in_one_error() -> None:
    sub = with_submission_set(
        with_document(good_submission(), class_code=None, patient_id=OTHER_PATIENT), source_id="x"
    )
    codes = sorted((p.code.value, p.location) for p in problems_of(sub))
    assert codes == [
        (ErrorCode.PATIENT_ID_DOES_NOT_MATCH.value, DOC_ID),
        (META.value, DOC_ID),
        (META.value, SS_ID),
    ]


def test_iti42_assigns_uuids_and_rewrites_every_reference() -> None:
    sub = replace(good_submission(), document_refs={DOC_ID: "cid-1"})
    sub = with_association(sub, Association("as09", AssociationType.RPLC, DOC_ID, EXISTING))
    counter = iter(range(100))
    out = validate_submission(
        sub,
        DOMAIN,
        for_repository=False,
        new_uuid=lambda: f"urn:uuid:{next(counter):0>8}-0000-4000-8000-000000000000",
    )
    ids = {old: new for old, new in zip(sub.all_ids(), out.all_ids(), strict=True)}
    assert all(is_uuid_urn(new) for new in ids.values())
    assert len(set(ids.values())) == len(ids)
    doc = out.documents[0]
    assert doc.entry_uuid == ids[DOC_ID] and doc.logical_id == doc.entry_uuid and doc.version == "1"
    assert doc.status is Status.APPROVED
    by_id = {a.entry_uuid: a for a in out.associations}
    assert by_id[ids["as01"]].source == ids[SS_ID] and by_id[ids["as01"]].target == ids[DOC_ID]
    assert by_id[ids["as03"]].source == ids[FOLDER_ID]
    assert by_id[ids["as04"]].target == ids["as03"]
    assert by_id[ids["as09"]].target == EXISTING
    assert out.document_refs == {ids[DOC_ID]: "cid-1"}


def test_iti42_keeps_submitted_uuids() -> None:
    uid = "urn:uuid:aabbccdd-bdda-424e-8c96-df4873be8501"
    sub = replace(
        with_document(good_submission(), entry_uuid=uid),
        associations=tuple(
            replace(a, target=uid) if a.target == DOC_ID else a for a in good_submission().associations
        ),
    )
    out = validate_submission(sub, DOMAIN, for_repository=False)
    assert out.documents[0].entry_uuid == uid
    assert uid in {a.target for a in out.associations}


def test_iti42_accepts_relationships_to_registry_documents() -> None:
    for kind in (
        AssociationType.RPLC,
        AssociationType.XFRM,
        AssociationType.APND,
        AssociationType.XFRM_RPLC,
        AssociationType.SIGNS,
        AssociationType.IS_SNAPSHOT_OF,
    ):
        assoc = Association("as09", kind, DOC_ID, EXISTING, extra_classifications=(Code("t", "s", "why"),))
        assert problems_of(with_association(good_submission(), assoc)) == [], kind


def test_iti42_accepts_adding_a_document_to_an_existing_folder() -> None:
    sub = with_association(good_submission(), has_member("as09", EXISTING, DOC_ID))
    sub = with_association(sub, has_member("as10", SS_ID, "as09"))
    assert problems_of(sub) == []


def test_iti42_accepts_referencing_an_existing_document() -> None:
    sub = with_association(good_submission(), has_member("as09", SS_ID, EXISTING, "Reference"))
    assert problems_of(sub) == []


CODES = {"classCode": (CodeEntry("REPORTS", "1.3.6.1.4.1.19376.1.2.6.1", "Reports"),)}


def test_iti42_rejects_code_outside_affinity_domain_list() -> None:
    domain = AffinityDomain(codes=CODES)
    sub = with_document(good_submission(), class_code=Code("LETTERS", "1.3.6.1.4.1.19376.1.2.6.1"))
    with pytest.raises(XdsError) as exc:
        validate_submission(sub, domain, for_repository=False)
    assert [(p.code, p.location) for p in exc.value.problems] == [(META, DOC_ID)]
    assert "classCode" in exc.value.problems[0].context


def test_iti42_code_with_other_scheme_is_rejected() -> None:
    domain = AffinityDomain(codes=CODES)
    sub = with_document(good_submission(), class_code=Code("REPORTS", "9.9.9"))
    with pytest.raises(XdsError):
        validate_submission(sub, domain, for_repository=False)


def test_iti42_accepts_listed_codes_and_unconfigured_kinds() -> None:
    validate_submission(good_submission(), AffinityDomain(codes=CODES), for_repository=False)
    validate_submission(good_submission(), AffinityDomain(codes={}), for_repository=False)


def test_code_allowed() -> None:
    code = Code("REPORTS", "1.3.6.1.4.1.19376.1.2.6.1")
    assert code_allowed("classCode", code, AffinityDomain())
    assert code_allowed("classCode", code, AffinityDomain(codes=CODES))
    assert not code_allowed("classCode", Code("X", code.scheme), AffinityDomain(codes=CODES))
    assert code_allowed("typeCode", Code("X", "Y"), AffinityDomain(codes=CODES))
    assert not code_allowed("typeCode", Code("X", "Y"), AffinityDomain(codes={"typeCode": ()}))


def test_is_uuid_urn() -> None:
    assert is_uuid_urn("urn:uuid:aabbccdd-bdda-424e-8c96-df4873be8501")
    assert is_uuid_urn("URN:UUID:AABBCCDD-BDDA-424E-8C96-DF4873BE8501")
    assert not is_uuid_urn("Document01")
    assert not is_uuid_urn("urn:uuid:aabbccdd")
    assert not is_uuid_urn("urn:uuid:{aabbccdd-bdda-424e-8c96-df4873be8501}")
