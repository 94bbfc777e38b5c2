"""DICOM Part-10 files as the Imaging Document Source keeps them, and the attributes it indexes.

An instance received by C-STORE is kept as a PS3.10 file: the 128-byte preamble, ``DICM``, the
File Meta Information (PS3.10 7.1, written here in Explicit VR Little Endian) and then the data
set exactly as the sending AE encoded it (no decode / re-encode on the ingest path).  The
attributes that C-FIND, QIDO-RS and the KOS need are read from the data set's element headers and
their values; pixel data is skipped over (its length checked against the data set), never read.
"""

from __future__ import annotations

import struct
import zlib
from collections.abc import Container, Iterator
from dataclasses import dataclass
from io import BytesIO
from typing import Any, BinaryIO

from pydicom.charset import convert_encodings, decode_bytes
from pydicom.dataset import Dataset
from pydicom.filereader import read_dataset
from pydicom.uid import UID, DeflatedExplicitVRLittleEndian

from xds_hub.errors import ParseError

#: Implementation Class UID of the hub (an OID under the UUID-derived 2.25 arc) and version name.
IMPLEMENTATION_CLASS_UID = "2.25.262399155130296315574036993442411419409"
IMPLEMENTATION_VERSION = "XDSHUB_1"

PREAMBLE = b"\x00" * 128 + b"DICM"


class DatasetProblem(ParseError):
    """A received data set the hub cannot keep.

    ``missing`` is True when it is readable but lacks a Type 1 attribute the hub indexes it by
    (PS3.4 B.2.3 status A900 "Data Set does not match SOP Class"); False when it cannot be
    parsed at all (status C000 "Cannot understand").
    """

    def __init__(self, message: str, missing: bool = False) -> None:
        super().__init__(message)
        self.missing = missing


def _element(group: int, elem: int, vr: bytes, value: bytes) -> bytes:
    if len(value) % 2:
        value += b"\x00" if vr in (b"UI", b"OB") else b" "
    if vr in (b"OB", b"OW", b"OF", b"SQ", b"UT", b"UN"):
        return struct.pack("<HH2sHI", group, elem, vr, 0, len(value)) + value
    return struct.pack("<HH2sH", group, elem, vr, len(value)) + value


def file_meta_bytes(sop_class_uid: str, sop_instance_uid: str, transfer_syntax: str, source_ae: str) -> bytes:
    """Preamble, ``DICM`` and the File Meta Information group (PS3.10 7.1) for one instance."""
    body = b"".join(
        (
            _element(0x0002, 0x0001, b"OB", b"\x00\x01"),
            _element(0x0002, 0x0002, b"UI", sop_class_uid.encode("ascii")),
            _element(0x0002, 0x0003, b"UI", sop_instance_uid.encode("ascii")),
            _element(0x0002, 0x0010, b"UI", transfer_syntax.encode("ascii")),
            _element(0x0002, 0x0012, b"UI", IMPLEMENTATION_CLASS_UID.encode("ascii")),
            _element(0x0002, 0x0013, b"SH", IMPLEMENTATION_VERSION.encode("ascii")),
            *((_element(0x0002, 0x0016, b"AE", source_ae.encode("ascii", "replace")),) if source_ae else ()),
        )
    )
    return PREAMBLE + _element(0x0002, 0x0000, b"UL", struct.pack("<I", len(body))) + body


@dataclass(frozen=True, slots=True)
class FileMeta:
    """What the File Meta Information of a stored Part-10 file says, and where its data set starts."""

    sop_class_uid: str
    sop_instance_uid: str
    transfer_syntax: str
    dataset_offset: int


def read_file_meta(fp: BinaryIO) -> FileMeta:
    """Read preamble and File Meta Information from ``fp`` (positioned at 0); raises ParseError."""
    head = fp.read(132)
    if len(head) < 132 or head[128:132] != b"DICM":
        raise ParseError("not a DICOM Part-10 file (no DICM prefix)")
    values: dict[int, bytes] = {}
    offset = 132
    while True:
        header = fp.read(8)
        if len(header) < 8:
            break
        group, elem, vr = struct.unpack("<HH2s", header[:6])
        if group != 0x0002:
            break
        if vr in (b"OB", b"OW", b"OF", b"SQ", b"UT", b"UN"):
            extra = fp.read(4)
            (length,) = struct.unpack("<I", extra)
            size = 12 + length
        else:
            (length,) = struct.unpack("<H", header[6:8])
            size = 8 + length
        values[elem] = fp.read(length)
        offset += size
    fp.seek(offset)

    def text(elem: int) -> str:
        return values.get(elem, b"").rstrip(b"\x00 ").decode("ascii", "replace")

    if not text(0x0010):
        raise ParseError("the File Meta Information has no Transfer Syntax UID")
    return FileMeta(text(0x0002), text(0x0003), text(0x0010), offset)


@dataclass(frozen=True, slots=True)
class InstanceAttributes:
    """The attributes of one instance that the index keeps (study, series and instance levels)."""

    study_uid: str
    series_uid: str
    sop_instance_uid: str
    sop_class_uid: str
    patient_id: str = ""
    issuer: str | None = None
    patient_name: str | None = None
    patient_birth_date: str | None = None
    patient_sex: str | None = None
    accession: str | None = None
    accession_issuer: str | None = None
    study_date: str | None = None
    study_time: str | None = None
    study_description: str | None = None
    study_id: str | None = None
    referring_physician: str | None = None
    charset: str | None = None
    modality: str | None = None
    series_number: int | None = None
    series_description: str | None = None
    body_part: str | None = None
    instance_number: int | None = None
    number_of_frames: int | None = None
    rows: int | None = None
    columns: int | None = None


#: The attributes the index keeps: tag -> (field of InstanceAttributes, VR).
_WANTED: dict[int, tuple[str, str]] = {
    0x00080005: ("charset", "CS"),
    0x00080016: ("sop_class_uid", "UI"),
    0x00080018: ("sop_instance_uid", "UI"),
    0x00080020: ("study_date", "DA"),
    0x00080030: ("study_time", "TM"),
    0x00080050: ("accession", "SH"),
    0x00080051: ("accession_issuer", "SQ"),
    0x00080060: ("modality", "CS"),
    0x00080090: ("referring_physician", "PN"),
    0x00081030: ("study_description", "LO"),
    0x0008103E: ("series_description", "LO"),
    0x00100010: ("patient_name", "PN"),
    0x00100020: ("patient_id", "LO"),
    0x00100021: ("issuer", "LO"),
    0x00100030: ("patient_birth_date", "DA"),
    0x00100040: ("patient_sex", "CS"),
    0x00180015: ("body_part", "CS"),
    0x0020000D: ("study_uid", "UI"),
    0x0020000E: ("series_uid", "UI"),
    0x00200010: ("study_id", "SH"),
    0x00200011: ("series_number", "IS"),
    0x00200013: ("instance_number", "IS"),
    0x00280008: ("number_of_frames", "IS"),
    0x00280010: ("rows", "US"),
    0x00280011: ("columns", "US"),
}
#: Explicit VRs whose length is a 4-byte field after 2 reserved bytes (PS3.5 7.1.2).
_LONG_VRS = frozenset(
    {b"OB", b"OD", b"OF", b"OL", b"OV", b"OW", b"SQ", b"SV", b"UC", b"UN", b"UR", b"UT", b"UV"}
)
#: Explicit VRs with a 2-byte length field.
_SHORT_VRS = frozenset(
    {b"AE", b"AS", b"AT", b"CS", b"DA", b"DS", b"DT", b"FD", b"FL", b"IS", b"LO", b"LT", b"PN", b"SH"}
    | {b"SL", b"SS", b"ST", b"TM", b"UI", b"UL", b"US"}
)
_UNDEFINED = 0xFFFFFFFF
_ITEM, _ITEM_END, _SEQ_END = 0xFFFEE000, 0xFFFEE00D, 0xFFFEE0DD
_REQUIRED = {
    "study_uid": "StudyInstanceUID",
    "series_uid": "SeriesInstanceUID",
    "sop_instance_uid": "SOPInstanceUID",
    "sop_class_uid": "SOPClassUID",
}


class _Scanner:
    """Walks data element headers (PS3.5 7.1) without converting values; bounds-checked."""

    def __init__(self, data: bytes | memoryview, implicit: bool, little: bool) -> None:
        self.data = memoryview(data).cast("B")
        self.implicit = implicit
        self.order = "<" if little else ">"

    def _unpack(self, fmt: str, pos: int, size: int) -> tuple[int, ...]:
        if pos < 0 or pos + size > len(self.data):
            raise DatasetProblem("the data set ends in the middle of a data element")
        return struct.unpack_from(self.order + fmt, self.data, pos)

    def header(self, pos: int, implicit: bool) -> tuple[int, bytes | None, int, int]:
        """(tag, VR or None, value length, value position) of the element at ``pos``."""
        group, elem = self._unpack("HH", pos, 4)
        tag = group << 16 | elem
        if group == 0xFFFE or implicit:
            (length,) = self._unpack("I", pos + 4, 4)
            return tag, None, length, pos + 8
        vr = bytes(self.data[pos + 4 : pos + 6])
        if vr in _LONG_VRS:
            (length,) = self._unpack("I", pos + 8, 4)
            return tag, vr, length, pos + 12
        if len(vr) != 2 or not (vr.isalpha() and vr.isupper()):
            raise DatasetProblem(f"invalid VR {vr!r} at offset {pos}")
        (length,) = self._unpack("H", pos + 6, 2)
        return tag, vr, length, pos + 8

    def skip_sequence(self, pos: int, implicit: bool, depth: int = 0) -> int:
        """Position after a sequence of undefined length whose first item starts at ``pos``."""
        if depth > 16:
            raise DatasetProblem("sequences nested too deeply")
        while True:
            tag, _vr, length, value = self.header(pos, True)
            if tag == _SEQ_END:
                return value
            if tag != _ITEM:
                raise DatasetProblem(f"expected an item in a sequence at offset {pos}")
            if length != _UNDEFINED:
                pos = value + length
                continue
            pos = value
            while True:  # the item's elements, up to the item delimiter
                tag, vr, length, value = self.header(pos, implicit)
                if tag == _ITEM_END:
                    pos = value
                    break
                if length == _UNDEFINED:
                    pos = self.skip_sequence(value, implicit or vr == b"UN", depth + 1)
                else:
                    pos = value + length

    def elements(self, wanted: Container[int]) -> Iterator[tuple[int, memoryview]]:
        """(tag, raw value) of the ``wanted`` top-level elements (hot loop).

        Walks every element header to the end of the data set (values are skipped, not read), so
        that a data set cut anywhere, Pixel Data included, raises DatasetProblem.
        """
        data, end, implicit = self.data, len(self.data), self.implicit
        short = struct.Struct(self.order + "HH2sH").unpack_from
        long = struct.Struct(self.order + "I").unpack_from
        pos = 0
        while pos < end:
            if pos + 8 > end:
                raise DatasetProblem("the data set ends in the middle of a data element header")
            group, elem, vr, length = short(data, pos)
            tag = group << 16 | elem
            if implicit or group == 0xFFFE:
                (length,) = long(data, pos + 4)
                value = pos + 8
            elif vr in _LONG_VRS:
                if pos + 12 > end:
                    raise DatasetProblem("the data set ends in the middle of a data element")
                (length,) = long(data, pos + 8)
                value = pos + 12
            elif vr in _SHORT_VRS:
                value = pos + 8
            else:
                raise DatasetProblem(f"invalid VR {vr!r} at offset {pos}")
            if length == _UNDEFINED:
                next_pos = self.skip_sequence(value, implicit or vr == b"UN")
                if tag in wanted:
                    yield tag, data[value:next_pos]
                pos = next_pos
                continue
            pos = value + length
            if pos > end:
                raise DatasetProblem(f"element ({group:04X},{elem:04X}) runs past the end")
            if tag in wanted:
                yield tag, data[value:pos]


def _decode_text(raw: bytes, vr: str, encodings: list[str]) -> str | None:
    raw = raw.rstrip(b"\x00 ")
    if not raw:
        return None
    if vr == "UI" or raw.isascii():
        text = raw.decode("ascii", "replace")
    else:
        text = decode_bytes(raw, encodings, {0x5C, 0x3D, 0x5E} if vr == "PN" else {0x5C})
    return text.strip() or None


def _accession_issuer(raw: bytes, implicit: bool, little: bool) -> str | None:
    """UniversalEntityID (0040,0032) of IssuerOfAccessionNumberSequence's item when its type is ISO."""
    header = struct.pack("<HH" if little else ">HH", 0x0008, 0x0051)
    header += (b"" if implicit else b"SQ\x00\x00") + struct.pack("<I" if little else ">I", len(raw))
    try:
        ds = read_dataset(BytesIO(header + raw), implicit, little)
        item = ds[0x00080051].value[0]
        if str(item.get("UniversalEntityIDType", "")) == "ISO":
            return str(item.get("UniversalEntityID", "")) or None
    except Exception:  # an unreadable issuer is treated as absent
        return None
    return None


def _inflate(data: bytes | memoryview) -> bytes:
    try:
        return zlib.decompress(bytes(data), -zlib.MAX_WBITS)
    except zlib.error as exc:
        raise DatasetProblem(f"the deflated data set cannot be inflated: {exc}") from None


def _convert(name: str, vr: str, raw: bytes, order: str, encodings: list[str]) -> Any:
    if vr == "US":
        return struct.unpack_from(order + "H", raw)[0] if len(raw) >= 2 else None
    text = _decode_text(raw, vr, encodings)
    if vr == "IS":
        try:
            return int(text.split("\\")[0]) if text else None
        except ValueError:
            return None
    return text


def read_attributes(data: bytes | memoryview, transfer_syntax: str) -> InstanceAttributes:
    """Index attributes of a data set; raises DatasetProblem (``missing`` for absent UIDs).

    Walks the element headers of the whole data set (a data set cut anywhere, inside Pixel Data
    too, is refused) and converts only the attributes the index keeps: an order of magnitude
    faster than decoding the data set with pydicom.
    """
    ts = UID(transfer_syntax)
    if not ts.is_transfer_syntax:
        raise DatasetProblem(f"unknown transfer syntax {transfer_syntax}")
    if ts == DeflatedExplicitVRLittleEndian:
        data = _inflate(data)
    implicit, little = bool(ts.is_implicit_VR), bool(ts.is_little_endian)
    scanner = _Scanner(data, implicit, little)
    values: dict[str, Any] = {}
    encodings = convert_encodings(None)
    try:
        for tag, raw in scanner.elements(_WANTED):
            name, vr = _WANTED[tag]
            if vr == "SQ":
                values[name] = _accession_issuer(bytes(raw), implicit, little)
                continue
            values[name] = _convert(name, vr, bytes(raw), scanner.order, encodings)
            if name == "charset" and values[name]:
                encodings = convert_encodings([v.strip() for v in values[name].split("\\")])
    except (struct.error, LookupError, ValueError, TypeError) as exc:
        raise DatasetProblem(f"the data set cannot be parsed: {exc}") from None
    if not values:
        raise DatasetProblem("the data set is empty or not a DICOM data set")
    missing = [keyword for name, keyword in _REQUIRED.items() if not values.get(name)]
    if missing:
        raise DatasetProblem(f"the data set has no {', '.join(missing)} (Type 1)", missing=True)
    values["patient_id"] = values.get("patient_id") or ""
    return InstanceAttributes(**values)


def decode_dataset(data: bytes | memoryview, transfer_syntax: str) -> Dataset:
    """The whole data set encoded in ``transfer_syntax`` (deflate undone), values converted lazily."""
    ts = UID(transfer_syntax)
    if not ts.is_transfer_syntax:
        raise DatasetProblem(f"unknown transfer syntax {transfer_syntax}")
    raw = _inflate(data) if ts == DeflatedExplicitVRLittleEndian else data
    try:
        return read_dataset(BytesIO(raw), ts.is_implicit_VR, ts.is_little_endian)
    except Exception as exc:
        raise DatasetProblem(f"the data set cannot be parsed: {exc}") from None
