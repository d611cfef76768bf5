"""cacheinspect: read, judge and clean up BuildKit registry build caches.

The public API is re-exported here lazily, so importing the package (and
starting the CLI) does not pay for httpx until a registry is actually used.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from ._version import __version__

if TYPE_CHECKING:
    from .analysis import BaseImage, CacheGraph, Stage, Step, analyze
    from .cache import CacheDocuments, load_cache
    from .cacheconfig import CacheConfig, parse_cache_config
    from .client import ClientOptions, RegistryClient
    from .credentials import Credentials, resolve_credentials
    from .diff import diff_caches
    from .digest import Digest
    from .du import disk_usage
    from .errors import CacheInspectError, ExitCode
    from .gc import collect_inventory, plan_repository
    from .models import Descriptor, ManifestDocument, parse_manifest
    from .probe import run_probe
    from .reference import Reference, Repository, parse_reference, parse_repository
    from .report import CacheReport, inspect_cache, report_to_json
    from .source import LayoutSource, RegistrySource, parse_source

_EXPORTS = {
    "BaseImage": "analysis",
    "CacheGraph": "analysis",
    "Stage": "analysis",
    "Step": "analysis",
    "analyze": "analysis",
    "CacheDocuments": "cache",
    "load_cache": "cache",
    "CacheConfig": "cacheconfig",
    "parse_cache_config": "cacheconfig",
    "ClientOptions": "client",
    "RegistryClient": "client",
    "Credentials": "credentials",
    "resolve_credentials": "credentials",
    "Digest": "digest",
    "diff_caches": "diff",
    "disk_usage": "du",
    "collect_inventory": "gc",
    "plan_repository": "gc",
    "run_probe": "probe",
    "CacheInspectError": "errors",
    "ExitCode": "errors",
    "Descriptor": "models",
    "ManifestDocument": "models",
    "parse_manifest": "models",
    "Reference": "reference",
    "Repository": "reference",
    "parse_reference": "reference",
    "parse_repository": "reference",
    "CacheReport": "report",
    "inspect_cache": "report",
    "report_to_json": "report",
    "LayoutSource": "source",
    "RegistrySource": "source",
    "parse_source": "source",
}

__all__ = ["__version__", *sorted(_EXPORTS)]


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'inspector' has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{module}", __name__), name)
    globals()[name] = value
    return value
