"""HL7 v2 messages over python-hl7 (HL7 v2.5 Chapter 2 encoding rules; ITI TF-2x C.2).

:func:`parse` turns the text of one message into a :class:`V2Message` whose accessors are 1-based
like the standard (``msg.value("PID", 3, rep=2, comp=4, sub=2)``), return unescaped text and
never raise: an absent value is ``""``.  :func:`render` builds a message from segments whose fields
are plain strings (escaped here) or tuples of components.  Anything python-hl7 cannot read becomes
a :class:`~xds_hub.errors.ParseError`.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any, TypeAlias

import hl7
from hl7.parser import _ParsePlan
from hl7.parser import _split as _hl7_split
from hl7.util import unescape as _hl7_unescape

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


def _light(base: Any, level: int) -> Any:
    """A python-hl7 container class for the standard separators: they (and the factory) are class
    attributes, so the constructor skips the generic checks and sets nothing else when given the
    defaults; behaviour is otherwise the library's."""

    def __init__(
        self: Any,
        separator: Any = None,
        sequence: Any = (),
        esc: str = "\\",
        separators: str = SEPARATORS,
        factory: Any = None,
    ) -> None:
        list.__init__(self, sequence)
        if esc != "\\" or separators != SEPARATORS:
            self.separator = separators[level]
            self.esc = esc
            self.separators = separators
        if factory is not None and factory is not Factory:
            self.factory = factory

    attributes = {
        "__init__": __init__,
        "__slots__": (),
        "separator": SEPARATORS[level],
        "esc": "\\",
        "separators": SEPARATORS,
    }
    return type(base.__name__, (base,), attributes)


def _fast(light: Any) -> Any:
    """The same container built from its children alone (``cls(children)``: list's own
    constructor), for the parse plans and builders below, which only ever use the defaults.  A
    slice (which python-hl7 builds with ``self.__class__(separator, ...)``) is a ``light`` one."""

    def __getitem__(self: Any, item: Any) -> Any:
        if isinstance(item, slice):
            return light(None, list.__getitem__(self, item))
        return light.__getitem__(self, item)

    return type(
        light.__name__, (light,), {"__init__": list.__init__, "__getitem__": __getitem__, "__slots__": ()}
    )


class Factory(hl7.Factory):  # type: ignore[misc]
    """python-hl7's container factory with lighter constructors (the library's extension point)."""

    create_message = _light(hl7.Message, 0)
    create_segment = _light(hl7.Segment, 1)
    create_field = _light(hl7.Field, 2)
    create_repetition = _light(hl7.Repetition, 3)
    create_component = _light(hl7.Component, 4)


for _cls in (
    Factory.create_message,
    Factory.create_segment,
    Factory.create_field,
    Factory.create_repetition,
    Factory.create_component,
):
    _cls.factory = Factory

_Message = _fast(Factory.create_message)
_Segment = _fast(Factory.create_segment)
_Field = _fast(Factory.create_field)
_Repetition = _fast(Factory.create_repetition)
_Component = _fast(Factory.create_component)

#: Plain list indexing (python-hl7 containers override ``__getitem__`` with slower logic).
_get = list.__getitem__
_set = list.__setitem__

# ---------------------------------------------------------------------------------------------
# Parsing: python-hl7's own splitter, driven by parse plans built once
# ---------------------------------------------------------------------------------------------
#
# ``hl7.parse`` builds a fresh ``_ParsePlan`` for every element it splits (and checks it with an
# assertion), which was half of its cost here.  The plans below are python-hl7's ``_ParsePlan``
# with each level built once (the separators are always the standard ones: :func:`parse` refuses
# others), handed to the library's own ``_split``.  A message is split by the library down to its
# fields only (:data:`_MESSAGE_PLAN`); a field is split into repetitions, components and
# subcomponents, again by the library (:data:`_FIELD_PLAN`), the first time a reader asks for it:
# a feed reads MSH-9 and PID-3/5/7/8, and the other fields stay text, copied as they are into the
# ACK or echoed (QPD).  The trees are those ``hl7.parse`` builds (a test compares them).

#: python-hl7's container classes per level (the library compares a plan's with its factory's)
#: and the fast ones the plans build.
_CONTAINERS: tuple[Any, ...] = (
    Factory.create_message,
    Factory.create_segment,
    Factory.create_field,
    Factory.create_repetition,
    Factory.create_component,
)
_BUILD: tuple[Any, ...] = (_Message, _Segment, _Field, _Repetition, _Component)


class _Plan(_ParsePlan):  # type: ignore[misc]
    """A level of python-hl7's parse plan whose deeper levels are built once (``next``), with the
    library's semantics: ``applies`` when the text holds this level's or a deeper separator."""

    def __init__(self, level: int, deepest: int) -> None:
        self.separator = SEPARATORS[level]
        self.separators = SEPARATORS
        self.containers = list(_CONTAINERS[level : deepest + 1])
        self.esc = "\\"
        self.factory = Factory
        self._tail = SEPARATORS[level:]
        self._make = _BUILD[level]
        self._next = _Plan(level + 1, deepest) if level < deepest else None

    def next(self) -> _Plan | None:
        return self._next

    def applies(self, text: str) -> bool:
        for sep in self._tail:  # noqa: SIM110 (a loop: any() over a generator costs more here)
            if sep in text:
                return True
        return False

    def container(self, data: list[Any]) -> Any:
        return self._make(data)


#: Message > segments > fields (left as text).
_MESSAGE_PLAN = _Plan(0, 1)
#: Field > repetitions > components > subcomponents.
_FIELD_PLAN = _Plan(2, 4)
#: What makes a field more than one plain value.
_FIELD_SEPARATORS = SEPARATORS[2:]


def _split_field(text: str) -> Any:
    """A field's tree, as ``hl7.parse`` builds it."""
    return _hl7_split(text, _FIELD_PLAN)


def _plain(text: str) -> bool:
    """True when a field's text holds no repetition, component or subcomponent separator."""
    for sep in _FIELD_SEPARATORS:  # noqa: SIM110 (a loop: all() over a generator costs more here)
        if sep in text:
            return False
    return True


class Segment:
    """One parsed segment; fields are numbered as in the standard (MSH-3 is ``value(3)``)."""

    __slots__ = ("_text", "id", "raw")

    def __init__(self, raw: Any, text: str | None = None) -> None:
        self.raw = raw  # hl7.Segment: its fields are text until first read (_field)
        self._text = text
        first = _get(raw, 0) if len(raw) else ""
        self.id = first if isinstance(first, str) else (str(_get(first, 0)) if len(first) else "")

    def _field(self, field: int) -> Any:
        """Field ``field`` (1 <= field < len), split by python-hl7 on first use; plain text stays
        a string."""
        raw = self.raw
        node = _get(raw, field)
        if isinstance(node, str) and not _plain(node):
            node = _split_field(node)
            _set(raw, field, node)
        return node

    def value(self, field: int, rep: int = 1, comp: int = 1, sub: int = 1) -> str:
        """The unescaped value at field/rep/comp/sub, ``""`` when absent.

        Walks python-hl7's tree (Field > Repetition > Component > subcomponent strings, a level
        collapsed into a string when it holds no delimiter) with its compatibility rule: a value
        reached early answers for position 1 of the deeper levels.
        """
        raw = self.raw
        if field >= len(raw) or field < 1:
            return ""
        if field <= 2 and self.id == "MSH":
            # python-hl7 keeps MSH-1 and MSH-2 as fields 1 and 2, unsplit.
            f = _get(raw, field)
            return str(_get(f, 0)) if f else ""
        return self._walk(self._field(field), (rep, comp, sub))

    def _walk(self, node: Any, path: tuple[int, ...]) -> str:
        depth, size = 0, len(path)
        while depth < size:
            if not isinstance(node, str):
                if len(node) != 1 or not isinstance(_get(node, 0), str):
                    index = path[depth]
                    if index < 1 or index > len(node):
                        return ""
                    node = _get(node, index - 1)
                    depth += 1
                    continue
                node = _get(node, 0)  # a level holding one plain value
            # A leaf reached before the end of the path stands for position 1 of every deeper level.
            for index in path[depth:]:
                if index != 1:
                    return ""
            break
        while not isinstance(node, str):
            if not node:
                return ""
            node = _get(node, 0)
        return unescape(node) if "\\" in node else node

    def values(self, field: int, rep: int, paths: tuple[tuple[int, int], ...]) -> list[str]:
        """``[value(field, rep, comp, sub) for comp, sub in paths]``, walking to the repetition
        once (a CX's ID and assigning authority, a name's parts)."""
        raw = self.raw
        if field >= len(raw) or field < 1 or (field <= 2 and self.id == "MSH"):
            return [self.value(field, rep, c, s) for c, s in paths]
        node = self._field(field)
        if isinstance(node, str) or (len(node) == 1 and isinstance(_get(node, 0), str)):
            text = node if isinstance(node, str) else _get(node, 0)
            return [self._walk(text, (rep, c, s)) for c, s in paths]
        if rep < 1 or rep > len(node):
            return [""] * len(paths)
        repetition = _get(node, rep - 1)
        return [self._walk(repetition, (c, s)) for c, s in paths]

    def repetitions(self, field: int) -> int:
        """How many repetitions field ``field`` holds (0 when empty)."""
        if field >= len(self.raw) or field < 1:
            return 0
        f = self._field(field)
        if isinstance(f, str):
            return 1 if f else 0
        if len(f) == 1 and isinstance(f[0], str):
            return 1 if f[0] else 0
        return len(f)

    @property
    def text(self) -> str:
        """The segment as received (python-hl7's rendering when it was not parsed from text)."""
        return self._text if self._text is not None else str(self.raw)

    def field_text(self, field: int) -> str:
        """The raw (still escaped) text of a field."""
        return str(_get(self.raw, field)) if field < len(self.raw) else ""


class V2Message:
    """A parsed HL7 v2 message and the MSH values every handler needs (read once)."""

    def __init__(self, raw: Any, text: str) -> None:
        self.raw = raw
        self.text = text
        lines = text.split("\r")
        if len(lines) == len(raw):  # the library's segments are the lines of the text
            self.segments: list[Segment] = [Segment(s, line) for s, line in zip(raw, lines, strict=True)]
        else:
            self.segments = [Segment(s) for s in raw]
        self.msh = msh = self.segments[0]
        self.message_type, self.trigger_event, self.structure = msh.values(9, 1, ((1, 1), (2, 1), (3, 1)))
        self.control_id = msh.value(10)
        self.processing_id = msh.value(11)
        self.version = msh.value(12)
        self.charset = msh.value(18)

    def all(self, segment_id: str) -> list[Segment]:
        return [s for s in self.segments if s.id == segment_id]

    def first(self, segment_id: str) -> Segment | None:
        return next((s for s in self.segments if s.id == segment_id), None)


def _normalise(text: str) -> str:
    # Segments end with CR (HL7 2.5 2.5.5); tolerate LF and CRLF from files and lax senders.
    if "\n" in text:
        text = text.replace("\r\n", "\r").replace("\n", "\r")
    return text.strip("\r\n \t\x00")


def parse(text: str, segments: frozenset[str] | None = None) -> V2Message:
    """Parse one HL7 v2 message; :class:`ParseError` unless it starts with a readable MSH segment.

    With ``segments``, only those segments are handed to python-hl7 (a receiver that reads PID
    need not split every PV1, OBX or NK1 a sender adds); MSH is always kept.
    """
    text = _normalise(text)
    if not text.startswith("MSH") or len(text) < 8:
        raise ParseError("an HL7 v2 message starts with an MSH segment")
    if text[3] != "|" or text[4:8] != ENCODING_CHARACTERS:
        raise ParseError("MSH-1/MSH-2 must be the standard delimiters |^~\\& (ITI TF-2x C.2.2)")
    if segments is not None:
        lines = text.split("\r")
        if any(line[:3] not in segments for line in lines[1:]):
            text = "\r".join([lines[0], *(line for line in lines[1:] if line[:3] in segments)])
    try:
        raw = _hl7_split(text, _MESSAGE_PLAN)
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

#: HL7 v2.7 2.7.4 (escape sequences supporting delimiter values) and 2.7.5 (hexadecimal data): the
#: delimiters and the escape character, and the CR / LF a value may hold (a CR would end the
#: segment).  Every other character, non-ASCII included, is sent as it is: MSH-18 says how the
#: text is encoded.
_ESCAPES = str.maketrans(
    {
        "|": "\\F\\",
        "^": "\\S\\",
        "~": "\\R\\",
        "&": "\\T\\",
        "\\": "\\E\\",
        "\r": "\\X0D\\",
        "\n": "\\X0A\\",
    }
)
_SPECIAL = re.compile(r"[|^~&\\\r\n]")


def escape(value: str) -> str:
    """``value`` with the delimiters, the escape character and CR/LF escaped (HL7 v2.7 2.7.4,
    2.7.5); anything else, accented or non-Latin letters included, is left as it is."""
    if _SPECIAL.search(value) is None:
        return value
    return value.translate(_ESCAPES)


_SEQUENCE = re.compile(r"\\([^\\]*)\\")
_ESCAPER = hl7.Message(separators=SEPARATORS)


def _unescape_one(match: re.Match[str]) -> str:
    body = match.group(1)
    if body[:1] == "X" and len(body) > 1:
        # Hexadecimal data (2.7.5): bytes of the message's own encoding (the text is decoded
        # already): UTF-8 when they form it, else one character per byte.
        try:
            data = bytes.fromhex(body[1:])
        except ValueError:
            return ""
        try:
            return data.decode("utf-8")
        except UnicodeDecodeError:
            return data.decode("latin-1")
    if body in ("H", "N"):  # highlighting on / off (2.7.3): no text
        return ""
    return str(_hl7_unescape(_ESCAPER, match.group(0)))


def unescape(value: str) -> str:
    """The text of an escaped value (HL7 v2.7 2.7): python-hl7's unescaping, except hexadecimal
    data, which is decoded as bytes (python-hl7 turns each byte into a character)."""
    if "\\" not in value:
        return value
    return _SEQUENCE.sub(_unescape_one, value)


class Raw(str):
    """A field's text already in HL7 encoding (e.g. copied from a parsed message): not escaped."""

    __slots__ = ()


def _component(value: Component) -> Any:
    if isinstance(value, tuple):
        return _Component([escape(v) for v in value])
    return escape(value)


def _repetition(value: Repetition) -> Any:
    return _Repetition([_component(c) for c in value])


def _field(value: FieldValue) -> Any:
    # A field of one plain value stays a string in the segment (as in a parsed one): python-hl7
    # renders it the same, without a container to build and walk.
    if isinstance(value, Raw):
        return str(value)
    if isinstance(value, str):
        return escape(value)
    if isinstance(value, tuple):
        return _Field([_repetition(value)])
    return _Field([_repetition(r) for r in value])


def segment(segment_id: str, *fields: FieldValue) -> Any:
    """A segment; for MSH, ``fields`` start at MSH-3 (MSH-1 and MSH-2 are the standard ones)."""
    seq: list[Any] = [segment_id, "|", ENCODING_CHARACTERS] if segment_id == "MSH" else [segment_id]
    seq += [_field(f) for f in fields]
    # Trailing empty fields are not sent (HL7 2.5 2.5.3).
    while len(seq) > 1 and (seq[-1] == "" or str(seq[-1]) == ""):
        seq.pop()
    return _Segment(seq)


def render(segments: Iterable[Any]) -> str:
    """The text of a message made of ``segments`` (each ends with CR)."""
    return str(_Message(segments))


#: (second, its DTM): every reply of the same second carries the same MSH-7.
_last_timestamp: tuple[int, str] = (0, "")


def timestamp(now: datetime | None = None) -> str:
    """An HL7 DTM with seconds and UTC offset (``20240102030405+0000``)."""
    global _last_timestamp
    if now is not None:
        return now.strftime("%Y%m%d%H%M%S%z")
    second, text = _last_timestamp
    current = int(time.time())
    if current != second:
        text = datetime.fromtimestamp(current, UTC).strftime("%Y%m%d%H%M%S%z")
        _last_timestamp = (current, text)
    return text


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
