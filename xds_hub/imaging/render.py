"""Rendered images and frames of stored instances (DICOM PS3.18 8.3.5.1 "Rendered Media Types",
WADO-URI 9.1 image/jpeg, image/png, image/gif; WADO-RS ``/rendered`` and ``/frames``).

Grayscale frames go through the Modality LUT (Rescale Slope / Intercept), then a linear VOI
window (PS3.3 C.11.2.1.2: the one asked for, else the instance's Window Center / Width, else the
frame's range), then to 8 bits; MONOCHROME1 is inverted.  Colour frames are shown as RGB.
"""

from __future__ import annotations

from dataclasses import dataclass
from io import BytesIO
from typing import Any

import numpy as np
from PIL import Image
from pydicom.dataset import Dataset
from pydicom.encaps import generate_frames
from pydicom.pixels.processing import apply_modality_lut
from pydicom.pixels.utils import pixel_array
from pydicom.uid import UID

#: Rendered media types the hub produces, and Pillow's name for each.
RENDERED_TYPES = {"image/jpeg": "JPEG", "image/png": "PNG", "image/gif": "GIF"}

#: The media type of an encapsulated frame, by transfer syntax (PS3.18 Table 8.7.3-2).
FRAME_MEDIA_TYPES = {
    "1.2.840.10008.1.2.4.50": "image/jpeg",
    "1.2.840.10008.1.2.4.51": "image/jpeg",
    "1.2.840.10008.1.2.4.57": "image/jpeg",
    "1.2.840.10008.1.2.4.70": "image/jpeg",
    "1.2.840.10008.1.2.4.80": "image/jls",
    "1.2.840.10008.1.2.4.81": "image/jls",
    "1.2.840.10008.1.2.4.90": "image/jp2",
    "1.2.840.10008.1.2.4.91": "image/jp2",
    "1.2.840.10008.1.2.4.201": "image/jphc",
    "1.2.840.10008.1.2.4.202": "image/jphc",
    "1.2.840.10008.1.2.4.203": "image/jphc",
    "1.2.840.10008.1.2.5": "image/dicom-rle",
}


class RenderError(ValueError):
    """The frame cannot be rendered (no pixel data, unknown frame, undecodable compression)."""


@dataclass(frozen=True, slots=True)
class RenderOptions:
    media_type: str = "image/jpeg"
    #: (center, width) of a linear VOI window; None: the instance's own, else the frame's range.
    window: tuple[float, float] | None = None
    #: Largest (columns, rows) of the output; aspect ratio kept.
    viewport: tuple[int, int] | None = None
    quality: int = 90


def number_of_frames(ds: Dataset) -> int:
    try:
        return max(1, int(ds.get("NumberOfFrames") or 1))
    except (TypeError, ValueError):
        return 1


def _frame_array(ds: Dataset, frame: int) -> np.ndarray[Any, Any]:
    if "PixelData" not in ds:
        raise RenderError("the instance has no pixel data")
    frames = number_of_frames(ds)
    if not 1 <= frame <= frames:
        raise RenderError(f"frame {frame} is out of range (the instance has {frames})")
    try:
        return np.asarray(pixel_array(ds, index=frame - 1))
    except Exception as exc:  # decoder missing or data broken
        raise RenderError(f"the pixel data cannot be decoded: {exc}") from None


def _first(value: Any) -> float | None:
    if value is None or value == "":
        return None
    if isinstance(value, list | tuple) or type(value).__name__ == "MultiValue":
        value = value[0] if len(value) else None
    return None if value is None else float(value)


def _to_8bit(
    ds: Dataset, arr: np.ndarray[Any, Any], window: tuple[float, float] | None
) -> np.ndarray[Any, Any]:
    data = np.asarray(apply_modality_lut(arr, ds), dtype=np.float64)
    if window is None:
        center, width = _first(ds.get("WindowCenter")), _first(ds.get("WindowWidth"))
        if center is not None and width is not None and width >= 1:
            window = (center, width)
    if window is not None:
        center, width = window
        width = max(width, 1.0)
        scaled = ((data - (center - 0.5)) / (width - 1 if width > 1 else 1) + 0.5).clip(0.0, 1.0)
    else:
        low, high = float(data.min()), float(data.max())
        scaled = (data - low) / (high - low) if high > low else np.zeros_like(data)
    if str(ds.get("PhotometricInterpretation", "")).strip() == "MONOCHROME1":
        scaled = 1.0 - scaled
    return (scaled * 255.0 + 0.5).astype(np.uint8)


def render_frame(ds: Dataset, frame: int, options: RenderOptions) -> bytes:
    """Frame ``frame`` (1-based) of ``ds`` as an image of ``options.media_type``."""
    fmt = RENDERED_TYPES.get(options.media_type)
    if fmt is None:
        raise RenderError(f"{options.media_type} is not a rendered media type the hub produces")
    arr = _frame_array(ds, frame)
    samples = int(ds.get("SamplesPerPixel", 1) or 1)
    if samples == 1:
        image = Image.fromarray(_to_8bit(ds, arr, options.window), mode="L")
    else:
        if arr.dtype != np.uint8:
            high = float(arr.max()) or 1.0
            arr = (arr.astype(np.float64) / high * 255.0).astype(np.uint8)
        image = Image.fromarray(arr[..., :3], mode="RGB")
    if options.viewport:
        image.thumbnail(options.viewport)
    out = BytesIO()
    if fmt == "JPEG":
        image.save(out, format=fmt, quality=max(1, min(100, options.quality)))
    else:
        image.save(out, format=fmt)
    return out.getvalue()


def frame_bytes(ds: Dataset, frame: int, transfer_syntax: str, keep_compressed: bool) -> tuple[str, bytes]:
    """Frame ``frame`` (1-based) as (media type, bytes) for WADO-RS ``/frames`` (PS3.18 8.7.3.3.2).

    An encapsulated frame is returned as stored when ``keep_compressed`` (its compressed media
    type); otherwise it is decoded to native little-endian samples (application/octet-stream).
    """
    frames = number_of_frames(ds)
    if "PixelData" not in ds:
        raise RenderError("the instance has no pixel data")
    if not 1 <= frame <= frames:
        raise RenderError(f"frame {frame} is out of range (the instance has {frames})")
    ts = UID(transfer_syntax)
    if ts.is_encapsulated and keep_compressed and transfer_syntax in FRAME_MEDIA_TYPES:
        for index, data in enumerate(generate_frames(ds.PixelData, number_of_frames=frames), start=1):
            if index == frame:
                return FRAME_MEDIA_TYPES[transfer_syntax], data
    if not ts.is_encapsulated and ts.is_little_endian:
        size = int(ds.Rows) * int(ds.Columns) * int(ds.get("SamplesPerPixel", 1) or 1)
        bits = int(ds.BitsAllocated)
        if bits % 8 == 0:
            per_frame = size * bits // 8
            start = (frame - 1) * per_frame
            return "application/octet-stream", bytes(ds.PixelData[start : start + per_frame])
    arr = _frame_array(ds, frame)
    return "application/octet-stream", np.ascontiguousarray(arr).astype(arr.dtype.newbyteorder("<")).tobytes()
