"""Matching stored studies, series and instances against DICOM query keys.

One engine for C-FIND (PS3.4 C.4.1, Patient Root and Study Root information models), QIDO-RS
(PS3.18 10.6) and the UID lists of C-MOVE / C-GET / RAD-69.  Matching follows PS3.4 C.2.2.2:
single value, universal (empty), wildcard (``*`` / ``?``, not for UIDs or dates), list of UIDs
(backslash-separated) and range matching for DA / TM / DT (``a-b``, ``-b``, ``a-``).  Person
names match case-insensitively.  Keys above the query level may constrain the match (relational
behaviour, more than the hierarchical minimum).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Connection,
    Select,
    and_,
    distinct,
    exists,
    func,
    literal,
    select,
)

from xds_hub.errors import ParseError
from xds_hub.imaging.tables import dicom_instance, dicom_series, dicom_study


class Level(StrEnum):
    """Query/Retrieve Level (0008,0052) values, top to bottom."""

    PATIENT = "PATIENT"
    STUDY = "STUDY"
    SERIES = "SERIES"
    IMAGE = "IMAGE"


_DEPTH = {Level.PATIENT: 0, Level.STUDY: 1, Level.SERIES: 2, Level.IMAGE: 3}

st, se, ins = dicom_study.c, dicom_series.c, dicom_instance.c


@dataclass(frozen=True, slots=True)
class Key:
    """A query key: its DICOM keyword, tag, VR, the level it belongs to and its SQL column."""

    keyword: str
    tag: int
    vr: str
    level: Level
    column: ColumnElement[Any] | None  # None: computed per level (counts, modalities)


KEYS: Mapping[str, Key] = {
    k.keyword: k
    for k in (
        Key("PatientID", 0x00100020, "LO", Level.PATIENT, st.patient_id),
        Key("IssuerOfPatientID", 0x00100021, "LO", Level.PATIENT, st.issuer),
        Key("PatientName", 0x00100010, "PN", Level.PATIENT, st.patient_name),
        Key("PatientBirthDate", 0x00100030, "DA", Level.PATIENT, st.patient_birth_date),
        Key("PatientSex", 0x00100040, "CS", Level.PATIENT, st.patient_sex),
        Key("NumberOfPatientRelatedStudies", 0x00201200, "IS", Level.PATIENT, None),
        Key("NumberOfPatientRelatedSeries", 0x00201202, "IS", Level.PATIENT, None),
        Key("NumberOfPatientRelatedInstances", 0x00201204, "IS", Level.PATIENT, None),
        Key("StudyInstanceUID", 0x0020000D, "UI", Level.STUDY, st.study_uid),
        Key("StudyDate", 0x00080020, "DA", Level.STUDY, st.study_date),
        Key("StudyTime", 0x00080030, "TM", Level.STUDY, st.study_time),
        Key("AccessionNumber", 0x00080050, "SH", Level.STUDY, st.accession),
        Key("StudyID", 0x00200010, "SH", Level.STUDY, st.study_id),
        Key("StudyDescription", 0x00081030, "LO", Level.STUDY, st.study_description),
        Key("ReferringPhysicianName", 0x00080090, "PN", Level.STUDY, st.referring_physician),
        Key("ModalitiesInStudy", 0x00080061, "CS", Level.STUDY, None),
        Key("NumberOfStudyRelatedSeries", 0x00201206, "IS", Level.STUDY, None),
        Key("NumberOfStudyRelatedInstances", 0x00201208, "IS", Level.STUDY, None),
        Key("SeriesInstanceUID", 0x0020000E, "UI", Level.SERIES, se.series_uid),
        Key("Modality", 0x00080060, "CS", Level.SERIES, se.modality),
        Key("SeriesNumber", 0x00200011, "IS", Level.SERIES, se.series_number),
        Key("SeriesDescription", 0x0008103E, "LO", Level.SERIES, se.series_description),
        Key("BodyPartExamined", 0x00180015, "CS", Level.SERIES, se.body_part),
        Key("NumberOfSeriesRelatedInstances", 0x00201209, "IS", Level.SERIES, None),
        Key("SOPInstanceUID", 0x00080018, "UI", Level.IMAGE, ins.sop_instance_uid),
        Key("SOPClassUID", 0x00080016, "UI", Level.IMAGE, ins.sop_class_uid),
        Key("InstanceNumber", 0x00200013, "IS", Level.IMAGE, ins.instance_number),
        Key("NumberOfFrames", 0x00280008, "IS", Level.IMAGE, ins.number_of_frames),
        Key("Rows", 0x00280010, "US", Level.IMAGE, ins.rows),
        Key("Columns", 0x00280011, "US", Level.IMAGE, ins.columns),
        Key("TransferSyntaxUID", 0x00020010, "UI", Level.IMAGE, ins.transfer_syntax),
    )
}
KEYS_BY_TAG: Mapping[int, Key] = {k.tag: k for k in KEYS.values()}

#: The unique key of each level (PS3.4 C.6.1.1 / C.6.2.1).
UNIQUE_KEY = {
    Level.PATIENT: "PatientID",
    Level.STUDY: "StudyInstanceUID",
    Level.SERIES: "SeriesInstanceUID",
    Level.IMAGE: "SOPInstanceUID",
}

_WILDCARD_VRS = frozenset({"AE", "CS", "LO", "LT", "PN", "SH", "ST", "UC", "UT", "UR"})
_RANGE_VRS = frozenset({"DA", "TM", "DT"})


def _like_pattern(value: str) -> str:
    out = []
    for ch in value:
        if ch in "%_\\":
            out.append("\\" + ch)
        elif ch == "*":
            out.append("%")
        elif ch == "?":
            out.append("_")
        else:
            out.append(ch)
    return "".join(out)


def _match_value(key: Key, column: ColumnElement[Any], value: str) -> ColumnElement[bool]:
    """The SQL condition of one key's matching value (PS3.4 C.2.2.2)."""
    if key.vr == "UI":
        uids = [u.strip() for u in value.split("\\") if u.strip()]
        return column.in_(uids) if len(uids) > 1 else column == uids[0]
    if key.vr in _RANGE_VRS and "-" in value:
        low, _, high = value.partition("-")
        conds = []
        if low:
            conds.append(column >= low.strip())
        if high:
            # a stored time with fractions sorts after its prefix: "1200" must include "120000.5"
            conds.append(column <= high.strip() + ("\uffff" if key.vr != "DA" else ""))
        return and_(column.is_not(None), *conds)
    if key.vr in ("IS", "US"):
        try:
            return column == int(value)
        except ValueError:
            raise ParseError(f"{key.keyword}: {value!r} is not a number") from None
    if key.vr == "PN":
        column = func.lower(column)
        value = value.lower()
    if key.vr in _WILDCARD_VRS and ("*" in value or "?" in value):
        if value.strip("*") == "":
            return literal(True)
        return column.like(_like_pattern(value), escape="\\")
    if key.vr == "CS" and "\\" in value:
        return column.in_([v for v in value.split("\\") if v])
    return column == value


@dataclass(frozen=True, slots=True)
class Query:
    """A query at ``level``: keyword -> matching value (empty: universal) and what to return."""

    level: Level
    match: Mapping[str, str]
    limit: int | None = None
    offset: int = 0


def _modalities_condition(value: str) -> ColumnElement[bool]:
    wanted = [v for v in value.split("\\") if v]
    return exists().where(and_(se.study_uid == st.study_uid, se.modality.in_(wanted)))


def _base(level: Level) -> Select[Any]:
    if level is Level.PATIENT:
        return select(
            st.patient_id.label("PatientID"),
            st.issuer.label("IssuerOfPatientID"),
            func.max(st.patient_name).label("PatientName"),
            func.max(st.patient_birth_date).label("PatientBirthDate"),
            func.max(st.patient_sex).label("PatientSex"),
            func.count(distinct(st.study_uid)).label("NumberOfPatientRelatedStudies"),
        ).group_by(st.patient_id, st.issuer)
    columns = [
        k.column.label(k.keyword)
        for k in KEYS.values()
        if k.column is not None and _DEPTH[k.level] <= _DEPTH[level]
    ]
    stmt = select(*columns, st.charset.label("_charset"))
    if level is Level.STUDY:
        return stmt.select_from(dicom_study)
    if level is Level.SERIES:
        return stmt.select_from(dicom_series.join(dicom_study, dicom_study.c.study_uid == se.study_uid))
    return stmt.select_from(
        dicom_instance.join(dicom_series, se.series_uid == ins.series_uid).join(
            dicom_study, st.study_uid == ins.study_uid
        )
    )


_ORDER = {
    Level.PATIENT: (st.patient_id,),
    Level.STUDY: (st.study_date, st.study_time, st.study_uid),
    Level.SERIES: (st.study_uid, se.series_number, se.series_uid),
    Level.IMAGE: (ins.series_uid, ins.instance_number, ins.sop_instance_uid),
}


def _conditions(query: Query) -> list[ColumnElement[bool]]:
    conds: list[ColumnElement[bool]] = []
    depth = _DEPTH[query.level]
    for keyword, value in query.match.items():
        key = KEYS.get(keyword)
        if key is None or value in ("", "*") or _DEPTH[key.level] > depth:
            continue
        if keyword == "ModalitiesInStudy":
            conds.append(_modalities_condition(value))
        elif key.column is not None:
            conds.append(_match_value(key, key.column, value))
    return conds


def search(conn: Connection, query: Query) -> Iterator[dict[str, Any]]:
    """Rows matching ``query``: keyword -> value (computed keys included) for the level and above."""
    stmt = _base(query.level)
    conds = _conditions(query)
    if conds:
        stmt = stmt.where(*conds)
    stmt = stmt.order_by(*_ORDER[query.level])
    if query.limit is not None:
        stmt = stmt.limit(query.limit)
    if query.offset:
        stmt = stmt.offset(query.offset)
    rows = [dict(r._mapping) for r in conn.execute(stmt)]
    if not rows:
        return
    _add_computed(conn, query.level, rows)
    yield from rows


def _add_computed(conn: Connection, level: Level, rows: list[dict[str, Any]]) -> None:
    if level is Level.PATIENT:
        return
    if level is Level.STUDY:
        uids = [r["StudyInstanceUID"] for r in rows]
        series: dict[str, list[str]] = {}
        counts: dict[str, int] = {}
        for chunk in _chunks(uids):
            for study, modality in conn.execute(
                select(se.study_uid, se.modality).where(se.study_uid.in_(chunk))
            ):
                series.setdefault(study, [])
                if modality and modality not in series[study]:
                    series[study].append(modality)
                counts[study] = counts.get(study, 0) + 1
        instances = _count_by(conn, ins.study_uid, uids)
        for r in rows:
            uid = r["StudyInstanceUID"]
            r["ModalitiesInStudy"] = sorted(series.get(uid, []))
            r["NumberOfStudyRelatedSeries"] = counts.get(uid, 0)
            r["NumberOfStudyRelatedInstances"] = instances.get(uid, 0)
    elif level is Level.SERIES:
        counted = _count_by(conn, ins.series_uid, [r["SeriesInstanceUID"] for r in rows])
        for r in rows:
            r["NumberOfSeriesRelatedInstances"] = counted.get(r["SeriesInstanceUID"], 0)


def _chunks(values: Sequence[str], size: int = 500) -> Iterator[Sequence[str]]:
    for start in range(0, len(values), size):
        yield values[start : start + size]


def _count_by(conn: Connection, column: ColumnElement[Any], uids: Sequence[str]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for chunk in _chunks(uids):
        for uid, n in conn.execute(select(column, func.count()).where(column.in_(chunk)).group_by(column)):
            counts[uid] = int(n)
    return counts


@dataclass(frozen=True, slots=True)
class StoredInstance:
    """Where one instance is and what it is (for retrieval)."""

    study_uid: str
    series_uid: str
    sop_instance_uid: str
    sop_class_uid: str
    transfer_syntax: str
    blob_key: str
    size: int
    dataset_offset: int
    number_of_frames: int | None = None


def instances(
    conn: Connection,
    study_uids: Sequence[str] = (),
    series_uids: Sequence[str] = (),
    sop_uids: Sequence[str] = (),
    patient_id: str | None = None,
) -> list[StoredInstance]:
    """The stored instances under the given UIDs (every list that is given must match)."""
    stmt = select(
        ins.study_uid,
        ins.series_uid,
        ins.sop_instance_uid,
        ins.sop_class_uid,
        ins.transfer_syntax,
        ins.blob_key,
        ins.size,
        ins.dataset_offset,
        ins.number_of_frames,
    )
    conds: list[ColumnElement[bool]] = []
    if study_uids:
        conds.append(ins.study_uid.in_(list(study_uids)))
    if series_uids:
        conds.append(ins.series_uid.in_(list(series_uids)))
    if sop_uids:
        conds.append(ins.sop_instance_uid.in_(list(sop_uids)))
    if patient_id is not None:
        stmt = stmt.join(dicom_study, st.study_uid == ins.study_uid)
        conds.append(st.patient_id == patient_id)
    if not conds:
        return []
    stmt = stmt.where(*conds).order_by(
        ins.study_uid, ins.series_uid, ins.instance_number, ins.sop_instance_uid
    )
    return [StoredInstance(*row) for row in conn.execute(stmt)]


def level_of(value: str, allowed: Sequence[Level]) -> Level:
    """The Query/Retrieve Level named by ``value``; ParseError when it is not one of ``allowed``."""
    try:
        level = Level(value.strip().upper())
    except ValueError:
        raise ParseError(f"Query/Retrieve Level {value!r} is not one of {', '.join(allowed)}") from None
    if level not in allowed:
        raise ParseError(f"Query/Retrieve Level {level} is not valid here; use one of {', '.join(allowed)}")
    return level
