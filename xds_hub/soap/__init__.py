"""The SOAP 1.2 edge: envelope and WS-Addressing, MTOM/XOP, faults, and the wsa:Action table."""
