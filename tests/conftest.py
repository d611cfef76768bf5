"""Shared fixtures: one real registry per test session, seeded with every sample in testdata/."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.registry import (
    LocalRegistry,
    RegistryUnavailable,
    find_registry_binary,
    load_samples,
    seed_sample,
    start_registry,
)
from tests.support import registry_unavailable

REALWORLD = Path(__file__).resolve().parent.parent.parent / "shared" / "realworld"


@pytest.fixture(scope="session")
def registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalRegistry]:
    if find_registry_binary() is None:
        registry_unavailable("docker-registry is not installed (apt-get install -y docker-registry)")
    try:
        instance = start_registry(tmp_path_factory.mktemp("registry"))
    except RegistryUnavailable as exc:
        registry_unavailable(str(exc))
        raise
    yield instance
    alive = instance.alive()
    instance.stop()
    assert alive, f"the test registry died during the session:\n{instance.log()[-2000:]}"


@pytest.fixture(scope="session")
def samples() -> list[dict[str, Any]]:
    return load_samples()


@pytest.fixture(scope="session")
def seeded(registry: LocalRegistry, samples: list[dict[str, Any]]) -> dict[str, dict[str, str]]:
    """Every sample pushed to ``samples/<name>``; maps sample name -> tag -> manifest digest."""
    return {s["name"]: seed_sample(registry.host, f"samples/{s['name']}", s) for s in samples}


@pytest.fixture(scope="session")
def realworld() -> Path:
    if not REALWORLD.is_dir():
        pytest.fail(f"{REALWORLD} is missing: the shared/ folder must sit beside the repository")
    return REALWORLD
