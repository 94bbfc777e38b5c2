"""Security building blocks (issue 5): node authentication with mutual TLS (ITI-19), access rules per
establishment, the demo PKI of `xds-hub certs init`, and the hardened XML parser.

- :mod:`xds_hub.security.tls`: SSL contexts for the listeners and the hub's own clients, and the
  mapping of a peer certificate to a :class:`~xds_hub.security.access.NodeIdentity`;
- :mod:`xds_hub.security.access`: the pure access rules (submission, AE title, feed, admin);
- :mod:`xds_hub.security.certs`: demo CA and node certificates;
- :mod:`xds_hub.security.xml`: XML parsing without entities, DTDs or network, with size limits.
"""
