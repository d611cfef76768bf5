"""A BuildKit cache: fetch and parse it (registry or OCI layout), reconstruct its stages, report, compare, size, copy."""

import typing

import inspector._lazy as _lazy

if typing.TYPE_CHECKING:
    from inspector.cache.analysis import BaseImage, CacheGraph, Stage, Step, analyze
    from inspector.cache.config import CacheConfig, parse_cache_config
    from inspector.cache.copy import CopyPlan, execute_copy, plan_copy
    from inspector.cache.diff import CacheDiff, diff_caches
    from inspector.cache.du import RepositoryUsage, disk_usage
    from inspector.cache.fetch import CacheDocuments, Form, load_cache
    from inspector.cache.report import CacheReport, inspect_cache, report_to_json
    from inspector.cache.source import CacheSource, LayoutSource, RegistrySource, parse_source

_EXPORTS = {
    "BaseImage": "inspector.cache.analysis",
    "CacheGraph": "inspector.cache.analysis",
    "Stage": "inspector.cache.analysis",
    "Step": "inspector.cache.analysis",
    "analyze": "inspector.cache.analysis",
    "CacheConfig": "inspector.cache.config",
    "parse_cache_config": "inspector.cache.config",
    "CopyPlan": "inspector.cache.copy",
    "execute_copy": "inspector.cache.copy",
    "plan_copy": "inspector.cache.copy",
    "CacheDiff": "inspector.cache.diff",
    "diff_caches": "inspector.cache.diff",
    "RepositoryUsage": "inspector.cache.du",
    "disk_usage": "inspector.cache.du",
    "CacheDocuments": "inspector.cache.fetch",
    "Form": "inspector.cache.fetch",
    "load_cache": "inspector.cache.fetch",
    "CacheReport": "inspector.cache.report",
    "inspect_cache": "inspector.cache.report",
    "report_to_json": "inspector.cache.report",
    "CacheSource": "inspector.cache.source",
    "LayoutSource": "inspector.cache.source",
    "RegistrySource": "inspector.cache.source",
    "parse_source": "inspector.cache.source",
}

__all__ = sorted(_EXPORTS)
__getattr__ = _lazy.lazy_exports(__name__, _EXPORTS)
