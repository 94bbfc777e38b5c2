"""Namespace URIs: the one place they are spelled out."""

from typing import Final

SOAP12: Final = "http://www.w3.org/2003/05/soap-envelope"
SOAP11: Final = "http://schemas.xmlsoap.org/soap/envelope/"
WSA: Final = "http://www.w3.org/2005/08/addressing"
XOP: Final = "http://www.w3.org/2004/08/xop/include"
XMIME: Final = "http://www.w3.org/2005/05/xmlmime"
XSI: Final = "http://www.w3.org/2001/XMLSchema-instance"
XSD: Final = "http://www.w3.org/2001/XMLSchema"
WSDL: Final = "http://schemas.xmlsoap.org/wsdl/"
WSDL_SOAP12: Final = "http://schemas.xmlsoap.org/wsdl/soap12/"
WSAW: Final = "http://www.w3.org/2006/05/addressing/wsdl"
#: WS-Security 1.0 secext (the ``wsse:FailedAuthentication`` fault subcode of a refused request).
WSSE: Final = "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-secext-1.0.xsd"

RIM: Final = "urn:oasis:names:tc:ebxml-regrep:xsd:rim:3.0"
RS: Final = "urn:oasis:names:tc:ebxml-regrep:xsd:rs:3.0"
LCM: Final = "urn:oasis:names:tc:ebxml-regrep:xsd:lcm:3.0"
QUERY: Final = "urn:oasis:names:tc:ebxml-regrep:xsd:query:3.0"
XDSB: Final = "urn:ihe:iti:xds-b:2007"
RMD: Final = "urn:ihe:iti:rmd:2017"
XDSI: Final = "urn:ihe:rad:xdsi-b:2009"
HL7V3: Final = "urn:hl7-org:v3"

#: Prefixes used when the hub renders XML (cosmetic; receivers must not depend on them).
PREFIXES: Final[dict[str, str]] = {
    "soap": SOAP12,
    "wsa": WSA,
    "xop": XOP,
    "rim": RIM,
    "rs": RS,
    "lcm": LCM,
    "query": QUERY,
    "xdsb": XDSB,
    "rmd": RMD,
    "xdsi": XDSI,
}


def qn(ns: str, local: str) -> str:
    """Clark notation ``{ns}local`` for lxml."""
    return f"{{{ns}}}{local}"
