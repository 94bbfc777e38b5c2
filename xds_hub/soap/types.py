"""What the SOAP edge hands to a transaction handler, and what a handler hands back.

A handler is ``handle(request: SoapRequest, stores: Stores, settings: Settings) -> SoapResponse``.
Incoming MTOM attachments are already streamed into the blob store when the handler runs; an
outgoing attachment is streamed from the blob store after the handler returns.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from lxml import etree

from xds_hub.security.access import NodeIdentity
from xds_hub.storage.ports import BlobInfo

if TYPE_CHECKING:
    from xds_hub.config import Settings
    from xds_hub.storage.stores import Stores


@dataclass(frozen=True, slots=True)
class Attachment:
    """An MTOM part of the request (not the root), stored as a blob while the request was read, or,
    when small, kept in memory (``blob.data``; see :mod:`xds_hub.repository.inline`)."""

    content_id: str  # without "cid:" and angle brackets, URL-unquoted
    content_type: str
    blob: BlobInfo


@dataclass(slots=True)
class AuditNotes:
    """What a handler learned that the audit trail of its transaction needs (filled as it goes).

    The SOAP edge records each XDS transaction's audit message after the handler has answered
    (:mod:`xds_hub.audit.soap`); most of what it needs is in the request and the reply, the rest
    the handler notes here.
    """

    #: Why the access rules refused the request (the refusal's Security Alert is already recorded).
    refused: str | None = None
    #: Patients the request was about, when neither request nor reply names them (ITI-62, ITI-86).
    patient_ids: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class SoapRequest:
    action: str
    body: etree._Element  # the single child element of soap:Body
    message_id: str | None = None
    to: str | None = None
    reply_to: str | None = None
    #: The MTOM parts that ``xop:Include`` elements of the envelope refer to, keyed by content id
    #: (the href without "cid:", URL-unquoted: xds_hub.soap.mtom.attachment_for finds the one of an
    #: element).  Inline base64 content is left as text in ``body``.
    attachments: Mapping[str, Attachment] = field(default_factory=dict)
    #: True when the request came as MTOM (multipart/related); responses then use MTOM too.
    mtom: bool = False
    #: The HTTP path the request came in on (e.g. "/xds/repository").
    path: str = ""
    remote_addr: str | None = None
    #: The calling node, authenticated by its TLS client certificate (ITI-19), as the affinity
    #: domain knows it; None when the hub runs without mutual TLS (no ``tls_ca``).  See
    #: :func:`xds_hub.security.tls.identity_from_environ` and :mod:`xds_hub.security.access`.
    identity: NodeIdentity | None = None
    notes: AuditNotes = field(default_factory=AuditNotes)


@dataclass(frozen=True, slots=True)
class OutAttachment:
    """A part of an MTOM response, read from the blob store (``key``) or given as bytes (``data``)."""

    content_id: str
    content_type: str
    size: int
    key: str | None = None
    data: bytes | None = None


@dataclass(frozen=True, slots=True)
class SoapResponse:
    action: str
    body: etree._Element
    attachments: Sequence[OutAttachment] = ()
    #: Force an MTOM response even for a plain-SOAP request (ITI-43 / RAD-69 responses are MTOM).
    mtom: bool = False
    #: The body element already serialised (UTF-8, no XML declaration), when the handler wrote it
    #: itself (ITI-18 answers): the edge sends these bytes, and ``body`` is then the same
    #: element with its status and errors but not its objects (what the audit trail reads).
    body_xml: bytes | None = None

    def full_body(self) -> etree._Element:
        """The whole body element (parsed from :attr:`body_xml` when the handler wrote bytes)."""
        return self.body if self.body_xml is None else etree.fromstring(self.body_xml)


Handler = Callable[[SoapRequest, "Stores", "Settings"], SoapResponse]
