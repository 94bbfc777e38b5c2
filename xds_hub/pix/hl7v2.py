"""HL7 v2 messages over python-hl7 (HL7 v2.5 Chapter 2 encoding rules; ITI TF-2x C.2).

:func:`parse` turns the text of one message into a :class:`V2Message` whose accessors are 1-based
like the standard (``msg.value("PID", 3, rep=2, comp=4, sub=2)``), return unescaped text and
never raise: an absent value is ``""``.  :func:`render` builds a message from segments whose fields
are plain strings (escaped here) or tuples of components.  Anything python-hl7 cannot read becomes
a :class:`~xds_hub.errors.ParseError`.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, TypeAlias

import hl7
from hl7.util import escape as _hl7_escape

from xds_hub.errors import ParseError

#: The default encoding characters of MSH-2 (ITI TF-2x C.2.2 requires them).
ENCODING_CHARACTERS = "^~\\&"
SEPARATORS = "\r|~^&"

#: A component: a string, or a tuple of subcomponents.
Component: TypeAlias = str | tuple[str, ...]
#: One repetition of a field: its components.
Repetition: TypeAlias = tuple[Component, ...]
#: A field: a plain string, one repetition, or a list of repetitions.
FieldValue: TypeAlias = str | Repetition | list[Repetition]

#: PID-5 of a PIX answer or notification: no name (an empty repetition and one of name type S,
#: ITI TF-2a 3.9.4.2.2.5 / 3.10.4.1.2.3).
EMPTY_NAME: list[Repetition] = [("",), ("", "", "", "", "", "", "S")]


@dataclass(frozen=True, slots=True)
class Segment:
    """One parsed segment; fields are numbered as in the standard (MSH-3 is ``field(3)``)."""

    raw: Any  # hl7.Segment

    @property
    def id(self) -> str:
        return str(self.raw[0][0])

    def value(self, field: int, rep: int = 1, comp: int = 1, sub: int = 1) -> str:
        """The unescaped value at field/rep/comp/sub, ``""`` when absent."""
        if self.id == "MSH" and field <= 2:
            # python-hl7 keeps MSH-1 and MSH-2 as separate fields 1 and 2.
            return str(self.raw[field][0]) if len(self.raw) > field else ""
        try:
            return str(self.raw.extract_field(1, field, rep, comp, sub))
        except (IndexError, KeyError, ValueError, TypeError):
            return ""

    def repetitions(self, field: int) -> int:
        """How many repetitions field ``field`` holds (0 when empty)."""
        if field >= len(self.raw):
            return 0
        f = self.raw[field]
        if any(isinstance(x, hl7.Repetition) for x in f):
            return len(f)
        return 1 if str(f) else 0

    def field_text(self, field: int) -> str:
        """The raw (still escaped) text of a field."""
        return str(self.raw[field]) if field < len(self.raw) else ""


class V2Message:
    """A parsed HL7 v2 message and the MSH values every handler needs."""

    def __init__(self, raw: Any, text: str) -> None:
        self.raw = raw
        self.text = text
        self.segments: list[Segment] = [Segment(s) for s in raw]
        self.msh = self.segments[0]

    def all(self, segment_id: str) -> list[Segment]:
        return [s for s in self.segments if s.id == segment_id]

    def first(self, segment_id: str) -> Segment | None:
        return next((s for s in self.segments if s.id == segment_id), None)

    def segment_index(self, segment_id: str) -> int:
        """Position (0-based) of the first such segment, -1 if absent."""
        return next((i for i, s in enumerate(self.segments) if s.id == segment_id), -1)

    @property
    def message_type(self) -> str:
        return self.msh.value(9, comp=1)

    @property
    def trigger_event(self) -> str:
        return self.msh.value(9, comp=2)

    @property
    def structure(self) -> str:
        return self.msh.value(9, comp=3)

    @property
    def control_id(self) -> str:
        return self.msh.value(10)

    @property
    def processing_id(self) -> str:
        return self.msh.value(11)

    @property
    def version(self) -> str:
        return self.msh.value(12)

    @property
    def charset(self) -> str:
        return self.msh.value(18)


def _normalise(text: str) -> str:
    # Segments end with CR (HL7 2.5 2.5.5); tolerate LF and CRLF from files and lax senders.
    return text.replace("\r\n", "\r").replace("\n", "\r").strip("\r\n \t\x00")


def parse(text: str) -> V2Message:
    """Parse one HL7 v2 message; :class:`ParseError` unless it starts with a readable MSH segment."""
    text = _normalise(text)
    if not text.startswith("MSH") or len(text) < 8:
        raise ParseError("an HL7 v2 message starts with an MSH segment")
    if text[3] != "|" or text[4:8] != ENCODING_CHARACTERS:
        raise ParseError("MSH-1/MSH-2 must be the standard delimiters |^~\\& (ITI TF-2x C.2.2)")
    try:
        raw = hl7.parse(text)
    except Exception as exc:  # python-hl7 raises ParseException, IndexError, ... on bad input
        raise ParseError(f"not a readable HL7 v2 message: {exc}") from exc
    if not isinstance(raw, hl7.Message) or len(raw) == 0:
        raise ParseError("not a single HL7 v2 message")
    return V2Message(raw, text)


def split_messages(text: str) -> list[str]:
    """The messages of a file holding several (each starts with MSH; FHS/BHS/BTS/FTS dropped)."""
    messages: list[list[str]] = []
    for line in _normalise(text).split("\r"):
        line = line.strip("\n \t")
        if not line or line[:3] in ("FHS", "BHS", "BTS", "FTS"):
            continue
        if line.startswith("MSH") or not messages:
            messages.append([line])
        else:
            messages[-1].append(line)
    return ["\r".join(m) + "\r" for m in messages]


# ---------------------------------------------------------------------------------------------
# Building
# ---------------------------------------------------------------------------------------------

_ESCAPER = hl7.Message(separators=SEPARATORS)


def escape(value: str) -> str:
    """``value`` with the delimiters escaped (HL7 2.5 2.7.4)."""
    return str(_hl7_escape(_ESCAPER, value)) if value else ""


def _component(value: Component) -> Any:
    if isinstance(value, tuple):
        return hl7.Component(separators=SEPARATORS, sequence=[escape(v) for v in value])
    return escape(value)


def _repetition(value: Repetition) -> Any:
    return hl7.Repetition(separators=SEPARATORS, sequence=[_component(c) for c in value])


def _field(value: FieldValue) -> Any:
    if isinstance(value, str):
        return hl7.Field(separators=SEPARATORS, sequence=[escape(value)])
    if isinstance(value, tuple):
        return hl7.Field(separators=SEPARATORS, sequence=[_repetition(value)])
    return hl7.Field(separators=SEPARATORS, sequence=[_repetition(r) for r in value])


def segment(segment_id: str, *fields: FieldValue) -> Any:
    """A segment; for MSH, ``fields`` start at MSH-3 (MSH-1 and MSH-2 are the standard ones)."""
    seq: list[Any] = [hl7.Field(separators=SEPARATORS, sequence=[segment_id])]
    if segment_id == "MSH":
        seq += [
            hl7.Field(separators=SEPARATORS, sequence=["|"]),
            hl7.Field(separators=SEPARATORS, sequence=[ENCODING_CHARACTERS]),
        ]
    seq += [_field(f) for f in fields]
    # Trailing empty fields are not sent (HL7 2.5 2.5.3).
    while len(seq) > 1 and str(seq[-1]) == "":
        seq.pop()
    return hl7.Segment(separators=SEPARATORS, sequence=seq)


def render(segments: Iterable[Any]) -> str:
    """The text of a message made of ``segments`` (each ends with CR)."""
    return str(hl7.Message(separators=SEPARATORS, sequence=list(segments)))


def timestamp(now: datetime | None = None) -> str:
    """An HL7 DTM with seconds and UTC offset (``20240102030405+0000``)."""
    return (now or datetime.now(UTC)).strftime("%Y%m%d%H%M%S%z")


def cx(value: str, authority: str) -> Repetition:
    """A CX ``value^^^&authority&ISO`` (ITI TF-2x C.2.3 identifier form)."""
    return (value, "", "", ("", authority, "ISO"))


def msh(
    sending: tuple[str, str],
    receiving: tuple[str, str],
    message_type: Repetition,
    control_id: str,
    processing_id: str,
    version: str,
    charset: str = "",
) -> Any:
    """An MSH segment (HL7 2.5 2.15.9)."""
    fields: list[FieldValue] = [
        sending[0],
        sending[1],
        receiving[0],
        receiving[1],
        timestamp(),
        "",
        message_type,
        control_id,
        processing_id,
        version,
    ]
    if charset:
        fields += ["", "", "", "", "", charset]
    return segment("MSH", *fields)
