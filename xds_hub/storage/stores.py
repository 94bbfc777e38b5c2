"""Opening the stores named by the settings."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote, urlparse

from sqlalchemy import Engine

from xds_hub.config import Settings
from xds_hub.errors import ConfigError
from xds_hub.storage.db import make_engine
from xds_hub.storage.fs import FsBlobStore
from xds_hub.storage.migrate import upgrade
from xds_hub.storage.ports import BlobStore


@dataclass(frozen=True, slots=True)
class Stores:
    """What a transaction handler persists to: the SQL database and the blob store."""

    engine: Engine
    blobs: BlobStore

    def close(self) -> None:
        """Store the audit records still queued for this database, then close its connections."""
        from xds_hub.audit.recorder import flush_recorders

        flush_recorders(lambda engine: engine is self.engine)
        self.engine.dispose()


def open_blob_store(url: str) -> BlobStore:
    parsed = urlparse(url)
    if parsed.scheme == "file":
        return FsBlobStore(Path(unquote(parsed.path)))
    if parsed.scheme == "s3":
        from xds_hub.storage.s3 import S3BlobStore

        return S3BlobStore.from_url(url)
    raise ConfigError(f"unsupported blob store URL {url!r}: use file:///path or s3://bucket?endpoint=...")


def open_stores(settings: Settings, migrate: bool = True) -> Stores:
    """Open (and by default create or migrate) the database and blob store of ``settings``."""
    settings.data.mkdir(parents=True, exist_ok=True)
    engine = make_engine(settings.db_url)
    if migrate:
        upgrade(engine)
    return Stores(engine=engine, blobs=open_blob_store(settings.blobs_url))
