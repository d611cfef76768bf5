"""Amazon ECR's own API for gc: images with their push and pull times, batched deletes, registry tokens.

The distribution API cannot list untagged manifests, has no push time, and on ECR its tag delete is
undocumented (spec registries.md §3). ECR's API has all three; the calls used, as the AWS API reference
documents them (registries.md [E10] and the pages beside it)::

    DescribeImages          paginated (maxResults ≤ 1000, nextToken): imageDigest, imageTags (absent when
                            untagged), imagePushedAt, lastRecordedPullTime (refreshed at least every 24 h),
                            imageManifestMediaType; with imageIds: ImageNotFoundException when one is missing
    BatchDeleteImage        ≤ 100 imageIds per call; {imageTag} removes that tag (the image goes with its
                            last tag), {imageDigest} deletes the image and every tag on it; per-id
                            ``failures`` (failureCode ImageNotFound, ImageReferencedByManifestList, …)
    DescribeRepositories    imageTagMutability, imageScanningConfiguration.scanOnPush
    GetAuthorizationToken   base64 "AWS:<password>", valid 12 hours [E16]

boto3 is an optional extra (``cacheinspect[aws]``) and is imported here only, when an ``EcrClient`` is
made: the core never loads it. Credentials come from boto3's standard chain (environment, profile,
SSO, instance role); the endpoint can be overridden (``AWS_ENDPOINT_URL_ECR``, ``endpoint_url``).
Throttling (``ThrottlingException`` and the SDK's other throttling codes) is retried here with capped
jittered backoff, boto3's own retries being off so that one policy counts the attempts; when the
attempts run out it is ``RateLimited`` (exit 6). No secret ever reaches a message.
"""

from __future__ import annotations

import base64
import binascii
import os
import re
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from inspector.errors import (
    AuthError,
    CacheInspectError,
    Denied,
    InvalidContent,
    NotFound,
    RateLimited,
    RegistryError,
    ServerError,
    TransportError,
    Unauthorized,
    UsageError,
)
from inspector.oci.digest import Digest
from inspector.registry._http import RetryPolicy
from inspector.registry.credentials import Credentials

__all__ = [
    "BATCH_LIMIT",
    "INSTALL_HINT",
    "DeleteFailure",
    "EcrClient",
    "EcrImage",
    "EcrRepositorySettings",
    "ImageId",
    "parse_ecr_host",
]

#: BatchDeleteImage takes at most this many image ids per call (API reference, imageIds).
BATCH_LIMIT = 100
#: DescribeImages' largest page (API reference, maxResults).
PAGE_LIMIT = 1000
INSTALL_HINT = "install the AWS extra: pip install 'cacheinspect[aws]' (it brings boto3)"

_HOST = re.compile(r"^(?P<id>\d{12})\.dkr\.ecr(?:-fips)?\.(?P<region>[a-z0-9-]+)\.amazonaws\.com(?:\.cn)?$")
# botocore's retry handler treats these as throttling (botocore/data/_retry.json, "throttling").
_THROTTLING = frozenset(
    {
        "ThrottlingException",
        "Throttling",
        "ThrottledException",
        "RequestThrottledException",
        "TooManyRequestsException",
        "RequestLimitExceeded",
        "ProvisionedThroughputExceededException",
    }
)
_SERVER = frozenset({"ServerException", "InternalFailure", "ServiceUnavailable"})
_DENIED = frozenset({"AccessDeniedException", "AccessDenied"})
_UNAUTHORIZED = frozenset(
    {"UnrecognizedClientException", "InvalidSignatureException", "ExpiredTokenException", "ExpiredToken"}
)
_NOT_FOUND = frozenset({"RepositoryNotFoundException", "ImageNotFoundException", "RegistryNotFoundException"})


def parse_ecr_host(host: str) -> tuple[str, str] | None:
    """``(registry id, region)`` of ``<id>.dkr.ecr.<region>.amazonaws.com``, else None."""
    match = _HOST.match(host.split(":", 1)[0].lower())
    return (match["id"], match["region"]) if match else None


@dataclass(frozen=True, slots=True)
class ImageId:
    """One BatchDeleteImage id: a tag (untag) or a digest (the image and all its tags)."""

    digest: Digest | None = None
    tag: str | None = None

    def to_api(self) -> dict[str, str]:
        if (self.digest is None) == (self.tag is None):
            raise ValueError("an ECR image id is a tag or a digest")
        return {"imageTag": self.tag} if self.tag is not None else {"imageDigest": str(self.digest)}

    def __str__(self) -> str:
        return f"tag {self.tag}" if self.tag is not None else f"digest {self.digest}"


@dataclass(frozen=True, slots=True)
class EcrImage:
    """One image as DescribeImages lists it."""

    digest: Digest
    tags: tuple[str, ...]
    pushed_at: datetime | None
    last_pulled: datetime | None
    media_type: str | None
    size: int | None


@dataclass(frozen=True, slots=True)
class DeleteFailure:
    """A per-id failure of BatchDeleteImage, as ECR reported it."""

    image: ImageId
    code: str
    reason: str


@dataclass(frozen=True, slots=True)
class EcrRepositorySettings:
    name: str
    tag_mutability: str
    scan_on_push: bool


def _load_boto3() -> Any:
    try:
        import boto3
    except ImportError:
        raise UsageError("the ECR backend needs boto3, which is not installed", hint=INSTALL_HINT) from None
    return boto3


class EcrClient:
    """ECR API calls for one registry id and region; thread-safe as boto3 clients are."""

    def __init__(
        self,
        registry_id: str,
        *,
        region: str | None = None,
        endpoint_url: str | None = None,
        client: Any = None,
        attempts: int = 6,
        backoff_base: float = 0.5,
        backoff_cap: float = 20.0,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if not re.fullmatch(r"\d{12}", registry_id):
            raise UsageError(f"ECR registry id {registry_id!r}: expected the 12-digit AWS account id")
        self.registry_id = registry_id
        # botocore reads AWS_DEFAULT_REGION; AWS_REGION is what the AWS CLI v2 and the other SDKs read.
        region = region or os.environ.get("AWS_REGION") or None
        self.region = region
        self._attempts = max(1, attempts)
        self._retry_policy = RetryPolicy(self._attempts - 1, backoff_base, backoff_cap)
        self._sleep = sleep
        if client is None:
            boto3 = _load_boto3()
            from botocore.config import Config

            config = Config(retries={"total_max_attempts": 1, "mode": "standard"})
            try:
                client = boto3.session.Session().client(
                    "ecr", region_name=region, endpoint_url=endpoint_url, config=config
                )
            except Exception as exc:  # botocore.exceptions.NoRegionError and friends
                raise UsageError(
                    f"cannot make an ECR client: {exc}",
                    hint="give --aws-region or set AWS_REGION (an ECR host names its region itself)",
                ) from None
        self._client = client

    # -- reads ---------------------------------------------------------------------------------------

    def repository(self, name: str) -> EcrRepositorySettings:
        answer = self._call("DescribeRepositories", repositoryNames=[name])
        repos = answer.get("repositories") or []
        if not repos:
            raise InvalidContent(f"ECR DescribeRepositories named no repository {name!r}")
        repo = repos[0]
        scanning = repo.get("imageScanningConfiguration") or {}
        return EcrRepositorySettings(
            name, str(repo.get("imageTagMutability", "MUTABLE")), bool(scanning.get("scanOnPush", False))
        )

    def iter_repository_names(self, *, page_size: int = PAGE_LIMIT) -> Iterator[str]:
        """Every repository of the registry, page by page (``DescribeRepositories``, ``nextToken``;
        ``maxResults`` 1..1000)."""
        token: str | None = None
        seen: set[str] = set()
        while True:
            request: dict[str, Any] = {"maxResults": page_size}
            if token is not None:
                request["nextToken"] = token
            answer = self._call("DescribeRepositories", **request)
            for repo in answer.get("repositories") or []:
                yield str(repo.get("repositoryName", ""))
            token = answer.get("nextToken")
            if not token:
                return
            if token in seen:
                raise InvalidContent("ECR DescribeRepositories repeated a nextToken: stopping")
            seen.add(token)

    def iter_images(self, name: str) -> Iterator[EcrImage]:
        """Every image of the repository, tagged or not, page by page (``nextToken``)."""
        token: str | None = None
        seen: set[str] = set()
        while True:
            request: dict[str, Any] = {"repositoryName": name, "maxResults": PAGE_LIMIT}
            if token is not None:
                request["nextToken"] = token
            answer = self._call("DescribeImages", **request)
            for detail in answer.get("imageDetails") or []:
                yield _image(detail)
            token = answer.get("nextToken")
            if not token:
                return
            if token in seen:
                raise InvalidContent(f"ECR DescribeImages of {name} repeated a nextToken: stopping")
            seen.add(token)

    def images(self, name: str) -> list[EcrImage]:
        return list(self.iter_images(name))

    def image(self, name: str, digest: Digest) -> EcrImage | None:
        """The image ``digest`` as ECR lists it now, or None when it has no such image."""
        try:
            answer = self._call(
                "DescribeImages", repositoryName=name, imageIds=[{"imageDigest": str(digest)}]
            )
        except NotFound as exc:
            if "ImageNotFound" in exc.codes:
                return None
            raise
        details = [_image(d) for d in answer.get("imageDetails") or []]
        return next((i for i in details if i.digest == digest), None)

    # -- writes --------------------------------------------------------------------------------------

    def batch_delete(self, name: str, ids: Sequence[ImageId]) -> tuple[list[ImageId], list[DeleteFailure]]:
        """BatchDeleteImage in calls of at most 100 ids: the ids ECR deleted, and the per-id failures."""
        deleted: list[ImageId] = []
        failures: list[DeleteFailure] = []
        for start in range(0, len(ids), BATCH_LIMIT):
            chunk = ids[start : start + BATCH_LIMIT]
            answer = self._call("BatchDeleteImage", repositoryName=name, imageIds=[i.to_api() for i in chunk])
            for raw in answer.get("imageIds") or []:
                deleted.append(_match(chunk, raw))
            for raw in answer.get("failures") or []:
                failures.append(
                    DeleteFailure(
                        _match(chunk, raw.get("imageId") or {}),
                        str(raw.get("failureCode", "")),
                        str(raw.get("failureReason", "")),
                    )
                )
        return deleted, failures

    # -- auth ----------------------------------------------------------------------------------------

    def registry_credentials(self) -> Credentials:
        """GetAuthorizationToken: Basic credentials (user ``AWS``) for the registry, valid 12 hours."""
        answer = self._call("GetAuthorizationToken", registryIds=[self.registry_id])
        data = answer.get("authorizationData") or []
        if not data:
            raise AuthError("ECR GetAuthorizationToken returned no authorization data")
        try:
            user, sep, password = (
                base64.b64decode(str(data[0].get("authorizationToken", ""))).decode().partition(":")
            )
        except (binascii.Error, UnicodeDecodeError):
            user, sep, password = "", "", ""
        if not sep or not user or not password:
            raise AuthError("ECR GetAuthorizationToken returned a token that is not base64 'USER:PASSWORD'")
        return Credentials(
            username=user, password=password, source="ECR GetAuthorizationToken (AWS credentials)"
        )

    # -- transport -----------------------------------------------------------------------------------

    def _call(self, operation: str, **request: Any) -> dict[str, Any]:
        """One API call; throttling and server errors retried with capped jittered backoff."""
        from botocore.exceptions import BotoCoreError, ClientError, NoCredentialsError, ParamValidationError

        method = getattr(self._client, _snake(operation))
        for attempt in range(1, self._attempts + 1):
            try:
                answer: dict[str, Any] = (
                    method(registryId=self.registry_id, **request)
                    if operation != ("GetAuthorizationToken")
                    else method(**request)
                )
                return answer
            except ClientError as exc:
                error = _client_error(operation, exc)
                if error.temporary and attempt < self._attempts:
                    self._sleep(self._retry_policy.backoff(attempt - 1))
                    continue
                raise error from None
            except NoCredentialsError:
                raise AuthError(
                    f"ECR {operation}: no AWS credentials found",
                    hint="set AWS_PROFILE, or AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or use an instance role",
                ) from None
            except ParamValidationError as exc:  # botocore's model refused the request: never retried
                raise UsageError(f"ECR {operation}: {' '.join(str(exc).split())}") from None
            except BotoCoreError as exc:  # connection errors, timeouts, bad endpoint
                if attempt < self._attempts:
                    self._sleep(self._retry_policy.backoff(attempt - 1))
                    continue
                raise TransportError(f"ECR {operation}: {type(exc).__name__}: {exc}") from None
        raise AssertionError("unreachable")


def _snake(operation: str) -> str:
    return re.sub(r"(?<!^)(?=[A-Z])", "_", operation).lower()


def _client_error(operation: str, exc: Any) -> RegistryError:
    """A botocore ``ClientError`` as the project's error classes (exit codes) with ECR's code and text."""
    error = exc.response.get("Error", {})
    code = str(error.get("Code", "Unknown"))
    text = str(error.get("Message", "")).splitlines()[0][:300] if error.get("Message") else ""
    status = int(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode") or 400)
    message = f"ECR {operation}: {code}" + (f": {text}" if text else "")
    kind: type[RegistryError]
    if code in _THROTTLING:
        kind = RateLimited
    elif code in _SERVER or status >= 500:
        kind = ServerError
    elif code in _DENIED:
        kind = Denied
    elif code in _UNAUTHORIZED:
        kind = Unauthorized
    elif code in _NOT_FOUND:
        kind = NotFound
    else:
        kind = RegistryError
    from inspector.errors import OCIError

    return kind(
        message,
        status=status,
        method="POST",
        url=f"ecr:{operation}",
        errors=(OCIError(code.removesuffix("Exception"), text),),
    )


def _image(detail: dict[str, Any]) -> EcrImage:
    try:
        digest = Digest(str(detail.get("imageDigest", "")))
    except CacheInspectError:
        raise InvalidContent(
            f"ECR DescribeImages listed an image with digest {detail.get('imageDigest')!r}"
        ) from None
    size = detail.get("imageSizeInBytes")
    return EcrImage(
        digest,
        tuple(str(t) for t in detail.get("imageTags") or ()),
        _utc(detail.get("imagePushedAt")),
        _utc(detail.get("lastRecordedPullTime")),
        detail.get("imageManifestMediaType"),
        int(size) if isinstance(size, int) else None,
    )


def _utc(value: Any) -> datetime | None:
    return value.astimezone(UTC) if isinstance(value, datetime) else None


def _match(chunk: Sequence[ImageId], raw: dict[str, Any]) -> ImageId:
    """The requested id an answer entry stands for (ECR echoes the digest and tag it resolved)."""
    tag, digest = raw.get("imageTag"), raw.get("imageDigest")
    for wanted in chunk:
        if wanted.tag is not None and wanted.tag == tag:
            return wanted
    for wanted in chunk:
        if wanted.tag is None and wanted.digest is not None and str(wanted.digest) == digest:
            return wanted
    return (
        ImageId(digest=Digest(digest)) if isinstance(digest, str) and tag is None else ImageId(tag=str(tag))
    )
