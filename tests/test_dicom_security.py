"""ITI-19 / ITI-20 on the DICOM side of a live hub (`xds-hub serve` with mutual TLS), over real sockets.

- a member's modality stores over TLS with its establishment's certificate from `xds-hub certs init`
  (pynetdicom and DCMTK's storescu); queries, C-MOVE (to a TLS node) and C-GET work over TLS;
- a node without a client certificate, or with a certificate of another CA, or speaking plain
  DICOM, is refused in the TLS handshake, and each refusal is a Security Alert (110113 / 110126);
- a member's certificate with another establishment's AE title gets A-ASSOCIATE-RJ (1, 1, 3) and a
  Security Alert (110113 / 110132);
- every store (per study), query (C-FIND, QIDO-RS), move, get, RAD-69, WADO-URI and WADO-RS access
  is in the audit trail that `xds-hub audit --patient` lists.
"""

from __future__ import annotations

import json
import socket
import ssl
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import requests
from lxml import etree
from pydicom.dataset import Dataset
from pynetdicom import AE, evt
from sqlalchemy import select

from tests.hubproc import TEST_CONFIG, Hub, db_url_for
from tests.imaging_helpers import DCMTK, Study, dcmtk, make_study, storage_scp, write_files
from xds_hub import ns
from xds_hub.audit.tables import audit_record
from xds_hub.client.soap import SoapEndpoint
from xds_hub.config import DEMO_DOMAIN
from xds_hub.domain.vocabulary import SoapAction
from xds_hub.security.certs import DemoPki, IssuedCert, init_pki
from xds_hub.storage.db import make_engine

CT = "1.2.840.10008.5.1.4.1.1.2"
MR = "1.2.840.10008.5.1.4.1.1.4"
EXPLICIT = "1.2.840.10008.1.2.1"
STUDY_FIND = "1.2.840.10008.5.1.4.1.2.2.1"
STUDY_MOVE = "1.2.840.10008.5.1.4.1.2.2.2"
STUDY_GET = "1.2.840.10008.5.1.4.1.2.2.3"


def tls_config(pki: DemoPki) -> str:
    text = TEST_CONFIG
    for est in pki.establishments:
        line = f'name = "{est.name}"\n'
        text = text.replace(line, line + f'tls_subjects = ["{est.tls_subject}"]\n')
    return (
        text + f'\n[hub]\ntls_cert = "{pki.hub.cert}"\ntls_key = "{pki.hub.key}"\ntls_ca = "{pki.ca.cert}"\n'
    )


@dataclass
class Secure:
    hub: Hub
    pki: DemoPki
    rogue: DemoPki

    @property
    def hopa(self) -> IssuedCert:
        return next(e for e in self.pki.establishments if e.name == "Hopital A")


@pytest.fixture(scope="module")
def secure(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Secure]:
    folder = tmp_path_factory.mktemp("dicom-tls")
    pki = init_pki(folder / "pki", DEMO_DOMAIN)
    rogue = init_pki(folder / "rogue", DEMO_DOMAIN, org="rogue")
    hopa = next(e for e in pki.establishments if e.name == "Hopital A")
    (folder / "hub").mkdir()
    hub = Hub(
        folder=folder / "hub",
        db_url=db_url_for("sqlite", folder / "hub"),
        config_text=tls_config(pki),
        tls_client=(hopa.cert, hopa.key, pki.ca.cert),
    ).start()
    try:
        yield Secure(hub, pki, rogue)
    finally:
        hub.stop()


def client_context(ca: Path, cert: IssuedCert | None) -> ssl.SSLContext:
    ctx = ssl.create_default_context(cafile=str(ca))
    ctx.check_hostname = False
    if cert is not None:
        ctx.load_cert_chain(str(cert.cert), str(cert.key))
    return ctx


def associate(s: Secure, calling: str, cert: IssuedCert | None, contexts: list[str], tls: bool = True) -> Any:
    ae = AE(ae_title=calling)
    ae.acse_timeout = ae.network_timeout = ae.dimse_timeout = 20
    for uid in contexts:
        ae.add_requested_context(uid, [EXPLICIT])
    tls_args = (client_context(s.pki.ca.cert, cert), "xdshub") if tls else None
    return ae.associate("127.0.0.1", s.hub.dicom_port, ae_title="XDSHUB", tls_args=tls_args)


def store(s: Secure, study: Study, calling: str = "HOPA_CT") -> list[int]:
    assoc = associate(s, calling, s.hopa, [CT, MR])
    assert assoc.is_established
    try:
        return [int(assoc.send_c_store(ds).Status) for ds in study.instances]
    finally:
        assoc.release()


def audit_rows(s: Secure, patient: str, want: int, timeout: float = 30) -> list[dict[str, object]]:
    """`xds-hub audit --patient ID --json`, polled until it lists ``want`` records."""
    deadline = time.monotonic() + timeout
    while True:
        out = s.hub.cli("audit", "--patient", patient, "--json")
        rows: list[dict[str, object]] = json.loads(out.stdout)
        if len(rows) >= want or time.monotonic() > deadline:
            return rows
        time.sleep(0.3)


def alerts(s: Secure, type_code: str) -> list[str]:
    engine = make_engine(s.hub.db_url)
    try:
        with engine.connect() as conn:
            rows = conn.execute(
                select(audit_record.c.message).where(
                    audit_record.c.event_id == "110113", audit_record.c.event_type == type_code
                )
            )
            return [str(x) for (x,) in rows]
    finally:
        engine.dispose()


def _all_records(s: Secure) -> list[tuple[object, ...]]:
    engine = make_engine(s.hub.db_url)
    try:
        with engine.connect() as conn:
            rows = conn.execute(
                select(audit_record.c.event_name, audit_record.c.action, audit_record.c.requestor)
            )
            return [tuple(r) for r in rows]
    finally:
        engine.dispose()


def wait_alerts(s: Secure, type_code: str, count: int, timeout: float = 30) -> list[str]:
    deadline = time.monotonic() + timeout
    found = alerts(s, type_code)
    while len(found) < count and time.monotonic() < deadline:
        time.sleep(0.3)
        found = alerts(s, type_code)
    return found


# ---------------------------------------------------------------------------------------------
# Node authentication
# ---------------------------------------------------------------------------------------------


def test_member_stores_over_tls_with_its_certificate(secure: Secure) -> None:
    study = make_study(n_series=1, per_series=2)
    assert store(secure, study) == [0, 0]
    # C-ECHO too, on the same secure listener
    assoc = associate(secure, "HOPA_PACS", secure.hopa, ["1.2.840.10008.1.1"])
    assert assoc.is_established
    assert int(assoc.send_c_echo().Status) == 0
    assoc.release()


@pytest.mark.skipif(not DCMTK, reason="DCMTK not installed")
def test_dcmtk_storescu_over_tls(secure: Secure, tmp_path: Path) -> None:
    study = make_study(n_series=1, per_series=2)
    files = write_files(study.instances, tmp_path / "study")
    hopa = secure.hopa
    tls = ["+tls", str(hopa.key), str(hopa.cert), "+cf", str(secure.pki.ca.cert), "-pw"]
    ok = dcmtk(
        "storescu",
        *tls,
        "-aet",
        "HOPA_CT",
        "-aec",
        "XDSHUB",
        "127.0.0.1",
        str(secure.hub.dicom_port),
        *map(str, files),
    )
    assert ok.returncode == 0, ok.stderr
    plain = dcmtk(
        "storescu",
        "-aet",
        "HOPA_CT",
        "-aec",
        "XDSHUB",
        "127.0.0.1",
        str(secure.hub.dicom_port),
        str(files[0]),
    )
    assert plain.returncode != 0  # plain DICOM on the TLS port: no association
    found = dcmtk(
        "findscu", *tls, "-S", "-aet", "HOPA_CT", "-aec", "XDSHUB", "-k", "QueryRetrieveLevel=STUDY",
        "-k", f"StudyInstanceUID={study.study_uid}", "-k", "PatientID",
        "127.0.0.1", str(secure.hub.dicom_port),
    )  # fmt: skip
    assert found.returncode == 0 and study.patient_id in (found.stdout + found.stderr)


def test_node_without_a_member_certificate_is_refused_and_alerted(secure: Secure) -> None:
    before = len(alerts(secure, "110126"))
    rogue = next(e for e in secure.rogue.establishments if e.name == "Hopital A")
    for cert in (None, rogue):  # no client certificate; the right names from another CA
        assoc = associate(secure, "HOPA_CT", cert, [CT])
        assert not assoc.is_established
        assert not assoc.is_rejected  # refused before any A-ASSOCIATE
    assoc = associate(secure, "HOPA_CT", None, [CT], tls=False)  # plain DICOM on the TLS port
    assert not assoc.is_established
    assert len(wait_alerts(secure, "110126", before + 2)) >= before + 2  # the two TLS refusals
    # a TCP port probe (healthz) is not an alert, and the listener still serves members
    socket.create_connection(("127.0.0.1", secure.hub.dicom_port), timeout=5).close()
    assert store(secure, make_study(n_series=1, per_series=1)) == [0]


def test_calling_ae_of_another_establishment_is_rejected_1_1_3(secure: Secure) -> None:
    before = len(alerts(secure, "110132"))
    assoc = associate(secure, "HOPB_MR", secure.hopa, [CT])  # Hopital B's AE, Hopital A's cert
    assert assoc.is_rejected
    rj = assoc.acceptor.primitive
    assert (rj.result, rj.result_source, rj.diagnostic) == (1, 1, 3)
    found = wait_alerts(secure, "110132", before + 1)
    assert len(found) == before + 1 and "HOPB_MR" in found[-1] and "Hopital A" in found[-1]
    # an AE title no establishment has: rejected too (calling AE title not recognised)
    assoc = associate(secure, "NOBODY", secure.hopa, [CT])
    assert assoc.is_rejected
    rj = assoc.acceptor.primitive
    assert (rj.result, rj.result_source, rj.diagnostic) == (1, 1, 3)


# ---------------------------------------------------------------------------------------------
# Audit trail of store / find / move / get / RAD-69 / WADO
# ---------------------------------------------------------------------------------------------


def _find(s: Secure, study: Study) -> list[int]:
    assoc = associate(s, "HOPA_PACS", s.hopa, [STUDY_FIND])
    query = Dataset()
    query.QueryRetrieveLevel = "STUDY"
    query.PatientID = study.patient_id
    query.StudyInstanceUID = ""
    statuses = [int(st.Status) for st, _ in assoc.send_c_find(query, STUDY_FIND)]
    assoc.release()
    return statuses


def _study_query(study: Study) -> Dataset:
    query = Dataset()
    query.QueryRetrieveLevel = "STUDY"
    query.StudyInstanceUID = study.study_uid
    return query


def _move(s: Secure, study: Study) -> tuple[list[int], int]:
    server_ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    hopa = s.hopa
    server_ctx.load_cert_chain(str(hopa.cert), str(hopa.key))
    with storage_scp(s.hub.node_ports["HOPA_PORT"], "HOPA_PACS", server_ctx) as received:
        assoc = associate(s, "HOPA_PACS", hopa, [STUDY_MOVE])
        statuses = [
            int(st.Status) for st, _ in assoc.send_c_move(_study_query(study), "HOPA_PACS", STUDY_MOVE)
        ]
        assoc.release()
        return statuses, len(received.instances)


def _get(s: Secure, study: Study) -> tuple[list[int], int]:
    got: list[str] = []

    def on_store(event: evt.Event) -> int:
        got.append(str(getattr(event.request, "AffectedSOPInstanceUID", "")))
        return 0

    ae = AE(ae_title="HOPA_PACS")
    ae.acse_timeout = ae.network_timeout = ae.dimse_timeout = 20
    ae.add_requested_context(STUDY_GET, [EXPLICIT])
    from pynetdicom.pdu_primitives import SCP_SCU_RoleSelectionNegotiation

    roles: list[Any] = []
    for uid in (CT, MR):
        ae.add_requested_context(uid, [EXPLICIT])
        role = SCP_SCU_RoleSelectionNegotiation()
        role.sop_class_uid = uid
        role.scu_role, role.scp_role = False, True
        roles.append(role)
    assoc = ae.associate(
        "127.0.0.1",
        s.hub.dicom_port,
        ae_title="XDSHUB",
        tls_args=(client_context(s.pki.ca.cert, s.hopa), "xdshub"),
        ext_neg=roles,
        evt_handlers=[(evt.EVT_C_STORE, on_store)],
    )
    assert assoc.is_established
    statuses = [int(st.Status) for st, _ in assoc.send_c_get(_study_query(study), STUDY_GET)]
    assoc.release()
    return statuses, len(got)


def _rad69(s: Secure, study: Study) -> int:
    req = etree.Element(
        ns.qn(ns.XDSI, "RetrieveImagingDocumentSetRequest"), nsmap={"iherad": ns.XDSI, "xdsb": ns.XDSB}
    )
    st = etree.SubElement(req, ns.qn(ns.XDSI, "StudyRequest"), studyInstanceUID=study.study_uid)
    for series_uid, instances in study.series.items():
        se = etree.SubElement(st, ns.qn(ns.XDSI, "SeriesRequest"), seriesInstanceUID=series_uid)
        for ds in instances:
            doc = etree.SubElement(se, ns.qn(ns.XDSB, "DocumentRequest"))
            etree.SubElement(doc, ns.qn(ns.XDSB, "RepositoryUniqueId")).text = "1.3.6.1.4.1.21367.13.80.2"
            etree.SubElement(doc, ns.qn(ns.XDSB, "DocumentUniqueId")).text = str(ds.SOPInstanceUID)
    syntaxes = etree.SubElement(req, ns.qn(ns.XDSI, "TransferSyntaxUIDList"))
    etree.SubElement(syntaxes, ns.qn(ns.XDSI, "TransferSyntaxUID")).text = EXPLICIT
    hopa = s.hopa
    endpoint = SoapEndpoint(
        s.hub.url("/xdsi/source"), verify=str(s.pki.ca.cert), cert=(str(hopa.cert), str(hopa.key))
    )
    reply = endpoint.call(SoapAction.RAD69, req, mtom=True)
    assert reply.body is not None
    return len(list(reply.body.iterchildren(ns.qn(ns.XDSB, "DocumentResponse"))))


def test_every_imaging_access_is_in_the_patients_audit_trail(secure: Secure) -> None:
    study = make_study(n_series=2, per_series=2)
    assert store(secure, study) == [0, 0, 0, 0]
    assert _find(secure, study) == [0xFF00, 0]
    moved, delivered = _move(secure, study)
    assert moved[-1] == 0 and delivered == 4
    got, received = _get(secure, study)
    assert got[-1] == 0 and received == 4
    assert _rad69(secure, study) == 4
    first = study.instances[0]
    tls = secure.hub.requests_tls()
    wado = requests.get(
        secure.hub.url("/wado"),
        params={
            "requestType": "WADO",
            "studyUID": study.study_uid,
            "seriesUID": str(first.SeriesInstanceUID),
            "objectUID": str(first.SOPInstanceUID),
            "contentType": "application/dicom",
        },
        timeout=30,
        **tls,  # type: ignore[arg-type]
    )
    assert wado.status_code == 200
    rs = requests.get(
        secure.hub.url(f"/dicomweb/studies/{study.study_uid}"),
        headers={"Accept": 'multipart/related; type="application/dicom"'},
        timeout=30,
        **tls,  # type: ignore[arg-type]
    )
    assert rs.status_code == 200
    qido = requests.get(
        secure.hub.url("/dicomweb/studies"),
        params={"PatientID": study.patient_id},
        timeout=30,
        **tls,  # type: ignore[arg-type]
    )
    assert qido.status_code == 200 and len(qido.json()) == 1

    # store (1 per study, not per instance), find, move (begin + transferred), get (begin +
    # transferred), RAD-69, WADO-URI, WADO-RS, QIDO-RS
    rows = audit_rows(secure, study.patient_id, 10)
    kinds = sorted((str(r["event"]), str(r["action"]), str(r["transaction"])) for r in rows)
    assert kinds == sorted(
        [
            ("DICOM Instances Transferred", "create", "None"),
            ("Query", "execute", "None"),
            ("Query", "execute", "None"),
            ("Begin Transferring DICOM Instances", "execute", "None"),
            ("DICOM Instances Transferred", "read", "None"),
            ("Begin Transferring DICOM Instances", "execute", "None"),
            ("DICOM Instances Transferred", "read", "None"),
            ("DICOM Instances Transferred", "read", "RAD-69"),
            ("DICOM Instances Transferred", "read", "RAD-55"),
            ("DICOM Instances Transferred", "read", "RAD-107"),
        ]
    ), (kinds, _all_records(secure))
    assert all(r["outcome"] == "success" for r in rows), rows
    assert all(str(r["patient_id"]).startswith(f"{study.patient_id}^^^&1.2.3.100&ISO") for r in rows)
    # the requestor is named by its certificate's establishment
    assert all("Hopital A" in str(r["identity"]) for r in rows), [r["identity"] for r in rows]
    stored = next(r for r in rows if r["action"] == "create")
    assert stored["who"] == "HOPA_CT"
