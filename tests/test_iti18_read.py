"""ITI-18 read side: the fast body decoder of xds_hub.registry.read equals storage.codec.loads, and
index columns / homeCommunityId override the stored body (ITI TF-2 3.18.4.1.3)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from xds_hub.domain.metadata import Association, Author, Code, DocumentEntry, Folder, Slot, SubmissionSet
from xds_hub.domain.vocabulary import AssociationType, ObjectType, Status
from xds_hub.registry import read
from xds_hub.storage import codec

text = st.text(max_size=12)
opt = st.none() | text
codes = st.builds(Code, text, text, text)
authors = st.builds(Author, opt, st.lists(text, max_size=2).map(tuple), st.lists(text, max_size=2).map(tuple))
slots = st.builds(Slot, text, st.lists(text, max_size=3).map(tuple))

documents = st.builds(
    DocumentEntry,
    entry_uuid=text,
    unique_id=text,
    patient_id=text,
    mime_type=text,
    object_type=st.sampled_from(ObjectType),
    status=st.sampled_from(Status),
    title=opt,
    class_code=st.none() | codes,
    confidentiality_codes=st.lists(codes, max_size=3).map(tuple),
    event_codes=st.lists(codes, max_size=3).map(tuple),
    authors=st.lists(authors, max_size=2).map(tuple),
    size=st.none() | st.integers(0, 2**40),
    source_patient_info=st.lists(text, max_size=3).map(tuple),
    reference_ids=st.lists(text, max_size=3).map(tuple),
    limited_metadata=st.booleans(),
    extra_slots=st.lists(slots, max_size=2).map(tuple),
)
sets = st.builds(
    SubmissionSet,
    text,
    text,
    text,
    text,
    content_type_code=st.none() | codes,
    authors=st.lists(authors, max_size=2).map(tuple),
)
folders = st.builds(
    Folder, text, text, text, codes=st.lists(codes, max_size=3).map(tuple), last_update_time=opt
)
associations = st.builds(
    Association,
    text,
    st.sampled_from(AssociationType),
    text,
    text,
    status=st.sampled_from(Status),
    submission_set_status=opt,
    extra_slots=st.lists(slots, max_size=2).map(tuple),
    extra_classifications=st.lists(codes, max_size=2).map(tuple),
)


@given(st.one_of(documents, sets, folders, associations))
def test_iti18_fast_decoder_equals_codec(obj: Any) -> None:
    body = codec.dumps(obj)
    assert read._builder(type(obj))(json.loads(body)) == codec.loads(type(obj), body) == obj


@dataclass
class Row:
    id: str
    kind: str
    status: str
    patient_id: str | None
    body: str
    last_update_time: str | None = None


def test_iti18_index_columns_win_over_the_body() -> None:
    doc = DocumentEntry("urn:uuid:1", "1.2", "P1^^^&1.2&ISO", "text/plain")
    row = Row(doc.entry_uuid, "D", Status.DEPRECATED.value, "P2^^^&1.2&ISO", codec.dumps(doc))
    got = read.decode_row(row, "urn:oid:1.2.3")
    assert isinstance(got, DocumentEntry)
    assert (got.status, got.patient_id, got.home_community_id) == (
        Status.DEPRECATED,
        "P2^^^&1.2&ISO",
        "urn:oid:1.2.3",
    )
    fol = Folder("urn:uuid:2", "1.3", "P1^^^&1.2&ISO", last_update_time="2020")
    got_folder = read.decode_row(
        Row(fol.entry_uuid, "F", Status.APPROVED.value, None, codec.dumps(fol), "20240101")
    )
    assert isinstance(got_folder, Folder)
    assert got_folder.last_update_time == "20240101" and got_folder.patient_id == fol.patient_id
    link = Association("urn:uuid:3", AssociationType.HAS_MEMBER, "a", "b")
    assert read.decode_row(Row(link.entry_uuid, "A", Status.APPROVED.value, None, codec.dumps(link))) == link
