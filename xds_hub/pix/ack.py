"""HL7 v2 acknowledgements: MSH of a reply, MSA and ERR (HL7 2.5 2.14.1, 2.15.5; ITI TF-2x C.2.3).

ERR carries each problem twice, so that v2.3.1 and v2.5 receivers both find it: ERR-1 (the v2.3.1
ELD ``PID^1^3^204&Unknown key identifier&HL70357``) and ERR-2 / ERR-3 / ERR-4 (v2.5 ERL, the
Table 0357 code, severity E), with the explanation in ERR-8.
"""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from typing import Any

from xds_hub.config import PixSettings
from xds_hub.errors import AckCode, Hl7Error, Hl7ErrorCode, Hl7Problem
from xds_hub.pix import hl7v2
from xds_hub.pix.hl7v2 import Raw, Repetition, V2Message

DEFAULT_VERSION = "2.5"


def control_id() -> str:
    """A fresh MSH-10 (20 hexadecimal characters: 80 random bits, unique)."""
    return os.urandom(10).hex()


def reply_msh(
    msg: V2Message | None,
    pix: PixSettings,
    message_type: Repetition,
    now: str | None = None,
    control: str | None = None,
) -> Any:
    """The MSH of a reply to ``msg``: sender and receiver swapped, same processing ID, version and
    character set (the request's own encoded fields are copied as they are).  ``now`` / ``control``:
    MSH-7 / MSH-10 (default: the current time, a fresh control ID)."""
    if msg is None:
        return hl7v2.segment(
            "MSH",
            pix.application,
            pix.facility,
            "",
            "",
            hl7v2.timestamp(),
            "",
            message_type,
            control_id(),
            "P",
            DEFAULT_VERSION,
        )
    field = msg.msh.field_text
    app, facility = field(5), field(6)
    charset = field(18)
    return hl7v2.segment(
        "MSH",
        Raw(app) if app else pix.application,
        Raw(facility) if facility else pix.facility,
        Raw(field(3)),
        Raw(field(4)),
        now or hl7v2.timestamp(),
        "",
        message_type,
        control or control_id(),
        Raw(field(11)) if msg.processing_id else "P",
        Raw(field(12)) if msg.version else DEFAULT_VERSION,
        *(("", "", "", "", "", Raw(charset)) if charset else ()),
    )


def msa(code: AckCode, msg: V2Message | None, text: str = "") -> Any:
    return hl7v2.segment("MSA", code.value, Raw(msg.msh.field_text(10)) if msg is not None else "", text[:80])


def err(problem: Hl7Problem) -> Any:
    code: Hl7ErrorCode = problem.code
    location = problem.location.split("^") if problem.location else []
    eld: tuple[Any, ...] = ()
    if location:
        eld = (*location[:3], *([""] * (3 - len(location[:3]))), (code.value, code.display, "HL70357"))
    return hl7v2.segment(
        "ERR",
        eld if eld else "",
        tuple(location) if location else "",
        (code.value, code.display, "HL70357"),
        "E",
        "",
        "",
        "",
        problem.text[:250],
    )


def errors(failure: Hl7Error | None) -> list[Any]:
    return [err(p) for p in failure.problems] if failure is not None else []


#: Placeholders of an acknowledgement template (private use characters: never escaped, never sent).
_NOW, _CONTROL, _ECHO = "\ue001N\ue001", "\ue001C\ue001", "\ue001E\ue001"
_PLACEHOLDERS = re.compile(f"{_NOW}|{_CONTROL}|{_ECHO}")
#: The AA acknowledgement of each kind of request (the MSH fields it copies, the trigger event),
#: rendered once by python-hl7 with placeholders and split on them (text, placeholder, text ...).
_ACCEPTS: dict[tuple[str, ...], tuple[str, ...]] = {}


def _accept(msg: V2Message, pix: PixSettings) -> str:
    """``ack(msg, pix)`` for an accepted message: the same text, from a template per kind of
    request (a feed's hot path: rendering every reply cost as much as reading the request)."""
    field = msg.msh.field_text
    key = (*(field(n) for n in (3, 4, 5, 6, 11, 12, 18)), msg.trigger_event, pix.application, pix.facility)
    parts = _ACCEPTS.get(key)
    if parts is None:
        text = hl7v2.render(
            [
                reply_msh(msg, pix, ("ACK", msg.trigger_event, "ACK"), _NOW, _CONTROL),
                hl7v2.segment("MSA", AckCode.ACCEPT.value, Raw(_ECHO)),
            ]
        )
        pieces: list[str] = []
        last = 0
        for m in _PLACEHOLDERS.finditer(text):
            pieces += [text[last : m.start()], m.group(0)]
            last = m.end()
        pieces.append(text[last:])
        parts = tuple(pieces)
        if len(_ACCEPTS) > 1024:
            _ACCEPTS.clear()
        _ACCEPTS[key] = parts
    fills = {_NOW: hl7v2.timestamp(), _CONTROL: control_id(), _ECHO: field(10)}
    return "".join(fills[p] if i % 2 else p for i, p in enumerate(parts))


def ack(msg: V2Message | None, pix: PixSettings, failure: Hl7Error | None = None) -> str:
    """A general acknowledgement ``ACK^<event>^ACK`` to ``msg``: AA, or AE/AR with ERR segments."""
    if failure is None and msg is not None:
        return _accept(msg, pix)
    trigger = msg.trigger_event if msg is not None else ""
    code = failure.ack if failure is not None else AckCode.ACCEPT
    text = failure.problems[0].text if failure is not None else ""
    segments: Sequence[Any] = [
        reply_msh(msg, pix, ("ACK", trigger, "ACK")),
        msa(code, msg, text),
        *errors(failure),
    ]
    return hl7v2.render(segments)
