"""ITI-18: the fourteen stored queries against a registry on SQLite and PostgreSQL (ITI TF-2 3.18.4.1.2.3.7).

One registry per backend (module scope) holds a small, known world; every test runs read-only
queries against it and compares entryUUID sets.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator

import pytest

from tests.iti18_data import (
    APPROVED,
    DEPRECATED,
    HOME,
    ON_DEMAND,
    SETTINGS,
    STABLE,
    assoc,
    code,
    doc,
    error_codes,
    folder,
    has_member,
    ids,
    insert,
    module_stores,
    new_pid,
    new_uuid,
    q,
    ql,
    run,
    submission,
    submission_set,
)
from xds_hub.domain.metadata import Association, DocumentEntry, Folder, ObjectRef
from xds_hub.domain.vocabulary import AssociationType, DocumentAvailability, ObjectType, Status, StoredQuery
from xds_hub.errors import ErrorCode, XdsError
from xds_hub.registry.store import mark_merged, move_patient, touch_folders
from xds_hub.storage.db import write_transaction
from xds_hub.storage.stores import Stores

SQ = StoredQuery
RPLC, XFRM = AssociationType.RPLC, AssociationType.XFRM


class World:
    """Names of the objects of the test registry (attributes hold entryUUIDs / patient IDs)."""

    def __init__(self) -> None:
        self.uid: dict[str, str] = {}


def build_world(stores: Stores) -> World:
    w = World()
    a, b, m, t, e = (new_pid() for _ in range(5))
    w.a, w.b, w.merged, w.t, w.e = a, b, m, t, e
    smitty, doe = "^Smitty^Gerald^^^", "^Doe^Jane^^^"

    def author(person: str) -> tuple[object, ...]:
        from tests.metadata_samples import AUTHOR

        return (dataclasses.replace(AUTHOR, person=person),)

    # Submission 1: D1, D2, an on-demand D3 and Folder FA holding D1.
    ss1 = submission_set(
        a, submission_time="20200101120000", content_type_code=code("CT1"), authors=author(smitty)
    )
    d1 = doc(
        a,
        class_code=code("C1"),
        type_code=code("T1"),
        practice_setting_code=code("P1"),
        healthcare_facility_type_code=code("H1"),
        format_code=code("F1"),
        confidentiality_codes=(code("N"),),
        event_codes=(code("E1"), code("E2")),
        creation_time="20200101",
        service_start_time="202001011000",
        service_stop_time="202001011100",
        authors=author(smitty),
        reference_ids=("R1",),
    )
    d2 = doc(
        a,
        class_code=code("C2"),
        type_code=code("T2"),
        practice_setting_code=code("P2"),
        healthcare_facility_type_code=code("H2"),
        format_code=code("F2"),
        confidentiality_codes=(code("N"), code("R")),
        event_codes=(code("E1"),),
        creation_time="20200615123000",
        authors=author(doe),
        reference_ids=("R1", "R2"),
    )
    d3 = doc(
        a,
        object_type=ObjectType.ON_DEMAND_DOCUMENT,
        class_code=code("C1"),
        format_code=code("F1"),
        hash=None,
        size=None,
        creation_time="20200301",
    )
    fa = folder(a, codes=(code("FC1"),), last_update_time="20200101120000")
    fa_d1 = has_member(fa.entry_uuid, d1.entry_uuid)
    objs1 = submission(ss1, d1, d2, d3, fa, fa_d1)
    # Submission 2: D4 replaces D1 (and joins FA), D5 transforms D2, deprecated Folder FB.
    ss2 = submission_set(
        a,
        source_id="1.2.3.200.1",
        submission_time="20210101",
        content_type_code=code("CT2"),
        authors=author(doe),
    )
    d4 = doc(
        a,
        class_code=code("C1"),
        type_code=code("T1"),
        format_code=code("F1"),
        creation_time="20210101",
        authors=author(smitty),
    )
    d5 = doc(a, class_code=code("C2"), format_code=code("F3"), creation_time="20210102")
    fb = folder(a, codes=(code("FC2"),), last_update_time="20210101")
    rplc = assoc(RPLC, d4.entry_uuid, d1.entry_uuid)
    xfrm = assoc(XFRM, d5.entry_uuid, d2.entry_uuid)
    fa_d4 = has_member(fa.entry_uuid, d4.entry_uuid)
    objs2 = [*submission(ss2, d4, d5, fb, fa_d4), rplc, xfrm]
    # Submission 3: a DocumentEntry in two versions (Metadata Update) and an Offline one.
    ss3 = submission_set(a, submission_time="20220101")
    d7v1 = doc(a, class_code=code("C7"), creation_time="2022")
    d7v2 = dataclasses.replace(d7v1, entry_uuid=new_uuid(), logical_id=d7v1.entry_uuid, version="2")
    d8 = doc(a, class_code=code("C8"), document_availability=DocumentAvailability.OFFLINE.value)
    objs3 = submission(ss3, d7v1, d7v2, d8)
    # Patient B, and a SubmissionSet of A that references B's document.
    ss4 = submission_set(b)
    d6 = doc(b, class_code=code("C1"))
    ss5 = submission_set(a, submission_time="20230101")
    ss5_d6 = has_member(ss5.entry_uuid, d6.entry_uuid, "Reference")
    # A patient merged into A, whose document moved to A.
    d9 = doc(m, class_code=code("C9"))
    # Time ranges (patient T) and AND/OR codes (patient E).
    times = {
        "y": "2020",
        "ym": "202006",
        "ymd": "20200615",
        "full": "20200615123000",
        "next": "20210101000000",
    }
    tdocs = {k: doc(t, creation_time=v, service_start_time=v, service_stop_time=v) for k, v in times.items()}
    tdocs["none"] = doc(t, creation_time=None, service_start_time=None, service_stop_time=None)
    ev = {
        "x": doc(
            e,
            event_codes=(code("a"), code("b")),
            confidentiality_codes=(code("N"),),
            authors=author("Back\\Slash^Jo"),
        ),
        "y": doc(e, event_codes=(code("a"),), confidentiality_codes=(code("N"), code("R"))),
        "z": doc(e, event_codes=(code("b"), code("c", "S2")), confidentiality_codes=(code("R"),)),
    }

    objs4 = [*submission(ss4, d6), ss5, ss5_d6]
    insert(stores, objs1)
    insert(stores, objs2, deprecated=[d1.entry_uuid, fb.entry_uuid])
    insert(stores, objs3, deprecated=[d7v1.entry_uuid])
    insert(stores, objs4)
    insert(stores, [d9, *tdocs.values(), *ev.values()])
    with write_transaction(stores.engine) as conn:
        touch_folders(conn, [fa.entry_uuid], "20210101000000")
        move_patient(conn, m, a)
        mark_merged(conn, m, a, "2024-01-01T00:00:00Z")

    for name, obj in [
        ("ss1", ss1),
        ("ss2", ss2),
        ("ss3", ss3),
        ("ss4", ss4),
        ("ss5", ss5),
        ("d1", d1),
        ("d2", d2),
        ("d3", d3),
        ("d4", d4),
        ("d5", d5),
        ("d6", d6),
        ("d7v1", d7v1),
        ("d7v2", d7v2),
        ("d8", d8),
        ("d9", d9),
        ("fa", fa),
        ("fb", fb),
    ]:
        setattr(w, name, obj.entry_uuid)
        w.uid[name] = obj.unique_id
    for name, obj in [("fa_d1", fa_d1), ("fa_d4", fa_d4), ("rplc", rplc), ("xfrm", xfrm), ("ss5_d6", ss5_d6)]:
        setattr(w, name, obj.entry_uuid)
    everything = [*objs1, *objs2, *objs3, *objs4]
    w.links = {(x.source, x.target): x.entry_uuid for x in everything if isinstance(x, Association)}
    w.tdocs = {k: v.entry_uuid for k, v in tdocs.items()}
    w.ev = {k: v.entry_uuid for k, v in ev.items()}
    return w


@pytest.fixture(scope="module")
def registry(db_backend: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Stores, World]]:
    with module_stores(db_backend, tmp_path_factory.mktemp(f"iti18-{db_backend}")) as stores:
        yield stores, build_world(stores)


def link(w: World, source: str, target: str) -> str:
    return w.links[(source, target)]


def find_docs(
    stores: Stores,
    pid: str,
    *extra: tuple[str, str | list[str]],
    statuses: tuple[str, ...] = (APPROVED,),
    return_type: str = "LeafClass",
) -> set[str]:
    slots = [("$XDSDocumentEntryPatientId", q(pid)), ("$XDSDocumentEntryStatus", ql(*statuses)), *extra]
    return ids(run(stores, SQ.FIND_DOCUMENTS, slots, return_type))


def failure(
    stores: Stores, query: SQ, slots: list[tuple[str, str | list[str]]], **kwargs: object
) -> list[ErrorCode]:
    with pytest.raises(XdsError) as exc:
        run(stores, query, slots, **kwargs)  # type: ignore[arg-type]
    return error_codes(exc.value)


# ---------------------------------------------------------------------------------------------
# FindDocuments
# ---------------------------------------------------------------------------------------------


def test_iti18_find_documents_by_patient_and_status(registry: tuple[Stores, World]) -> None:
    stores, w = registry
    assert find_docs(stores, w.a) == {w.d2, w.d4, w.d5, w.d7v2, w.d9}
    assert find_docs(stores, w.a, statuses=(DEPRECATED,)) == {w.d1}
    assert find_docs(stores, w.a, statuses=(APPROVED, DEPRECATED)) == {w.d1, w.d2, w.d4, w.d5, w.d7v2, w.d9}
    assert find_docs(stores, w.b) == {w.d6}
    assert find_docs(stores, new_pid()) == set()


def test_iti18_find_documents_ignores_unknown_status_values(registry: tuple[Stores, World]) -> None:
    stores, w = registry
    assert find_docs(stores, w.a, statuses=("Approved", APPROVED)) == find_docs(stores, w.a)
    assert find_docs(stores, w.a, statuses=("Approved",)) == set()


def test_iti18_find_documents_metadata_level(registry: tuple[Stores, World]) -> None:
    stores, w = registry
    level2 = ("$MetadataLevel", "2")
    # Level 1 hides the superseded version and the Offline DocumentEntry; level 2 shows them.
    assert find_docs(stores, w.a, level2) == {w.d2, w.d4, w.d5, w.d7v2, w.d8, w.d9}
    assert find_docs(stores, w.a, level2, statuses=(DEPRECATED,)) == {w.d1, w.d7v1}
    assert find_docs(stores, w.a, return_type="ObjectRef") == {w.d2, w.d4, w.d5, w.d7v2, w.d9}
    assert find_docs(stores, w.a, level2, return_type="ObjectRef") == {w.d2, w.d4, w.d5, w.d7v2, w.d8, w.d9}


def test_iti18_find_documents_entry_type(registry: tuple[Stores, World]) -> None:
    stores, w = registry
    assert find_docs(stores, w.a, ("$XDSDocumentEntryType", ql(ON_DEMAND))) == {w.d3}
    both = find_docs(stores, w.a, ("$XDSDocumentEntryType", ql(STABLE, ON_DEMAND)))
    assert both == {w.d2, w.d3, w.d4, w.d5, w.d7v2, w.d9}


@pytest.mark.parametrize(
    ("name", "value", "expected"),
    [
        ("$XDSDocumentEntryClassCode", ql("C1^^S"), {"d4"}),
        ("$XDSDocumentEntryClassCode", ql("C1^^S", "C2^^S"), {"d2", "d4", "d5"}),
        ("$XDSDocumentEntryClassCode", ql("C1^^other"), set()),
        ("$XDSDocumentEntryClassCode", ql("C2"), {"d2", "d5"}),  # any scheme
        ("$XDSDocumentEntryTypeCode", ql("T2^^S"), {"d2"}),
        ("$XDSDocumentEntryPracticeSettingCode", ql("P2^^S"), {"d2"}),
        ("$XDSDocumentEntryHealthcareFacilityTypeCode", ql("H2^^S"), {"d2"}),
        ("$XDSDocumentEntryFormatCode", ql("F1^^S", "F3^^S"), {"d4", "d5"}),
        ("$XDSDocumentEntryEventCodeList", ql("E1^^S"), {"d2"}),
        ("$XDSDocumentEntryConfidentialityCode", ql("R^^S"), {"d2"}),
        ("$XDSDocumentEntryAuthorPerson", ql("%Smitty%"), {"d4"}),
        ("$XDSDocumentEntryAuthorPerson", ql("^smitty%"), {"d4"}),  # case-insensitive
        ("$XDSDocumentEntryAuthorPerson", ql("^Sm_tty^%"), {"d4"}),
        ("$XDSDocumentEntryAuthorPerson", ql("%Smitty%", "%Doe%"), {"d2", "d4"}),
        ("$XDSDocumentEntryAuthorPerson", ql("Smitty"), set()),
        ("$XDSDocumentEntryAuthorPerson", ql("^Doe^Jane^^^"), {"d2"}),
        ("$XDSDocumentEntryCreationTimeFrom", "2021", {"d4", "d5", "d7v2"}),
        (
            "$XDSDocumentEntryServiceStartTimeFrom",
            "20200101",
            set(),
        ),  # D1 (the only one with it) is deprecated
    ],
)
def test_iti18_find_documents_filters(
    registry: tuple[Stores, World], name: str, value: str, expected: set[str]
) -> None:
    stores, w = registry
    assert find_docs(stores, w.a, (name, value)) == {getattr(w, n) for n in expected}


def test_iti18_find_documents_combines_filters_with_and(registry: tuple[Stores, World]) -> None:
    stores, w = registry
    found = find_docs(
        stores,
        w.a,
        ("$XDSDocumentEntryClassCode", ql("C1^^S", "C2^^S")),
        ("$XDSDocumentEntryFormatCode", ql("F1^^S")),
    )
    assert found == {w.d4}
    found = find_docs(
        stores,
        w.a,
        ("$XDSDocumentEntryServiceStartTimeFrom", "2020"),
        ("$XDSDocumentEntryServiceStopTimeTo", "2021"),
        statuses=(DEPRECATED,),
    )
    assert found == {w.d1}


def test_iti18_event_and_confidentiality_codes_and_or(registry: tuple[Stores, World]) -> None:
    stores, w = registry
    ev = w.ev
    events = "$XDSDocumentEntryEventCodeList"
    conf = "$XDSDocumentEntryConfidentialityCode"
    assert find_docs(stores, w.e, (events, ql("a^^S", "c^^S2"))) == {ev["x"], ev["y"], ev["z"]}
    assert find_docs(stores, w.e, (events, ql("a^^S")), (events, ql("b^^S"))) == {ev["x"]}
    assert find_docs(stores, w.e, (events, ql("a^^S", "c^^S2")), (events, ql("b^^S"))) == {ev["x"], ev["z"]}
    assert find_docs(stores, w.e, (events, ql("c^^S"))) == set()  # scheme must match
    assert find_docs(stores, w.e, (conf, ql("N^^S")), (conf, ql("R^^S"))) == {ev["y"]}
    assert find_docs(stores, w.e, (conf, [ql("N^^S"), ql("R^^S")])) == {ev["x"], ev["y"], ev["z"]}
    both = find_docs(stores, w.e, (events, ql("a^^S")), (conf, ql("R^^S")))
    assert both == {ev["y"]}


def test_iti18_author_pattern_backslash_is_literal(registry: tuple[Stores, World]) -> None:
    stores, w = registry
    assert find_docs(stores, w.e, ("$XDSDocumentEntryAuthorPerson", ql("Back\\Slash%"))) == {w.ev["x"]}
    assert find_docs(stores, w.e, ("$XDSDocumentEntryAuthorPerson", ql("Back\\\\Slash%"))) == set()


@pytest.mark.parametrize(
    ("lower", "upper", "expected"),
    [
        ("20200615", None, {"ymd", "full", "next"}),
        ("2020061512", None, {"full", "next"}),
        ("20200615123000", None, {"full", "next"}),
        ("20200615123001", None, {"next"}),
        (None, "20200615", {"y", "ym"}),
        (None, "20200615123000", {"y", "ym", "ymd"}),
        (None, "20200615123001", {"y", "ym", "ymd", "full"}),
        ("2020", "2021", {"y", "ym", "ymd", "full"}),
        ("202006", "202007", {"ym", "ymd", "full"}),
        ("2021", None, {"next"}),
        (None, "2020", set()),
        ("2022", None, set()),
    ],
)
@pytest.mark.parametrize("attribute", ["CreationTime", "ServiceStartTime", "ServiceStopTime"])
def test_iti18_time_range_edges(
    registry: tuple[Stores, World], attribute: str, lower: str | None, upper: str | None, expected: set[str]
) -> None:
    """From is inclusive, To exclusive; a DTM stands for its first instant; no value, no match."""
    stores, w = registry
    slots: list[tuple[str, str | list[str]]] = []
    if lower:
        slots.append((f"$XDSDocumentEntry{attribute}From", lower))
    if upper:
        slots.append((f"$XDSDocumentEntry{attribute}To", q(upper)))
    assert find_docs(stores, w.t, *slots) == {w.tdocs[k] for k in expected}


def test_iti18_find_documents_of_merged_patient(registry: tuple[Stores, World]) -> None:
    stores, w = registry
    assert find_docs(stores, w.merged) == set()  # ITI TF-2 3.18.4.1.2.3.9.1: subsumed ID finds nothing
    assert w.d9 in find_docs(stores, w.a)


def test_iti18_find_documents_returns_full_objects_with_home(registry: tuple[Stores, World]) -> None:
    stores, w = registry
    slots = [("$XDSDocumentEntryPatientId", q(w.a)), ("$XDSDocumentEntryStatus", ql(APPROVED, DEPRECATED))]
    objects = {o.entry_uuid: o for o in run(stores, SQ.FIND_DOCUMENTS, slots) if isinstance(o, DocumentEntry)}
    assert all(o.home_community_id == HOME for o in objects.values())
    assert objects[w.d1].status is Status.DEPRECATED  # the index column wins over the stored body
    assert objects[w.d9].patient_id == w.a
    assert objects[w.d2].class_code == code("C2")
    refs = run(stores, SQ.FIND_DOCUMENTS, slots, "ObjectRef")
    assert all(isinstance(r, ObjectRef) and r.home_community_id == HOME for r in refs)


def test_iti18_too_many_results(registry: tuple[Stores, World]) -> None:
    stores, w = registry
    slots = [("$XDSDocumentEntryPatientId", q(w.a)), ("$XDSDocumentEntryStatus", ql(APPROVED))]
    few = dataclasses.replace(SETTINGS, max_query_results=4)
    assert failure(stores, SQ.FIND_DOCUMENTS, slots, settings=few) == [ErrorCode.TOO_MANY_RESULTS]
    # Six match; the Offline one counts towards the limit before $MetadataLevel 1 hides it.
    assert failure(stores, SQ.FIND_DOCUMENTS, slots, settings=dataclasses.replace(few, max_query_results=5))
    assert (
        len(
            run(stores, SQ.FIND_DOCUMENTS, slots, settings=dataclasses.replace(SETTINGS, max_query_results=6))
        )
        == 5
    )
    get_all = [
        ("$patientId", q(w.a)),
        ("$XDSDocumentEntryStatus", ql(APPROVED)),
        ("$XDSSubmissionSetStatus", ql(APPROVED)),
        ("$XDSFolderStatus", ql(APPROVED)),
    ]
    assert failure(stores, SQ.GET_ALL, get_all, settings=few) == [ErrorCode.TOO_MANY_RESULTS]


def test_iti18_unknown_community(registry: tuple[Stores, World]) -> None:
    stores, w = registry
    slots = [("$XDSDocumentEntryEntryUUID", ql(w.d2))]
    assert failure(stores, SQ.GET_DOCUMENTS, slots, home="urn:oid:9.9.9") == [ErrorCode.UNKNOWN_COMMUNITY]
    bad = [*slots, ("$homeCommunityId", q("urn:oid:9.9.9"))]
    assert failure(stores, SQ.GET_DOCUMENTS, bad) == [ErrorCode.UNKNOWN_COMMUNITY]
    assert ids(run(stores, SQ.GET_DOCUMENTS, [*slots, ("$homeCommunityId", q(HOME))], home=HOME)) == {w.d2}


# ---------------------------------------------------------------------------------------------
# FindDocumentsByReferenceId, FindSubmissionSets, FindFolders
# ---------------------------------------------------------------------------------------------


def test_iti18_find_documents_by_reference_id(registry: tuple[Stores, World]) -> None:
    stores, w = registry
    ref = "$XDSDocumentEntryReferenceIdList"

    def find(*extra: tuple[str, str], statuses: tuple[str, ...] = (APPROVED,)) -> set[str]:
        slots = [("$XDSDocumentEntryPatientId", q(w.a)), ("$XDSDocumentEntryStatus", ql(*statuses)), *extra]
        return ids(run(stores, SQ.FIND_DOCUMENTS_BY_REFERENCE_ID, slots))

    assert find((ref, ql("R1"))) == {w.d2}
    assert find((ref, ql("R1")), statuses=(APPROVED, DEPRECATED)) == {w.d1, w.d2}
    assert find((ref, ql("R1", "R2")), statuses=(APPROVED, DEPRECATED)) == {w.d1, w.d2}
    assert find((ref, ql("R1")), (ref, ql("R2")), statuses=(APPROVED, DEPRECATED)) == {w.d2}
    assert find((ref, ql("R1")), ("$XDSDocumentEntryClassCode", ql("C1^^S")), statuses=(DEPRECATED,)) == {
        w.d1
    }
    assert find((ref, ql("nope"))) == set()


def test_iti18_find_submission_sets(registry: tuple[Stores, World]) -> None:
    stores, w = registry

    def find(*extra: tuple[str, str]) -> set[str]:
        slots = [("$XDSSubmissionSetPatientId", q(w.a)), ("$XDSSubmissionSetStatus", ql(APPROVED)), *extra]
        return ids(run(stores, SQ.FIND_SUBMISSION_SETS, slots))

    assert find() == {w.ss1, w.ss2, w.ss3, w.ss5}
    assert find(("$XDSSubmissionSetSourceId", ql("1.2.3.200.1"))) == {w.ss2}
    assert find(("$XDSSubmissionSetSubmissionTimeFrom", "2021")) == {w.ss2, w.ss3, w.ss5}
    assert find(
        ("$XDSSubmissionSetSubmissionTimeFrom", "2021"), ("$XDSSubmissionSetSubmissionTimeTo", "2022")
    ) == {w.ss2}
    assert find(("$XDSSubmissionSetAuthorPerson", q("%Doe%"))) == {w.ss2}
    assert find(("$XDSSubmissionSetContentType", ql("CT1^^S", "CT2^^S"))) == {w.ss1, w.ss2}
    slots = [("$XDSSubmissionSetPatientId", q(w.a)), ("$XDSSubmissionSetStatus", ql(DEPRECATED))]
    assert ids(run(stores, SQ.FIND_SUBMISSION_SETS, slots)) == set()


def test_iti18_find_folders(registry: tuple[Stores, World]) -> None:
    stores, w = registry

    def find(*extra: tuple[str, str], statuses: tuple[str, ...] = (APPROVED,)) -> set[str]:
        slots = [("$XDSFolderPatientId", q(w.a)), ("$XDSFolderStatus", ql(*statuses)), *extra]
        return ids(run(stores, SQ.FIND_FOLDERS, slots))

    assert find() == {w.fa}
    assert find(statuses=(APPROVED, DEPRECATED)) == {w.fa}  # level 1 hides Deprecated folders
    assert find(("$MetadataLevel", "2"), statuses=(APPROVED, DEPRECATED)) == {w.fa, w.fb}
    assert find(("$XDSFolderCodeList", ql("FC1^^S", "FC2^^S"))) == {w.fa}
    assert find(("$XDSFolderCodeList", ql("FC1^^S")), ("$XDSFolderCodeList", ql("FC2^^S"))) == set()
    # lastUpdateTime comes from the index (touched by the replacement), not the stored body.
    assert find(("$XDSFolderLastUpdateTimeFrom", "2021")) == {w.fa}
    assert find(("$XDSFolderLastUpdateTimeTo", "2021")) == set()
    folders = run(
        stores, SQ.FIND_FOLDERS, [("$XDSFolderPatientId", q(w.a)), ("$XDSFolderStatus", ql(APPROVED))]
    )
    assert isinstance(folders[0], Folder) and folders[0].last_update_time == "20210101000000"


# ---------------------------------------------------------------------------------------------
# GetAll
# ---------------------------------------------------------------------------------------------


def get_all(stores: Stores, pid: str, *extra: tuple[str, str], return_type: str = "LeafClass") -> set[str]:
    slots = [
        ("$patientId", q(pid)),
        ("$XDSDocumentEntryStatus", ql(APPROVED)),
        ("$XDSSubmissionSetStatus", ql(APPROVED)),
        ("$XDSFolderStatus", ql(APPROVED)),
        *extra,
    ]
    return ids(run(stores, SQ.GET_ALL, slots, return_type))


def test_iti18_get_all(registry: tuple[Stores, World]) -> None:
    stores, w = registry
    objects = {w.ss1, w.ss2, w.ss3, w.ss5, w.d2, w.d4, w.d5, w.d7v2, w.d9, w.fa}
    links = {
        link(w, w.ss1, w.d2),
        link(w, w.ss1, w.fa),
        link(w, w.ss2, w.d4),
        link(w, w.ss2, w.d5),
        link(w, w.ss2, w.fa_d4),
        link(w, w.ss3, w.d7v2),
        w.fa_d4,
        w.xfrm,
    }
    assert get_all(stores, w.a) == objects | links
    assert get_all(stores, w.a, return_type="ObjectRef") == objects | links
    # Content filters apply to the DocumentEntries only.
    only_f3 = get_all(stores, w.a, ("$XDSDocumentEntryFormatCode", ql("F3^^S")))
    assert only_f3 == {w.ss1, w.ss2, w.ss3, w.ss5, w.d5, w.fa, link(w, w.ss1, w.fa), link(w, w.ss2, w.d5)}
    on_demand = get_all(stores, w.a, ("$XDSDocumentEntryType", ql(ON_DEMAND)))
    assert on_demand & {w.d2, w.d3, w.d4} == {w.d3} and link(w, w.ss1, w.d3) in on_demand
    conf = get_all(
        stores,
        w.a,
        ("$XDSDocumentEntryConfidentialityCode", ql("N^^S")),
        ("$XDSDocumentEntryConfidentialityCode", ql("R^^S")),
    )
    assert conf & {w.d2, w.d4, w.d5} == {w.d2}
    assert get_all(stores, w.merged) == set()


# ---------------------------------------------------------------------------------------------
# GetDocuments, GetFolders, GetAssociations, GetDocumentsAndAssociations, GetSubmissionSets
# ---------------------------------------------------------------------------------------------


def test_iti18_get_documents(registry: tuple[Stores, World]) -> None:
    stores, w = registry

    def get(name: str, *values: str, level: str = "1") -> set[str]:
        return ids(run(stores, SQ.GET_DOCUMENTS, [(name, ql(*values)), ("$MetadataLevel", level)]))

    uuid, uid, lid = "$XDSDocumentEntryEntryUUID", "$XDSDocumentEntryUniqueId", "$XDSDocumentEntryLogicalID"
    assert get(uuid, w.d1, w.d3, "urn:uuid:unknown") == {w.d1, w.d3}  # any status, any type
    assert get(uid, w.uid["d2"], w.uid["d4"]) == {w.d2, w.d4}
    assert get(uid, w.uid["d7v1"]) == {w.d7v2}
    assert get(uid, w.uid["d7v1"], level="2") == {w.d7v1, w.d7v2}
    assert get(lid, w.d7v1) == {w.d7v2}
    assert get(lid, w.d7v1, level="2") == {w.d7v1, w.d7v2}
    assert get(uuid, w.d7v1) == set()
    assert get(uuid, w.d8) == set() and get(uuid, w.d8, level="2") == {w.d8}


def test_iti18_get_folders(registry: tuple[Stores, World]) -> None:
    stores, w = registry

    def get(name: str, *values: str, level: str = "1") -> set[str]:
        return ids(run(stores, SQ.GET_FOLDERS, [(name, ql(*values)), ("$MetadataLevel", level)]))

    assert get("$XDSFolderEntryUUID", w.fa, w.fb) == {w.fa}
    assert get("$XDSFolderEntryUUID", w.fa, w.fb, level="2") == {w.fa, w.fb}
    assert get("$XDSFolderUniqueId", w.uid["fa"]) == {w.fa}
    assert get("$XDSFolderLogicalID", w.fa) == {w.fa}


def test_iti18_get_associations(registry: tuple[Stores, World]) -> None:
    stores, w = registry
    found = ids(run(stores, SQ.GET_ASSOCIATIONS, [("$uuid", ql(w.d1))]))
    assert found == {link(w, w.ss1, w.d1), w.fa_d1, w.rplc}
    found = ids(run(stores, SQ.GET_ASSOCIATIONS, [("$uuid", ql(w.d1, w.fa_d1))]))
    assert found == {link(w, w.ss1, w.d1), w.fa_d1, w.rplc, link(w, w.ss1, w.fa_d1)}


def test_iti18_get_documents_and_associations(registry: tuple[Stores, World]) -> None:
    stores, w = registry
    found = ids(run(stores, SQ.GET_DOCUMENTS_AND_ASSOCIATIONS, [("$XDSDocumentEntryEntryUUID", ql(w.d1))]))
    assert found == {w.d1, link(w, w.ss1, w.d1), w.fa_d1, w.rplc}
    found = ids(
        run(stores, SQ.GET_DOCUMENTS_AND_ASSOCIATIONS, [("$XDSDocumentEntryUniqueId", ql(w.uid["d5"]))])
    )
    assert found == {w.d5, link(w, w.ss2, w.d5), w.xfrm}


def test_iti18_get_submission_sets(registry: tuple[Stores, World]) -> None:
    stores, w = registry
    found = ids(run(stores, SQ.GET_SUBMISSION_SETS, [("$uuid", ql(w.d1))]))
    assert found == {w.ss1, link(w, w.ss1, w.d1)}
    found = ids(run(stores, SQ.GET_SUBMISSION_SETS, [("$uuid", ql(w.fa_d1, w.fa))]))
    assert found == {w.ss1, link(w, w.ss1, w.fa_d1), link(w, w.ss1, w.fa)}
    # B's document is held by B's SubmissionSet and referenced by one of A's.
    slots = [("$uuid", ql(w.d6))]
    found = ids(run(stores, SQ.GET_SUBMISSION_SETS, slots, "ObjectRef"))
    assert found == {w.ss4, w.ss5, link(w, w.ss4, w.d6), w.ss5_d6}
    assert failure(stores, SQ.GET_SUBMISSION_SETS, slots) == [ErrorCode.RESULT_NOT_SINGLE_PATIENT]


# ---------------------------------------------------------------------------------------------
# GetSubmissionSetAndContents, GetFolderAndContents, GetFoldersForDocument, GetRelatedDocuments
# ---------------------------------------------------------------------------------------------


def test_iti18_get_submission_set_and_contents(registry: tuple[Stores, World]) -> None:
    stores, w = registry

    def get(*extra: tuple[str, str], key: tuple[str, str] | None = None) -> set[str]:
        slots = [key or ("$XDSSubmissionSetEntryUUID", q(w.ss1)), *extra]
        return ids(run(stores, SQ.GET_SUBMISSION_SET_AND_CONTENTS, slots))

    everything = {
        w.ss1,
        w.d1,
        w.d2,
        w.fa,
        w.fa_d1,
        link(w, w.ss1, w.d1),
        link(w, w.ss1, w.d2),
        link(w, w.ss1, w.fa),
        link(w, w.ss1, w.fa_d1),
    }
    assert get() == everything  # the deprecated D1 too; the on-demand D3 not
    assert get(key=("$XDSSubmissionSetUniqueId", q(w.uid["ss1"]))) == everything
    assert w.d3 in get(("$XDSDocumentEntryType", ql(STABLE, ON_DEMAND)))
    only_f2 = get(("$XDSDocumentEntryFormatCode", ql("F2^^S")))
    assert only_f2 == {w.ss1, w.d2, w.fa, link(w, w.ss1, w.d2), link(w, w.ss1, w.fa)}
    both_codes = get(
        ("$XDSDocumentEntryConfidentialityCode", ql("N^^S")),
        ("$XDSDocumentEntryConfidentialityCode", ql("R^^S")),
    )
    assert both_codes & {w.d1, w.d2} == {w.d2}
    assert get(key=("$XDSSubmissionSetEntryUUID", q("urn:uuid:unknown"))) == set()


def test_iti18_get_submission_set_and_contents_of_two_patients(registry: tuple[Stores, World]) -> None:
    stores, w = registry
    slots = [("$XDSSubmissionSetEntryUUID", q(w.ss5))]
    assert failure(stores, SQ.GET_SUBMISSION_SET_AND_CONTENTS, slots) == [ErrorCode.RESULT_NOT_SINGLE_PATIENT]
    assert ids(run(stores, SQ.GET_SUBMISSION_SET_AND_CONTENTS, slots, "ObjectRef")) == {w.ss5, w.d6, w.ss5_d6}


def test_iti18_get_folder_and_contents(registry: tuple[Stores, World]) -> None:
    stores, w = registry

    def get(key: tuple[str, str], *extra: tuple[str, str]) -> set[str]:
        return ids(run(stores, SQ.GET_FOLDER_AND_CONTENTS, [key, *extra]))

    fa = ("$XDSFolderEntryUUID", q(w.fa))
    assert get(fa) == {w.fa, w.d1, w.d4, w.fa_d1, w.fa_d4}
    assert get(("$XDSFolderUniqueId", q(w.uid["fa"]))) == {w.fa, w.d1, w.d4, w.fa_d1, w.fa_d4}
    assert get(fa, ("$XDSDocumentEntryFormatCode", ql("F1^^S"))) == {w.fa, w.d1, w.d4, w.fa_d1, w.fa_d4}
    assert get(fa, ("$XDSDocumentEntryConfidentialityCode", ql("R^^S"))) == {w.fa}
    assert get(("$XDSFolderEntryUUID", q(w.fb))) == set()  # Deprecated folder at $MetadataLevel 1
    assert get(("$XDSFolderEntryUUID", q(w.fb)), ("$MetadataLevel", "2")) == {w.fb}


def test_iti18_get_folders_for_document(registry: tuple[Stores, World]) -> None:
    stores, w = registry
    assert ids(run(stores, SQ.GET_FOLDERS_FOR_DOCUMENT, [("$XDSDocumentEntryEntryUUID", q(w.d1))])) == {w.fa}
    assert ids(run(stores, SQ.GET_FOLDERS_FOR_DOCUMENT, [("$XDSDocumentEntryUniqueId", q(w.uid["d4"]))])) == {
        w.fa
    }
    assert ids(run(stores, SQ.GET_FOLDERS_FOR_DOCUMENT, [("$XDSDocumentEntryEntryUUID", q(w.d2))])) == set()


def test_iti18_get_related_documents(registry: tuple[Stores, World]) -> None:
    stores, w = registry

    def related(key: tuple[str, str], *types: str, extra: tuple[tuple[str, str], ...] = ()) -> set[str]:
        return ids(run(stores, SQ.GET_RELATED_DOCUMENTS, [key, ("$AssociationTypes", ql(*types)), *extra]))

    rplc, xfrm, hm = RPLC.value, XFRM.value, AssociationType.HAS_MEMBER.value
    assert related(("$XDSDocumentEntryEntryUUID", q(w.d1)), rplc) == {w.d1, w.d4, w.rplc}
    assert related(("$XDSDocumentEntryEntryUUID", q(w.d4)), rplc) == {w.d1, w.d4, w.rplc}  # both directions
    assert related(("$XDSDocumentEntryUniqueId", q(w.uid["d2"])), rplc, xfrm) == {w.d2, w.d5, w.xfrm}
    assert related(("$XDSDocumentEntryEntryUUID", q(w.d2)), rplc) == set()
    assert related(("$XDSDocumentEntryEntryUUID", q(w.d1)), hm) == set()  # HasMember is not a relationship
    on_demand_only = (("$XDSDocumentEntryType", ql(ON_DEMAND)),)
    assert related(("$XDSDocumentEntryEntryUUID", q(w.d1)), rplc, extra=on_demand_only) == set()
