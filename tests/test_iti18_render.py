"""ITI-18 response rendering shortcuts (xds_hub.ebxml.render templates, xds_hub.registry.read
interning, xds_hub.ebxml.render_bytes, the envelope's spliced payload): they must give exactly
what building every element afresh and serialising the tree gives, from any thread, whatever the
cache state (ITI TF-2 3.18.4.1.3; ebRIM 3.0 via ITI TF-3 4.2.3)."""

from __future__ import annotations

import threading
import uuid
from dataclasses import replace
from types import SimpleNamespace

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from lxml import etree

from tests.metadata_samples import good_document, good_folder, good_submission_set
from tests.test_metadata_properties import DOCUMENT
from xds_hub.domain.metadata import Author, Code, DocumentEntry, ObjectRef, RegistryObject, Slot
from xds_hub.domain.vocabulary import ResponseStatus, SoapAction, Status
from xds_hub.ebxml import render, render_bytes
from xds_hub.ebxml.parse import parse_registry_object_list
from xds_hub.registry import read
from xds_hub.soap import envelope
from xds_hub.storage import codec

HOME = "urn:oid:1.2.3.4"


def _objects() -> list[RegistryObject]:
    doc = replace(good_document(), entry_uuid=f"urn:uuid:{uuid.uuid4()}", home_community_id=HOME)
    docs: list[RegistryObject] = [
        doc,
        replace(
            doc, entry_uuid=f"urn:uuid:{uuid.uuid4()}", title=None, comments=None, status=Status.DEPRECATED
        ),
        replace(
            doc,
            entry_uuid=f"urn:uuid:{uuid.uuid4()}",
            class_code=Code("X", "1.2.3", ""),
            event_codes=(),
            authors=(Author(person="^Other^A^^^"), Author(institutions=("I^^^^^^^^^1.2",))),
            extra_slots=(Slot("urn:x:extra", ("a", "b")), Slot("urn:x:empty", ())),
            logical_id="urn:uuid:11111111-2222-4333-8444-555555555555",
            version="2",
            limited_metadata=True,
        ),
        replace(good_submission_set(), entry_uuid=f"urn:uuid:{uuid.uuid4()}", home_community_id=HOME),
        replace(good_folder(), entry_uuid=f"urn:uuid:{uuid.uuid4()}", last_update_time="20240101"),
    ]
    return docs


def _xml(objects: list[RegistryObject]) -> bytes:
    return etree.tostring(render.render_adhoc_query_response(ResponseStatus.SUCCESS, objects))


def _cold(objects: list[RegistryObject]) -> bytes:
    """The rendering with every template cache of this thread emptied first."""
    for cache in (render._TEMPLATES.codes, render._TEMPLATES.authors, render._TEMPLATES.shapes):
        cache.clear()
    render._TEMPLATES.identifiers.clear()
    return _xml(objects)


@given(st.text(max_size=80), st.text(max_size=80), st.integers(min_value=0, max_value=10**6))
@settings(max_examples=300)
def test_iti18_child_id_is_the_uuid5_of_object_role_index(object_id: str, role: str, index: int) -> None:
    expected = uuid.uuid5(render._ID_NAMESPACE, f"{object_id}|{role}|{index}")
    assert render.child_id(object_id, role, index) == f"urn:uuid:{expected}"


def test_iti18_warm_templates_render_as_cold_ones_and_round_trip() -> None:
    objects = _objects()
    cold = _cold(objects)
    assert _xml(objects) == cold == _xml(objects)
    listed = render.render_registry_object_list(objects)
    assert parse_registry_object_list(listed) == objects


def test_iti18_rendering_is_the_same_from_every_thread() -> None:
    objects = _objects()
    expected = _cold(objects)
    seen: list[bytes] = []

    def work() -> None:
        for _ in range(20):
            seen.append(_xml(objects))

    threads = [threading.Thread(target=work) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(seen) == 80 and set(seen) == {expected}


def test_iti18_full_template_caches_start_again(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(render, "_MAX_CODES", 3)
    monkeypatch.setattr(render, "_MAX_AUTHORS", 1)
    monkeypatch.setattr(render, "_MAX_SHAPES", 1)
    objects = _objects()
    expected = [_cold([o]) for o in objects]
    for _ in range(3):
        assert [_xml([o]) for o in objects] == expected
    assert len(render._TEMPLATES.codes) <= 3 and len(render._TEMPLATES.authors) <= 1


def test_iti18_decoded_value_objects_are_shared_and_equal_to_the_codec() -> None:
    doc = replace(good_document(), entry_uuid=f"urn:uuid:{uuid.uuid4()}")
    body = codec.dumps(doc)
    row = SimpleNamespace(body=body, status=doc.status.value, kind="D", patient_id=doc.patient_id)
    first, second = read.decode_row(row), read.decode_row(row)
    assert first == second == codec.loads(DocumentEntry, body)
    assert isinstance(first, DocumentEntry) and isinstance(second, DocumentEntry)
    assert first.class_code is second.class_code and first.authors[0] is second.authors[0]


# -- xds_hub.ebxml.render_bytes: the same answer written straight to bytes --------------------------

ANY_TEXT = st.text(max_size=12)  # any code point: control characters, surrogates, markers ...


def _both_ways(objects: list[RegistryObject | ObjectRef], return_type: render.ReturnType) -> None:
    """The direct writer gives lxml's bytes, or declines (Unsupported), or fails where lxml fails."""
    try:
        expected: bytes | None = etree.tostring(
            render.render_adhoc_query_response(ResponseStatus.SUCCESS, objects, (), return_type),
            encoding="UTF-8",
        )
    except ValueError:  # lxml refuses the value (not XML)
        expected = None
    try:
        got = render_bytes.adhoc_query_response_xml(objects, return_type)
    except render_bytes.Unsupported:
        return
    except ValueError:
        assert expected is None
        return
    assert got == expected


@given(DOCUMENT, DOCUMENT, ANY_TEXT, ANY_TEXT, ANY_TEXT)
@settings(max_examples=300, deadline=None)
def test_iti18_direct_bytes_are_lxml_bytes(
    first: DocumentEntry, second: DocumentEntry, title: str, slot_value: str, code: str
) -> None:
    odd = replace(
        second,
        entry_uuid=f"urn:uuid:{uuid.uuid4()}",
        title=title,
        creation_time=slot_value,
        event_codes=(Code(code or "c", "1.2", code),),
    )
    objects: list[RegistryObject | ObjectRef] = [first, second, odd, ObjectRef("urn:uuid:x&<\"'>", HOME)]
    for return_type in ("LeafClass", "ObjectRef"):
        _both_ways(objects, return_type)  # type: ignore[arg-type]
        _both_ways([first, ObjectRef("r")], return_type)  # type: ignore[arg-type]
        _both_ways([], return_type)  # type: ignore[arg-type]


def test_iti18_direct_bytes_cover_the_documents_and_leave_the_rest() -> None:
    objects = _objects()
    documents = [o for o in objects if isinstance(o, DocumentEntry)]
    for return_type in ("LeafClass", "ObjectRef"):
        got = render_bytes.adhoc_query_response_xml(documents, return_type)  # type: ignore[arg-type]
        expected = render.render_adhoc_query_response(ResponseStatus.SUCCESS, documents, (), return_type)  # type: ignore[arg-type]
        assert got == etree.tostring(expected, encoding="UTF-8")
    assert render_bytes.adhoc_query_response_xml(objects, "ObjectRef") == etree.tostring(
        render.render_adhoc_query_response(ResponseStatus.SUCCESS, objects, (), "ObjectRef"), encoding="UTF-8"
    )
    with pytest.raises(render_bytes.Unsupported):  # a SubmissionSet in a LeafClass answer
        render_bytes.adhoc_query_response_xml(objects, "LeafClass")
    with pytest.raises(render_bytes.Unsupported):  # a marker character
        render_bytes.adhoc_query_response_xml([replace(documents[0], title="\ue001")])


def test_iti18_envelope_with_serialised_payload_is_the_same_bytes(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(envelope, "new_message_id", lambda: "urn:uuid:00000000-0000-4000-8000-000000000000")
    reference = etree.Element("{urn:x}key", nsmap={"x": "urn:x"})
    reference.text = "<soap:Body/>"
    addressing = envelope.Addressing(
        action=SoapAction.ITI18, message_id="urn:uuid:1", reference_parameters=(reference,)
    )
    for objects in ([], _objects()):
        payload = render.render_adhoc_query_response(ResponseStatus.SUCCESS, objects)
        xml = etree.tostring(payload, encoding="UTF-8")
        for request in (addressing, None):
            whole = envelope.render_response(payload, SoapAction.ITI18_RESPONSE, request)
            spliced = envelope.render_response(payload, SoapAction.ITI18_RESPONSE, request, xml)
            assert spliced == whole
