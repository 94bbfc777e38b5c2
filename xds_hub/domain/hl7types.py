"""HL7 v2 data types carried in XDS metadata (ITI TF-3 4.2.3.1.7, Table 4.2.3.1.7-2).

XDS metadata keeps HL7 v2 values as strings (``ID^^^&OID&ISO`` ...).  This module splits them
into typed, frozen values (:class:`CX`, :class:`XCN`, :class:`XON`, :class:`XTN`, :class:`DTM`,
:class:`HD`) and checks them against the IHE data-type rules.  The ``*_problems`` functions return
a list of human-readable messages (empty when the value is valid) so that callers can collect all
problems of a submission; the ``parse_*`` functions raise :class:`~xds_hub.errors.ParseError`.

Values are split on the raw delimiters (``^`` components, ``&`` subcomponents); HL7 escape
sequences (``\\S\\`` ...) stay as they are inside a component.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime

from xds_hub.errors import ParseError

COMPONENT = "^"
SUBCOMPONENT = "&"

#: An OID (ITI TF-3 4.2.3.1.7): at least two numeric arcs without leading zeros, at most 64 characters.
#: The first arc is not limited to 0-2: published samples and deployed sources use other roots.
_OID_RE = re.compile(r"(0|[1-9][0-9]*)(\.(0|[1-9][0-9]*))+")
OID_MAX_LENGTH = 64

#: Telecommunication equipment types of HL7 Table 0202 accepted in XTN.3.
_PHONE_TYPES = frozenset({"PH", "FX", "MD", "CP", "SAT", "BP", "TDD", "TTY"})
_EMAIL_TYPES = frozenset({"Internet", "X.400"})


def components(value: str) -> list[str]:
    """The ``^``-separated components of a field (component *n* is at index *n - 1*)."""
    return value.split(COMPONENT)


def component(parts: list[str], n: int) -> str:
    """Component (or subcomponent) *n* (1-based) or ``""`` when absent."""
    return parts[n - 1] if len(parts) >= n else ""


def is_oid(value: str, max_length: int = OID_MAX_LENGTH) -> bool:
    """True if *value* is a well-formed OID of at most *max_length* characters."""
    return len(value) <= max_length and _OID_RE.fullmatch(value) is not None


def oid_problems(value: str, what: str, max_length: int = OID_MAX_LENGTH) -> list[str]:
    if not value:
        return [f"{what} is empty; an OID is required"]
    if _OID_RE.fullmatch(value) is None:
        return [f"{what} '{value}' is not an OID (digits separated by dots, e.g. 1.2.3)"]
    if len(value) > max_length:
        return [f"{what} '{value}' is longer than {max_length} characters"]
    return []


# ---------------------------------------------------------------------------------------------
# HD: hierarchic designator (assigning authorities)
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class HD:
    """Hierarchic designator ``namespace&universalId&universalIdType``."""

    namespace_id: str = ""
    universal_id: str = ""
    universal_id_type: str = ""

    @classmethod
    def parse(cls, text: str) -> HD:
        subs = text.split(SUBCOMPONENT)
        return cls(component(subs, 1), component(subs, 2), component(subs, 3))

    @property
    def is_empty(self) -> bool:
        return not (self.namespace_id or self.universal_id or self.universal_id_type)

    def render(self) -> str:
        if not (self.universal_id or self.universal_id_type):
            return self.namespace_id
        return SUBCOMPONENT.join((self.namespace_id, self.universal_id, self.universal_id_type))


def hd_problems(hd: HD, what: str) -> list[str]:
    """An XDS assigning authority: ``&OID&ISO`` (no namespace id, universal id type ISO)."""
    problems: list[str] = []
    if hd.namespace_id:
        problems.append(f"{what}: the namespace id subcomponent must be empty (use '&OID&ISO')")
    if hd.universal_id_type != "ISO":
        problems.append(f"{what}: the universal id type must be 'ISO' (use '&OID&ISO')")
    problems.extend(oid_problems(hd.universal_id, f"{what} universal id"))
    return problems


# ---------------------------------------------------------------------------------------------
# CX: patient identifiers
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class CX:
    """Extended composite ID, as used by patientId / sourcePatientId: ``ID^^^&OID&ISO``."""

    id_number: str
    assigning_authority: HD = HD()
    identifier_type_code: str = ""

    @classmethod
    def parse(cls, text: str) -> CX:
        parts = components(text)
        return cls(component(parts, 1), HD.parse(component(parts, 4)), component(parts, 5))

    @classmethod
    def of(cls, id_number: str, authority_oid: str) -> CX:
        return cls(id_number, HD("", authority_oid, "ISO"))

    def render(self) -> str:
        text = f"{self.id_number}^^^{self.assigning_authority.render()}"
        return f"{text}^{self.identifier_type_code}" if self.identifier_type_code else text


def cx_problems(text: str, what: str = "patient id") -> list[str]:
    """ITI TF-3 Table 4.2.3.1.7-2 CX: only CX.1 (ID) and CX.4 (``&OID&ISO``) are allowed."""
    if not text:
        return [f"{what} is empty; expected ID^^^&OID&ISO"]
    parts = components(text)
    problems: list[str] = []
    if len(parts) > 4:
        problems.append(f"{what} '{text}' has more than 4 components; expected ID^^^&OID&ISO")
    if component(parts, 2) or component(parts, 3):
        problems.append(f"{what} '{text}': components 2 and 3 must be empty; expected ID^^^&OID&ISO")
    if not component(parts, 1):
        problems.append(f"{what} '{text}' has no ID (component 1)")
    authority = HD.parse(component(parts, 4))
    if authority.is_empty:
        problems.append(f"{what} '{text}' has no assigning authority (component 4, '&OID&ISO')")
    else:
        problems.extend(hd_problems(authority, f"{what} '{text}' assigning authority"))
    return problems


def parse_cx(text: str) -> CX:
    """A valid XDS CX, or :class:`ParseError` saying what is wrong."""
    problems = cx_problems(text)
    if problems:
        raise ParseError("; ".join(problems))
    return CX.parse(text)


# ---------------------------------------------------------------------------------------------
# CXi: reference ids (urn:ihe:iti:xds:2013:referenceIdList)
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class CXi:
    """Reference id ``ID^^^&OID&ISO^typeCode^homeCommunityId`` (ITI TF-3 Table 4.2.3.1.7-2 CXi)."""

    id_number: str
    assigning_authority: HD
    identifier_type_code: str
    assigning_facility: HD = HD()

    @classmethod
    def parse(cls, text: str) -> CXi:
        parts = components(text)
        return cls(
            component(parts, 1),
            HD.parse(component(parts, 4)),
            component(parts, 5),
            HD.parse(component(parts, 6)),
        )


#: Identifier type codes defined by IHE for CXi.5 (others may be defined by an affinity domain).
CXI_TYPE_CODES = frozenset(
    {
        "urn:ihe:iti:xds:2013:uniqueId",
        "urn:ihe:iti:xds:2013:accession",
        "urn:ihe:iti:xds:2013:referral",
        "urn:ihe:iti:xds:2013:order",
        "urn:ihe:iti:xdw:2013:workflowInstanceId",
        "urn:ihe:iti:xds:2013:encounterId",
        "urn:ihe:iti:xds:2015:encounterId",
    }
)


def cxi_problems(text: str, what: str = "referenceIdList value") -> list[str]:
    if not text:
        return [f"{what} is empty"]
    parts = components(text)
    problems: list[str] = []
    if len(parts) > 6 or component(parts, 2) or component(parts, 3):
        problems.append(
            f"{what} '{text}': only CXi.1, CXi.4, CXi.5 and CXi.6 may be valued "
            "(ID^^^&OID&ISO^typeCode^homeCommunityId)"
        )
    if not component(parts, 1):
        problems.append(f"{what} '{text}' has no ID (CXi.1)")
    if not component(parts, 5):
        problems.append(f"{what} '{text}' has no identifier type code (CXi.5)")
    authority = HD.parse(component(parts, 4))
    if not authority.is_empty and not (
        authority.namespace_id or (authority.universal_id and authority.universal_id_type)
    ):
        problems.append(f"{what} '{text}': assigning authority (CXi.4) is incomplete")
    return problems


# ---------------------------------------------------------------------------------------------
# XCN: persons (authorPerson, legalAuthenticator)
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class XCN:
    id_number: str = ""
    family_name: str = ""
    given_name: str = ""
    second_names: str = ""
    suffix: str = ""
    prefix: str = ""
    assigning_authority: HD = HD()

    @classmethod
    def parse(cls, text: str) -> XCN:
        parts = components(text)
        return cls(
            id_number=component(parts, 1),
            family_name=component(parts, 2).split(SUBCOMPONENT)[0],
            given_name=component(parts, 3),
            second_names=component(parts, 4),
            suffix=component(parts, 5),
            prefix=component(parts, 6),
            assigning_authority=HD.parse(component(parts, 9)),
        )


def xcn_problems(text: str, what: str = "person") -> list[str]:
    """XCN: an ID (XCN.1) or a family name (XCN.2) is required; XCN.9, if valued, is ``&OID&ISO``."""
    xcn = XCN.parse(text)
    problems: list[str] = []
    if not (xcn.id_number or xcn.family_name):
        problems.append(f"{what} '{text}' has neither an ID (XCN.1) nor a family name (XCN.2)")
    if not xcn.assigning_authority.is_empty:
        problems.extend(hd_problems(xcn.assigning_authority, f"{what} '{text}' assigning authority (XCN.9)"))
    return problems


# ---------------------------------------------------------------------------------------------
# XON: organizations (authorInstitution, intendedRecipient)
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class XON:
    name: str
    assigning_authority: HD = HD()
    identifier: str = ""

    @classmethod
    def parse(cls, text: str) -> XON:
        parts = components(text)
        return cls(component(parts, 1), HD.parse(component(parts, 6)), component(parts, 10))


def xon_problems(text: str, what: str = "organization") -> list[str]:
    """XON: XON.1 required; only XON.6 and XON.10 may also be valued; XON.10 is an OID unless XON.6 says."""
    parts = components(text)
    xon = XON.parse(text)
    problems: list[str] = []
    if not xon.name:
        problems.append(f"{what} '{text}' has no organization name (XON.1)")
    if len(parts) > 10 or any(component(parts, n) for n in (2, 3, 4, 5, 7, 8, 9)):
        problems.append(f"{what} '{text}': only XON.1, XON.6 and XON.10 may be valued")
    if not xon.assigning_authority.is_empty:
        problems.extend(hd_problems(xon.assigning_authority, f"{what} '{text}' assigning authority (XON.6)"))
    elif xon.identifier and not is_oid(xon.identifier):
        problems.append(
            f"{what} '{text}': organization identifier (XON.10) must be an OID when XON.6 is not valued"
        )
    return problems


# ---------------------------------------------------------------------------------------------
# XTN: telecommunication addresses (authorTelecommunication, intendedRecipient)
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class XTN:
    use_code: str = ""
    equipment_type: str = ""
    email: str = ""
    country_code: str = ""
    area_code: str = ""
    local_number: str = ""
    extension: str = ""
    unformatted: str = ""

    @classmethod
    def parse(cls, text: str) -> XTN:
        parts = components(text)
        return cls(
            use_code=component(parts, 2),
            equipment_type=component(parts, 3),
            email=component(parts, 4),
            country_code=component(parts, 5),
            area_code=component(parts, 6),
            local_number=component(parts, 7),
            extension=component(parts, 8),
            unformatted=component(parts, 12),
        )


def xtn_problems(text: str, what: str = "telecommunication") -> list[str]:
    """XTN: XTN.3 says the kind; e-mail kinds need XTN.4, phone kinds XTN.7 or XTN.12."""
    xtn = XTN.parse(text)
    kind = xtn.equipment_type
    phone = xtn.country_code or xtn.area_code or xtn.local_number or xtn.extension or xtn.unformatted
    if kind in _EMAIL_TYPES:
        problems = [] if xtn.email else [f"{what} '{text}' of type {kind} has no address (XTN.4)"]
        if phone:
            problems.append(f"{what} '{text}' of type {kind} must not carry phone number components")
        return problems
    if kind in _PHONE_TYPES:
        problems = []
        if not (xtn.local_number or xtn.unformatted):
            problems.append(f"{what} '{text}' has no telephone number (XTN.7 or XTN.12)")
        if xtn.email:
            problems.append(f"{what} '{text}' of type {kind} must not carry an e-mail address (XTN.4)")
        return problems
    return [
        f"{what} '{text}': equipment type (XTN.3) must be one of "
        f"{', '.join(sorted(_EMAIL_TYPES | _PHONE_TYPES))}"
    ]


# ---------------------------------------------------------------------------------------------
# DTM: date/time (creationTime, serviceStartTime, submissionTime ...)
# ---------------------------------------------------------------------------------------------

#: Number of digits -> precision name (ITI TF-3 Table 4.2.3.1.7-2 DTM).
DTM_PRECISIONS: dict[int, str] = {4: "year", 6: "month", 8: "day", 10: "hour", 12: "minute", 14: "second"}
_DTM_RE = re.compile(r"[0-9]+")


@dataclass(frozen=True, slots=True)
class DTM:
    """A UTC point in time ``YYYY[MM[DD[hh[mm[ss]]]]]``, truncated to its precision."""

    text: str

    @property
    def precision(self) -> str:
        return DTM_PRECISIONS[len(self.text)]

    def as_datetime(self) -> datetime:
        """The earliest instant the value stands for (missing parts taken as their minimum)."""
        t = self.text.ljust(14, "0")
        month = int(t[4:6]) or 1
        day = int(t[6:8]) or 1
        return datetime(int(t[0:4]), month, day, int(t[8:10]), int(t[10:12]), int(t[12:14]), tzinfo=UTC)

    @classmethod
    def from_datetime(cls, value: datetime) -> DTM:
        """Second precision, converted to UTC."""
        if value.tzinfo is not None:
            value = value.astimezone(UTC)
        v = value
        return cls(f"{v.year:04d}{v.month:02d}{v.day:02d}{v.hour:02d}{v.minute:02d}{v.second:02d}")


def dtm_problems(text: str, what: str = "time") -> list[str]:
    if _DTM_RE.fullmatch(text) is None or len(text) not in DTM_PRECISIONS:
        return [
            f"{what} '{text}' is not an HL7 DTM: expected YYYY[MM[DD[hh[mm[ss]]]]] in UTC "
            "(4, 6, 8, 10, 12 or 14 digits, no time zone)"
        ]
    t = text
    month = int(t[4:6]) if len(t) >= 6 else 1
    day = int(t[6:8]) if len(t) >= 8 else 1
    hour = int(t[8:10]) if len(t) >= 10 else 0
    minute = int(t[10:12]) if len(t) >= 12 else 0
    second = int(t[12:14]) if len(t) >= 14 else 0
    try:
        datetime(int(t[0:4]) or 1, month, day, hour, minute, second)
    except ValueError as exc:
        return [f"{what} '{text}' is not a valid date/time: {exc}"]
    if int(t[0:4]) == 0:
        return [f"{what} '{text}' has year 0000"]
    return []


def parse_dtm(text: str) -> DTM:
    """A valid DTM, or :class:`ParseError` saying what is wrong."""
    problems = dtm_problems(text)
    if problems:
        raise ParseError(problems[0])
    return DTM(text)
