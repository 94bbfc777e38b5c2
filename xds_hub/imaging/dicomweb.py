"""The sans-HTTP core of WADO-RS / QIDO-RS (DICOM PS3.18 8 and 10): content negotiation, multipart
bodies streamed from the blob store, and the DICOM JSON model (PS3.18 Annex F)."""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from pydicom.uid import ExplicitVRLittleEndian

from xds_hub.imaging.query import KEYS, Level, StoredInstance

if TYPE_CHECKING:
    from xds_hub.storage.stores import Stores

#: PS3.18 8.7.3.5.2: the transfer syntax of application/dicom when the Accept header names none.
DEFAULT_TRANSFER_SYNTAX = ExplicitVRLittleEndian
CHUNK = 1024 * 1024


@dataclass(frozen=True, slots=True)
class MediaRange:
    """One media range of an Accept header, e.g. ``multipart/related; type="application/dicom"``."""

    media_type: str
    params: Mapping[str, str] = field(default_factory=dict)
    q: float = 1.0

    @property
    def is_multipart(self) -> bool:
        return self.media_type == "multipart/related"

    @property
    def part_type(self) -> str:
        """The type of the parts (the ``type`` parameter of multipart/related), else the type itself."""
        return self.params.get("type", "").lower() if self.is_multipart else self.media_type

    @property
    def transfer_syntax(self) -> str | None:
        return self.params.get("transfer-syntax")


def _split_params(text: str) -> list[str]:
    parts: list[str] = []
    current: list[str] = []
    quoted = False
    for ch in text:
        if ch == '"':
            quoted = not quoted
        if ch == ";" and not quoted:
            parts.append("".join(current))
            current = []
        else:
            current.append(ch)
    parts.append("".join(current))
    return parts


def _split_ranges(header: str) -> list[str]:
    ranges: list[str] = []
    current: list[str] = []
    quoted = False
    for ch in header:
        if ch == '"':
            quoted = not quoted
        if ch == "," and not quoted:
            ranges.append("".join(current))
            current = []
        else:
            current.append(ch)
    ranges.append("".join(current))
    return [r for r in ranges if r.strip()]


def parse_accept(header: str | None) -> list[MediaRange]:
    """The media ranges of an Accept header, most preferred first (``*/*`` when absent)."""
    ranges: list[MediaRange] = []
    for raw in _split_ranges(header or "*/*"):
        pieces = _split_params(raw)
        params: dict[str, str] = {}
        q = 1.0
        for piece in pieces[1:]:
            name, _, value = piece.strip().partition("=")
            value = value.strip().strip('"')
            if name.strip().lower() == "q":
                try:
                    q = float(value)
                except ValueError:
                    q = 0.0
            elif name.strip():
                params[name.strip().lower()] = value
        ranges.append(MediaRange(pieces[0].strip().lower(), params, q))
    return sorted((r for r in ranges if r.q > 0), key=lambda r: -r.q)


def accepts(ranges: Iterable[MediaRange], part_type: str, multipart: bool = True) -> MediaRange | None:
    """The first range that admits ``part_type`` (inside multipart/related when ``multipart``)."""
    main = part_type.split("/")[0]
    for r in ranges:
        if r.media_type in ("*/*", f"{main}/*"):
            return MediaRange("multipart/related" if multipart else part_type, {"type": part_type}, r.q)
        if multipart and r.is_multipart and r.part_type in (part_type, "", "*/*"):
            return r
        if r.media_type == part_type:
            return r
    return None


def new_boundary() -> str:
    return f"xdshub-{uuid.uuid4().hex}"


def multipart_content_type(part_type: str, boundary: str, transfer_syntax: str | None = None) -> str:
    value = f'multipart/related; type="{part_type}"; boundary={boundary}'
    if transfer_syntax:
        value += f"; transfer-syntax={transfer_syntax}"
    return value


def stream_parts(parts: Iterable[tuple[dict[str, str], Iterable[bytes]]], boundary: str) -> Iterator[bytes]:
    """A multipart/related body (RFC 2387), part by part, chunk by chunk."""
    for headers, body in parts:
        head = f"--{boundary}\r\n" + "".join(f"{k}: {v}\r\n" for k, v in headers.items()) + "\r\n"
        yield head.encode("ascii")
        yield from body
        yield b"\r\n"
    yield f"--{boundary}--\r\n".encode("ascii")


def blob_chunks(stores: Stores, key: str) -> Iterator[bytes]:
    """The blob's bytes, read a chunk at a time (flat memory, whatever the size)."""
    with stores.blobs.open(key) as fp:
        while chunk := fp.read(CHUNK):
            yield chunk


def instance_parts(
    stores: Stores, instances: Iterable[StoredInstance], base_url: str
) -> Iterator[tuple[dict[str, str], Iterable[bytes]]]:
    """One application/dicom part per instance (Part-10 file), streamed from its blob."""
    for inst in instances:
        headers = {
            "Content-Type": f"application/dicom; transfer-syntax={inst.transfer_syntax}",
            "Content-Length": str(inst.size),
            "Content-Location": instance_url(base_url, inst),
        }
        yield headers, blob_chunks(stores, inst.blob_key)


def instance_url(base_url: str, inst: StoredInstance) -> str:
    return f"{base_url}/studies/{inst.study_uid}/series/{inst.series_uid}/instances/{inst.sop_instance_uid}"


# -------------------------------------------------------------------------------------------
# DICOM JSON (PS3.18 Annex F)
# -------------------------------------------------------------------------------------------

_NUMERIC_VRS = frozenset({"IS", "DS", "US", "UL", "SS", "SL", "FL", "FD"})


def json_value(vr: str, value: Any) -> dict[str, Any]:
    """One attribute in the DICOM JSON model (F.2.2): ``{"vr": ..., "Value": [...]}``."""
    if value is None or value == "" or value == []:
        return {"vr": vr}
    values = value if isinstance(value, list) else [value]
    if vr == "PN":
        return {"vr": vr, "Value": [{"Alphabetic": str(v)} for v in values]}
    if vr in _NUMERIC_VRS:
        out: list[Any] = []
        for v in values:
            try:
                out.append(int(v) if vr not in ("DS", "FL", "FD") else float(v))
            except (TypeError, ValueError):
                out.append(v)
        return {"vr": vr, "Value": out}
    return {"vr": vr, "Value": [str(v) for v in values]}


#: What each QIDO-RS level returns (PS3.18 Tables 10.6.3-3 .. -5), beyond the keys matched on.
QIDO_RETURN: Mapping[Level, tuple[str, ...]] = {
    Level.STUDY: (
        "StudyDate",
        "StudyTime",
        "AccessionNumber",
        "ModalitiesInStudy",
        "ReferringPhysicianName",
        "PatientName",
        "PatientID",
        "IssuerOfPatientID",
        "PatientBirthDate",
        "PatientSex",
        "StudyInstanceUID",
        "StudyID",
        "StudyDescription",
        "NumberOfStudyRelatedSeries",
        "NumberOfStudyRelatedInstances",
    ),
    Level.SERIES: (
        "StudyInstanceUID",
        "Modality",
        "SeriesDescription",
        "SeriesNumber",
        "SeriesInstanceUID",
        "BodyPartExamined",
        "NumberOfSeriesRelatedInstances",
    ),
    Level.IMAGE: (
        "StudyInstanceUID",
        "SeriesInstanceUID",
        "SOPClassUID",
        "SOPInstanceUID",
        "InstanceNumber",
        "Rows",
        "Columns",
        "NumberOfFrames",
    ),
}


def qido_object(
    level: Level, row: Mapping[str, Any], base_url: str, extra: Iterable[str] = ()
) -> dict[str, Any]:
    """One QIDO-RS result in the DICOM JSON model, with its Retrieve URL (0008,1190)."""
    obj: dict[str, Any] = {}
    for keyword in dict.fromkeys([*QIDO_RETURN[level], *extra]):
        key = KEYS.get(keyword)
        if key is None or keyword not in row:
            continue
        obj[f"{key.tag:08X}"] = json_value(key.vr, row[keyword])
    url = f"{base_url}/studies/{row['StudyInstanceUID']}"
    if level in (Level.SERIES, Level.IMAGE):
        url += f"/series/{row['SeriesInstanceUID']}"
    if level is Level.IMAGE:
        url += f"/instances/{row['SOPInstanceUID']}"
    obj["00081190"] = {"vr": "UR", "Value": [url]}
    obj["00080005"] = {"vr": "CS", "Value": ["ISO_IR 192"]}
    return dict(sorted(obj.items()))
