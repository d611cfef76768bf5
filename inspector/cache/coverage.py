"""Which platforms a cache covers, as far as something proves it (pure, no I/O).

Nothing in a cache document names a platform (spec ``buildkit-cache.md`` §3.5: vertex names such as
``[linux/arm64 build 2/4]`` never reach the config; none of the real documents in ``realworld/`` carries
one). What proves a platform is an image base whose root records match the keys recomputed from a
resolved reference (``naming.bases.name_bases``): the manifest key hashes the index digest *with* the
platform (``pull.go`` mainManifestKey), so a match names the platform exactly. A ``FROM other-stage``
inherits the platform of the stage it grows from. Every other stage (``FROM scratch``, a base that was
not resolved) is "unknown": it may belong to any platform. A multi-platform build exports every
platform's chains in one config (``solver/llbsolver/export.go``), so one cache can cover several.

A stage built ``FROM --platform=$BUILDPLATFORM`` counts as its build platform: that is what its base
image's root keys say.

Platforms are compared and shown normalised as containerd's ``platforms.Normalize`` does
(``database.go`` normalizeArch: ``aarch64`` -> ``arm64``, ``arm64/v8`` -> ``arm64``, ``x86_64`` ->
``amd64``, ``armhf`` -> ``arm/v7``, ``arm`` -> ``arm/v7``), so an index entry ``linux/arm64/v8`` and
``--expect-platform linux/arm64`` are one platform.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

from inspector.cache.analysis import CacheGraph
from inspector.errors import UsageError
from inspector.oci.platform import normalize_platform, split_platform

__all__ = [
    "CoverageState",
    "ExpectedStatus",
    "PlatformCoverage",
    "StagePlatform",
    "coverage_to_json",
    "expected_status",
    "parse_expected_platforms",
    "platform_coverage",
]

CoverageState = Literal["known", "partial", "unknown"]
ExpectedStatus = Literal["covered", "absent", "unknown"]

# Go's known GOOS/GOARCH lists, as containerd's platforms/database.go has them (isKnownOS, isKnownArch).
_KNOWN_OS = frozenset(
    [
        "aix",
        "android",
        "darwin",
        "dragonfly",
        "freebsd",
        "hurd",
        "illumos",
        "ios",
        "js",
        "linux",
        "nacl",
        "netbsd",
        "openbsd",
        "plan9",
        "solaris",
        "windows",
        "zos",
    ]
)
_KNOWN_ARCH = frozenset(
    [
        "386",
        "amd64",
        "amd64p32",
        "arm",
        "armbe",
        "arm64",
        "arm64be",
        "ppc64",
        "ppc64le",
        "loong64",
        "mips",
        "mipsle",
        "mips64",
        "mips64le",
        "mips64p32",
        "mips64p32le",
        "ppc",
        "riscv",
        "riscv64",
        "s390",
        "s390x",
        "sparc",
        "sparc64",
        "wasm",
    ]
)
_PART = re.compile(r"[a-z0-9_.-]+")


def _parse_one(text: str) -> str:
    value = text.strip()
    parts = value.lower().split("/")
    if not value or len(parts) > 3 or not all(_PART.fullmatch(p) for p in parts):
        raise UsageError(f"--expect-platform {text!r}: expected os/arch[/variant], e.g. linux/arm64")
    if len(parts) == 1:
        arch = split_platform("linux/" + parts[0])[1]
        if arch not in _KNOWN_ARCH:
            raise UsageError(
                f"--expect-platform {text!r}: give os/arch (an OS alone names no architecture), e.g. linux/amd64"
                if parts[0] in _KNOWN_OS or parts[0] == "macos"
                else f"--expect-platform {text!r}: unknown architecture (expected os/arch[/variant])"
            )
        # containerd fills in the host's OS; caches are built for Linux, so a bare architecture means Linux.
        parts = ["linux", parts[0]]
    normalized = normalize_platform("/".join(parts))
    os_name, arch = normalized.split("/")[:2]
    if os_name not in _KNOWN_OS:
        raise UsageError(f"--expect-platform {text!r}: unknown operating system {os_name!r}")
    if arch not in _KNOWN_ARCH:
        raise UsageError(f"--expect-platform {text!r}: unknown architecture {arch!r}")
    return normalized


def parse_expected_platforms(values: list[str]) -> tuple[str, ...]:
    """Each ``--expect-platform`` value, comma-separated lists split, normalised, duplicates dropped."""
    out: dict[str, None] = {}
    for value in values:
        for item in value.split(","):
            out.setdefault(_parse_one(item), None)
    return tuple(out)


@dataclass(frozen=True, slots=True)
class StagePlatform:
    """A stage's platform, or None when nothing proves it."""

    stage: int
    platform: str | None


@dataclass(frozen=True, slots=True)
class PlatformCoverage:
    stages: tuple[StagePlatform, ...]

    @property
    def platforms(self) -> tuple[str, ...]:
        """The proven platforms, sorted."""
        return tuple(sorted({s.platform for s in self.stages if s.platform is not None}))

    @property
    def unknown_stages(self) -> tuple[int, ...]:
        return tuple(s.stage for s in self.stages if s.platform is None)

    @property
    def state(self) -> CoverageState:
        """``known``: every stage's platform is proven; ``unknown``: none is; else ``partial``."""
        if not self.platforms:
            return "unknown"
        return "partial" if self.unknown_stages else "known"

    @property
    def uniform(self) -> bool:
        """Whether every stage has the same platform (or every one is unknown): no per-stage line needed."""
        return len({s.platform for s in self.stages}) <= 1


def platform_coverage(graph: CacheGraph | None) -> PlatformCoverage:
    """Each stage's platform: its resolved base image's, inherited along ``FROM`` another stage."""
    if graph is None:
        return PlatformCoverage(())
    found: dict[int, str | None] = {}
    for stage in graph.stages:  # a stage comes after the stage it grows from
        if stage.base.kind == "stage" and stage.base.stage is not None:
            found[stage.index] = found.get(stage.base.stage)
        else:
            image = stage.base.image
            found[stage.index] = (
                normalize_platform(image.platform) if image is not None and image.platform else None
            )
    return PlatformCoverage(tuple(StagePlatform(index, platform) for index, platform in found.items()))


def expected_status(coverage: PlatformCoverage, platform: str) -> ExpectedStatus:
    """``covered``: a stage proves it; ``absent``: every stage is proven another platform; else ``unknown``."""
    if platform in coverage.platforms:
        return "covered"
    return "unknown" if coverage.unknown_stages or not coverage.stages else "absent"


def coverage_to_json(coverage: PlatformCoverage, expected: tuple[str, ...] = ()) -> dict[str, object]:
    """The ``platforms`` object of ``show --json`` (schema: ``inspector/schemas/show.schema.json``)."""
    return {
        "state": coverage.state,
        "covered": list(coverage.platforms),
        "unknownStages": list(coverage.unknown_stages),
        "expected": [{"platform": p, "status": expected_status(coverage, p)} for p in expected],
    }
