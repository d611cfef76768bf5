"""How a registry deletes: the ``DeleteBackend`` protocol and its OCI distribution API implementation.

The executor (``gc_execute``) only ever asks a backend three things::

    capabilities()           what this registry can do, detected once per repository and run
    untag(tag, digest)       remove one tag and nothing else (the manifest stays)
    delete_manifest(digest)  delete one manifest; on most registries every tag on it goes too

``OciBackend`` (``backends/oci.py``) speaks the distribution API. Its abilities are probed with
requests that cannot change anything: ``DELETE`` of a manifest digest nobody
has (404 = deletes allowed; 405 ``UNSUPPORTED`` = delete disabled, as on
distribution without ``storage.delete.enabled``, or on GHCR) and ``DELETE`` of a
tag that does not exist (404 = OCI tag deletion; distribution 2.8 answers 400
``DIGEST_INVALID``, Harbor 400 ``UNSUPPORTED``). Without tag deletion a tag is
removed as regclient's ``TagDelete`` does it (``PlaceholderPusher``, which any
backend can reuse): the tag is re-pointed to a unique tiny placeholder
manifest, and the placeholder is deleted by digest.
The placeholder's format (``gc/placeholder.py``) names the tag and the manifest
it replaced, so a run that is killed between the two steps is finished by the next one.

Google (GCR, Artifact Registry) refuses to delete a digest while a tag points
at it (``GOOGLE_MANIFEST_DANGLING_TAG``): there ``digest_delete_removes_tags`` is
false and the executor untags first. GHCR refuses registry-API deletes (405):
``gc_ghcr.GhcrBackend`` implements the same protocol on GitHub's Packages REST API
(deleting a package version deletes a digest with all its tags) and is chosen in
``select_backend`` (``backends/factory.py``) for ``ghcr.io``, or when asked for (``--backend ghcr``).
"""

from __future__ import annotations

import secrets
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Literal, Protocol, runtime_checkable

from inspector.errors import (
    CacheInspectError,
    ExitCode,
    RegistryError,
)
from inspector.gc.placeholder import EMPTY_CONFIG, PlaceholderInfo, build_placeholder
from inspector.gc.policy import BackendKind
from inspector.oci import gojson, mediatypes
from inspector.oci.digest import Digest, sha256_digest
from inspector.oci.reference import Repository
from inspector.registry.client import RegistryClient
from inspector.registry.google import is_google_host

__all__ = [
    "BACKEND_KINDS",
    "BackendKind",
    "BatchDeleteBackend",
    "Capabilities",
    "DeleteBackend",
    "DeleteDenied",
    "ManifestKept",
    "PlaceholderPusher",
    "PushedBlob",
    "UntagIncomplete",
    "Untagged",
    "timestamp",
    "untagged_hint",
]

BACKEND_KINDS: tuple[BackendKind, ...] = ("auto", "oci", "ghcr", "ecr", "google")


@dataclass(frozen=True, slots=True)
class Capabilities:
    """What a registry can do for gc, and how that was found out (``detail``)."""

    backend: str
    can_delete: bool
    tag_delete: Literal["native", "placeholder"]
    digest_delete_removes_tags: bool
    detail: str


@dataclass(frozen=True, slots=True)
class PushedBlob:
    digest: Digest
    size: int


@dataclass(frozen=True, slots=True)
class Untagged:
    """One tag removed: how, the placeholder pushed for it if any, and blobs uploaded on the way."""

    tag: str
    method: Literal["tag-delete", "placeholder"]
    already_gone: bool = False
    placeholder: PlaceholderInfo | None = None
    pushed_blobs: tuple[PushedBlob, ...] = ()


class UntagIncomplete(CacheInspectError):
    """The tag now points at a placeholder that could not be deleted; the next run finishes it."""

    exit_code = ExitCode.PARTIAL

    def __init__(self, message: str, placeholder: PlaceholderInfo, pushed: tuple[PushedBlob, ...]) -> None:
        super().__init__(message)
        self.placeholder = placeholder
        self.pushed = pushed


class DeleteDenied(CacheInspectError):
    """A backend's first deletion showed that its credentials cannot delete here at all (exit 4).

    Raised only while the backend has deleted nothing yet (the permission is per repository or
    package, so every further deletion would be refused too); the executor stops the run and
    re-raises it. ``placeholder`` is set when the refusal came while removing a tag: that tag then
    points at a placeholder, which the next run (with a token that can delete) finishes.
    """

    exit_code = ExitCode.AUTH

    def __init__(
        self, message: str, *, hint: str | None = None, placeholder: PlaceholderInfo | None = None
    ) -> None:
        super().__init__(message, hint=hint)
        self.placeholder = placeholder


class ManifestKept(CacheInspectError):
    """The backend found, just before deleting, why the manifest must stay; the executor reports it ``kept``.

    GHCR: the package version gained a tag since it was listed, or it is the package's last version.
    """


class DeleteBackend(Protocol):
    """The mutations gc needs; reads (tag list, HEAD, GET) always go through the distribution API."""

    def capabilities(self) -> Capabilities:
        """Detect once (cached); raises ``Unauthorized``/``Denied`` when the credentials cannot delete."""
        ...

    def untag(self, tag: str, digest: Digest) -> Untagged:
        """Remove ``tag`` (now at ``digest``) and no other tag; the manifest itself stays."""
        ...

    def delete_manifest(self, digest: Digest) -> bool:
        """Delete the manifest (on most registries with every tag on it); False when it was already gone.

        Raises ``ManifestKept`` when a last look shows the manifest must stay.
        """
        ...


@runtime_checkable
class BatchDeleteBackend(DeleteBackend, Protocol):
    """A backend that deletes up to ``batch_limit`` manifests in one request (ECR's BatchDeleteImage).

    The executor checks each manifest as for ``delete_manifest`` and hands over only those nothing
    holds; the backend takes its own last look at each, as ``delete_manifest`` does.
    """

    @property
    def batch_limit(self) -> int: ...

    def delete_manifests(self, digests: Sequence[Digest]) -> dict[Digest, bool | CacheInspectError]:
        """Per digest: True deleted, False already gone, or the error that kept it (``ManifestKept``: must stay)."""
        ...


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def timestamp(when: datetime) -> gojson.Timestamp:
    """A vendor API's time as the ``Timestamp`` caches are aged by (whole seconds in its text)."""
    utc = when.astimezone(UTC)
    delta = utc - _EPOCH
    ns = (delta.days * 86_400 + delta.seconds) * 1_000_000_000 + delta.microseconds * 1000
    return gojson.Timestamp(ns, utc.strftime("%Y-%m-%dT%H:%M:%SZ"))


def untagged_hint(host: str, *, ghcr: bool | None = None) -> str:
    """How to reclaim the manifests cache exports left untagged, which the distribution API cannot list.

    ``ghcr``: the repository is served by the GHCR backend (default: the host is ghcr.io).
    """
    name = host.split(":", 1)[0].lower()
    if ghcr if ghcr is not None else name == "ghcr.io":
        return (
            "GHCR keeps overwritten cache manifests as untagged package versions; "
            "`gc --untagged` deletes those that are BuildKit caches (never image-index children or attestations)"
        )
    if is_google_host(host):
        return (
            "Google's tags/list lists untagged manifests: `gc --untagged` deletes those that are BuildKit "
            "caches (never image-index children or attestations); or a cleanup policy with tagState UNTAGGED"
        )
    if ".ecr." in name and name.endswith(".amazonaws.com"):
        return "untagged manifests stay until an ECR lifecycle rule with tagStatus 'untagged' expires them"
    return (
        "every cache export leaves the manifest it overwrote untagged, and the distribution API cannot list "
        "untagged manifests; on a CNCF distribution registry reclaim them with "
        "`registry garbage-collect --delete-untagged CONFIG` (server stopped or read-only)"
    )


class PlaceholderPusher:
    """regclient's way to remove one tag: re-point it to a unique placeholder, then delete the placeholder.

    Shared by every backend (GHCR too: pushing is the registry API there, deleting the REST API). The
    empty config blob is checked once and pushed if missing; a registry that refuses the placeholder
    manifest for a non-transient reason is not asked again in this run.
    """

    def __init__(
        self,
        client: RegistryClient,
        repository: Repository,
        *,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        nonce: Callable[[], str] = lambda: secrets.token_hex(16),
    ) -> None:
        self.client = client
        self.repository = repository
        self._clock = clock
        self._nonce = nonce
        self._config_present = False
        self._refused: str | None = None

    def untag(self, tag: str, digest: Digest, delete: Callable[[Digest], bool]) -> Untagged:
        """Re-point ``tag`` (now at ``digest``) to a placeholder and ``delete`` the placeholder by digest."""
        if self._refused is not None:
            raise CacheInspectError(self._refused)
        pushed: list[PushedBlob] = []
        if not self._config_present:
            if not self.client.head_blob(self.repository, sha256_digest(EMPTY_CONFIG)).exists:
                pushed.append(
                    PushedBlob(self.client.push_blob(self.repository, EMPTY_CONFIG), len(EMPTY_CONFIG))
                )
            self._config_present = True
        raw = build_placeholder(tag, digest, nonce=self._nonce(), created=self._clock())
        try:
            placeholder_digest = self.client.put_manifest(
                self.repository.tag(tag), raw, mediatypes.OCI_MANIFEST
            )
        except RegistryError as exc:
            if not exc.temporary:
                self._refused = f"cannot re-point tags to a placeholder: {exc.message}"
            raise
        placeholder = PlaceholderInfo(placeholder_digest, len(raw), tag, digest)
        try:
            deleted = delete(placeholder_digest)
        except CacheInspectError as exc:
            raise UntagIncomplete(
                f"{tag} now points at placeholder {placeholder_digest.short}, which could not be deleted "
                f"({exc.message}); the next run deletes it",
                placeholder,
                tuple(pushed),
            ) from None
        # 404: another run deleted the placeholder first (it then reports that deletion, not this one).
        return Untagged(
            tag, "placeholder", already_gone=not deleted, placeholder=placeholder, pushed_blobs=tuple(pushed)
        )
