"""Helpers of the reliability tests (tests/test_reliability_*.py) and of bench/faults_report.py.

- :class:`RawDicom`: a DICOM Upper Layer peer written by hand (PS3.8 9.3), so a test can send
  exactly the bytes it wants: an A-ASSOCIATE-RQ, a C-STORE-RQ cut in the middle of a P-DATA-TF
  PDU, an unknown PDU type, a PDU longer than the negotiated maximum ...
- :func:`hub_state`: rows and blobs of a hub's store (what "nothing half-stored" is checked on).
- :class:`PrivatePostgres`: a throw-away PostgreSQL cluster (initdb into a temporary folder, its
  own port, trust authentication) that a test may stop and start at will, since the machine's
  shared PostgreSQL must never be restarted.
- :func:`record_fault`: one line of the fault log (``XDS_FAULTS_LOG``: a JSON-lines file) that
  bench/faults_report.py turns into the "Hostile input and faults" section of bench/RESULTS.md.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import socket
import struct
import subprocess
import tempfile
import time
from dataclasses import dataclass
from io import BytesIO
from pathlib import Path
from typing import Any

from pydicom.dataset import Dataset
from pynetdicom.dimse_messages import C_STORE_RQ
from pynetdicom.dimse_primitives import C_STORE
from pynetdicom.dsutils import decode, encode
from sqlalchemy import Engine, func, select

from xds_hub.storage.fs import FsBlobStore
from xds_hub.storage.ports import BlobStore

# ---------------------------------------------------------------------------------------------
# The fault log
# ---------------------------------------------------------------------------------------------

FAULTS_LOG_ENV = "XDS_FAULTS_LOG"


def record_fault(
    area: str, case: str, expected: str, observed: str, as_expected: bool = True, backend: str = ""
) -> None:
    """Append one tried bad input / injected fault and its outcome to ``$XDS_FAULTS_LOG`` (if set)."""
    path = os.environ.get(FAULTS_LOG_ENV)
    if not path:
        return
    line = {
        "area": area,
        "case": case,
        "expected": expected,
        "observed": observed,
        "as_expected": as_expected,
        "backend": backend,
    }
    with open(path, "a", encoding="utf-8") as out:
        out.write(json.dumps(line) + "\n")


# ---------------------------------------------------------------------------------------------
# What a hub holds
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class HubState:
    """Row counts of the tables a transaction writes, the committed blobs and the leftovers."""

    rows: dict[str, int]
    blobs: int
    tmp_files: int


def hub_state(engine: Engine, blobs: BlobStore) -> HubState:
    from xds_hub.imaging.tables import dicom_instance, dicom_series, dicom_study, imaging_manifest
    from xds_hub.pix.tables import pix_identity, pix_person
    from xds_hub.storage.schema import registry_object, repository_document

    tables = {
        "registry_object": registry_object,
        "repository_document": repository_document,
        "dicom_study": dicom_study,
        "dicom_series": dicom_series,
        "dicom_instance": dicom_instance,
        "imaging_manifest": imaging_manifest,
        "pix_person": pix_person,
        "pix_identity": pix_identity,
    }
    with engine.connect() as conn:
        rows = {
            name: int(conn.execute(select(func.count()).select_from(table)).scalar_one())
            for name, table in tables.items()
        }
    committed = sum(1 for _ in blobs.iter_keys(older_than=float("inf")))
    tmp_files = sum(1 for _ in blobs.tmp.iterdir()) if isinstance(blobs, FsBlobStore) else 0
    return HubState(rows=rows, blobs=committed, tmp_files=tmp_files)


# ---------------------------------------------------------------------------------------------
# A DICOM Upper Layer peer by hand (PS3.8 9.3)
# ---------------------------------------------------------------------------------------------

APPLICATION_CONTEXT = "1.2.840.10008.3.1.1.1"
IMPLEMENTATION_UID = "1.2.826.0.1.3680043.10.1049.1"
EXPLICIT_VR_LE = "1.2.840.10008.1.2.1"

A_ASSOCIATE_RQ, A_ASSOCIATE_AC, A_ASSOCIATE_RJ = 0x01, 0x02, 0x03
P_DATA_TF, A_RELEASE_RQ, A_RELEASE_RP, A_ABORT = 0x04, 0x05, 0x06, 0x07


def _item(kind: int, payload: bytes) -> bytes:
    return struct.pack(">BBH", kind, 0, len(payload)) + payload


def associate_rq(calling: str, called: str, abstract_syntax: str, context_id: int = 1) -> bytes:
    """An A-ASSOCIATE-RQ PDU proposing one presentation context (Explicit VR Little Endian)."""
    context = (
        bytes([context_id, 0, 0, 0])
        + _item(0x30, abstract_syntax.encode())
        + _item(0x40, EXPLICIT_VR_LE.encode())
    )
    user = _item(0x51, struct.pack(">I", 16384)) + _item(0x52, IMPLEMENTATION_UID.encode())
    variable = _item(0x10, APPLICATION_CONTEXT.encode()) + _item(0x20, context) + _item(0x50, user)
    fixed = struct.pack(">HH", 1, 0) + called.ljust(16).encode() + calling.ljust(16).encode() + bytes(32)
    body = fixed + variable
    return struct.pack(">BBI", A_ASSOCIATE_RQ, 0, len(body)) + body


def pdv(context_id: int, control: int, data: bytes) -> bytes:
    """One presentation data value item (PS3.8 9.3.5.1, E.2): control bit 0 command, bit 1 last."""
    return struct.pack(">IBB", len(data) + 2, context_id, control) + data


def p_data(*items: bytes) -> bytes:
    body = b"".join(items)
    return struct.pack(">BBI", P_DATA_TF, 0, len(body)) + body


def c_store_command(sop_class: str, sop_instance: str, message_id: int = 1) -> bytes:
    """The C-STORE-RQ command set (Implicit VR Little Endian, PS3.7 9.3.1.1)."""
    primitive = C_STORE()
    primitive.MessageID = message_id
    primitive.AffectedSOPClassUID = sop_class
    primitive.AffectedSOPInstanceUID = sop_instance
    primitive.Priority = 0
    primitive.DataSet = BytesIO(b"\0")  # only its presence matters for CommandDataSetType
    message = C_STORE_RQ()
    message.primitive_to_message(primitive)
    data = encode(message.command_set, True, True)
    assert data is not None
    return data


def dataset_bytes(ds: Dataset) -> bytes:
    """``ds`` encoded in Explicit VR Little Endian (no file meta)."""
    data = encode(ds, False, True)
    assert data is not None
    return data


class RawDicom:
    """One TCP connection to a DICOM listener, driven PDU by PDU."""

    def __init__(self, port: int, host: str = "127.0.0.1", timeout: float = 30.0) -> None:
        self.sock = socket.create_connection((host, port), timeout=timeout)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def _exactly(self, size: int) -> bytes:
        out = bytearray()
        while len(out) < size:
            chunk = self.sock.recv(size - len(out))
            if not chunk:
                raise ConnectionError(f"connection closed after {len(out)} of {size} bytes")
            out += chunk
        return bytes(out)

    def read_pdu(self) -> tuple[int, bytes]:
        """(PDU type, PDU body) of the next PDU; ConnectionError if the peer closed instead."""
        kind, _, length = struct.unpack(">BBI", self._exactly(6))
        return kind, self._exactly(length)

    def closed_by_peer(self, timeout: float = 10.0) -> bool:
        """Whether the peer closes the connection (reading and dropping PDUs) within ``timeout``."""
        self.sock.settimeout(timeout)
        try:
            while self.sock.recv(65536):
                pass
            return True
        except (TimeoutError, OSError):
            return False

    def associate(self, calling: str, called: str, abstract_syntax: str, context_id: int = 1) -> bool:
        """Send an A-ASSOCIATE-RQ; True if the AC accepts the context (result 0)."""
        self.send(associate_rq(calling, called, abstract_syntax, context_id))
        kind, body = self.read_pdu()
        if kind != A_ASSOCIATE_AC:
            return False
        pos = 68  # protocol version, reserved, called/calling AE titles, 32 reserved bytes
        while pos + 4 <= len(body):
            item, length = body[pos], struct.unpack(">H", body[pos + 2 : pos + 4])[0]
            if item == 0x21 and body[pos + 4] == context_id:
                return body[pos + 6] == 0
            pos += 4 + length
        return False

    def read_status(self) -> int:
        """The Status of the next DIMSE response (its command set, possibly in fragments)."""
        command = b""
        while True:
            kind, body = self.read_pdu()
            if kind != P_DATA_TF:
                raise ConnectionError(f"expected P-DATA-TF, got PDU type 0x{kind:02X}")
            pos = 0
            while pos < len(body):
                length = struct.unpack(">I", body[pos : pos + 4])[0]
                control = body[pos + 5]
                command += body[pos + 6 : pos + 4 + length]
                pos += 4 + length
                if control & 0x01 and control & 0x02:
                    return int(decode(BytesIO(command), True, True).Status)

    def release(self) -> None:
        self.send(struct.pack(">BBI", A_RELEASE_RQ, 0, 4) + bytes(4))
        kind, _ = self.read_pdu()
        assert kind == A_RELEASE_RP, hex(kind)
        self.close()

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self.sock.close()


# ---------------------------------------------------------------------------------------------
# A private PostgreSQL cluster
# ---------------------------------------------------------------------------------------------

PG_BIN = Path(os.environ.get("XDS_PG_BIN", "/usr/lib/postgresql/15/bin"))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class PrivatePostgres:
    """A PostgreSQL cluster of one test: ``start()`` / ``stop(mode)`` / ``destroy()``.

    Run as root, the server tools run as the ``postgres`` user (initdb refuses root), in a folder
    that user owns.  The socket is in that folder too, so nothing touches the shared cluster.
    """

    def __init__(self) -> None:
        self.folder = Path(tempfile.mkdtemp(prefix="xds-pg-"))
        self.data = self.folder / "data"
        self.port = free_port()
        self.log = self.folder / "server.log"
        if os.geteuid() == 0:
            shutil.chown(self.folder, "postgres", "postgres")

    @staticmethod
    def available() -> bool:
        return (PG_BIN / "initdb").exists() and (os.geteuid() != 0 or shutil.which("runuser") is not None)

    def _run(self, *cmd: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        prefix = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
        return subprocess.run(
            [*prefix, *cmd], capture_output=True, text=True, timeout=timeout, cwd=self.folder, check=True
        )

    def init(self) -> PrivatePostgres:
        self._run(
            str(PG_BIN / "initdb"),
            "-D",
            str(self.data),
            "-A",
            "trust",
            "-U",
            "postgres",
            "-E",
            "UTF8",
            "--no-sync",
        )
        return self

    def start(self) -> None:
        options = f"-p {self.port} -k {self.folder} -c listen_addresses=127.0.0.1 -c max_connections=200"
        self._run(
            str(PG_BIN / "pg_ctl"), "-D", str(self.data), "-o", options, "-l", str(self.log), "-w", "start"
        )

    def stop(self, mode: str = "fast") -> None:
        self._run(str(PG_BIN / "pg_ctl"), "-D", str(self.data), "-m", mode, "-w", "stop")

    def running(self) -> bool:
        result = subprocess.run(
            [str(PG_BIN / "pg_isready"), "-h", "127.0.0.1", "-p", str(self.port)], capture_output=True
        )
        return result.returncode == 0

    def create_database(self, name: str) -> str:
        """Create ``name``; its SQLAlchemy URL."""
        import psycopg

        deadline = time.monotonic() + 30
        while True:
            try:
                with psycopg.connect(self.admin_url, autocommit=True) as conn:
                    conn.execute(f'CREATE DATABASE "{name}"')
                break
            except psycopg.OperationalError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.2)
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/{name}"

    @property
    def admin_url(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def destroy(self) -> None:
        if self.running():
            with contextlib.suppress(subprocess.CalledProcessError):
                self.stop("immediate")
        shutil.rmtree(self.folder, ignore_errors=True)


def as_text(value: Any, limit: int = 120) -> str:
    text = str(value).replace("\n", " ")
    return text if len(text) <= limit else text[: limit - 1] + "…"


def wait_for_group_exit(pgid: int, timeout: float = 30) -> None:
    """Until no process of process group ``pgid`` is left (a killed hub's sockets are closed)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        alive = False
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            try:
                raw = (entry / "stat").read_text()
            except OSError:
                continue
            fields = raw[raw.rindex(")") + 2 :].split()
            if int(fields[2]) == pgid and fields[0] != "Z":
                alive = True
                break
        if not alive:
            return
        time.sleep(0.05)
    raise AssertionError(f"process group {pgid} still alive {timeout}s after SIGKILL")
