"""xds-hub: a regional IHE hub (XDS.b registry/repository, XDS-I.b imaging source, PIX manager)."""

__version__ = "0.1.0"
