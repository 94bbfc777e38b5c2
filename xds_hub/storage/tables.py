"""Imports every module that defines tables on :data:`xds_hub.storage.schema.metadata`."""

from xds_hub.audit import tables as audit_tables  # noqa: F401
from xds_hub.imaging import tables as imaging_tables  # noqa: F401
from xds_hub.pix import tables as pix_tables  # noqa: F401
from xds_hub.storage import schema  # noqa: F401
