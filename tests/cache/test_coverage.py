"""Platform coverage (pure): what proves a platform, how ``--expect-platform`` values are read.

Expected values are derived from containerd's ``platforms/database.go`` (normalizeArch, isKnownOS/Arch) and
from the real documents in ``../shared/realworld/``, which name no platform anywhere (checked with
``grep -ri 'platform\\|linux/\\|arm64\\|amd64'``: no hit), so nothing in them can prove one.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from inspector.cache.analysis import BaseImage, CacheGraph, Stage, StageBase, analyze
from inspector.cache.config import parse_cache_config
from inspector.cache.coverage import (
    PlatformCoverage,
    StagePlatform,
    coverage_to_json,
    expected_status,
    parse_expected_platforms,
    platform_coverage,
)
from inspector.errors import ExitCode, UsageError


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("linux/amd64,linux/arm64", ("linux/amd64", "linux/arm64")),
        ("amd64", ("linux/amd64",)),  # containerd fills in the host OS; a cache's platform is Linux
        ("linux/x86_64", ("linux/amd64",)),  # normalizeArch: x86_64 -> amd64
        ("linux/aarch64", ("linux/arm64",)),  # aarch64 -> arm64
        ("linux/arm64/v8", ("linux/arm64",)),  # arm64 drops v8
        ("linux/arm", ("linux/arm/v7",)),  # arm with no variant -> v7
        ("linux/armhf", ("linux/arm/v7",)),
        ("LINUX/AMD64", ("linux/amd64",)),  # lower-cased, as normalizeOS/normalizeArch do
        (" linux/amd64 , linux/amd64", ("linux/amd64",)),  # blanks around items, a duplicate once
        ("windows/amd64", ("windows/amd64",)),
    ],
)
def test_expected_platforms_are_normalised_like_containerd(given: str, expected: tuple[str, ...]) -> None:
    assert parse_expected_platforms([given]) == expected


@pytest.mark.parametrize(
    "given", ["", "linux", "linux/", "linux/amd46", "plan10/amd64", "linux/amd64/v1/x", "linux/amd64;rm", ","]
)
def test_bad_expected_platforms_are_usage_errors(given: str) -> None:
    with pytest.raises(UsageError) as caught:
        parse_expected_platforms([given])
    assert caught.value.exit_code == ExitCode.USAGE
    assert "--expect-platform" in caught.value.message and "\n" not in caught.value.message


def _graph_of(path: Path) -> CacheGraph:
    return analyze(parse_cache_config(path.read_bytes()), {})


def test_real_caches_prove_no_platform(realworld: Path) -> None:
    # 05, 08, 09, 11, 13 are cache configs (07 and 10 are image manifests that wrap one).
    configs = [p for p in sorted(realworld.glob("*-cacheconfig*.json")) if "image-manifest" not in p.name]
    assert len(configs) == 5
    for path in configs:
        assert b"platform" not in path.read_bytes().lower()
        coverage = platform_coverage(_graph_of(path))
        assert coverage.state == "unknown", path.name
        assert coverage.platforms == ()
        assert len(coverage.unknown_stages) == len(coverage.stages) > 0, path.name


def test_a_resolved_base_proves_its_stage_and_the_stages_grown_from_it(realworld: Path) -> None:
    # 08: the python:3.11-slim stage (R11) and the two stages that grow from it (FROM stage). Naming the
    # image base "linux/arm64/v8" (as a Docker official index lists arm64) proves all three, normalised.
    graph = _graph_of(realworld / "08-local-2025-cacheconfig.json")
    image_stages = [s for s in graph.stages if s.base.image is not None]
    assert len(image_stages) == 1 and len(graph.stages) == 3
    first = image_stages[0]
    assert first.base.image is not None
    named = replace(
        first, base=replace(first.base, image=replace(first.base.image, platform="linux/arm64/v8"))
    )
    graph = replace(graph, stages=tuple(named if s.index == first.index else s for s in graph.stages))
    coverage = platform_coverage(graph)
    assert coverage.platforms == ("linux/arm64",)
    assert coverage.state == "known" and coverage.uniform
    assert expected_status(coverage, "linux/arm64") == "covered"
    # Every stage is proven arm64, so amd64 is proven absent, not merely unknown.
    assert expected_status(coverage, "linux/amd64") == "absent"


def test_unknown_stages_make_a_missing_platform_unknown_not_absent() -> None:
    coverage = PlatformCoverage((StagePlatform(0, "linux/amd64"), StagePlatform(1, None)))
    assert coverage.state == "partial" and not coverage.uniform
    assert expected_status(coverage, "linux/amd64") == "covered"
    assert expected_status(coverage, "linux/arm64") == "unknown"
    assert coverage_to_json(coverage, ("linux/arm64",)) == {
        "state": "partial",
        "covered": ["linux/amd64"],
        "unknownStages": [1],
        "expected": [{"platform": "linux/arm64", "status": "unknown"}],
    }
    # No stages at all (an unreadable config) proves nothing either.
    assert expected_status(platform_coverage(None), "linux/amd64") == "unknown"


def test_a_scratch_stage_is_unknown_even_beside_resolved_ones() -> None:
    base = BaseImage(roots=(0, 1), platform="linux/amd64")
    graph = analyze(parse_cache_config(b'{"layers":[],"records":[]}'), {})
    stages = (
        Stage(0, StageBase("image", image=base), ()),
        Stage(1, StageBase("scratch"), ()),
        Stage(2, StageBase("stage", stage=0), ()),
    )
    coverage = platform_coverage(replace(graph, stages=stages))
    assert coverage.stages == (
        StagePlatform(0, "linux/amd64"),
        StagePlatform(1, None),
        StagePlatform(2, "linux/amd64"),
    )
