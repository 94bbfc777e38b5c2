"""DIMSE status codes the hub answers with, each citing DICOM PS3.4 (and PS3.7 Annex C).

One table, so that the DIMSE edge never writes a bare number.
"""

from __future__ import annotations

from enum import IntEnum


class Status(IntEnum):
    """Status (0000,0900) values of C-STORE, C-FIND, C-MOVE and C-GET responses."""

    #: PS3.7 C.1.1: Success.
    SUCCESS = 0x0000
    #: PS3.4 Table C.4-1..3: Pending, matches / sub-operations are continuing.
    PENDING = 0xFF00
    #: PS3.4 Table C.4-1: Pending, but one or more Optional Keys were not supported.
    PENDING_WARNING = 0xFF01
    #: PS3.7 C.3: Cancel (the SCU sent C-CANCEL).
    CANCEL = 0xFE00
    #: PS3.4 Table B.2-1 / C.4-1: Refused, Out of Resources.
    OUT_OF_RESOURCES = 0xA700
    #: PS3.4 Table C.4-2: Refused, Out of Resources - unable to calculate number of matches.
    OUT_OF_RESOURCES_MATCHES = 0xA701
    #: PS3.4 Table C.4-2: Refused, Out of Resources - unable to perform sub-operations.
    OUT_OF_RESOURCES_SUBOPS = 0xA702
    #: PS3.4 Table C.4-2: Refused, Move Destination unknown.
    MOVE_DESTINATION_UNKNOWN = 0xA801
    #: PS3.4 Table B.2-1: Error, Data Set does not match SOP Class (a Type 1 attribute is missing);
    #: Table C.4-1: Identifier does not match SOP Class.
    DATASET_DOES_NOT_MATCH_SOP_CLASS = 0xA900
    #: PS3.4 Table B.2-1: Error, Cannot understand; Table C.4-1: Unable to process.
    CANNOT_UNDERSTAND = 0xC000
    #: PS3.4 Table C.4-2 / C.4-3: Warning, sub-operations complete, one or more failures.
    SUBOPS_WARNING = 0xB000
