"""Credentials per registry, against real htpasswd-protected registries and the real CLI in a subprocess.

Flag credentials (``-u``/``--password-stdin``) go to the registry of the first reference, or to
``--registry-auth HOST``, never to another one; podman/skopeo's auth file is read; a 401 says whether
credentials were refused (and whose) or none were found.
"""

from __future__ import annotations

import base64
import io
import json
from collections.abc import Iterator
from pathlib import Path

import bcrypt
import pytest

from inspector.errors import ExitCode
from tests.harness.registry import LocalRegistry, load_samples, seed_sample, start_registry
from tests.harness.support import require_registry_binary, run_cli

USER = "ci-bot"
PASSWORD = "s3cret-Pa55-b0und-42"  # distinctive so a leak is found by substring search
REPO = "private/app"


def _auth_registry(tmp_path_factory: pytest.TempPathFactory, name: str) -> LocalRegistry:
    require_registry_binary()
    workdir = tmp_path_factory.mktemp(name)
    htpasswd = workdir / "htpasswd"
    htpasswd.write_bytes(
        USER.encode() + b":" + bcrypt.hashpw(PASSWORD.encode(), bcrypt.gensalt(rounds=4)) + b"\n"
    )
    registry = start_registry(
        workdir, extra_config={"auth": {"htpasswd": {"realm": name, "path": str(htpasswd)}}}
    )
    sample = next(s for s in load_samples() if s["name"] == "multistage-max")
    seed_sample(registry.host, REPO, sample, basic_auth=(USER, PASSWORD))
    return registry


@pytest.fixture(scope="module")
def registry_a(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalRegistry]:
    registry = _auth_registry(tmp_path_factory, "registry-a")
    yield registry
    registry.stop()


@pytest.fixture(scope="module")
def registry_b(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalRegistry]:
    """Same user and password as A: if A's flag credentials leaked to B, B would accept them."""
    registry = _auth_registry(tmp_path_factory, "registry-b")
    yield registry
    registry.stop()


def _auth_json(path: Path, host: str, password: str = PASSWORD) -> Path:
    """docker config.json / containers auth.json: ``{"auths": {HOST: {"auth": base64(user:password)}}}``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    token = base64.b64encode(f"{USER}:{password}".encode()).decode()
    path.write_text(json.dumps({"auths": {host: {"auth": token}}}))
    return path


def _no_secret(*texts: str) -> None:
    for text in texts:
        assert PASSWORD not in text and base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode() not in text


# --------------------------------------------------------------------------- flag credentials are bound


def test_diff_across_registries_sends_flag_credentials_only_to_the_first(
    registry_a: LocalRegistry, registry_b: LocalRegistry
) -> None:
    a = f"{registry_a.host}/{REPO}:oci-index"
    b = f"{registry_b.host}/{REPO}:oci-index"
    result = run_cli("diff", a, b, "-u", USER, "--password-stdin", stdin=PASSWORD + "\n")
    # B accepts exactly these credentials; refusing B proves they were never offered to it.
    assert result.returncode == int(ExitCode.AUTH), result.stderr
    assert f"no credentials found for {registry_b.host}" in result.stderr, result.stderr
    _no_secret(result.stdout, result.stderr)


def test_the_second_registry_uses_its_own_source(
    registry_a: LocalRegistry, registry_b: LocalRegistry, tmp_path: Path
) -> None:
    config = _auth_json(tmp_path / "docker" / "config.json", registry_b.host)
    a = f"{registry_a.host}/{REPO}:oci-index"
    b = f"{registry_b.host}/{REPO}:oci-index"
    result = run_cli(
        "diff",
        a,
        b,
        "-u",
        USER,
        "--password-stdin",
        "--json",
        stdin=PASSWORD + "\n",
        env={"DOCKER_CONFIG": str(config.parent)},
    )
    assert result.returncode == 0, result.stderr  # the same cache on both: no --exit-code, exit 0 anyway
    _no_secret(result.stdout, result.stderr)


def test_registry_auth_names_the_registry_the_flags_are_for(
    registry_a: LocalRegistry, registry_b: LocalRegistry, tmp_path: Path
) -> None:
    config = _auth_json(tmp_path / "docker" / "config.json", registry_a.host)
    a = f"{registry_a.host}/{REPO}:oci-index"
    b = f"{registry_b.host}/{REPO}:oci-index"
    args = ["diff", a, b, "-u", USER, "--password-stdin"]
    env = {"DOCKER_CONFIG": str(config.parent)}
    # Bound to B (written after the subcommand): A uses DOCKER_CONFIG, B the flags.
    bound = run_cli(*args, "--registry-auth", registry_b.host, stdin=PASSWORD + "\n", env=env)
    assert bound.returncode == 0, bound.stderr
    # Without it the flags are A's, and B has nothing: refused as anonymous.
    unbound = run_cli(*args, stdin=PASSWORD + "\n", env=env)
    assert unbound.returncode == int(ExitCode.AUTH), unbound.stderr
    assert f"no credentials found for {registry_b.host}" in unbound.stderr


def test_docker_hub_lookups_never_get_flag_credentials(monkeypatch: pytest.MonkeyPatch) -> None:
    """A --resolve-bases lookup on Docker Hub asks the same lookup function: it must get no flag credentials."""
    from inspector.cli.options import Connection as _Connection

    monkeypatch.setattr("sys.stdin", io.StringIO(PASSWORD + "\n"))
    monkeypatch.setenv("DOCKER_CONFIG", "/nonexistent-docker-config")
    for name in (
        "CACHEINSPECT_USERNAME",
        "CACHEINSPECT_PASSWORD",
        "DOCKER_AUTH_CONFIG",
        "REGISTRY_AUTH_FILE",
    ):
        monkeypatch.delenv(name, raising=False)
    connection = _Connection(False, False, None, USER, True, 1, 5.0)
    with connection.client("ghcr.io") as client:
        auth = client._auth
        assert auth.credentials_source("ghcr.io") == "--username/--password-stdin"
        for hub in ("registry-1.docker.io", "index.docker.io", "docker.io", "auth.docker.io"):
            assert auth.credentials_source(hub) is None, hub


# --------------------------------------------------------------------------- auth file


@pytest.mark.parametrize("how", ["env", "flag-before", "flag-after"])
def test_podman_auth_file_is_read(registry_a: LocalRegistry, tmp_path: Path, how: str) -> None:
    auth_file = _auth_json(tmp_path / "containers" / "auth.json", registry_a.host)
    ref = f"{registry_a.host}/{REPO}:oci-index"
    if how == "env":
        result = run_cli("show", ref, "--json", env={"REGISTRY_AUTH_FILE": str(auth_file)})
    elif how == "flag-before":
        result = run_cli("--authfile", str(auth_file), "show", ref, "--json")
    else:
        result = run_cli("show", ref, "--json", "--authfile", str(auth_file))
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["form"] == "oci-index"


def test_a_missing_authfile_is_a_usage_error(registry_a: LocalRegistry, tmp_path: Path) -> None:
    missing = tmp_path / "nope" / "auth.json"
    result = run_cli("show", f"{registry_a.host}/{REPO}:oci-index", "--authfile", str(missing))
    assert result.returncode == int(ExitCode.USAGE)
    assert result.stderr.splitlines()[0] == f"cacheinspect: error: --authfile {missing}: no such file"


# --------------------------------------------------------------------------- refused vs not found


def test_refused_credentials_name_their_source(registry_a: LocalRegistry, tmp_path: Path) -> None:
    config = _auth_json(tmp_path / "docker" / "config.json", registry_a.host, password="wrong-one")
    result = run_cli("show", f"{registry_a.host}/{REPO}:oci-index", env={"DOCKER_CONFIG": str(config.parent)})
    assert result.returncode == int(ExitCode.AUTH), result.stderr
    assert result.stderr.splitlines()[-1] == (
        f"cacheinspect: hint: credentials from DOCKER_CONFIG {config}, refused by {registry_a.host}: "
        "check or renew them"
    )


def test_refused_flag_credentials_name_the_flags(registry_a: LocalRegistry) -> None:
    result = run_cli("tags", f"{registry_a.host}/{REPO}", "-u", USER, "--password-stdin", stdin="wrong\n")
    assert result.returncode == int(ExitCode.AUTH), result.stderr
    assert "credentials from --username/--password-stdin, refused by" in result.stderr


def test_no_credentials_found_is_a_different_message(registry_a: LocalRegistry) -> None:
    result = run_cli("tags", f"{registry_a.host}/{REPO}")
    assert result.returncode == int(ExitCode.AUTH), result.stderr
    hint = result.stderr.splitlines()[-1]
    assert hint.startswith(f"cacheinspect: hint: no credentials found for {registry_a.host} (looked at ")
    assert "REGISTRY_AUTH_FILE" in hint and "refused" not in hint
