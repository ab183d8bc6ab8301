"""Object-storage targets (``s3://bucket/prefix/``): listed, never downloaded, on a timer.

There are no events for a bucket, so each remote target has a worker thread that
lists it every ``poll_interval`` with boto3's paginator (``LastModified`` and
``Size`` from the listing; memory grows only with the index). Calls have connect
and read timeouts and botocore's bounded retries with jittered backoff. On an
error the target is reported down and its last good values are kept, flagged stale.
Credentials come from the standard AWS chain (environment, shared files, profile)
and never appear in the configuration or the logs.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any, BinaryIO

from exporter.config import S3Config
from exporter.index import Clock, FileMap
from exporter.loop import Loop
from exporter.sources.apply import apply_listing
from exporter.sources.listing import Listing, TargetUnavailable

log = logging.getLogger(__name__)


def split_url(url: str) -> tuple[str, str]:
    """``s3://bucket/some/prefix`` -> (bucket, ``some/prefix/``)."""
    rest = url.removeprefix("s3://")
    bucket, _, prefix = rest.partition("/")
    if prefix and not prefix.endswith("/"):
        prefix += "/"
    return bucket, prefix


def make_client(options: S3Config) -> Any:
    try:
        import boto3
        from botocore.config import Config as BotoConfig
    except ImportError:
        raise TargetUnavailable(
            "s3:// targets need boto3: pip install 'backup-monitor[s3]'"
        ) from None
    session = boto3.session.Session(profile_name=options.profile, region_name=options.region)
    config = BotoConfig(
        connect_timeout=options.timeout,
        read_timeout=options.timeout,
        retries={"max_attempts": 3, "mode": "standard"},  # bounded, jittered backoff
    )
    return session.client("s3", endpoint_url=options.endpoint_url, config=config)


def describe_error(exc: Exception) -> str:
    """A short reason without secrets (botocore's messages carry none; keep it so)."""
    response = getattr(exc, "response", None)
    if isinstance(response, dict) and "Error" in response:
        error = response["Error"]
        return f"{error.get('Code', 'error')}: {error.get('Message', '')}".strip()[:200]
    return f"{type(exc).__name__}: {exc}"[:200]


def list_target(client: Any, url: str, wanted: Callable[[str], bool], recursive: bool) -> FileMap:
    """Every matching object below the prefix as {relative key: (size, LastModified)}."""
    from botocore.exceptions import BotoCoreError, ClientError

    bucket, prefix = split_url(url)
    files: FileMap = {}
    params: dict[str, Any] = {"Bucket": bucket, "Prefix": prefix}
    if not recursive:
        params["Delimiter"] = "/"  # direct children only, as for a directory
    try:
        for page in client.get_paginator("list_objects_v2").paginate(**params):
            for item in page.get("Contents", ()):
                rel = item["Key"][len(prefix) :]
                if rel and not rel.endswith("/") and wanted(rel):
                    files[rel] = (int(item["Size"]), item["LastModified"].timestamp())
    except (BotoCoreError, ClientError) as exc:
        raise TargetUnavailable(describe_error(exc)) from None
    return files


def download(cfg: Any, name: str, destination: BinaryIO, limit: int) -> None:
    """Stream one object into an open file, refusing more than ``limit`` bytes."""
    from botocore.exceptions import BotoCoreError, ClientError

    bucket, prefix = split_url(cfg.path)
    client = make_client(cfg.storage)
    try:
        body = client.get_object(Bucket=bucket, Key=prefix + name)["Body"]
        written = 0
        for chunk in iter(lambda: body.read(1024 * 1024), b""):
            written += len(chunk)
            if written > limit:
                raise TargetUnavailable(f"object larger than verify.max_download ({limit} bytes)")
            destination.write(chunk)
        destination.flush()
    except (BotoCoreError, ClientError) as exc:
        raise TargetUnavailable(describe_error(exc)) from None


class RemotePoller(Loop):
    """One thread per remote target: list, apply to the index, sleep, repeat."""

    def __init__(self, target: Any, clock: Clock = time.time) -> None:
        super().__init__(f"s3-{target.name}", target.config.storage.list_interval)
        self.target = target
        self.clock = clock
        self._client: Any = None

    def poll(self) -> None:
        """One listing, applied to the index (or the target marked unreachable)."""
        cfg = self.target.config

        def listing() -> Listing:
            if self._client is None:
                self._client = make_client(cfg.storage)
            wanted = self.target.matcher.wants_file
            return Listing(list_target(self._client, cfg.path, wanted, cfg.recursive), {}, [])

        apply_listing(self.target, self.clock, listing, keep_stale=True)

    def round(self) -> None:
        self.poll()

    def request(self) -> None:
        self.wake()

    def stop(self, timeout: float = 1.0) -> None:
        super().stop(timeout)
