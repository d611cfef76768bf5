"""Basic auth against a real docker-registry with an htpasswd file, and secrets never printed."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from pathlib import Path

import bcrypt
import pytest

from tests.harness.paths import TESTDATA
from tests.harness.registry import LocalRegistry, seed_sample, start_registry
from tests.harness.support import require_registry_binary, run_cli

USER = "ci-bot"
PASSWORD = "s3cret-Pa55-7f3a91"  # distinctive so a leak is found by substring search


@pytest.fixture(scope="module")
def auth_registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalRegistry]:
    require_registry_binary()
    workdir = tmp_path_factory.mktemp("auth-registry")
    htpasswd = workdir / "htpasswd"
    htpasswd.write_bytes(
        USER.encode() + b":" + bcrypt.hashpw(PASSWORD.encode(), bcrypt.gensalt(rounds=4)) + b"\n"
    )
    registry = start_registry(
        workdir, extra_config={"auth": {"htpasswd": {"realm": "cacheinspect-test", "path": str(htpasswd)}}}
    )
    yield registry
    registry.stop()


cli = run_cli


def test_basic_auth_sources_work_and_never_leak(auth_registry: LocalRegistry, tmp_path: Path) -> None:
    samples = json.loads((TESTDATA / "samples.json").read_text())
    multistage = next(s for s in samples if s["name"] == "multistage-max")
    seed_sample(auth_registry.host, "private/app", multistage, basic_auth=(USER, PASSWORD))

    ref = f"{auth_registry.host}/private/app:oci-index"
    anonymous = cli("show", ref)
    assert anonymous.returncode == 4 and "401" in anonymous.stderr and "Traceback" not in anonymous.stderr

    wrong = cli("show", ref, "--username", USER, "--password-stdin", stdin="wrong\n")
    assert wrong.returncode == 4

    docker_config = tmp_path / "docker"
    docker_config.mkdir()
    token = base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()
    (docker_config / "config.json").write_text(json.dumps({"auths": {auth_registry.host: {"auth": token}}}))
    runs = {
        "flags": cli(
            "-v",
            "--debug",
            "show",
            ref,
            "--json",
            "--username",
            USER,
            "--password-stdin",
            stdin=PASSWORD + "\n",
        ),
        "env": cli(
            "-v",
            "--debug",
            "show",
            ref,
            "--json",
            env={"CACHEINSPECT_USERNAME": USER, "CACHEINSPECT_PASSWORD": PASSWORD},
        ),
        "DOCKER_AUTH_CONFIG": cli(
            "-v",
            "--debug",
            "show",
            ref,
            "--json",
            env={"DOCKER_AUTH_CONFIG": json.dumps({"auths": {auth_registry.host: {"auth": token}}})},
        ),
        "config.json": cli("-v", "--debug", "show", ref, "--json", env={"DOCKER_CONFIG": str(docker_config)}),
    }
    for source, result in runs.items():
        assert result.returncode == 0, (source, result.stderr[-500:])
        assert json.loads(result.stdout)["health"]["ok"] is True, source
        assert "GET http://" in result.stderr, "-v should log requests"
        for secret in (PASSWORD, token):
            assert secret not in result.stdout and secret not in result.stderr, f"{source} leaked a secret"
