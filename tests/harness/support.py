"""Test helpers shared by the integration modules: the CI rule for a missing registry, and the CLI in a clean env."""

from __future__ import annotations

import os
import subprocess
import sys
from typing import Any

import pytest

__all__ = ["registry_unavailable", "require_registry_binary", "run_cli", "validate_json"]


def registry_unavailable(reason: str) -> None:
    """A missing registry is a failure under CI=true, a skip elsewhere."""
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"{reason} (CI=true: integration tests may not be skipped)")
    pytest.skip(reason)


def require_registry_binary() -> None:
    from tests.harness.registry import find_registry_binary

    if find_registry_binary() is None:
        registry_unavailable("docker-registry is not installed (apt-get install -y docker-registry)")


def run_cli(
    *args: str, env: dict[str, str] | None = None, stdin: str | None = None, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    """``python -m inspector ARGS`` with no credentials or proxies inherited from the developer's environment."""
    clean = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("CACHEINSPECT_", "DOCKER_"))
        and k.lower() not in {"http_proxy", "https_proxy", "all_proxy", "no_proxy"}
    }
    clean["DOCKER_CONFIG"] = "/nonexistent-docker-config"
    clean.update(env or {})
    return subprocess.run(
        [sys.executable, "-m", "inspector", *args],
        capture_output=True,
        text=True,
        env=clean,
        input=stdin,
        stdin=None if stdin is not None else subprocess.DEVNULL,
        timeout=timeout,
    )


_VALIDATORS: dict[int, tuple[dict[str, Any], Any]] = {}


def validate_json(document: Any, schema: dict[str, Any]) -> None:
    """``jsonschema.validate`` with the schema checked once, not on every call (that took ~0.1 s each)."""
    import jsonschema

    cached = _VALIDATORS.get(id(schema))
    if cached is None or cached[0] is not schema:
        cls = jsonschema.validators.validator_for(schema)
        cls.check_schema(schema)
        cached = _VALIDATORS[id(schema)] = (schema, cls(schema))
    cached[1].validate(document)
