"""Reading stored instances back, and transcoding them for consumers that do not accept the
transfer syntax they were stored in.

RAD-69 (RAD TF-3 4.69.4.2.3) and WADO (PS3.18 8.7.3.5) let the consumer say which transfer syntaxes
it accepts: the stored one is returned untouched when accepted; otherwise the instance is decoded
(pydicom, with its pixel-data handlers: RLE natively, JPEG / JPEG 2000 through Pillow and
pylibjpeg) and written in Explicit VR Little Endian (or Implicit VR Little Endian / Deflated
Explicit VR Little Endian when those are asked for).  A transcoded copy is kept as a blob
(``dicom_derived``) so the next request for it streams from storage like the original.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from io import BytesIO
from typing import TYPE_CHECKING

from pydicom import dcmread
from pydicom.dataset import Dataset, FileDataset
from pydicom.uid import (
    UID,
    DeflatedExplicitVRLittleEndian,
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
)
from sqlalchemy import select

from xds_hub.imaging.dicomfile import IMPLEMENTATION_CLASS_UID, IMPLEMENTATION_VERSION, read_file_meta
from xds_hub.imaging.ingest import insert_ignore
from xds_hub.imaging.query import StoredInstance
from xds_hub.imaging.tables import dicom_derived
from xds_hub.log import get_logger
from xds_hub.storage.db import write_transaction

if TYPE_CHECKING:
    from xds_hub.storage.stores import Stores

log = get_logger("xds_hub.imaging.files")

#: Transfer syntaxes the hub can write any decodable instance in, in order of preference.
TRANSCODE_TARGETS: tuple[str, ...] = (
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
    DeflatedExplicitVRLittleEndian,
)


class TranscodeError(Exception):
    """The instance cannot be given in any of the accepted transfer syntaxes."""


def choose_syntax(stored: str, accepted: Sequence[str]) -> str | None:
    """The transfer syntax to return an instance stored in ``stored`` in, or None if none fits.

    ``accepted`` in the consumer's order; ``*`` accepts anything (the stored one is returned).
    """
    if not accepted or "*" in accepted or stored in accepted:
        return stored
    for ts in accepted:
        if ts in TRANSCODE_TARGETS:
            return ts
    return None


def read_instance(stores: Stores, inst: StoredInstance, stop_before_pixels: bool = False) -> FileDataset:
    """The stored instance, decoded by pydicom (values converted lazily)."""
    with stores.blobs.open(inst.blob_key) as fp:
        return dcmread(fp, stop_before_pixels=stop_before_pixels)


def _encode(ds: Dataset, target: str) -> bytes:
    ts = UID(target)
    meta = Dataset()
    meta.MediaStorageSOPClassUID = ds.SOPClassUID
    meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    meta.TransferSyntaxUID = ts
    meta.ImplementationClassUID = IMPLEMENTATION_CLASS_UID
    meta.ImplementationVersionName = IMPLEMENTATION_VERSION
    out = FileDataset("", ds, file_meta=meta, preamble=b"\x00" * 128)  # type: ignore[arg-type]
    buf = BytesIO()
    out.save_as(buf, enforce_file_format=True, implicit_vr=ts.is_implicit_VR, little_endian=True)
    return buf.getvalue()  # pydicom deflates the data set itself for the Deflated syntax


def transcode(stores: Stores, inst: StoredInstance, target: str) -> bytes:
    """The instance as a Part-10 file in ``target``; raises TranscodeError when it cannot be."""
    if target not in TRANSCODE_TARGETS:
        raise TranscodeError(f"the hub cannot encode instances in transfer syntax {target}")
    try:
        ds = read_instance(stores, inst)
        if UID(inst.transfer_syntax).is_compressed:
            ds.decompress(generate_instance_uid=False)  # same instance, other encoding
        return _encode(ds, target)
    except TranscodeError:
        raise
    except Exception as exc:  # any decoder/encoder failure means "not in that syntax"
        raise TranscodeError(
            f"instance {inst.sop_instance_uid} ({UID(inst.transfer_syntax).name}) cannot be decoded "
            f"into {UID(target).name}: {exc}"
        ) from None


def derived(stores: Stores, inst: StoredInstance, target: str) -> StoredInstance:
    """``inst`` in transfer syntax ``target``: itself, a kept transcoded copy, or a new one."""
    if target == inst.transfer_syntax:
        return inst
    with stores.engine.connect() as conn:
        row = conn.execute(
            select(dicom_derived.c.blob_key, dicom_derived.c.size, dicom_derived.c.dataset_offset).where(
                dicom_derived.c.sop_instance_uid == inst.sop_instance_uid,
                dicom_derived.c.transfer_syntax == target,
            )
        ).first()
    if row is not None and stores.blobs.exists(row.blob_key):
        return replace(
            inst,
            transfer_syntax=target,
            blob_key=row.blob_key,
            size=row.size,
            dataset_offset=row.dataset_offset,
        )
    data = transcode(stores, inst, target)
    offset = read_file_meta(BytesIO(data)).dataset_offset
    writer = stores.blobs.writer()
    try:
        writer.write(data)
        info = writer.finish()
    except BaseException:
        writer.abort()
        raise
    with write_transaction(stores.engine) as conn:
        if row is not None:
            conn.execute(
                dicom_derived.delete().where(
                    dicom_derived.c.sop_instance_uid == inst.sop_instance_uid,
                    dicom_derived.c.transfer_syntax == target,
                )
            )
        insert_ignore(
            conn,
            dicom_derived,
            {
                "sop_instance_uid": inst.sop_instance_uid,
                "transfer_syntax": target,
                "blob_key": info.key,
                "size": info.size,
                "dataset_offset": offset,
            },
        )
    return replace(inst, transfer_syntax=target, blob_key=info.key, size=info.size, dataset_offset=offset)
