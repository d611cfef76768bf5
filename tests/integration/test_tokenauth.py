"""Token auth (``auth: token``) against a real docker-registry, with the test suite's own token server.

The registry trusts JWTs signed by ``tests.harness.tokenserver``; the token server grants each user only some
actions. Samples are seeded into an open registry first, which is then stopped, and a token-auth
registry is started on the same storage (oras-py, our independent pusher, speaks Basic auth only).
"""

from __future__ import annotations

import base64
import json
import os
import stat
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from inspector.oci.reference import parse_repository
from inspector.registry.client import RegistryClient
from inspector.registry.credentials import Credentials
from tests.harness.registry import LocalRegistry, load_samples, seed_sample, start_registry
from tests.harness.support import require_registry_binary, run_cli
from tests.harness.tokenserver import TokenServer, User, start_token_server

REPO = "private/app"
PULLER, PULLER_PASSWORD = "puller", "pull-Pa55-e1c7d93b"  # distinctive so a leak is found by substring search
PUSHER, PUSHER_PASSWORD = "pusher", "push-Pa55-5a0b2f6c"
USERS = {
    PULLER: User(PULLER_PASSWORD, {REPO: frozenset({"pull"})}),
    PUSHER: User(PUSHER_PASSWORD, {REPO: frozenset({"pull", "push", "delete"})}),
}


@dataclass
class TokenRegistry:
    registry: LocalRegistry
    tokens: TokenServer

    @property
    def host(self) -> str:
        return self.registry.host


@pytest.fixture(scope="module")
def token_registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TokenRegistry]:
    require_registry_binary()
    workdir = tmp_path_factory.mktemp("token-registry")
    seeder = start_registry(workdir)
    try:
        multistage = next(s for s in load_samples() if s["name"] == "multistage-max")
        sample = dict(multistage)
        sample["push"] = {
            "image-manifest": f"{REPO}:main-buildcache",
            "oci-index": f"{REPO}:gone-buildcache",
            "docker-manifest-list": f"{REPO}:docker-manifest-list",
        }
        seed_sample(seeder.host, REPO, sample)
    finally:
        seeder.stop()
    tokens = start_token_server(workdir, USERS)
    try:
        registry = start_registry(
            workdir, storage=seeder.root / "data", extra_config={"auth": tokens.registry_auth_config()}
        )
        try:
            yield TokenRegistry(registry, tokens)
        finally:
            registry.stop()
    finally:
        tokens.stop()


cli = run_cli


def _helper(directory: Path, user: str, password: str) -> Path:
    """A ``docker-credential-cachetest`` script on a PATH directory of its own."""
    directory.mkdir(parents=True, exist_ok=True)
    script = directory / "docker-credential-cachetest"
    script.write_text(
        "#!/bin/sh\n"
        '[ "$1" = get ] || exit 1\n'
        "read -r server\n"
        f'printf \'{{"ServerURL":"%s","Username":"{user}","Secret":"{password}"}}\' "$server"\n'
    )
    script.chmod(script.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
    return script


def _secrets(token_registry: TokenRegistry, *extra: str) -> list[str]:
    return [*extra, *token_registry.tokens.issued]


def _assert_no_leak(source: str, result: subprocess.CompletedProcess[str], secrets: list[str]) -> None:
    for secret in secrets:
        assert secret not in result.stdout, f"{source}: a secret is on stdout"
        assert secret not in result.stderr, f"{source}: a secret is on stderr"


def test_registry_really_requires_tokens(token_registry: TokenRegistry) -> None:
    response = httpx.get(f"http://{token_registry.host}/v2/{REPO}/tags/list", timeout=10)
    assert response.status_code == 401
    assert token_registry.tokens.realm in response.headers["WWW-Authenticate"]
    anonymous = cli("show", f"{token_registry.host}/{REPO}:main-buildcache")
    assert anonymous.returncode == 4, anonymous.stderr
    assert "Traceback" not in anonymous.stderr
    wrong = cli(
        "show",
        f"{token_registry.host}/{REPO}:main-buildcache",
        "-u",
        PULLER,
        "--password-stdin",
        stdin="no\n",
    )
    assert wrong.returncode == 4 and "rejected" in wrong.stderr and "Traceback" not in wrong.stderr


def test_every_credential_source_gets_a_token_and_nothing_leaks(
    token_registry: TokenRegistry, tmp_path: Path
) -> None:
    host = token_registry.host
    ref = f"{host}/{REPO}:main-buildcache"
    auth = base64.b64encode(f"{PULLER}:{PULLER_PASSWORD}".encode()).decode()
    config_dir = tmp_path / "docker"
    config_dir.mkdir()
    (config_dir / "config.json").write_text(json.dumps({"auths": {host: {"auth": auth}}}))
    helper_config = tmp_path / "docker-helper"
    helper_config.mkdir()
    (helper_config / "config.json").write_text(json.dumps({"credHelpers": {host: "cachetest"}}))
    helper = _helper(tmp_path / "bin", PULLER, PULLER_PASSWORD)
    debug = ("-v", "--debug")
    before = len(token_registry.tokens.requests)
    runs = {
        "flags": cli(*debug, "show", ref, "--json", "-u", PULLER, "--password-stdin", stdin=PULLER_PASSWORD),
        "env": cli(
            *debug,
            "show",
            ref,
            "--json",
            env={"CACHEINSPECT_USERNAME": PULLER, "CACHEINSPECT_PASSWORD": PULLER_PASSWORD},
        ),
        "DOCKER_AUTH_CONFIG": cli(
            *debug,
            "show",
            ref,
            "--json",
            env={"DOCKER_AUTH_CONFIG": json.dumps({"auths": {host: {"auth": auth}}})},
        ),
        "config.json": cli(*debug, "show", ref, "--json", env={"DOCKER_CONFIG": str(config_dir)}),
        "credential helper": cli(
            *debug,
            "show",
            ref,
            "--json",
            env={
                "DOCKER_CONFIG": str(helper_config),
                "PATH": f"{helper.parent}{os.pathsep}{os.environ['PATH']}",
            },
        ),
    }
    assert len(token_registry.tokens.requests) > before, "no token was requested"
    assert all(user == PULLER for user, _, _ in token_registry.tokens.requests[before:])
    secrets = _secrets(token_registry, PULLER_PASSWORD, auth)
    for source, result in runs.items():
        assert result.returncode == 0, (source, result.stderr[-800:])
        assert json.loads(result.stdout)["health"]["ok"] is True, source
        assert "GET http://" in result.stderr, f"{source}: -v should log requests"
        assert "token request" in result.stderr, f"{source}: --debug should log token requests"
        _assert_no_leak(source, result, secrets)
    # The tags listing (another scope) works with the same credentials.
    tags = cli("tags", f"{host}/{REPO}", "--json", env={"DOCKER_CONFIG": str(config_dir)})
    assert tags.returncode == 0, tags.stderr
    assert "main-buildcache" in tags.stdout


def test_every_command_with_debug_logging_keeps_secrets_out_of_output_and_files(
    token_registry: TokenRegistry, tmp_path: Path
) -> None:
    host = token_registry.host
    branches = tmp_path / "branches.txt"
    branches.write_text("main\ngone\n")
    written = tmp_path / "out"
    written.mkdir()
    login = ("-u", PUSHER, "--password-stdin")
    commands = {
        "show": ("show", f"{host}/{REPO}:main-buildcache", "--json"),
        "tags": ("tags", f"{host}/{REPO}", "--json"),
        "du": ("du", f"{host}/{REPO}", "--json"),
        "diff": ("diff", f"{host}/{REPO}:main-buildcache", f"{host}/{REPO}:gone-buildcache", "--json"),
        "gc plan": (
            "gc",
            f"{host}/{REPO}",
            "--tag-template",
            "{branch}-buildcache",
            "--branches-file",
            str(branches),
            "--plan-out",
            str(written / "plan.json"),
            "--summary",
            str(written / "summary.md"),
        ),
        "probe": (
            "probe",
            f"{host}/{REPO}",
            "--delete",
            "--no-near-limit",
            "--junit",
            str(written / "junit.xml"),
        ),
    }
    before = len(token_registry.tokens.issued)
    results = {
        name: cli("-v", "--debug", *args, *login, stdin=PUSHER_PASSWORD) for name, args in commands.items()
    }
    assert len(token_registry.tokens.issued) > before, "no token was issued"
    secrets = _secrets(
        token_registry, PUSHER_PASSWORD, base64.b64encode(f"{PUSHER}:{PUSHER_PASSWORD}".encode()).decode()
    )
    for name, result in results.items():
        assert result.returncode in (0, 9), (name, result.returncode, result.stderr[-800:])
        assert "Traceback" not in result.stderr, name
        assert "GET http://" in result.stderr or "HEAD http://" in result.stderr, (
            f"{name}: -v should log requests"
        )
        _assert_no_leak(name, result, secrets)
    files = {path.name: path.read_text() for path in written.iterdir()}
    assert set(files) == {"plan.json", "summary.md", "junit.xml"}
    for name, text in files.items():
        assert not [s for s in secrets if s in text], f"a secret is in {name}"


def test_pull_only_credentials_cannot_write(token_registry: TokenRegistry, tmp_path: Path) -> None:
    host = token_registry.host
    branches = tmp_path / "branches.txt"
    branches.write_text("main\n")
    gc = ("gc", f"{host}/{REPO}", "--tag-template", "{branch}-buildcache", "--branches-file", str(branches))
    dry = cli(*gc, "--json", "-u", PULLER, "--password-stdin", stdin=PULLER_PASSWORD)
    assert dry.returncode == 0, dry.stderr[-800:]
    assert "gone-buildcache" in dry.stdout

    denied = cli("-v", "--debug", *gc, "--apply", "-u", PULLER, "--password-stdin", stdin=PULLER_PASSWORD)
    assert denied.returncode == 4, (denied.returncode, denied.stdout[-500:], denied.stderr[-800:])
    assert "Traceback" not in denied.stderr
    assert "delete" in denied.stderr.lower() and "scope" in denied.stderr.lower(), denied.stderr[-800:]
    _assert_no_leak("pull-only gc --apply", denied, _secrets(token_registry, PULLER_PASSWORD))
    # Nothing was deleted.
    still = cli(
        "show",
        f"{host}/{REPO}:gone-buildcache",
        "--json",
        "-u",
        PULLER,
        "--password-stdin",
        stdin=PULLER_PASSWORD,
    )
    assert still.returncode == 0, still.stderr[-500:]

    # The pusher may delete: the same command goes through.
    applied = cli("-v", "--debug", *gc, "--apply", "-u", PUSHER, "--password-stdin", stdin=PUSHER_PASSWORD)
    assert applied.returncode == 0, applied.stderr[-800:]
    _assert_no_leak("gc --apply", applied, _secrets(token_registry, PUSHER_PASSWORD))
    gone = cli(
        "show", f"{host}/{REPO}:gone-buildcache", "-u", PULLER, "--password-stdin", stdin=PULLER_PASSWORD
    )
    assert gone.returncode == 3, gone.stderr[-500:]
    kept = cli(
        "show", f"{host}/{REPO}:main-buildcache", "-u", PULLER, "--password-stdin", stdin=PULLER_PASSWORD
    )
    assert kept.returncode == 0, kept.stderr[-500:]


def test_granted_actions_reports_what_the_token_server_granted_per_repository(
    token_registry: TokenRegistry,
) -> None:
    """``RegistryClient.granted_actions`` reads the ``access`` claim of the real tokens the client was issued.

    Expected by hand: the client asks for the scope the request implies (``derive_scope``: HEAD -> ``pull``,
    POST -> ``pull,push``) and the token server grants its intersection with the user's actions
    (tests/harness/tokenserver.py: ``sorted(wanted & mine)``). The puller's HEAD gets ``pull``; the pusher's
    upload POST gets ``pull,push`` (its ``delete`` was never asked for); no token was issued for another
    repository, and none before the first request.
    """
    repo = parse_repository(f"{token_registry.host}/{REPO}")

    def login(user: str, password: str) -> RegistryClient:
        return RegistryClient(credentials=lambda host: Credentials(user, password, source="test"))

    with login(PULLER, PULLER_PASSWORD) as puller:
        assert puller.granted_actions(repo) is None
        puller.head_manifest(repo.tag("main-buildcache"))
        assert puller.granted_actions(repo) == ("pull",)
    with login(PUSHER, PUSHER_PASSWORD) as pusher:
        pusher.push_blob(repo, b"granted-actions test blob")
        assert pusher.granted_actions(repo) == ("pull", "push")
        assert pusher.granted_actions(parse_repository(f"{token_registry.host}/other/app")) is None
