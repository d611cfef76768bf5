"""The OCI distribution API and its vendors' REST APIs: HTTP, auth, credentials, transfers with their caps."""

from inspector.registry.auth import RegistryAuth
from inspector.registry.client import BlobStat, ClientOptions, RegistryClient
from inspector.registry.credentials import Credentials, resolve_credentials
from inspector.registry.ecr import EcrClient
from inspector.registry.github_packages import GhcrClient, GhcrOptions

__all__ = [
    "BlobStat",
    "ClientOptions",
    "Credentials",
    "EcrClient",
    "GhcrClient",
    "GhcrOptions",
    "RegistryAuth",
    "RegistryClient",
    "resolve_credentials",
]
