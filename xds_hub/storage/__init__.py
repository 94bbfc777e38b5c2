"""Persistence: SQL tables and stores behind small interfaces (see ports.py)."""
