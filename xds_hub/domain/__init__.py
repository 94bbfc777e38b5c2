"""The pure core: metadata, HL7 data types, vocabulary, validation, stored queries, imaging.

Nothing in this package imports lxml, SQLAlchemy, Flask or pynetdicom (a test enforces it).
"""
