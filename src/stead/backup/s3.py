"""Archives kept in an S3-compatible bucket (AWS S3, MinIO, Ceph, R2, ...): `s3://bucket/key`.

The connection is configured the way AWS tools are: `AWS_ENDPOINT_URL_S3` or `AWS_ENDPOINT_URL`
for a store other than AWS, `AWS_REGION`, and credentials from `AWS_ACCESS_KEY_ID` /
`AWS_SECRET_ACCESS_KEY` (`AWS_SESSION_TOKEN`), else from the instance's IAM role (EC2, ECS task
role, EKS service account). The client is MinIO's, which speaks to any of them; it is the `s3`
extra (`pip install 'stead[s3]'`, in Stead's image).
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from stead.backup.manifest import BackupError

if TYPE_CHECKING:
    from minio import Minio

SCHEME = "s3://"
_AWS_ENDPOINT = "https://s3.amazonaws.com"
# A store that does not answer is reported after a few seconds, not minio's minutes of retries.
_CONNECT_SECONDS = 5.0
_READ_SECONDS = 300.0
_RETRIES = 2


def is_s3(target: str) -> bool:
    return target.startswith(SCHEME)


@dataclass(frozen=True)
class S3Location:
    bucket: str
    key: str

    @classmethod
    def parse(cls, url: str) -> S3Location:
        bucket, _, key = url.removeprefix(SCHEME).partition("/")
        if not bucket:
            raise BackupError(f"{url}: an S3 location is s3://<bucket>/<key>")
        return cls(bucket, key.strip("/"))

    def child(self, name: str) -> S3Location:
        return S3Location(self.bucket, f"{self.key}/{name}" if self.key else name)

    def __str__(self) -> str:
        return f"{SCHEME}{self.bucket}/{self.key}"


class S3Archives:
    """Uploads, downloads and prunes archives in a bucket; every failure is a BackupError."""

    def __init__(self) -> None:
        self._client = _client()

    def upload(self, path: Path, location: S3Location) -> None:
        with _reported(f"uploading to {location}"):
            self._client.fput_object(location.bucket, location.key, str(path))

    def download(self, location: S3Location, path: Path) -> None:
        with _reported(f"downloading {location}"):
            self._client.fget_object(location.bucket, location.key, str(path))

    def prune(self, folder: S3Location, prefix: str, keep: int) -> list[S3Location]:
        """Delete all but the `keep` newest archives named `prefix...` under `folder` (their
        names sort by time); the ones deleted."""
        start = folder.child(prefix).key
        with _reported(f"listing {folder}"):
            names = sorted(
                str(item.object_name)
                for item in self._client.list_objects(folder.bucket, prefix=start)
                if str(item.object_name).endswith(".tar.gz")
            )
        removed = [S3Location(folder.bucket, name) for name in names[: max(0, len(names) - keep)]]
        for location in removed:
            with _reported(f"deleting {location}"):
                self._client.remove_object(location.bucket, location.key)
        return removed


def _client() -> Minio:
    try:
        import urllib3
        from minio import Minio
        from minio.credentials import ChainedProvider, EnvAWSProvider, IamAwsProvider
    except ImportError as exc:
        raise BackupError(
            "backups in S3 need the s3 extra: pip install 'stead[s3]' (Stead's image has it)"
        ) from exc
    endpoint = urlsplit(
        os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL") or _AWS_ENDPOINT
    )
    if endpoint.scheme not in ("http", "https") or not endpoint.netloc:
        raise BackupError(f"AWS_ENDPOINT_URL: {endpoint.geturl()} is not an http(s) URL")
    http = urllib3.PoolManager(
        timeout=urllib3.Timeout(connect=_CONNECT_SECONDS, read=_READ_SECONDS),
        retries=urllib3.Retry(total=_RETRIES, backoff_factor=0.2),
    )
    return Minio(
        endpoint.netloc,
        secure=endpoint.scheme == "https",
        region=os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION"),
        credentials=ChainedProvider([EnvAWSProvider(), IamAwsProvider()]),
        http_client=http,
    )


@contextlib.contextmanager
def _reported(doing: str) -> Iterator[None]:
    """What the client raises (S3 refusals, connection errors) as a one-line BackupError."""
    try:
        yield
    except BackupError:
        raise
    except Exception as error:
        raise BackupError(f"{doing}: {_reason(error)}") from error


def _reason(error: Exception) -> str:
    from minio.error import S3Error

    if isinstance(error, S3Error):
        return f"{error.code}: {error.message}"
    text = str(error)
    return text.splitlines()[0] if text else type(error).__name__
