"""The OCI distribution API and its vendors' REST APIs: HTTP, auth, credentials, transfers with their caps."""

import typing

import inspector._lazy as _lazy

if typing.TYPE_CHECKING:
    from inspector.registry.auth import RegistryAuth
    from inspector.registry.client import BlobStat, ClientOptions, RegistryClient
    from inspector.registry.credentials import Credentials, resolve_credentials
    from inspector.registry.ecr import EcrClient
    from inspector.registry.github_packages import GhcrClient, GhcrOptions

_EXPORTS = {
    "RegistryAuth": "inspector.registry.auth",
    "BlobStat": "inspector.registry.client",
    "ClientOptions": "inspector.registry.client",
    "RegistryClient": "inspector.registry.client",
    "Credentials": "inspector.registry.credentials",
    "resolve_credentials": "inspector.registry.credentials",
    "EcrClient": "inspector.registry.ecr",
    "GhcrClient": "inspector.registry.github_packages",
    "GhcrOptions": "inspector.registry.github_packages",
}

__all__ = sorted(_EXPORTS)
__getattr__ = _lazy.lazy_exports(__name__, _EXPORTS)
