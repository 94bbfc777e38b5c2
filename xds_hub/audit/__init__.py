"""The ATNA audit trail (ITI-20 Record Audit Event): DICOM PS3.15 A.5 audit messages for every
transaction, kept in a local table and shipped to an Audit Record Repository over syslog.

- :mod:`xds_hub.audit.events`: one builder per transaction (what the IHE sections ask for);
- :mod:`xds_hub.audit.model` / :mod:`xds_hub.audit.xml`: the message and its XML;
- :mod:`xds_hub.audit.store`: :func:`~xds_hub.audit.store.record` and the `xds-hub audit` queries;
- :mod:`xds_hub.audit.sender`: the actor sending queued records (RFC 5424 over UDP or TLS);
- :mod:`xds_hub.audit.alerts`: Security Alerts for peers refused in the TLS handshake.
"""
