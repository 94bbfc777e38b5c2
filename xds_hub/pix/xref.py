"""The patient identifier cross-reference (PIX Manager, ITI TF-1 5, ITI TF-2a 3.8.4.1.3 / 3.9.4.1.3).

Every identifier fed by a Patient Identity Source lives in ``pix_identity`` and belongs to one
person (a cross-reference set).  A feed (ITI-8 A01/A04/A05/A08, ITI-44 add/revise) is linked,
in this order:

1. the identifiers it carries together (PID-3 / patient.id, including an affinity-domain ID) are
   one person;
2. an identifier of a configured linking authority (a national health ID) links it to the person
   who already holds that identifier;
3. otherwise it is a new person, and the hub allocates an affinity-domain ID for it
   (``[pix] allocation = "allocate"``) or waits for the affinity domain's identity source
   (``"wait"``).

A feed never moves an identifier from one person to another: identifiers that already belong to
two persons, or a second affinity-domain ID for a person, are refused (AE, HL7 error 205) and only
an explicit merge (A40 / PRPA_IN201304UV02) joins them.  A merge retires the subsumed identifier;
when two persons with affinity-domain IDs join, the subsumed person's ID is merged into the
surviving one in the registry too (:func:`xds_hub.registry.register.merge_patient`), as the XDS
Patient Identity Feed requires.  New affinity-domain IDs are added to the registry's ``patient``
table, so the registry accepts submissions for them.  Every link change queues an ITI-10
notification per subscriber (:mod:`xds_hub.pix.iti10`) in the same transaction.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import Connection

from xds_hub.config import AffinityDomain
from xds_hub.errors import ConfigError, Hl7Error, Hl7ErrorCode, Hl7Problem, XdsError
from xds_hub.pix import iti10
from xds_hub.pix.model import (
    Demographics,
    DomainKind,
    FeedEvent,
    FeedKind,
    FeedOutcome,
    Identifier,
    PixAnswer,
    PixQuery,
    QueryStatus,
    RawId,
    Where,
)
from xds_hub.pix.store import PixSql
from xds_hub.pix.unit import FeedUnit
from xds_hub.registry.patients import check_affinity_patient_id
from xds_hub.registry.register import merge_patient

E = Hl7ErrorCode
#: The OIDs the registry accepts as an affinity domain (xds_hub.registry.patients).
_OID = re.compile(r"[0-2](\.(0|[1-9][0-9]*))+")


@dataclass(frozen=True, slots=True)
class _Row:
    person_id: int
    merged_into: str | None


@dataclass(frozen=True, slots=True)
class _Fed:
    """A resolved identifier of the message and where it was."""

    ident: Identifier
    where: Where
    own: bool  # PID-3 / patient.id (True) or asOtherIDs (False)


def _now() -> str:
    return datetime.now(UTC).isoformat()


class CrossReference:
    """The cross-reference of one affinity domain; methods run inside the caller's transaction."""

    def __init__(self, domain: AffinityDomain) -> None:
        self.domain = domain
        self.pix = domain.pix
        kinds: dict[str, DomainKind] = {a: DomainKind.LINKING for a in domain.linking_authorities}
        kinds.update({e.assigning_authority: DomainKind.LOCAL for e in domain.establishments})
        kinds[domain.assigning_authority] = DomainKind.AFFINITY
        self._kinds = kinds
        order = [
            domain.assigning_authority,
            *(e.assigning_authority for e in domain.establishments),
            *domain.linking_authorities,
        ]
        self._rank = {a: i for i, a in reversed(list(enumerate(order)))}
        self._sql_by_dialect: dict[str, PixSql] = {}
        #: Connection -> the FeedUnit of the batch running on it (:meth:`batch`).
        self._units: dict[Connection, FeedUnit] = {}
        if not _OID.fullmatch(domain.assigning_authority):
            raise ConfigError(
                f"affinity_domain.assigning_authority {domain.assigning_authority!r} is not an OID"
            )

    # -----------------------------------------------------------------------------------------
    # Domains and identifiers
    # -----------------------------------------------------------------------------------------

    def kind(self, authority: str) -> DomainKind | None:
        return self._kinds.get(authority)

    @property
    def domains(self) -> list[str]:
        """Every patient identifier domain the PIX Manager serves, affinity domain first."""
        return sorted(self._kinds, key=self._rank.__getitem__)

    def sort_key(self, ident: Identifier) -> tuple[int, str]:
        return self._rank.get(ident.authority, len(self._rank)), ident.value

    def authority(self, raw: RawId, source: tuple[str, str] = ("", "")) -> str:
        """The assigning-authority OID of ``raw`` (CX-4 / II root, a configured namespace, or the
        source's configured domain); Hl7Error 204 when it is missing, malformed or not served."""
        where = raw.where.authority
        if raw.universal_id:
            if raw.universal_id_type != "ISO":
                raise Hl7Error.one(
                    E.UNKNOWN_KEY_IDENTIFIER,
                    f"assigning authority {raw.namespace}&{raw.universal_id}&{raw.universal_id_type} "
                    "must be given as &OID&ISO",
                    where,
                )
            oid = raw.universal_id
        elif raw.namespace:
            mapped = self.pix.namespaces.get(raw.namespace)
            if mapped is None:
                raise Hl7Error.one(
                    E.UNKNOWN_KEY_IDENTIFIER,
                    f"assigning authority namespace {raw.namespace!r} has no known OID",
                    where,
                )
            oid = mapped
        else:
            app, facility = source
            mapped = self.pix.sources.get(f"{app}|{facility}") or self.pix.sources.get(app)
            if mapped is None:
                raise Hl7Error.one(
                    E.UNKNOWN_KEY_IDENTIFIER,
                    "the identifier has no assigning authority and its source "
                    f"{app or '(unnamed)'} is not configured with one",
                    where,
                )
            oid = mapped
        if oid not in self._kinds:
            raise Hl7Error.one(
                E.UNKNOWN_KEY_IDENTIFIER,
                f"assigning authority {oid} is not a patient identifier domain of this affinity domain",
                where,
            )
        return oid

    def resolve(self, raw: RawId, source: tuple[str, str] = ("", "")) -> Identifier:
        if not raw.value:
            raise Hl7Error.one(
                E.REQUIRED_FIELD_MISSING, "the patient identifier has no ID number", raw.where.id
            )
        return Identifier(self.authority(raw, source), raw.value)

    def _resolve_all(self, raws: Iterable[RawId], source: tuple[str, str], own: bool) -> list[_Fed]:
        fed: dict[Identifier, _Fed] = {}
        problems: list[Hl7Problem] = []
        for raw in raws:
            try:
                ident = self.resolve(raw, source)
            except Hl7Error as exc:
                if own:
                    problems.extend(exc.problems)
                continue  # other IDs (v3 asOtherIDs) of domains not served are ignored
            fed.setdefault(ident, _Fed(ident, raw.where, own))
        if problems:
            raise Hl7Error(problems)
        return list(fed.values())

    # -----------------------------------------------------------------------------------------
    # Storage
    # -----------------------------------------------------------------------------------------

    def _direct(self, conn: Connection) -> PixSql:
        """The statements themselves (a batch's deferred writes are sent first)."""
        unit = self._units.get(conn)
        if unit is not None:
            unit.flush(conn)
        sql = self._sql_by_dialect.get(conn.dialect.name)
        if sql is None:
            sql = self._sql_by_dialect[conn.dialect.name] = PixSql(conn.dialect.name)
        return sql

    def _sql(self, conn: Connection) -> PixSql | FeedUnit:
        """Where the feed's reads and writes go: the batch's unit when one is open on ``conn``."""
        unit = self._units.get(conn)
        return unit if unit is not None else self._direct(conn)

    @contextmanager
    def batch(self, conn: Connection, events: Sequence[FeedEvent], begin: str = "") -> Iterator[FeedUnit]:
        """Run the add/update ``events`` that follow in a :class:`~xds_hub.pix.unit.FeedUnit` (their
        identifiers loaded at once, their writes sent together); flushed on leaving, dropped on an
        exception (the caller's transaction rolls back).  ``begin``: the statements opening the
        write transaction, sent with the first query (PostgreSQL,
        :meth:`xds_hub.pix.session.DbSession.write` with ``begin=False``)."""
        allocated = (self.domain.assigning_authority, self.pix.id_prefix)
        unit = FeedUnit(self._direct(conn), allocated, len(events))
        feeds: list[list[tuple[str, str]]] = []
        for event in events:
            keys: list[tuple[str, str]] = []
            for raw in (*event.ids, *event.other_ids):
                try:
                    ident = self.resolve(raw, event.source)
                except Hl7Error:
                    continue
                keys.append((ident.authority, ident.value))
            feeds.append(keys)
        unit.preload_feeds(conn, feeds, begin)
        self._units[conn] = unit
        try:
            yield unit
            unit.flush(conn)
        finally:
            self._units.pop(conn, None)

    @contextmanager
    def outside_batch(self, conn: Connection) -> Iterator[None]:
        """Run something (a merge, a query) on ``conn`` itself: the batch's writes are sent first,
        and what the batch had loaded is forgotten afterwards (a merge may have changed it)."""
        unit = self._units.pop(conn, None)
        if unit is None:
            yield
            return
        unit.flush(conn)
        try:
            yield
        finally:
            unit.forget()
            self._units[conn] = unit

    def _load(self, conn: Connection, idents: Sequence[Identifier]) -> dict[Identifier, _Row]:
        if not idents:
            return {}
        rows = self._sql(conn).load(conn, [(i.authority, i.value) for i in idents])
        return {Identifier(a, v): _Row(p, m) for a, v, p, m in rows}

    def members(self, conn: Connection, person_id: int) -> list[Identifier]:
        """The active identifiers of a person, affinity domain first."""
        return sorted(
            (Identifier(a, v) for a, v in self._sql(conn).members(conn, person_id)), key=self.sort_key
        )

    def _affinity_ids(self, members: Iterable[Identifier]) -> list[Identifier]:
        return [m for m in members if self.kind(m.authority) is DomainKind.AFFINITY]

    def _new_person(self, conn: Connection, now: str) -> int:
        return self._sql(conn).new_person(conn, now)

    def _insert_allocating(
        self, conn: Connection, rows: list[tuple[str, str, int, str | None, str]], person_id: int, now: str
    ) -> Identifier:
        """Insert ``rows`` (new identifiers) with a fresh affinity-domain ID numbered after the
        person (ITI TF-1 5.2: the hub as the affinity domain's identity source when ``allocation =
        "allocate"``); in the unlikely case the regional source fed that very ID, a suffix is added."""
        base = f"{self.pix.id_prefix}{person_id}"
        candidate, n = Identifier(self.domain.assigning_authority, base), 1
        inserted = self._sql(conn).insert_new(conn, [*rows, self._row(candidate, person_id, now)])
        while (candidate.authority, candidate.value) not in inserted:
            n += 1
            candidate = Identifier(self.domain.assigning_authority, f"{base}-{n}")
            inserted = self._sql(conn).insert_new(conn, [self._row(candidate, person_id, now)])
        return candidate

    @staticmethod
    def _row(
        ident: Identifier, person_id: int, now: str, demographics: str | None = None
    ) -> tuple[str, str, int, str | None, str]:
        return (ident.authority, ident.value, person_id, demographics, now)

    def _insert(self, conn: Connection, rows: list[tuple[str, str, int, str | None, str]]) -> None:
        self._sql(conn).insert(conn, rows)

    def _check_affinity(self, ident: Identifier, where: Where) -> None:
        """The registry's form of an affinity-domain ID (``ID^^^&OID&ISO``); 102 otherwise."""
        try:
            check_affinity_patient_id(ident.cx, self.domain)
        except XdsError as exc:
            raise Hl7Error.one(E.DATA_TYPE_ERROR, str(exc), where.id) from exc

    def _register(self, conn: Connection, ident: Identifier, where: Where, now: str) -> None:
        """Make an affinity-domain ID known to the registry (its ``patient`` table)."""
        self._check_affinity(ident, where)
        self._sql(conn).add_patient(conn, ident.cx, now)

    def _notify(self, conn: Connection, person_id: int, now: str) -> int:
        if not self.pix.subscribers:
            return 0
        rows = iti10.notifications(self.domain, self.members(conn, person_id), now)
        if rows:
            self._sql(conn).enqueue(conn, rows)
        return len(rows)

    # -----------------------------------------------------------------------------------------
    # Feed (add / update)
    # -----------------------------------------------------------------------------------------

    def feed(self, conn: Connection, event: FeedEvent) -> FeedOutcome:
        """Record and link a patient identity feed (ITI-8 A01/A04/A05/A08; ITI-44 add/revise).

        Every check comes before the first write: a refused feed (Hl7Error) has changed nothing,
        so a batch of feeds needs no savepoint per message.
        """
        now = _now()
        fed = self._resolve_all(event.ids, event.source, own=True)
        fed += [
            f
            for f in self._resolve_all(event.other_ids, event.source, own=False)
            if f.ident not in {x.ident for x in fed}
        ]
        if not any(
            self.kind(f.ident.authority) in (DomainKind.AFFINITY, DomainKind.LOCAL) for f in fed if f.own
        ):
            first = event.ids[0].where.id if event.ids else ""
            raise Hl7Error.one(
                E.REQUIRED_FIELD_MISSING,
                "the patient has no identifier of an establishment or of the affinity domain",
                first.rsplit("^", 2)[0] if first.count("^") >= 3 else first,
            )
        rows = self._load(conn, [f.ident for f in fed])
        for f in fed:
            row = rows.get(f.ident)
            if row is not None and row.merged_into is not None:
                raise Hl7Error.one(
                    E.DUPLICATE_KEY_IDENTIFIER,
                    f"{f.ident.label} was merged into {row.merged_into} and cannot be fed again",
                    f.where.id,
                )
        persons: list[int] = []
        for f in fed:
            row = rows.get(f.ident)
            if row is not None and row.person_id not in persons:
                persons.append(row.person_id)
        if len(persons) > 1:
            other = next(f for f in fed if f.ident in rows and rows[f.ident].person_id != persons[0])
            holder = next(f for f in fed if f.ident in rows and rows[f.ident].person_id == persons[0])
            raise Hl7Error.one(
                E.DUPLICATE_KEY_IDENTIFIER,
                f"{other.ident.label} and {holder.ident.label} are cross-referenced to different patients; "
                "the PIX Manager does not relink them silently (merge them with A40)",
                other.where.id,
            )
        fed_affinity = [f for f in fed if self.kind(f.ident.authority) is DomainKind.AFFINITY]
        if len(fed_affinity) > 1:
            raise Hl7Error.one(
                E.DUPLICATE_KEY_IDENTIFIER,
                f"one patient cannot have two affinity-domain IDs ({fed_affinity[0].ident.label}, "
                f"{fed_affinity[1].ident.label})",
                fed_affinity[1].where.id,
            )
        for f in fed_affinity:  # a refused feed must refuse before its first write
            self._check_affinity(f.ident, f.where)
        members: list[Identifier] = []
        if persons:
            person_id = persons[0]
            members = self.members(conn, person_id)
            held = self._affinity_ids(members)
            clash = [f for f in fed_affinity if held and f.ident not in held]
            if clash:
                raise Hl7Error.one(
                    E.DUPLICATE_KEY_IDENTIFIER,
                    f"the patient already has the affinity-domain ID {held[0].label}; "
                    f"{clash[0].ident.label} would be a second one (merge them with A40)",
                    clash[0].where.id,
                )
        else:
            person_id = self._new_person(conn, now)
        new = [f for f in fed if f.ident not in rows]
        demographics = json.dumps(event.demographics.as_dict()) if event.demographics.as_dict() else None
        insert_rows = [self._row(f.ident, person_id, now, demographics if f.own else None) for f in new]
        affinity_new = [
            (f.ident, f.where) for f in new if self.kind(f.ident.authority) is DomainKind.AFFINITY
        ]
        if not fed_affinity and not self._affinity_ids(members) and self.pix.allocation == "allocate":
            allocated = self._insert_allocating(conn, insert_rows, person_id, now)
            affinity_new.append((allocated, Where()))
            insert_rows.append(self._row(allocated, person_id, now))
        else:
            self._insert(conn, insert_rows)
        known_own = [f.ident for f in fed if f.own and f.ident in rows]
        if known_own and demographics is not None:
            self._update_demographics(conn, known_own, demographics, now)
        for ident, where in affinity_new:
            self._register(conn, ident, where, now)
        size = len(members) + len(insert_rows)
        links_changed = bool(insert_rows) and size > 1
        sent = self._notify(conn, person_id, now) if links_changed else 0
        affinity = self._affinity_ids([i for i, _ in affinity_new]) or self._affinity_ids(members)
        return FeedOutcome(person_id, affinity[0] if affinity else None, links_changed, sent)

    def _update_demographics(
        self, conn: Connection, idents: list[Identifier], demographics: str, now: str
    ) -> None:
        self._sql(conn).demographics(conn, [(i.authority, i.value) for i in idents], demographics, now)

    def add_affinity_patient(self, conn: Connection, pid: str) -> bool:
        """``xds-hub patient add``: feed an affinity-domain ID ``ID^^^&OID&ISO`` as the affinity
        domain's identity source would; True if it was new.  XdsError (XDSUnknownPatientId) when it
        is malformed or of another domain, as the registry would answer."""
        check_affinity_patient_id(pid, self.domain)
        ident = Identifier(self.domain.assigning_authority, pid.split("^", 1)[0])
        if self._load(conn, [ident]):
            return False
        raw = RawId(ident.value, "", ident.authority, "ISO", Where("PID^1^3^1^1", "PID^1^3^1^4"))
        self.feed(conn, FeedEvent(FeedKind.ADD, (raw,)))
        return True

    # -----------------------------------------------------------------------------------------
    # Merge
    # -----------------------------------------------------------------------------------------

    def merge(self, conn: Connection, event: FeedEvent) -> FeedOutcome:
        """Merge the identifiers of MRG-1 / priorRegisteredRole into those of PID-3 / patient.id
        (ITI-8 A40, ITI TF-2a 3.8.4.2; ITI-44 PRPA_IN201304UV02, ITI TF-2b 3.44.4.2)."""
        now = _now()
        survivors = self._resolve_all(event.ids, event.source, own=True)
        subsumed = self._resolve_all(event.prior_ids, event.source, own=True)
        if not survivors:
            raise Hl7Error.one(
                E.REQUIRED_FIELD_MISSING, "the surviving patient identifier is missing", "PID^1^3"
            )
        if not subsumed:
            raise Hl7Error.one(
                E.REQUIRED_FIELD_MISSING, "the subsumed patient identifier is missing", "MRG^1^1"
            )
        person_id = 0
        for old in subsumed:
            target = next((s for s in survivors if s.ident.authority == old.ident.authority), survivors[0])
            person_id = self._merge_pair(conn, old, target, event.demographics, now)
        members = self.members(conn, person_id)
        if not self._affinity_ids(members) and self.pix.allocation == "allocate":
            allocated = self._insert_allocating(conn, [], person_id, now)
            self._register(conn, allocated, Where(), now)
            members = self.members(conn, person_id)
        sent = self._notify(conn, person_id, now)
        affinity = self._affinity_ids(members)
        return FeedOutcome(person_id, affinity[0] if affinity else None, True, sent)

    def _merge_pair(self, conn: Connection, old: _Fed, new: _Fed, demo: Demographics, now: str) -> int:
        rows = self._load(conn, [old.ident, new.ident])
        survivor = rows.get(new.ident)
        if survivor is not None and survivor.merged_into is not None:
            raise Hl7Error.one(
                E.DUPLICATE_KEY_IDENTIFIER,
                f"the surviving {new.ident.label} was itself merged into {survivor.merged_into}",
                new.where.id,
            )
        if old.ident == new.ident:
            if survivor is None:
                raise Hl7Error.one(E.UNKNOWN_KEY_IDENTIFIER, f"{old.ident.label} is not known", old.where.id)
            return survivor.person_id
        prior = rows.get(old.ident)
        if prior is None:
            raise Hl7Error.one(
                E.UNKNOWN_KEY_IDENTIFIER,
                f"the subsumed {old.ident.label} is not known to the PIX Manager",
                old.where.id,
            )
        if prior.merged_into is not None:
            if prior.merged_into == new.ident.cx and survivor is not None:
                return survivor.person_id  # the same merge, repeated
            raise Hl7Error.one(
                E.DUPLICATE_KEY_IDENTIFIER,
                f"{old.ident.label} was already merged into {prior.merged_into}",
                old.where.id,
            )
        old_affinity = self.kind(old.ident.authority) is DomainKind.AFFINITY
        if old_affinity and self.kind(new.ident.authority) is not DomainKind.AFFINITY:
            raise Hl7Error.one(
                E.UNKNOWN_KEY_IDENTIFIER,
                f"the affinity-domain ID {old.ident.label} can only be merged into another "
                "affinity-domain ID",
                new.where.id,
            )
        demographics = json.dumps(demo.as_dict()) if demo.as_dict() else None
        if survivor is None:
            person_id = prior.person_id
            self._insert(conn, [self._row(new.ident, person_id, now, demographics)])
            if self.kind(new.ident.authority) is DomainKind.AFFINITY:
                self._register(conn, new.ident, new.where, now)
        else:
            person_id = survivor.person_id
            if demographics is not None:
                self._update_demographics(conn, [new.ident], demographics, now)
        held = self._affinity_ids(self.members(conn, person_id))  # the surviving person's
        if prior.person_id != person_id:
            self._direct(conn).move(conn, prior.person_id, person_id, now)
        self._retire(conn, old.ident, new.ident, now, person_id)
        # One affinity-domain ID per person: the merge's surviving one, else the surviving person's.
        remaining = self._affinity_ids(self.members(conn, person_id))
        if len(remaining) > 1:
            keep = (
                new.ident
                if new.ident in remaining
                else next((a for a in held if a in remaining), remaining[0])
            )
            for other in remaining:
                if other != keep:
                    self._retire(conn, other, keep, now, person_id)
        return person_id

    def _retire(self, conn: Connection, old: Identifier, new: Identifier, now: str, person_id: int) -> None:
        """``old`` lives on as ``new``; an affinity-domain ID is merged in the registry too."""
        self._direct(conn).retire(conn, (old.authority, old.value), new.cx, person_id, now)
        if self.kind(old.authority) is DomainKind.AFFINITY:
            merge_patient(conn, old.cx, new.cx)

    # -----------------------------------------------------------------------------------------
    # Query
    # -----------------------------------------------------------------------------------------

    def query(self, conn: Connection, q: PixQuery, source: tuple[str, str] = ("", "")) -> PixAnswer:
        """The identifiers cross-referenced with ``q.id`` (ITI-9 3.9.4.2.2.6, ITI-45 3.45.4.2.3)."""
        problems: list[Hl7Problem] = []
        ident: Identifier | None = None
        try:
            ident = self.resolve(q.id, source)
        except Hl7Error as exc:
            problems.extend(exc.problems)
        wanted: list[str] = []
        for d in q.domains:
            try:
                wanted.append(self.authority(d, source))
            except Hl7Error as exc:
                problems.extend(exc.problems)
        if problems or ident is None:
            raise Hl7Error(problems)
        known, merged_into, members = self._direct(conn).aliases(conn, (ident.authority, ident.value))
        if not known or merged_into is not None:
            raise Hl7Error.one(
                E.UNKNOWN_KEY_IDENTIFIER,
                f"{ident.label} is not known to the PIX Manager"
                + (f" (merged into {merged_into})" if merged_into else ""),
                q.id.where.id,
            )
        found = sorted(
            (
                m
                for m in (Identifier(a, v) for a, v in members)
                if m != ident and (not wanted or m.authority in wanted)
            ),
            key=self.sort_key,
        )
        return PixAnswer(QueryStatus.OK if found else QueryStatus.NF, tuple(found))
