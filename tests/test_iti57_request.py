"""Reading an ITI-57 request as metadata update operations (xds_hub.registry.update_request), without a
database: each rule breaks one thing of a known-good request and expects exactly one error code."""

from __future__ import annotations

import dataclasses
from types import SimpleNamespace

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from lxml import etree

from tests.test_iti57_support import APPROVED, DEPRECATED, new_version, status_update, submitted, update
from tests.test_registry_support import SETTINGS, a_folder, assoc, document, member, new_pid, new_urn
from xds_hub.domain.metadata import Association, Slot, Submission
from xds_hub.domain.vocabulary import AssociationType, MetadataUpdateSlot
from xds_hub.errors import FaultSubcode, SoapFault, XdsError
from xds_hub.registry.admin import authorize_admin
from xds_hub.registry.update_request import UpdateRequest, read_update_request
from xds_hub.security.access import NodeIdentity
from xds_hub.soap.types import SoapRequest

PID = new_pid()
DOC = document(PID)
FOLDER = a_folder(PID)


def codes_of(sub: Submission) -> list[str]:
    with pytest.raises(XdsError) as info:
        read_update_request(sub, SETTINGS.domain)
    return [p.code.value for p in info.value.problems]


def good() -> Submission:
    return update(PID, [(new_version(DOC, title="v2"), "1"), (new_version(FOLDER), "1")])


def with_member_slots(sub: Submission, *slots: Slot, status: str | None = "Original") -> Submission:
    hm = dataclasses.replace(sub.associations[0], extra_slots=slots, submission_set_status=status)
    return dataclasses.replace(sub, associations=(hm, *sub.associations[1:]))


def test_iti57_request_reads_every_operation() -> None:
    base = good()
    ss_id = base.submission_set.entry_uuid
    link, trigger = submitted(ss_id, member(FOLDER.entry_uuid, DOC.entry_uuid))
    record = member(ss_id, link.entry_uuid)
    status = status_update(ss_id, DOC.entry_uuid, APPROVED, DEPRECATED)
    req = read_update_request(
        dataclasses.replace(base, associations=(*base.associations, link, trigger, record, status)),
        SETTINGS.domain,
    )
    assert [(v.lid, v.previous_version, v.propagate) for v in req.versions] == [
        (DOC.entry_uuid, 1, True),
        (FOLDER.entry_uuid, 1, True),
    ]
    assert [(s.assoc.target, s.original, s.new) for s in req.statuses] == [
        (DOC.entry_uuid, APPROVED, DEPRECATED)
    ]
    assert [(s.assoc.entry_uuid, s.trigger.entry_uuid) for s in req.associations] == [
        (link.entry_uuid, trigger.entry_uuid)
    ]
    assert [m.entry_uuid for m in req.memberships] == [record.entry_uuid]


def test_iti57_request_gives_symbolic_ids_uuids_and_keeps_the_logical_id() -> None:
    sub = good()
    doc = dataclasses.replace(sub.documents[0], entry_uuid="Doc2")
    hm = dataclasses.replace(sub.associations[0], entry_uuid="hm1", target="Doc2")
    req: UpdateRequest = read_update_request(
        dataclasses.replace(sub, documents=(doc,), associations=(hm, *sub.associations[1:])), SETTINGS.domain
    )
    new_doc = req.submission.documents[0]
    assert new_doc.entry_uuid.startswith("urn:uuid:") and new_doc.logical_id == DOC.entry_uuid
    assert req.versions[0].membership.target == new_doc.entry_uuid
    assert req.submitted_ids[new_doc.entry_uuid] == "Doc2"


@pytest.mark.parametrize(
    ("slots", "status"),
    [
        ((), "Original"),  # no PreviousVersion
        ((Slot(MetadataUpdateSlot.PREVIOUS_VERSION, ("one",)),), "Original"),
        ((Slot(MetadataUpdateSlot.PREVIOUS_VERSION, ("1", "2")),), "Original"),
        ((Slot(MetadataUpdateSlot.PREVIOUS_VERSION, ("0",)),), "Original"),
        ((Slot(MetadataUpdateSlot.PREVIOUS_VERSION, ("1",)),), "Reference"),
        ((Slot(MetadataUpdateSlot.PREVIOUS_VERSION, ("1",)),), None),
        (
            (
                Slot(MetadataUpdateSlot.PREVIOUS_VERSION, ("1",)),
                Slot(MetadataUpdateSlot.ASSOCIATION_PROPAGATION, ("maybe",)),
            ),
            "Original",
        ),
    ],
)
def test_iti57_request_rejects_a_bad_version_membership(slots: tuple[Slot, ...], status: str | None) -> None:
    assert codes_of(with_member_slots(good(), *slots, status=status)) == ["XDSMetadataUpdateError"]


def test_iti57_request_reads_association_propagation_no() -> None:
    sub = with_member_slots(
        good(),
        Slot(MetadataUpdateSlot.PREVIOUS_VERSION, ("1",)),
        Slot(MetadataUpdateSlot.ASSOCIATION_PROPAGATION, ("No",)),
    )
    assert read_update_request(sub, SETTINGS.domain).versions[0].propagate is False


def test_iti57_request_rejects_two_memberships_of_one_version() -> None:
    sub = good()
    twice = dataclasses.replace(sub.associations[0], entry_uuid=new_urn())
    assert codes_of(dataclasses.replace(sub, associations=(*sub.associations, twice))) == [
        "XDSMetadataUpdateError"
    ]


def test_iti57_request_rejects_a_version_without_membership() -> None:
    sub = good()
    assert codes_of(dataclasses.replace(sub, associations=sub.associations[1:])) == ["XDSMetadataUpdateError"]


@pytest.mark.parametrize("lid", [None, "not-a-uuid"])
def test_iti57_request_rejects_a_bad_logical_id(lid: str | None) -> None:
    sub = good()
    doc = dataclasses.replace(sub.documents[0], logical_id=lid)
    assert codes_of(dataclasses.replace(sub, documents=(doc,))) == ["XDSMetadataUpdateError"]


def test_iti57_request_rejects_a_versioned_submission_set() -> None:
    sub = good()
    ss = dataclasses.replace(sub.submission_set, logical_id=new_urn())
    assert codes_of(dataclasses.replace(sub, submission_set=ss)) == ["XDSMetadataUpdateError"]


@pytest.mark.parametrize(
    "slots",
    [
        (Slot(MetadataUpdateSlot.ORIGINAL_STATUS, (APPROVED.value,)),),
        (Slot(MetadataUpdateSlot.NEW_STATUS, (DEPRECATED.value,)),),
        (
            Slot(MetadataUpdateSlot.ORIGINAL_STATUS, (APPROVED.value,)),
            Slot(MetadataUpdateSlot.NEW_STATUS, ("Deprecated",)),
        ),
        (
            Slot(MetadataUpdateSlot.ORIGINAL_STATUS, (APPROVED.value, DEPRECATED.value)),
            Slot(MetadataUpdateSlot.NEW_STATUS, (DEPRECATED.value,)),
        ),
    ],
)
def test_iti57_request_rejects_a_bad_status_update(slots: tuple[Slot, ...]) -> None:
    sub = update(PID)
    ua = dataclasses.replace(
        status_update(sub.submission_set.entry_uuid, DOC.entry_uuid, "x", "y"), extra_slots=slots
    )
    assert codes_of(dataclasses.replace(sub, associations=(ua,))) == ["XDSMetadataUpdateError"]


def test_iti57_request_status_update_must_come_from_the_submission_set() -> None:
    sub = update(PID)
    ua = status_update(FOLDER.entry_uuid, DOC.entry_uuid, APPROVED, DEPRECATED)
    assert codes_of(dataclasses.replace(sub, associations=(ua,))) == ["XDSMetadataUpdateError"]


def test_iti57_request_submit_association_rules() -> None:
    sub = update(PID)
    ss_id = sub.submission_set.entry_uuid
    link = member(FOLDER.entry_uuid, DOC.entry_uuid)
    dangling = Association(new_urn(), AssociationType.SUBMIT_ASSOCIATION, ss_id, new_urn())
    assert codes_of(dataclasses.replace(sub, associations=(dangling,))) == ["XDSMetadataUpdateError"]
    wrong_source = Association(
        new_urn(), AssociationType.SUBMIT_ASSOCIATION, FOLDER.entry_uuid, link.entry_uuid
    )
    assert codes_of(dataclasses.replace(sub, associations=(link, wrong_source))) == [
        "XDSMetadataUpdateError",
        "XDSMetadataUpdateOperationError",  # the link then belongs to no operation
    ]
    _, trigger = submitted(ss_id, link)
    again = dataclasses.replace(trigger, entry_uuid=new_urn())
    assert codes_of(dataclasses.replace(sub, associations=(link, trigger, again))) == [
        "XDSMetadataUpdateError"
    ]


def test_iti57_request_rejects_associations_of_no_operation() -> None:
    sub = good()
    stray = assoc(AssociationType.XFRM, DOC.entry_uuid, new_urn())
    assert codes_of(dataclasses.replace(sub, associations=(*sub.associations, stray))) == [
        "XDSMetadataUpdateOperationError"
    ]
    assert codes_of(update(PID)) == ["XDSMetadataUpdateOperationError"]


def test_iti57_request_checks_object_attributes_and_unique_ids() -> None:
    sub = good()
    no_class = dataclasses.replace(sub.documents[0], class_code=None)
    assert codes_of(dataclasses.replace(sub, documents=(no_class,))) == ["XDSRegistryMetadataError"]
    clash = dataclasses.replace(sub.submission_set, unique_id=DOC.unique_id)
    assert codes_of(dataclasses.replace(sub, submission_set=clash)) == [
        "XDSRegistryDuplicateUniqueIdInMessage"
    ]


_ids = st.sampled_from(["ss", "d1", "f1", "a1", "a2", DOC.entry_uuid, new_urn(), ""])
_slots = st.lists(
    st.builds(
        Slot,
        st.sampled_from([*(s.value for s in MetadataUpdateSlot), "SubmissionSetStatus", "x"]),
        st.lists(
            st.sampled_from(["1", "0", "no", "yes", APPROVED.value, DEPRECATED.value, ""]), max_size=2
        ).map(tuple),
    ),
    max_size=3,
    unique_by=lambda s: s.name,
)
_assocs = st.lists(
    st.builds(
        Association,
        st.sampled_from(["a1", "a2", "a3", new_urn()]),
        st.sampled_from(list(AssociationType)),
        _ids,
        _ids,
        submission_set_status=st.sampled_from([None, "Original", "Reference"]),
        extra_slots=_slots.map(tuple),
    ),
    max_size=5,
)


@settings(max_examples=150, deadline=None)
@given(_assocs, st.booleans(), st.sampled_from([None, DOC.entry_uuid, "d1", "junk"]))
def test_iti57_request_reader_returns_operations_or_xds_error(
    assocs: list[Association], with_folder: bool, lid: str | None
) -> None:
    base = update(PID)
    doc = dataclasses.replace(DOC, entry_uuid="d1", logical_id=lid)
    fol = dataclasses.replace(FOLDER, entry_uuid="f1", logical_id=FOLDER.entry_uuid)
    sub = Submission(
        dataclasses.replace(base.submission_set, entry_uuid="ss"),
        (doc,),
        (fol,) if with_folder else (),
        tuple(assocs),
    )
    try:
        req = read_update_request(sub, SETTINGS.domain)
    except XdsError:
        return
    assert all(a.entry_uuid.startswith("urn:uuid:") for a in req.submission.associations)


def test_iti57_62_86_admin_hook_refuses_a_node_that_is_not_admin() -> None:
    """ITI-57 / ITI-62 / ITI-86 call authorize_admin first; it applies security.access.require_admin to the
    requester's identity (SoapRequest.identity once the SOAP edge provides it)."""
    node = NodeIdentity(subject="CN=Hopital A,O=Region")
    with pytest.raises(SoapFault) as info:
        authorize_admin(SimpleNamespace(identity=node))  # type: ignore[arg-type]
    assert info.value.subcode is FaultSubcode.FAILED_AUTHENTICATION
    authorize_admin(SimpleNamespace(identity=dataclasses.replace(node, admin=True)))  # type: ignore[arg-type]
    authorize_admin(SoapRequest(action="urn:x", body=etree.Element("x")))  # no identity: TLS off
