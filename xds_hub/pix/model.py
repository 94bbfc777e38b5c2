"""Typed values shared by the v2 (ITI-8/9/10) and v3 (ITI-44/45) edges and the cross-reference.

The edges parse a message once into these frozen objects; :mod:`xds_hub.pix.xref` never sees HL7.
Each identifier keeps where it came from (:class:`Where`), so that a problem found later can
point at it: an HL7 v2 ERL (``PID^1^3^2``) or a v3 XPath.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum


@dataclass(frozen=True, slots=True)
class Where:
    """The location of an identifier in its message, for ERR-2 / acknowledgementDetail/location."""

    #: Location of the ID number (v2 ``PID^1^3^2^1``; v3 XPath of the II).
    id: str = ""
    #: Location of its assigning authority (v2 ``PID^1^3^2^4``; v3 XPath of the II).
    authority: str = ""


@dataclass(frozen=True, slots=True)
class RawId:
    """An identifier as the message carries it: CX-1 and CX-4, or II extension / root / name."""

    value: str
    namespace: str = ""
    universal_id: str = ""
    universal_id_type: str = ""
    where: Where = field(default_factory=Where)


@dataclass(frozen=True, slots=True, order=True)
class Identifier:
    """A patient identifier in a patient identifier domain (assigning-authority OID)."""

    authority: str
    value: str

    @property
    def cx(self) -> str:
        """``value^^^&authority&ISO`` (the form XDS metadata uses)."""
        return f"{self.value}^^^&{self.authority}&ISO"

    @property
    def label(self) -> str:
        """``value (authority)``: for messages to people (a CX would be escaped inside HL7 text)."""
        return f"{self.value} ({self.authority})"


class DomainKind(Enum):
    """What a patient identifier domain is to this affinity domain."""

    AFFINITY = "affinity"  # the affinity domain's own assigning authority (XAD-PID)
    LOCAL = "local"  # an establishment's
    LINKING = "linking"  # a linking authority (national health ID ...)


@dataclass(frozen=True, slots=True)
class Demographics:
    """What the PIX Manager keeps of a source's demographics (for updates and v3 answers)."""

    family: str = ""
    given: str = ""
    birth_date: str = ""
    sex: str = ""

    def as_dict(self) -> dict[str, str]:
        return {
            k: v
            for k, v in (
                ("family", self.family),
                ("given", self.given),
                ("birth_date", self.birth_date),
                ("sex", self.sex),
            )
            if v
        }


class FeedKind(Enum):
    """The feed events of ITI-8 / ITI-44 (ITI TF-2a 3.8.4.1, ITI TF-2b 3.44.4.1)."""

    ADD = "add"  # A01, A04, A05 / PRPA_IN201301UV02
    UPDATE = "update"  # A08 / PRPA_IN201302UV02
    MERGE = "merge"  # A40 / PRPA_IN201304UV02


@dataclass(frozen=True, slots=True)
class FeedEvent:
    """One patient identity feed: the patient's identifiers and, for a merge, the subsumed ones."""

    kind: FeedKind
    #: PID-3 / patient.id: identifiers of the patient (each must be in a known domain).
    ids: tuple[RawId, ...]
    #: v3 asOtherIDs: further identifiers (used when their domain is known, ignored otherwise).
    other_ids: tuple[RawId, ...] = ()
    #: MRG-1 / priorRegisteredRole.id: identifiers subsumed by a merge.
    prior_ids: tuple[RawId, ...] = ()
    demographics: Demographics = field(default_factory=Demographics)
    #: The sending application ("MSH-3|MSH-4"), for identifiers that carry no assigning authority.
    source: tuple[str, str] = ("", "")


@dataclass(frozen=True, slots=True)
class PixQuery:
    """ITI-9 / ITI-45: the identifier whose aliases are wanted, and in which domains."""

    id: RawId
    #: Requested domains (QPD-4 / dataSource); empty: every domain.
    domains: tuple[RawId, ...] = ()


class QueryStatus(Enum):
    OK = "OK"  # data found, no errors
    NF = "NF"  # no data found, no errors


@dataclass(frozen=True, slots=True)
class PixAnswer:
    """The identifiers cross-referenced with the queried one, in the requested domains."""

    status: QueryStatus
    identifiers: tuple[Identifier, ...] = ()


@dataclass(frozen=True, slots=True)
class FeedOutcome:
    """What a feed did: the person it landed on and whether the cross-reference changed."""

    person_id: int
    affinity_id: Identifier | None
    links_changed: bool
    notifications: int = 0
