"""The hub's own WSDL and XSD files, served at ``<path>?wsdl`` and ``<path>?xsd=NAME``.

The files live in ``schemas/`` at the top of the repository and are packaged as
``xds_hub/schemas`` (a symbolic link in the source tree, real files in a wheel); they are read
with :mod:`importlib.resources`.  Each WSDL describes one SOAP endpoint of the hub (SOAP 1.2
binding, ``wsaw:Action`` on every input and output, MTOM policy on the repository and imaging
endpoints).  When served, ``soap12:address/@location`` becomes the URL the client used and every
``schemaLocation`` / ``wsdl:import/@location`` an absolute ``?xsd=NAME`` URL on the same endpoint,
so a client such as zeep loads the service description from the hub alone.
"""

from __future__ import annotations

import importlib.resources
from functools import cache, lru_cache
from importlib.resources.abc import Traversable
from pathlib import Path
from typing import Final
from urllib.parse import quote, urlsplit

from lxml import etree

from xds_hub import ns

#: endpoint path -> the WSDL describing it (the paths of xds_hub.soap.routes.ROUTES).
WSDL_FOR_PATH: Final[dict[str, str]] = {
    "/xds/registry": "XDS.b_DocumentRegistry.wsdl",
    "/xds/repository": "XDS.b_DocumentRepository.wsdl",
    "/xdsi/source": "XDS-I.b_ImagingDocumentSource.wsdl",
    "/pix": "PIXManager.wsdl",
}

_XSD_REFERENCES = tuple(ns.qn(ns.XSD, tag) for tag in ("import", "include", "redefine"))
_WSDL_IMPORT = ns.qn(ns.WSDL, "import")
_SOAP12_ADDRESS = ns.qn(ns.WSDL_SOAP12, "address")


def schema_dir() -> Traversable:
    """The folder of the packaged WSDL/XSD files."""
    packaged = importlib.resources.files("xds_hub") / "schemas"
    if packaged.is_dir():
        return packaged
    return Path(__file__).resolve().parents[2] / "schemas"  # a source tree without the link


@cache
def document_names() -> frozenset[str]:
    """Names of the files that may be served (``*.wsdl`` and ``*.xsd``)."""
    return frozenset(p.name for p in schema_dir().iterdir() if p.name.endswith((".wsdl", ".xsd")))


@cache
def _source(name: str) -> bytes:
    return (schema_dir() / name).read_bytes()


def _absolute(location: str) -> bool:
    return bool(urlsplit(location).scheme)


@lru_cache(maxsize=128)
def render_document(name: str, endpoint_url: str) -> bytes:
    """The WSDL or XSD ``name`` as served from ``endpoint_url`` (scheme, host and path, no query).

    Raises KeyError when ``name`` is not one of :func:`document_names`.
    """
    if name not in document_names():
        raise KeyError(name)
    parser = etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False)
    root = etree.fromstring(_source(name), parser)
    for element in root.iter(*_XSD_REFERENCES):
        location = element.get("schemaLocation")
        if location and not _absolute(location):
            element.set("schemaLocation", f"{endpoint_url}?xsd={quote(Path(location).name)}")
    for element in root.iter(_WSDL_IMPORT):
        location = element.get("location")
        if location and not _absolute(location):
            element.set("location", f"{endpoint_url}?xsd={quote(Path(location).name)}")
    for element in root.iter(_SOAP12_ADDRESS):
        element.set("location", endpoint_url)
    return etree.tostring(root, encoding="UTF-8", xml_declaration=True)
