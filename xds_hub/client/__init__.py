"""An XDS.b Document Source / Document Consumer client for any XDS.b endpoint (:mod:`.xds`),
with streamed MTOM/XOP (:mod:`.mtom`), a SOAP 1.2 + WS-Addressing caller (:mod:`.soap`) and
metadata for plain files (:mod:`.metadata`)."""
