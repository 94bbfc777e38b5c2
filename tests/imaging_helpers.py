"""Helpers for the imaging tests: synthetic DICOM studies, pynetdicom and DCMTK senders, and a
DICOM node (Storage SCP) that records what a C-MOVE delivers."""

from __future__ import annotations

import os
import shutil
import socket
import ssl
import subprocess
import threading
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from io import BytesIO
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from pydicom import dcmread
from pydicom.data import get_testdata_file
from pydicom.dataset import Dataset, FileDataset, FileMetaDataset
from pydicom.uid import UID, CTImageStorage, ExplicitVRLittleEndian, generate_uid
from pynetdicom import AE, AllStoragePresentationContexts, evt

from xds_hub.imaging.dicomfile import read_file_meta

if TYPE_CHECKING:
    from xds_hub.config import Settings
    from xds_hub.imaging.dimse import DicomActor
    from xds_hub.storage.stores import Stores

DCMTK = shutil.which("storescu", path="/usr/bin") is not None and Path("/usr/bin/storescu").exists()


def make_instance(
    *,
    study_uid: str | None = None,
    series_uid: str | None = None,
    sop_uid: str | None = None,
    patient_id: str = "LOCAL-1",
    issuer: str | None = None,
    patient_name: str = "Doe^Jane",
    accession: str = "ACC-1",
    modality: str = "CT",
    number: int = 1,
    size: int = 32,
    seed: int = 0,
    study_date: str = "20240115",
) -> FileDataset:
    """A small CT image (Explicit VR Little Endian) with random 16-bit pixels."""
    sop_uid = UID(sop_uid or generate_uid())
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = CTImageStorage
    meta.MediaStorageSOPInstanceUID = sop_uid
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = FileDataset("", Dataset(), file_meta=meta, preamble=b"\0" * 128)
    ds.SpecificCharacterSet = "ISO_IR 100"
    ds.SOPClassUID = CTImageStorage
    ds.SOPInstanceUID = sop_uid
    ds.StudyDate = study_date
    ds.StudyTime = "101500"
    ds.AccessionNumber = accession
    ds.Modality = modality
    ds.ReferringPhysicianName = "Ref^Doc"
    ds.StudyDescription = "CT CHEST"
    ds.SeriesDescription = "AXIAL"
    ds.PatientName = patient_name
    ds.PatientID = patient_id
    if issuer:
        ds.IssuerOfPatientID = issuer
    ds.PatientBirthDate = "19700101"
    ds.PatientSex = "F"
    ds.StudyInstanceUID = study_uid or generate_uid()
    ds.SeriesInstanceUID = series_uid or generate_uid()
    ds.StudyID = "1"
    ds.SeriesNumber = 1
    ds.InstanceNumber = number
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.Rows = size
    ds.Columns = size
    ds.BitsAllocated = 16
    ds.BitsStored = 12
    ds.HighBit = 11
    ds.PixelRepresentation = 0
    ds.WindowCenter = 1000
    ds.WindowWidth = 2000
    rng = np.random.default_rng(seed)
    ds.PixelData = rng.integers(0, 4000, (size, size), dtype=np.uint16).tobytes()
    buf = BytesIO()
    ds.save_as(buf, enforce_file_format=True)
    buf.seek(0)
    return dcmread(buf)  # as read from a file: its encoding is known to pynetdicom


@dataclass
class Study:
    """A synthetic study: its UIDs and instances (series -> datasets)."""

    study_uid: str = field(default_factory=generate_uid)
    patient_id: str = "LOCAL-1"
    accession: str = "ACC-1"
    series: dict[str, list[FileDataset]] = field(default_factory=dict)

    @property
    def instances(self) -> list[FileDataset]:
        return [ds for items in self.series.values() for ds in items]


def make_study(
    n_series: int = 2, per_series: int = 3, patient_id: str | None = None, size: int = 32, **kw: object
) -> Study:
    patient_id = patient_id or f"L{generate_uid()[-8:]}"
    study = Study(patient_id=patient_id, accession=str(kw.pop("accession", f"A{generate_uid()[-6:]}")))
    for s in range(n_series):
        series_uid = generate_uid()
        study.series[series_uid] = [
            make_instance(
                study_uid=study.study_uid,
                series_uid=series_uid,
                patient_id=patient_id,
                accession=study.accession,
                modality="CT" if s % 2 == 0 else "MR",
                number=i + 1,
                seed=s * 1000 + i,
                size=size,
                **kw,  # type: ignore[arg-type]
            )
            for i in range(per_series)
        ]
    return study


def write_files(datasets: Iterable[FileDataset], folder: Path) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for ds in datasets:
        path = folder / f"{ds.SOPInstanceUID}.dcm"
        ds.save_as(path, enforce_file_format=True)
        paths.append(path)
    return paths


def encoded_dataset(data: bytes) -> bytes:
    """The data set of a Part-10 file (what follows its File Meta Information)."""
    return data[read_file_meta(BytesIO(data)).dataset_offset :]


def file_dataset_bytes(path: Path | str) -> bytes:
    return encoded_dataset(Path(path).read_bytes())


def sample_file(name: str) -> Path:
    path = get_testdata_file(name)
    assert path is not None, name
    return Path(str(path))


def send(
    port: int, datasets: Sequence[Dataset], calling_ae: str = "HOPA_CT", called_ae: str = "XDSHUB"
) -> list[int]:
    """C-STORE each data set with pynetdicom; their statuses (-1 when no response)."""
    ae = AE(ae_title=calling_ae)
    pairs = {(str(ds.SOPClassUID), str(ds.file_meta.TransferSyntaxUID)) for ds in datasets}
    for sop_class, syntax in sorted(pairs):  # one context per (SOP class, syntax): sent as encoded
        ae.add_requested_context(sop_class, [syntax])
    assoc = ae.associate("127.0.0.1", port, ae_title=called_ae)
    assert assoc.is_established, "association was not accepted"
    statuses = []
    try:
        for ds in datasets:
            rsp = assoc.send_c_store(ds)
            statuses.append(int(rsp.Status) if "Status" in rsp else -1)
    finally:
        assoc.release()
    return statuses


def dcmtk(tool: str, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    """Run a DCMTK tool from /usr/bin (not pynetdicom's apps) with Nagle off."""
    env = dict(os.environ, TCP_NODELAY="1")
    return subprocess.run(
        [f"/usr/bin/{tool}", *args], capture_output=True, text=True, timeout=timeout, env=env
    )


@dataclass
class Received:
    """What a Storage SCP received: SOP Instance UID -> (transfer syntax, data set bytes)."""

    instances: dict[str, tuple[str, bytes]] = field(default_factory=dict)
    calling: list[str] = field(default_factory=list)


@contextmanager
def storage_scp(port: int, ae_title: str, ssl_context: ssl.SSLContext | None = None) -> Iterator[Received]:
    """A pynetdicom Storage SCP on ``port`` (a C-MOVE destination) recording what it gets (over TLS
    with ``ssl_context``)."""
    received = Received()
    lock = threading.Lock()

    def on_store(event: evt.Event) -> int:
        with lock:
            received.instances[str(getattr(event.request, "AffectedSOPInstanceUID", ""))] = (
                str(event.context.transfer_syntax),
                event.encoded_dataset(include_meta=False),
            )
            received.calling.append(event.assoc.requestor.ae_title)
        return 0x0000

    ae = AE(ae_title=ae_title)
    for cx in AllStoragePresentationContexts:
        assert cx.abstract_syntax is not None
        ae.add_supported_context(cx.abstract_syntax, [*map(str, _ALL_TS)])
    server = ae.start_server(
        ("127.0.0.1", port), block=False, evt_handlers=[(evt.EVT_C_STORE, on_store)], ssl_context=ssl_context
    )
    assert server is not None
    try:
        yield received
    finally:
        server.shutdown()


_ALL_TS = [
    UID(u)
    for u in (
        "1.2.840.10008.1.2",
        "1.2.840.10008.1.2.1",
        "1.2.840.10008.1.2.4.50",
        "1.2.840.10008.1.2.4.70",
        "1.2.840.10008.1.2.4.90",
        "1.2.840.10008.1.2.4.91",
        "1.2.840.10008.1.2.5",
        "1.2.840.10008.1.2.4.80",
        "1.2.840.10008.1.2.1.99",
        "1.2.840.10008.1.2.2",
    )
]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def read_part10(data: bytes) -> FileDataset:
    return dcmread(BytesIO(data))


def region_settings(
    data: Path, dicom_port: int | None = None, node_ports: dict[str, int] | None = None, quiet: float = 2.0
) -> Settings:
    """Settings of the test region (tests/hubproc.py TEST_CONFIG) on free ports."""
    import tomllib
    from dataclasses import replace

    from tests.hubproc import TEST_CONFIG
    from xds_hub.config import Settings, parse_domain

    text = TEST_CONFIG
    ports = node_ports or {"HOPA_PORT": free_port(), "HOPB_PORT": free_port(), "CLIC_PORT": free_port()}
    for key, port in ports.items():
        text = text.replace("{" + key + "}", str(port))
    domain = replace(parse_domain(tomllib.loads(text)), study_quiet_seconds=quiet)
    return Settings(data=data, dicom_port=dicom_port or free_port(), domain=domain)


@contextmanager
def running_actor(settings: Settings, stores: Stores) -> Iterator[DicomActor]:
    from xds_hub.imaging.dimse import DicomActor

    actor = DicomActor(settings, stores)
    actor.start()
    try:
        yield actor
    finally:
        actor.stop()


def parse_multipart(body: bytes, content_type: str) -> list[tuple[dict[str, str], bytes]]:
    """The parts of a multipart/related body: (lower-cased headers, content)."""
    boundary = next(
        p.split("=", 1)[1].strip().strip('"')
        for p in content_type.split(";")
        if p.strip().startswith("boundary=")
    ).encode()
    parts = []
    for chunk in body.split(b"--" + boundary)[1:]:
        if chunk.startswith(b"--"):
            break
        head, _, content = chunk.partition(b"\r\n\r\n")
        headers = {}
        for line in head.decode("ascii").strip().split("\r\n"):
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        parts.append((headers, content[:-2] if content.endswith(b"\r\n") else content))
    return parts


def ingest(
    stores: Stores, settings: Settings, datasets: Iterable[Dataset], calling_ae: str = "HOPA_CT"
) -> None:
    """Keep data sets as the C-STORE SCP would (no network)."""
    from pynetdicom.dsutils import encode

    from xds_hub.imaging.ingest import Ingest

    ingest_ = Ingest(stores, settings)
    for ds in datasets:
        ts = ds.file_meta.TransferSyntaxUID
        data = encode(ds, ts.is_implicit_VR, ts.is_little_endian, ts.is_deflated)
        assert data is not None
        outcome = ingest_.store(
            calling_ae=calling_ae,
            sop_class_uid=ds.SOPClassUID,
            sop_instance_uid=ds.SOPInstanceUID,
            transfer_syntax=ts,
            dataset=data,
        )
        assert outcome.status == 0, outcome


def link_patient(stores: Stores, settings: Settings, local_id: str, local_oid: str) -> str:
    """Feed the PIX cross-reference with ``local_id`` of ``local_oid`` and a new affinity-domain ID
    (registered in the registry); returns that ID as a CX."""
    from xds_hub.pix.model import FeedEvent, FeedKind, RawId
    from xds_hub.pix.xref import CrossReference
    from xds_hub.storage.db import write_transaction

    domain = settings.domain
    affinity = f"AFF{generate_uid()[-10:]}"
    event = FeedEvent(
        FeedKind.ADD,
        ids=(
            RawId(local_id, universal_id=local_oid, universal_id_type="ISO"),
            RawId(affinity, universal_id=domain.assigning_authority, universal_id_type="ISO"),
        ),
    )
    with write_transaction(stores.engine) as conn:
        CrossReference(domain).feed(conn, event)
    return f"{affinity}^^^&{domain.assigning_authority}&ISO"
