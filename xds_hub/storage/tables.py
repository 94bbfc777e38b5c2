"""Imports every module that defines tables on :data:`xds_hub.storage.schema.metadata`."""

from xds_hub.storage import schema  # noqa: F401
