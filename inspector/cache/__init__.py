"""A BuildKit cache: fetch and parse it (registry or OCI layout), reconstruct its stages, report, compare, size, copy."""

from inspector.cache.analysis import BaseImage, CacheGraph, Stage, Step, analyze
from inspector.cache.config import CacheConfig, parse_cache_config
from inspector.cache.copy import CopyPlan, execute_copy, plan_copy
from inspector.cache.diff import CacheDiff, diff_caches
from inspector.cache.du import RepositoryUsage, disk_usage
from inspector.cache.fetch import CacheDocuments, Form, load_cache
from inspector.cache.report import CacheReport, inspect_cache, report_to_json
from inspector.cache.source import CacheSource, LayoutSource, RegistrySource, parse_source

__all__ = [
    "BaseImage",
    "CacheConfig",
    "CacheDiff",
    "CacheDocuments",
    "CacheGraph",
    "CacheReport",
    "CacheSource",
    "CopyPlan",
    "Form",
    "LayoutSource",
    "RegistrySource",
    "RepositoryUsage",
    "Stage",
    "Step",
    "analyze",
    "diff_caches",
    "disk_usage",
    "execute_copy",
    "inspect_cache",
    "load_cache",
    "parse_cache_config",
    "parse_source",
    "plan_copy",
    "report_to_json",
]
