"""The PIX Manager: patient identifier cross-referencing for the affinity domain.

- ITI-8 Patient Identity Feed and ITI-9 PIX Query over MLLP (:mod:`.iti8`, :mod:`.iti9`, :mod:`.mllp`);
- ITI-44 Patient Identity Feed HL7 V3 and ITI-45 PIXV3 Query over SOAP (:mod:`.iti44`, :mod:`.iti45`);
- ITI-10 PIX Update Notification to configured consumers (:mod:`.iti10`);
- the cross-reference itself (:mod:`.xref`), which also feeds the registry's ``patient`` table.
"""
