"""Known-good XDS metadata built in code, for tests that change one field and expect one problem.

``good_submission()`` is a valid ITI-42 submission of the test region's affinity domain: one
SubmissionSet, one stable DocumentEntry, one Folder holding it, with symbolic ids.  Use
``dataclasses.replace`` (or the ``with_*`` helpers) to break exactly one thing.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from xds_hub.domain.metadata import (
    Association,
    Author,
    Code,
    DocumentEntry,
    Folder,
    Submission,
    SubmissionSet,
)
from xds_hub.domain.vocabulary import AssociationType

DOMAIN_OID = "1.3.6.1.4.1.21367.13.20.1000"
PATIENT = f"PID-1^^^&{DOMAIN_OID}&ISO"
OTHER_PATIENT = f"PID-2^^^&{DOMAIN_OID}&ISO"
REPOSITORY = "1.2.3.4.5"

SS_ID = "SubmissionSet01"
DOC_ID = "Document01"
FOLDER_ID = "Folder01"

AUTHOR = Author(
    person="^Smitty^Gerald^^^",
    institutions=("Cleveland Clinic^^^^^^^^^1.2.3.9",),
    roles=("Attending",),
    specialties=("Orthopedic",),
    telecoms=("^NET^Internet^gerald@example.org",),
)


def good_document(**changes: Any) -> DocumentEntry:
    doc = DocumentEntry(
        entry_uuid=DOC_ID,
        unique_id="1.2.3.100.1.1",
        patient_id=PATIENT,
        mime_type="text/xml",
        title="Physical",
        comments="Annual physical",
        class_code=Code("REPORTS", "1.3.6.1.4.1.19376.1.2.6.1", "Reports"),
        type_code=Code("34108-1", "2.16.840.1.113883.6.1", "Outpatient Note"),
        format_code=Code("urn:ihe:pcc:xphr:2007", "1.3.6.1.4.1.19376.1.2.3", "XPHR"),
        healthcare_facility_type_code=Code("Outpatient", "Connect-a-thon healthcareFacilityTypeCodes"),
        practice_setting_code=Code("General Medicine", "Connect-a-thon practiceSettingCodes"),
        confidentiality_codes=(Code("N", "2.16.840.1.113883.5.25", "normal"),),
        event_codes=(Code("T-D4000", "SNM3", "Abdomen"),),
        authors=(AUTHOR,),
        creation_time="20051224",
        service_start_time="200412230800",
        service_stop_time="200412230801",
        hash="da39a3ee5e6b4b0d3255bfef95601890afd80709",
        size=0,
        language_code="en-US",
        legal_authenticator="1234^Doe^John^^^Dr^^^&1.2.3.9&ISO",
        source_patient_id="ST-1000^^^&1.3.6.1.4.1.21367.2003.3.9&ISO",
        source_patient_info=("PID-3|ST-1000^^^&1.3.6.1.4.1.21367.2003.3.9&ISO", "PID-5|Doe^John^^^"),
        repository_unique_id=REPOSITORY,
        reference_ids=("A123^^^&1.2.3.9&ISO^urn:ihe:iti:xds:2013:accession",),
    )
    return replace(doc, **changes)


def good_submission_set(**changes: Any) -> SubmissionSet:
    ss = SubmissionSet(
        entry_uuid=SS_ID,
        unique_id="1.2.3.100.1.2",
        source_id="1.2.3.100.1",
        patient_id=PATIENT,
        submission_time="20041225235050",
        content_type_code=Code("History and Physical", "Connect-a-thon contentTypeCodes", "H&P"),
        title="Physical",
        authors=(AUTHOR,),
        intended_recipients=(
            "Some Hospital^^^^^^^^^1.2.3.9|^Welby^Marcus^^^Dr^MD|^^Internet^mwelby@example.org",
        ),
    )
    return replace(ss, **changes)


def good_folder(**changes: Any) -> Folder:
    folder = Folder(
        entry_uuid=FOLDER_ID,
        unique_id="1.2.3.100.1.3",
        patient_id=PATIENT,
        codes=(Code("Referrals", "Connect-a-thon folderCodeList", "Referrals"),),
        title="Referrals",
    )
    return replace(folder, **changes)


def has_member(assoc_id: str, source: str, target: str, status: str | None = None) -> Association:
    return Association(assoc_id, AssociationType.HAS_MEMBER, source, target, submission_set_status=status)


def good_associations() -> tuple[Association, ...]:
    return (
        has_member("as01", SS_ID, DOC_ID, "Original"),
        has_member("as02", SS_ID, FOLDER_ID),
        has_member("as03", FOLDER_ID, DOC_ID),
        has_member("as04", SS_ID, "as03"),
    )


def good_submission(**changes: Any) -> Submission:
    sub = Submission(
        submission_set=good_submission_set(),
        documents=(good_document(),),
        folders=(good_folder(),),
        associations=good_associations(),
    )
    return replace(sub, **changes)


def with_document(sub: Submission, **changes: Any) -> Submission:
    return replace(sub, documents=(replace(sub.documents[0], **changes), *sub.documents[1:]))


def with_folder(sub: Submission, **changes: Any) -> Submission:
    return replace(sub, folders=(replace(sub.folders[0], **changes), *sub.folders[1:]))


def with_submission_set(sub: Submission, **changes: Any) -> Submission:
    return replace(sub, submission_set=replace(sub.submission_set, **changes))
