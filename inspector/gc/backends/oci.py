"""The distribution API's own deletes: ``DELETE /v2/<name>/manifests/<digest|tag>``, with placeholders
where a registry cannot delete a tag (see ``base`` for how abilities are probed without changing anything)."""

from __future__ import annotations

import secrets
import threading
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Literal

from inspector.errors import Denied, NotFound, RegistryError, Unauthorized
from inspector.gc.backends.base import Capabilities, PlaceholderPusher, Untagged
from inspector.oci.digest import Digest, sha256_digest
from inspector.oci.reference import Repository
from inspector.registry.client import RegistryClient
from inspector.registry.google import is_google_host

__all__ = ["OciBackend"]


class OciBackend:
    """Deletes through ``DELETE /v2/<name>/manifests/…``; not thread-safe (the executor is sequential)."""

    def __init__(
        self,
        client: RegistryClient,
        repository: Repository,
        *,
        google: bool | None = None,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        nonce: Callable[[], str] = lambda: secrets.token_hex(16),
    ) -> None:
        self.client = client
        self.repository = repository
        self.google = is_google_host(repository.registry) if google is None else google
        self.placeholders = PlaceholderPusher(client, repository, clock=clock, nonce=nonce)
        self._capabilities: Capabilities | None = None
        self._lock = threading.Lock()

    def capabilities(self) -> Capabilities:
        with self._lock:
            if self._capabilities is None:
                self._capabilities = self._probe()
            return self._capabilities

    def _probe(self) -> Capabilities:
        probe = sha256_digest(f"cacheinspect gc probe {secrets.token_hex(16)}")
        name = "google" if self.google else "oci"
        try:
            self.client.delete_manifest(self.repository, probe)
        except NotFound:
            pass
        except (Unauthorized, Denied) as exc:
            exc.hint = (
                f"deleting needs credentials allowed to delete in {self.repository} (token scope 'delete')"
            )
            raise
        except RegistryError as exc:
            if exc.temporary:
                raise
            return Capabilities(
                name, False, "placeholder", True, f"the registry refuses deletes: {exc.message}"
            )
        try:
            self.client.delete_tag(self.repository.tag(f"cacheinspect-gc-probe-{secrets.token_hex(8)}"))
        except NotFound:
            tag_delete: Literal["native", "placeholder"] = "native"
            how = "DELETE of a missing tag answered 404: OCI tag deletion"
        except (Unauthorized, Denied):
            raise
        except RegistryError as exc:
            if exc.temporary:
                raise
            tag_delete = "placeholder"
            how = (
                f"no OCI tag deletion ({exc.status} {','.join(exc.codes) or 'no code'}): tags are re-pointed"
            )
        else:
            tag_delete, how = "native", "DELETE of a missing tag succeeded: OCI tag deletion"
        if self.google:
            how += "; digests are deleted only after their tags (GOOGLE_MANIFEST_DANGLING_TAG)"
        return Capabilities(name, True, tag_delete, not self.google, f"deletes allowed; {how}")

    def untag(self, tag: str, digest: Digest) -> Untagged:
        if self.capabilities().tag_delete == "native":
            try:
                self.client.delete_tag(self.repository.tag(tag))
            except NotFound:
                return Untagged(tag, "tag-delete", already_gone=True)
            return Untagged(tag, "tag-delete")
        return self.placeholders.untag(tag, digest, self.delete_manifest)

    def delete_manifest(self, digest: Digest) -> bool:
        try:
            self.client.delete_manifest(self.repository, digest)
        except NotFound:
            return False
        return True
