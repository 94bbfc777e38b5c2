"""SOAP endpoints on the Flask app (placeholder until the SOAP edge lands)."""

from __future__ import annotations

from flask import Flask

from xds_hub.config import Settings
from xds_hub.storage.stores import Stores


def install_soap_routes(app: Flask, settings: Settings, stores: Stores) -> None:
    """Register the SOAP endpoints of ../shared/INTERFACE.md on ``app``."""
