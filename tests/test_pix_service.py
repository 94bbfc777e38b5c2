"""The PIX Manager in-process (no sockets): a database that cannot be written answers AR with HL7
error 207 (v2) / an AR acknowledgement (v3), so that the sender retries; replies are in order."""

from __future__ import annotations

import logging
from dataclasses import replace
from pathlib import Path

import pytest
from lxml import etree

from tests.oracle import SAMPLES, assert_valid
from tests.pix_support import HOPA, adt, cx, errors, new_id, qbp
from xds_hub.audit.recorder import recorder_for
from xds_hub.config import DEMO_DOMAIN, Establishment, Settings
from xds_hub.domain.vocabulary import SoapAction
from xds_hub.pix import hl7v2, iti44
from xds_hub.pix.service import handle_frames
from xds_hub.pix.xref import CrossReference
from xds_hub.soap.types import SoapRequest
from xds_hub.storage.db import make_engine
from xds_hub.storage.fs import FsBlobStore
from xds_hub.storage.stores import Stores

SETTINGS = Settings(domain=DEMO_DOMAIN)


def test_pix_unwritable_database_answers_ar_207(tmp_path: Path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'empty.sqlite'}")  # no schema: every statement fails
    frames = [adt("A01", cx(new_id(), HOPA), control=f"F{i}").encode() for i in range(3)]
    frames.append(b"garbage")
    frames.append(qbp(cx(new_id(), HOPA), control="Q").encode())
    batch = handle_frames(frames, engine, SETTINGS, CrossReference(DEMO_DOMAIN))
    replies = [hl7v2.parse(r.decode()) for r in batch.replies]
    assert [r.first("MSA").value(1) for r in replies] == ["AR"] * 5  # type: ignore[union-attr]
    assert [r.first("MSA").value(2) for r in replies] == ["F0", "F1", "F2", "", "Q"]  # type: ignore[union-attr]
    for reply in replies[:3]:
        assert errors(reply) == [("207", "")]
    assert replies[4].message_type == "RSP" and replies[4].first("QAK").value(2) == "AR"  # type: ignore[union-attr]
    engine.dispose()


def test_iti44_unwritable_database_answers_ar(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    path = SAMPLES / "pixv3" / "PIX_FEED_REG_Maximal_Request.xml"
    if not path.is_file():
        pytest.skip("sample not found")
    engine = make_engine(f"sqlite:///{tmp_path / 'empty.sqlite'}")
    stores = Stores(engine=engine, blobs=FsBlobStore(tmp_path / "blobs"))
    body = etree.parse(str(path)).getroot()
    ns = {"v3": "urn:hl7-org:v3"}
    ids = body.xpath("//v3:patient/v3:id", namespaces=ns)
    for extra in ids[1:]:  # keep the HIMSS2005 identifier only
        extra.getparent().remove(extra)
    himss = Establishment("HIMSS2005", "1.3.6.1.4.1.21367.2005.1.1")
    domain = replace(DEMO_DOMAIN, establishments=(*DEMO_DOMAIN.establishments, himss))
    response = iti44.handle(
        SoapRequest(action=SoapAction.ITI44_ADD, body=body), stores, Settings(domain=domain)
    )
    assert response.action == SoapAction.ITI44_RESPONSE
    assert_valid("MCCI_IN000002UV01.xsd", response.body)
    assert response.body.xpath("v3:acknowledgement/v3:typeCode/@code", namespaces=ns) == ["AR"]
    assert response.body.xpath(
        "v3:acknowledgement/v3:acknowledgementDetail/v3:code/@code", namespaces=ns
    ) == ["207"]
    # Its audit record cannot be stored either: the recorder reports it as dropped when it stops.
    with caplog.at_level(logging.ERROR, logger="xds_hub.audit.recorder"):
        recorder_for(engine).close(timeout=0.5)
    dropped = [r for r in caplog.records if r.getMessage() == "audit record dropped (not stored before exit)"]
    assert len(dropped) == 1 and "ITI-44" in getattr(dropped[0], "audit_message", "")
    engine.dispose()
