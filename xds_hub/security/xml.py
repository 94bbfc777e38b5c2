"""Hardened XML parsing for everything that arrives from the network (SOAP envelopes, ebRIM, HL7 v3).

Attacks and what stops them:

- XXE (external entities: ``file://`` or ``http://`` in a DTD) and external DTD loading: no entity
  resolution, no DTD loading, no network access, and any document with a DOCTYPE is refused
  (SOAP 1.2 Part 1 section 5: "A SOAP message MUST NOT contain a Document Type Declaration"; HL7 v3
  ITS messages have none either);
- billion laughs / quadratic blow-up (nested or large internal entities): refused with the DOCTYPE;
  libxml2's entity amplification guard stops them even before that check;
- deep nesting and element floods: depth and element-count limits, checked while parsing (a pull
  parser fed in chunks), so the parse stops at the first element over the limit;
- oversized input: a byte limit counted before any byte is handed to libxml2; ``huge_tree`` stays
  off, so libxml2's own limits apply too (10 MB per text node, 256 levels).

Every failure is :class:`xds_hub.errors.ParseError`; nothing else escapes.  lxml parsers are not
thread-safe, so each parse builds its own pull parser (cheap).

Use :func:`parse_bytes` (default limits) or ``safe_parser(...)`` for other limits; code that has to
parse with its own ``etree.XMLParser`` takes :func:`hardened_parser` and calls :func:`check_tree`.
:func:`parse_fast` is the same defence for hot paths (SOAP envelopes): libxml2 parses in one call,
the element count is bounded from the bytes before parsing, and the depth limit is libxml2's own
(256 levels without ``huge_tree``) instead of ``max_depth``; it is several times cheaper than the
pull parser on metadata-heavy messages.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from lxml import etree

from xds_hub.errors import ParseError

#: Chunk size fed to the pull parser.
CHUNK = 64 * 1024
_DOCTYPE = b"<!DOCTYPE"


@dataclass(frozen=True, slots=True)
class XmlLimits:
    """Limits on one document."""

    #: Bytes of the serialized document.
    max_bytes: int = 64 * 1024 * 1024
    #: Element nesting depth (the root element is at depth 1).  ebRIM needs ~12, HL7 v3 ~25.
    max_depth: int = 100
    #: Elements in the document.
    max_elements: int = 1_000_000


DEFAULT_LIMITS = XmlLimits()


def hardened_parser() -> etree.XMLParser:
    """An lxml parser with entity resolution, DTD loading and network access off (one per thread)."""
    return etree.XMLParser(
        resolve_entities=False,
        no_network=True,
        load_dtd=False,
        dtd_validation=False,
        huge_tree=False,
        collect_ids=False,
    )


def _refuse_doctype(tree: etree._ElementTree) -> None:
    info: Any = tree.docinfo  # lxml-stubs lacks DocInfo.doctype
    if info.doctype or info.internalDTD is not None or info.externalDTD is not None:
        raise ParseError("XML with a document type declaration (DOCTYPE) is not accepted")


def check_tree(root: etree._Element, limits: XmlLimits = DEFAULT_LIMITS) -> None:
    """Raise ParseError if an already parsed tree has a DOCTYPE, entity references, or is too deep/big."""
    _refuse_doctype(root.getroottree())
    depth = elements = 0
    for event, node in etree.iterwalk(root, events=("start", "end")):
        if event == "end":
            depth -= 1
            continue
        if isinstance(node, etree._Entity):
            raise ParseError("XML with entity references is not accepted")
        depth += 1
        elements += 1
        _check_counts(depth, elements, limits)
    for node in root.iter(etree.Entity):
        raise ParseError(f"XML with entity references is not accepted ({node})")


def _check_counts(depth: int, elements: int, limits: XmlLimits) -> None:
    if depth > limits.max_depth:
        raise ParseError(f"XML nested deeper than {limits.max_depth} elements")
    if elements > limits.max_elements:
        raise ParseError(f"XML with more than {limits.max_elements} elements")


class SafeXmlParser:
    """Parses untrusted XML within :class:`XmlLimits`; see the module docstring."""

    def __init__(self, limits: XmlLimits = DEFAULT_LIMITS) -> None:
        self.limits = limits

    def parse_chunks(self, chunks: Iterable[bytes]) -> etree._Element:
        """The root element of the document made of ``chunks`` (e.g. a stream read piece by piece)."""
        limits = self.limits
        parser = etree.XMLPullParser(
            events=("start", "end"),
            resolve_entities=False,
            no_network=True,
            load_dtd=False,
            dtd_validation=False,
            huge_tree=False,
            collect_ids=False,
        )
        size = depth = elements = 0
        head = b""
        try:
            for chunk in chunks:
                size += len(chunk)
                if size > limits.max_bytes:
                    raise ParseError(f"XML larger than {limits.max_bytes} bytes")
                if len(head) < 4096:  # a DOCTYPE comes before the root element: refuse it unparsed
                    head = (head + chunk)[:4096]
                    if _DOCTYPE in head:
                        raise ParseError("XML with a document type declaration (DOCTYPE) is not accepted")
                parser.feed(chunk)
                for event, node in parser.read_events():
                    if event == "end":
                        depth -= 1
                        continue
                    if isinstance(node, etree._Entity):
                        raise ParseError("XML with entity references is not accepted")
                    depth += 1
                    elements += 1
                    _check_counts(depth, elements, limits)
            root = parser.close()
        except ParseError:
            raise
        except (etree.LxmlError, ValueError, UnicodeError) as exc:
            raise ParseError(f"XML is not well-formed: {exc}") from exc
        _refuse_doctype(root.getroottree())
        for node in root.iter(etree.Entity):
            raise ParseError(f"XML with entity references is not accepted ({node})")
        return root

    def parse_bytes(self, data: bytes) -> etree._Element:
        """The root element of ``data``."""
        if len(data) > self.limits.max_bytes:
            raise ParseError(f"XML larger than {self.limits.max_bytes} bytes")
        view = memoryview(data)
        return self.parse_chunks(bytes(view[i : i + CHUNK]) for i in range(0, max(len(data), 1), CHUNK))


def safe_parser(
    *,
    max_bytes: int = DEFAULT_LIMITS.max_bytes,
    max_depth: int = DEFAULT_LIMITS.max_depth,
    max_elements: int = DEFAULT_LIMITS.max_elements,
) -> SafeXmlParser:
    """A parser with these limits (it may be shared: every parse uses a fresh lxml parser)."""
    return SafeXmlParser(XmlLimits(max_bytes=max_bytes, max_depth=max_depth, max_elements=max_elements))


_DEFAULT = SafeXmlParser()
_LOCAL = threading.local()


def _thread_parser() -> etree.XMLParser:
    parser: etree.XMLParser | None = getattr(_LOCAL, "parser", None)
    if parser is None:
        parser = _LOCAL.parser = hardened_parser()
    return parser


def parse_fast(data: bytes, limits: XmlLimits = DEFAULT_LIMITS) -> etree._Element:
    """Parse untrusted ``data`` as :func:`parse_bytes` does, in one libxml2 call (see the module
    docstring: the depth limit is libxml2's 256 levels).  Raises ParseError."""
    if len(data) > limits.max_bytes:
        raise ParseError(f"XML larger than {limits.max_bytes} bytes")
    tags = data.count(b"<")  # every element needs one; a start and an end tag need two
    if tags > 2 * limits.max_elements + 16:
        raise ParseError(f"XML with more than {limits.max_elements} elements")
    if _DOCTYPE in data[:4096]:
        raise ParseError("XML with a document type declaration (DOCTYPE) is not accepted")
    try:
        root = etree.fromstring(data, _thread_parser())
    except (etree.LxmlError, ValueError, UnicodeError) as exc:
        raise ParseError(f"XML is not well-formed: {exc}") from exc
    _refuse_doctype(root.getroottree())
    for node in root.iter(etree.Entity):
        raise ParseError(f"XML with entity references is not accepted ({node})")
    if tags > limits.max_elements and sum(1 for _ in root.iter()) > limits.max_elements:
        raise ParseError(f"XML with more than {limits.max_elements} elements")
    return root


def parse_bytes(data: bytes, limits: XmlLimits = DEFAULT_LIMITS) -> etree._Element:
    """Parse untrusted ``data`` within ``limits``; raises ParseError on anything hostile or broken."""
    return (_DEFAULT if limits is DEFAULT_LIMITS else SafeXmlParser(limits)).parse_bytes(data)
