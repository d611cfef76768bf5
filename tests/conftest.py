"""Shared fixtures (one real registry per test session, seeded with every sample in testdata/) and the one
integration rule: a test that talks to a registry lives in ``tests/integration/``, and everything there is marked
``integration`` (``pytest -m "not integration"`` runs the rest in seconds).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.harness.paths import REALWORLD
from tests.harness.registry import (
    LocalRegistry,
    RegistryUnavailable,
    find_registry_binary,
    load_samples,
    seed_sample,
    start_registry,
)
from tests.harness.support import registry_unavailable

INTEGRATION = Path(__file__).resolve().parent / "integration"
#: Fixtures that start or seed a real registry.
REGISTRY_FIXTURES = frozenset({"registry", "seeded"})


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Mark ``tests/integration/`` as integration; refuse a registry fixture anywhere else."""
    misplaced = []
    for item in items:
        if item.path.is_relative_to(INTEGRATION):
            item.add_marker(pytest.mark.integration)
        elif REGISTRY_FIXTURES & set(getattr(item, "fixturenames", ())):
            misplaced.append(item.nodeid)
    if misplaced:
        raise pytest.UsageError(
            "tests that use a registry belong in tests/integration/: " + ", ".join(sorted(misplaced))
        )


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
