"""ECR's API for tests: moto in server mode on a free loopback port, the real boto3 client against it.

moto stands in for the ECR API only (DescribeImages, BatchDeleteImage, DescribeRepositories,
GetAuthorizationToken); the registry API is always a real docker-registry holding the same manifests.
moto computes an image digest from the layer digests unless ``PutImage`` is given ``imageDigest``:
``EcrMirror.put`` always passes the registry's digest, so both sides name each manifest alike.

What ECR sets by itself and no API call can set (``imagePushedAt``, ``lastRecordedPullTime``) is set
on moto's in-process model (``set_times``), the server running in this process's threads.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import Any

ACCOUNT = "123456789012"  # moto's default account
REGION = "eu-west-1"
FAKE_CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",  # moto accepts any; nothing real is ever used
    "AWS_REGION": REGION,
    "AWS_EC2_METADATA_DISABLED": "true",  # no instance-metadata lookups off loopback when keys are absent
}


@dataclass
class EcrServer:
    endpoint: str

    def env(self) -> dict[str, str]:
        """What the CLI needs to reach this ECR API through boto3's standard configuration."""
        return {**FAKE_CREDENTIALS, "AWS_ENDPOINT_URL_ECR": self.endpoint}

    def client(self) -> Any:
        import boto3

        return boto3.client(
            "ecr",
            endpoint_url=self.endpoint,
            region_name=REGION,
            aws_access_key_id="testing",
            aws_secret_access_key="testing",
        )


@contextmanager
def ecr_server() -> Iterator[EcrServer]:
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    try:
        yield EcrServer(f"http://{host}:{port}")
    finally:
        server.stop()


class EcrMirror:
    """An ECR repository in moto that mirrors what a test pushes to the registry."""

    def __init__(self, server: EcrServer, name: str) -> None:
        self.client = server.client()
        self.name = name
        self.client.create_repository(repositoryName=name)

    def put(self, raw: bytes, media_type: str, tag: str | None = None) -> str:
        digest = "sha256:" + hashlib.sha256(raw).hexdigest()
        request: dict[str, Any] = {
            "repositoryName": self.name,
            "imageManifest": raw.decode(),
            "imageManifestMediaType": media_type,
            "imageDigest": digest,
        }
        if tag is not None:
            request["imageTag"] = tag
        answer = self.client.put_image(**request)
        assert answer["image"]["imageId"]["imageDigest"] == digest
        return digest

    def tags(self) -> dict[str, tuple[str, ...]]:
        """Digest -> tags, as DescribeImages lists them now."""
        images = self.client.describe_images(repositoryName=self.name)["imageDetails"]
        return {i["imageDigest"]: tuple(sorted(i.get("imageTags", ()))) for i in images}

    def set_times(
        self, digest: str, *, pushed: datetime | None = None, pulled: datetime | None = None
    ) -> None:
        from moto.backends import get_backend

        backend = get_backend("ecr")[ACCOUNT][REGION]
        image = next(i for i in backend.repositories[self.name].images if i.get_image_digest() == digest)
        if pushed is not None:
            image.image_pushed_at = int(pushed.timestamp())
        if pulled is not None:
            image.last_recorded_pull_time = pulled  # type: ignore[attr-defined]  # moto serialises it
