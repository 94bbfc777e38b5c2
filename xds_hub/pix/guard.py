"""Who may feed which identifiers (issue 5, ITI-8 / ITI-44 under mutual TLS).

An establishment identified by its TLS client certificate feeds only identifiers of its own
assigning authority (and of linking authorities, which only link); an admin identity feeds any
domain (:func:`xds_hub.security.access.check_feed_authority`).  ITI TF-2a 3.8.4.1.3: the PIX
Manager recognizes one Patient Identity Source per domain, so an identifier of a domain the
sender is not the source of is an identifier the PIX Manager does not accept from it.  The feed is
refused as a whole, before anything is written: ``AR`` with one ERR per refused identifier, HL7
Table 0357 code 204 (unknown key identifier) at the identifier's assigning authority (``PID^1^3^n^4``,
``MRG^1^1^n^4``; for ITI-44 the XPath of the ``id``), as :mod:`xds_hub.security.access` states for
HL7 v2 and v3.  Without a TLS identity (TLS off, or server-only TLS) nothing is checked here.
"""

from __future__ import annotations

from collections.abc import Sequence

from xds_hub.errors import AckCode, Hl7Error, Hl7ErrorCode, Hl7Problem
from xds_hub.pix.model import FeedEvent
from xds_hub.pix.xref import CrossReference
from xds_hub.security.access import AccessDenied, NodeIdentity, check_feed_authority


def feed_refusal(
    identity: NodeIdentity | None, events: Sequence[FeedEvent], xref: CrossReference
) -> Hl7Error | None:
    """The AR refusing ``events`` fed by ``identity``, or None when it may feed them all.

    Identifiers whose assigning authority cannot be told are left to the feed itself (it answers
    them with its own 204); each one of a domain the node may not feed is a problem.
    """
    if identity is None or identity.admin:
        return None
    problems: list[Hl7Problem] = []
    for event in events:
        for raw in (*event.ids, *event.prior_ids, *event.other_ids):
            try:
                authority = xref.authority(raw, event.source)
            except Hl7Error:
                continue
            try:
                check_feed_authority(identity, authority, xref.domain)
            except AccessDenied as exc:
                problems.append(
                    Hl7Problem(Hl7ErrorCode.UNKNOWN_KEY_IDENTIFIER, exc.reason, raw.where.authority)
                )
    return Hl7Error(problems, ack=AckCode.REJECT) if problems else None
