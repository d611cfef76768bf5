"""cacheinspect: read, judge and clean up BuildKit registry build caches.

The public API is re-exported here lazily, so importing the package (and
starting the CLI) does not pay for httpx until a registry is actually used.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from . import _lazy
from ._version import __version__

if TYPE_CHECKING:
    from .cache.analysis import BaseImage, CacheGraph, Stage, Step, analyze
    from .cache.config import CacheConfig, parse_cache_config
    from .cache.diff import diff_caches
    from .cache.du import disk_usage
    from .cache.fetch import CacheDocuments, load_cache
    from .cache.report import CacheReport, inspect_cache, report_to_json
    from .cache.source import LayoutSource, RegistrySource, parse_source
    from .errors import CacheInspectError, ExitCode
    from .gc.inventory import collect_inventory
    from .gc.plan import plan_repository
    from .oci.digest import Digest
    from .oci.models import Descriptor, ManifestDocument, parse_manifest
    from .oci.reference import Reference, Repository, parse_reference, parse_repository
    from .probe.run import run_probe
    from .registry.client import ClientOptions, RegistryClient
    from .registry.credentials import Credentials, resolve_credentials

_EXPORTS = {
    "BaseImage": "cache.analysis",
    "CacheGraph": "cache.analysis",
    "Stage": "cache.analysis",
    "Step": "cache.analysis",
    "analyze": "cache.analysis",
    "CacheDocuments": "cache.fetch",
    "load_cache": "cache.fetch",
    "CacheConfig": "cache.config",
    "parse_cache_config": "cache.config",
    "ClientOptions": "registry.client",
    "RegistryClient": "registry.client",
    "Credentials": "registry.credentials",
    "resolve_credentials": "registry.credentials",
    "Digest": "oci.digest",
    "diff_caches": "cache.diff",
    "disk_usage": "cache.du",
    "collect_inventory": "gc.inventory",
    "plan_repository": "gc.plan",
    "run_probe": "probe.run",
    "CacheInspectError": "errors",
    "ExitCode": "errors",
    "Descriptor": "oci.models",
    "ManifestDocument": "oci.models",
    "parse_manifest": "oci.models",
    "Reference": "oci.reference",
    "Repository": "oci.reference",
    "parse_reference": "oci.reference",
    "parse_repository": "oci.reference",
    "CacheReport": "cache.report",
    "inspect_cache": "cache.report",
    "report_to_json": "cache.report",
    "LayoutSource": "cache.source",
    "RegistrySource": "cache.source",
    "parse_source": "cache.source",
}

__all__ = ["__version__", *sorted(_EXPORTS)]


__getattr__ = _lazy.lazy_exports(
    __name__, {name: f"{__name__}.{module}" for name, module in _EXPORTS.items()}
)
