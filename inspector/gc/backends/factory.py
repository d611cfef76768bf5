"""Which backend deletes in a repository: chosen by host or by ``--backend``, beside no backend, so the
backends never import one another (each vendor backend is imported only when chosen)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal

from inspector.errors import UsageError
from inspector.gc.backends.base import DeleteBackend, untagged_hint
from inspector.gc.backends.oci import OciBackend
from inspector.gc.policy import BackendKind
from inspector.oci.reference import Repository
from inspector.registry.client import RegistryClient
from inspector.registry.google import is_google_host

if TYPE_CHECKING:
    from inspector.registry.ecr import EcrClient
    from inspector.registry.github_packages import GhcrClient

__all__ = ["backend_kind", "check_untagged", "select_backend"]


def backend_kind(
    repository: Repository, requested: BackendKind = "auto"
) -> Literal["oci", "ghcr", "ecr", "google"]:
    """``auto``: GHCR's REST backend for ``ghcr.io`` (it refuses OCI deletes with 405), ECR's API for
    ``*.dkr.ecr.*.amazonaws.com``, Google's for ``gcr.io``, ``*.gcr.io`` and ``*-docker.pkg.dev``, else OCI."""
    if requested == "auto":
        from inspector.registry.ecr import parse_ecr_host

        if repository.registry.lower() == "ghcr.io":
            return "ghcr"
        if is_google_host(repository.registry):
            return "google"
        return "ecr" if parse_ecr_host(repository.registry) is not None else "oci"
    return requested


def check_untagged(repository: Repository, requested: BackendKind = "auto") -> None:
    """Refuse ``--untagged`` where the backend cannot list untagged manifests (all but GHCR, ECR, Google)."""
    if backend_kind(repository, requested) in ("ghcr", "ecr", "google"):
        return
    raise UsageError(
        f"{repository}: --untagged needs an API that lists untagged manifests, and the registry API "
        "cannot (only the GHCR, ECR and Google backends can: their vendor APIs list untagged images)",
        hint=(
            "on ghcr.io use the GHCR backend (--backend auto or ghcr)"
            if repository.registry.lower() == "ghcr.io"
            else untagged_hint(repository.registry, ghcr=False)
        ),
    )


def select_backend(
    client: RegistryClient,
    repository: Repository,
    *,
    kind: BackendKind = "auto",
    github: GhcrClient | None = None,
    package: str | None = None,
    delete_empty_packages: bool = False,
    ecr: EcrClient | None = None,
) -> DeleteBackend:
    """The backend for a repository (``backend_kind``). The GHCR backend needs a ``GhcrClient``;
    ``package`` (``OWNER/NAME``) overrides the package, which is otherwise the repository's path;
    ``delete_empty_packages`` lets it delete a package whose last version would go.
    The ECR backend needs an ``EcrClient``."""
    chosen = backend_kind(repository, kind)
    if chosen != "ghcr" and package is not None:
        raise UsageError(
            f"{repository}: a package (OWNER/NAME) is only used by the GHCR backend (--backend ghcr)"
        )
    if chosen == "oci":
        return OciBackend(client, repository)
    if chosen == "google":
        from inspector.gc.backends.google import GoogleBackend

        return GoogleBackend(client, repository)
    if chosen == "ecr":
        if ecr is None:
            raise UsageError(f"{repository}: the ECR backend needs an ECR API client")
        from inspector.gc.backends.ecr import EcrBackend

        return EcrBackend(client, repository, ecr)
    if github is None:
        raise UsageError(f"{repository}: the GHCR backend needs a GitHub API client")
    from inspector.gc.backends.ghcr import GhcrBackend

    return GhcrBackend(
        client, repository, github, package=package, delete_empty_packages=delete_empty_packages
    )
