"""A content-addressed blob store on any S3-compatible object store (AWS S3, SeaweedFS, MinIO ...).

URL: ``s3://BUCKET[/PREFIX]?endpoint=http://host:port[&region=R][&access_key=K&secret_key=S]``.
Credentials come from the URL, else from boto3's usual sources (environment, config files).
A blob is staged in a local temporary file while it streams in (SHA-1 and SHA-256 computed on
the way), then uploaded under its SHA-256; an S3 PUT is durable once it returns, so ``finish``
returning means the blob is safe.  Reads stream from the object body.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any, BinaryIO, cast
from urllib.parse import parse_qs, urlparse

from xds_hub.errors import ConfigError
from xds_hub.storage.ports import BlobInfo


class S3BlobWriter:
    def __init__(self, store: S3BlobStore) -> None:
        self._store = store
        self._file: Any = tempfile.NamedTemporaryFile(prefix="xds-s3-", delete=False)  # noqa: SIM115
        self._sha1 = hashlib.sha1()
        self._sha256 = hashlib.sha256()
        self._size = 0
        self._info: BlobInfo | None = None

    def write(self, data: bytes) -> None:
        if self._file is None:
            raise ValueError("blob writer is closed")
        self._file.write(data)
        self._sha1.update(data)
        self._sha256.update(data)
        self._size += len(data)

    def finish(self) -> BlobInfo:
        if self._info is not None:
            return self._info
        if self._file is None:
            raise ValueError("blob writer was aborted")
        self._file.close()
        key = self._sha256.hexdigest()
        try:
            store = self._store
            if not store.exists(key):
                store.client.upload_file(self._file.name, store.bucket, store.object_key(key))
        finally:
            os.unlink(self._file.name)
            self._file = None
        self._info = BlobInfo(key=key, sha1=self._sha1.hexdigest(), size=self._size)
        return self._info

    def abort(self) -> None:
        if self._file is not None:
            self._file.close()
            os.unlink(self._file.name)
            self._file = None


class S3BlobStore:
    def __init__(self, client: Any, bucket: str, prefix: str = "") -> None:
        self.client = client
        self.bucket = bucket
        self.prefix = prefix.strip("/") + "/" if prefix.strip("/") else ""

    @classmethod
    def from_url(cls, url: str) -> S3BlobStore:
        try:
            import boto3
        except ImportError as exc:  # pragma: no cover - depends on the install
            raise ConfigError("s3:// blob stores need boto3: pip install 'xds-hub[s3]'") from exc
        parsed = urlparse(url)
        if not parsed.netloc:
            raise ConfigError(f"blob store URL {url!r} names no bucket")
        query = {k: v[-1] for k, v in parse_qs(parsed.query).items()}
        endpoint = query.get("endpoint")
        access = query.get("access_key") or os.environ.get("AWS_ACCESS_KEY_ID")
        secret = query.get("secret_key") or os.environ.get("AWS_SECRET_ACCESS_KEY")
        if endpoint and not access:
            access, secret = "xds-hub", "xds-hub"  # S3-compatible stores without auth accept any
        client = boto3.client(
            "s3",
            endpoint_url=endpoint,
            region_name=query.get("region", os.environ.get("AWS_DEFAULT_REGION", "us-east-1")),
            aws_access_key_id=access,
            aws_secret_access_key=secret,
        )
        store = cls(client, parsed.netloc, parsed.path)
        store.ensure_bucket()
        return store

    def ensure_bucket(self) -> None:
        try:
            self.client.head_bucket(Bucket=self.bucket)
        except Exception:
            self.client.create_bucket(Bucket=self.bucket)

    def object_key(self, key: str) -> str:
        if len(key) != 64 or not all(c in "0123456789abcdef" for c in key):
            raise FileNotFoundError(f"no blob {key!r}")
        return f"{self.prefix}{key[:2]}/{key}"

    def writer(self) -> S3BlobWriter:
        return S3BlobWriter(self)

    def _head(self, key: str) -> dict[str, Any] | None:
        try:
            return cast(dict[str, Any], self.client.head_object(Bucket=self.bucket, Key=self.object_key(key)))
        except FileNotFoundError:
            return None
        except self.client.exceptions.ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in ("404", "NoSuchKey", "NotFound"):
                return None
            raise

    def open(self, key: str) -> BinaryIO:
        try:
            obj = self.client.get_object(Bucket=self.bucket, Key=self.object_key(key))
        except self.client.exceptions.NoSuchKey as exc:
            raise FileNotFoundError(f"no blob {key!r}") from exc
        return cast(BinaryIO, obj["Body"])

    def size(self, key: str) -> int:
        head = self._head(key)
        if head is None:
            raise FileNotFoundError(f"no blob {key!r}")
        return int(head["ContentLength"])

    def exists(self, key: str) -> bool:
        return self._head(key) is not None

    def delete(self, key: str) -> None:
        self.client.delete_object(Bucket=self.bucket, Key=self.object_key(key))

    def iter_keys(self, older_than: float) -> Iterator[str]:
        limit = datetime.fromtimestamp(older_than, UTC)
        paginator = self.client.get_paginator("list_objects_v2")
        for page in paginator.paginate(Bucket=self.bucket, Prefix=self.prefix):
            for obj in page.get("Contents", []):
                if obj["LastModified"] < limit:
                    yield str(obj["Key"]).rsplit("/", 1)[-1]
