"""Credential sources, their order, docker config matching and credential helpers."""

from __future__ import annotations

import base64
import json
import os
import stat
from pathlib import Path

import pytest

from inspector.errors import AuthError, UsageError
from inspector.registry import credentials as credentials_module
from inspector.registry.credentials import Credentials, normalize_registry_host, resolve_credentials

PASSWORD = "pw-SECRET-1234"
TOKEN = "idtoken-SECRET-5678"
HELPER_SECRET = "helper-SECRET-9012"
SECRETS = (PASSWORD, TOKEN, HELPER_SECRET)


def b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def write_config(directory: Path, config: object) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / "config.json"
    path.write_text(json.dumps(config))
    return path


def assert_no_secret(text: str) -> None:
    for secret in SECRETS:
        assert secret not in text


@pytest.fixture
def helper_log(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fake ``docker-credential-test`` on PATH; the server URLs it was asked for go to the log."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    log = tmp_path / "helper.log"
    script = bin_dir / "docker-credential-test"
    script.write_text(
        f"""#!/bin/sh
[ "$1" = get ] || {{ echo "unexpected action $1" >&2; exit 3; }}
server=$(cat)
printf '%s\\n' "$server" >> '{log}'
case "$server" in
  reg.example|https://index.docker.io/v1/)
    printf '{{"ServerURL":"%s","Username":"helper-user","Secret":"{HELPER_SECRET}"}}' "$server" ;;
  token.example)
    printf '{{"ServerURL":"%s","Username":"<token>","Secret":"{TOKEN}"}}' "$server" ;;
  broken.example)
    echo "error getting credentials: keychain locked" >&2; exit 2 ;;
  garbage.example)
    echo "{HELPER_SECRET} is not json" ;;
  slow.example)
    sleep 5 ;;
  *)
    echo "credentials not found in native keychain"; exit 1 ;;
esac
"""
    )
    script.chmod(script.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}")
    return log


# --------------------------------------------------------------------------- the Credentials value


def test_repr_hides_secrets() -> None:
    creds = Credentials(
        username="alice",
        password=PASSWORD,
        identity_token=TOKEN,
        registry_token=HELPER_SECRET,
        source="flags",
    )
    assert_no_secret(repr(creds))
    assert_no_secret(str(creds))
    assert "alice" in repr(creds)
    assert "flags" in repr(creds)


# --------------------------------------------------------------------------- order of sources


def test_source_order(tmp_path: Path) -> None:
    config_dir = tmp_path / "docker"
    write_config(config_dir, {"auths": {"reg.example": {"auth": b64(f"file-user:{PASSWORD}")}}})
    env = {
        "CACHEINSPECT_USERNAME": "env-user",
        "CACHEINSPECT_PASSWORD": PASSWORD,
        "DOCKER_AUTH_CONFIG": json.dumps({"auths": {"reg.example": {"auth": b64(f"dac-user:{PASSWORD}")}}}),
        "DOCKER_CONFIG": str(config_dir),
    }

    def user(**kwargs: str) -> str | None:
        found = resolve_credentials("reg.example", env=env, **kwargs)
        return found.username if found else None

    assert user(username="flag-user", password=PASSWORD) == "flag-user"
    assert resolve_credentials("reg.example", username="u", password="p", env=env) == Credentials(
        username="u", password="p", source="--username/--password-stdin"
    )
    assert user() == "env-user"
    del env["CACHEINSPECT_USERNAME"], env["CACHEINSPECT_PASSWORD"]
    assert user() == "dac-user"
    found = resolve_credentials("reg.example", env=env)
    assert found is not None
    assert found.source == "DOCKER_AUTH_CONFIG"
    del env["DOCKER_AUTH_CONFIG"]
    found = resolve_credentials("reg.example", env=env)
    assert found == Credentials(
        username="file-user", password=PASSWORD, source=f"DOCKER_CONFIG {config_dir / 'config.json'}"
    )
    assert resolve_credentials("other.example", env=env) is None


def test_docker_auth_config_without_the_host_falls_through_to_config_json(tmp_path: Path) -> None:
    write_config(tmp_path, {"auths": {"reg.example": {"username": "file-user", "password": PASSWORD}}})
    env = {"DOCKER_AUTH_CONFIG": '{"auths": {"elsewhere.example": {"auth": "eDp5"}}}'}
    found = resolve_credentials("reg.example", env=env, docker_config_dir=str(tmp_path))
    assert found is not None
    assert found.username == "file-user"


def test_docker_config_dir_argument_beats_env(tmp_path: Path) -> None:
    write_config(tmp_path / "a", {"auths": {"reg.example": {"auth": b64("a-user:pw")}}})
    write_config(tmp_path / "b", {"auths": {"reg.example": {"auth": b64("b-user:pw")}}})
    found = resolve_credentials(
        "reg.example", env={"DOCKER_CONFIG": str(tmp_path / "b")}, docker_config_dir=str(tmp_path / "a")
    )
    assert found is not None
    assert found.username == "a-user"


def test_default_config_dir_is_home_docker(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))
    write_config(tmp_path / ".docker", {"auths": {"reg.example": {"auth": b64("home-user:pw")}}})
    found = resolve_credentials("reg.example", env={})
    assert found is not None
    assert found.username == "home-user"
    assert found.source == str(tmp_path / ".docker" / "config.json")


def test_no_config_means_anonymous(tmp_path: Path) -> None:
    assert resolve_credentials("reg.example", env={"DOCKER_CONFIG": str(tmp_path / "missing")}) is None
    (tmp_path / "config.json").write_text("  \n")
    assert resolve_credentials("reg.example", env={"DOCKER_CONFIG": str(tmp_path)}) is None


@pytest.mark.parametrize(
    ("username", "password", "message"),
    [
        ("alice", None, "--username was given without --password"),
        (None, PASSWORD, "--password was given without --username"),
        ("alice", "", "--username was given without --password"),
    ],
)
def test_half_given_flags(username: str | None, password: str | None, message: str) -> None:
    with pytest.raises(UsageError, match=message) as caught:
        resolve_credentials("reg.example", username=username, password=password, env={})
    assert_no_secret(str(caught.value))


def test_half_given_env() -> None:
    with pytest.raises(UsageError, match="CACHEINSPECT_PASSWORD was given without CACHEINSPECT_USERNAME"):
        resolve_credentials("reg.example", env={"CACHEINSPECT_PASSWORD": PASSWORD})


# --------------------------------------------------------------------------- auths entries


@pytest.mark.parametrize(
    ("entry", "expected"),
    [
        ({"auth": b64(f"alice:{PASSWORD}")}, Credentials(username="alice", password=PASSWORD)),
        ({"auth": b64(f"alice:{PASSWORD}:with:colons")}, Credentials("alice", f"{PASSWORD}:with:colons")),
        ({"username": "alice", "password": PASSWORD}, Credentials(username="alice", password=PASSWORD)),
        (
            {"auth": b64("alice:"), "identitytoken": TOKEN},
            Credentials(username="alice", identity_token=TOKEN),
        ),
        ({"registrytoken": TOKEN}, Credentials(registry_token=TOKEN)),
        ({}, None),
        ({"auth": "", "email": "a@example.com"}, None),
        ({"username": "alice"}, None),
    ],
)
def test_auths_entry_forms(tmp_path: Path, entry: dict[str, str], expected: Credentials | None) -> None:
    path = write_config(tmp_path, {"auths": {"reg.example": entry}})
    found = resolve_credentials("reg.example", env={}, docker_config_dir=str(tmp_path))
    if expected is None:
        assert found is None
    else:
        assert found == Credentials(
            username=expected.username,
            password=expected.password,
            identity_token=expected.identity_token,
            registry_token=expected.registry_token,
            source=str(path),
        )


@pytest.mark.parametrize(
    ("key", "host", "matches"),
    [
        ("reg.example", "reg.example", True),
        ("https://reg.example", "reg.example", True),
        ("http://reg.example/v2/", "reg.example", True),
        ("REG.Example", "reg.example", True),
        ("reg.example:5000", "reg.example:5000", True),
        ("https://reg.example:5000/v1/", "reg.example:5000", True),
        ("reg.example:5000", "reg.example", False),
        ("reg.example", "reg.example:5000", False),
        ("other.example", "reg.example", False),
        ("https://index.docker.io/v1/", "registry-1.docker.io", True),
        ("https://index.docker.io/v1/", "docker.io", True),
        ("https://index.docker.io/v1/", "index.docker.io", True),
        ("docker.io", "registry-1.docker.io", True),
        ("registry-1.docker.io", "docker.io", True),
        ("index.docker.io", "registry-1.docker.io", True),
        ("https://index.docker.io/v1/", "ghcr.io", False),
    ],
)
def test_auths_key_matching(tmp_path: Path, key: str, host: str, matches: bool) -> None:
    write_config(tmp_path, {"auths": {key: {"auth": b64("alice:pw")}}})
    found = resolve_credentials(host, env={}, docker_config_dir=str(tmp_path))
    assert (found is not None) == matches


def test_exact_key_preferred_over_alias(tmp_path: Path) -> None:
    write_config(
        tmp_path,
        {
            "auths": {
                "docker.io": {"auth": b64("alias:pw")},
                "https://index.docker.io/v1/": {"auth": b64("hub:pw")},
                "https://reg.example/": {"auth": b64("url:pw")},
                "reg.example": {"auth": b64("exact:pw")},
            }
        },
    )
    hub = resolve_credentials("registry-1.docker.io", env={}, docker_config_dir=str(tmp_path))
    reg = resolve_credentials("reg.example", env={}, docker_config_dir=str(tmp_path))
    assert hub is not None and hub.username == "hub"
    assert reg is not None and reg.username == "exact"


def test_normalize_registry_host() -> None:
    assert normalize_registry_host("https://index.docker.io/v1/") == "index.docker.io"
    assert normalize_registry_host("registry-1.docker.io") == "index.docker.io"
    assert normalize_registry_host("HTTP://Reg.Example:5000/path") == "reg.example:5000"


# --------------------------------------------------------------------------- credential helpers


def test_cred_helper_for_host(tmp_path: Path, helper_log: Path) -> None:
    path = write_config(
        tmp_path / "docker",
        {"credHelpers": {"reg.example": "test"}, "auths": {"reg.example": {"auth": b64("inline:pw")}}},
    )
    found = resolve_credentials("reg.example", env={}, docker_config_dir=str(path.parent))
    assert found == Credentials(
        username="helper-user", password=HELPER_SECRET, source=f"{path} (credHelper test)"
    )
    assert helper_log.read_text() == "reg.example\n"


def test_cred_helper_token_username_means_identity_token(tmp_path: Path, helper_log: Path) -> None:
    write_config(tmp_path, {"credHelpers": {"token.example": "test"}})
    found = resolve_credentials("token.example", env={}, docker_config_dir=str(tmp_path))
    assert found is not None
    assert found.identity_token == TOKEN
    assert found.username is None
    assert found.password is None


def test_creds_store_is_asked_with_docker_hub_server_url(tmp_path: Path, helper_log: Path) -> None:
    path = write_config(tmp_path, {"credsStore": "test", "auths": {"https://index.docker.io/v1/": {}}})
    found = resolve_credentials("registry-1.docker.io", env={}, docker_config_dir=str(tmp_path))
    assert found is not None
    assert found.password == HELPER_SECRET
    assert found.source == f"{path} (credsStore test)"
    assert helper_log.read_text() == "https://index.docker.io/v1/\n"


def test_helper_not_found_answer_falls_through(tmp_path: Path, helper_log: Path) -> None:
    write_config(
        tmp_path,
        {
            "credHelpers": {"nothing.example": "test"},
            "credsStore": "test",
            "auths": {"nothing.example": {"auth": b64("inline:pw")}},
        },
    )
    found = resolve_credentials("nothing.example", env={}, docker_config_dir=str(tmp_path))
    assert found is not None
    assert found.username == "inline"
    assert helper_log.read_text() == "nothing.example\nnothing.example\n"
    assert resolve_credentials("missing.example", env={}, docker_config_dir=str(tmp_path)) is None


def test_cred_helpers_in_docker_auth_config(helper_log: Path, tmp_path: Path) -> None:
    env = {"DOCKER_AUTH_CONFIG": json.dumps({"credHelpers": {"reg.example": "test"}})}
    found = resolve_credentials("reg.example", env=env, docker_config_dir=str(tmp_path))
    assert found is not None
    assert found.source == "DOCKER_AUTH_CONFIG (credHelper test)"


def test_missing_helper_binary(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    write_config(tmp_path, {"credsStore": "desktop"})
    with pytest.raises(AuthError, match="docker-credential-desktop") as caught:
        resolve_credentials("reg.example", env={}, docker_config_dir=str(tmp_path))
    assert "\n" not in str(caught.value)
    assert caught.value.exit_code == 4


@pytest.mark.parametrize(
    ("host", "message"),
    [
        ("broken.example", r"docker-credential-test failed for broken.example \(exit 2\): .*keychain locked"),
        ("garbage.example", "docker-credential-test answered with invalid JSON"),
    ],
)
def test_failing_helper(tmp_path: Path, helper_log: Path, host: str, message: str) -> None:
    write_config(tmp_path, {"credHelpers": {host: "test"}})
    with pytest.raises(AuthError, match=message) as caught:
        resolve_credentials(host, env={}, docker_config_dir=str(tmp_path))
    assert "\n" not in str(caught.value)
    assert_no_secret(str(caught.value))


def test_helper_timeout(tmp_path: Path, helper_log: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(credentials_module, "HELPER_TIMEOUT", 0.3)
    write_config(tmp_path, {"credHelpers": {"slow.example": "test"}})
    with pytest.raises(AuthError, match=r"docker-credential-test did not answer within 0\.3 s"):
        resolve_credentials("slow.example", env={}, docker_config_dir=str(tmp_path))


# --------------------------------------------------------------------------- malformed configs


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (f'{{"auths": {{"reg.example": {{"auth": "{PASSWORD}"', r"is not valid JSON \(line 1 column \d+"),
        (f'{{"auths": {{"reg.example": {{"password": "{PASSWORD}",}}}}}}', r"is not valid JSON \(line 1"),
        ("[1, 2]", "must hold a JSON object"),
        ('{"auths": []}', "'auths' must be a JSON object"),
        ('{"auths": {"reg.example": "x"}}', r"auths\['reg.example'\] must be a JSON object"),
        (f'{{"auths": {{"reg.example": {{"auth": "{PASSWORD}"}}}}}}', "is not base64 of 'user:password'"),
        (f'{{"auths": {{"reg.example": {{"auth": "{b64(PASSWORD)}"}}}}}}', "is not base64 of"),
        ('{"auths": {"reg.example": {"password": 5}}}', r"\.password must be a string"),
        ('{"credsStore": 5}', "'credsStore' must be a helper name"),
        ('{"credHelpers": {"reg.example": ""}}', "must be a helper name"),
    ],
)
def test_malformed_config_json(tmp_path: Path, content: str, message: str) -> None:
    path = tmp_path / "config.json"
    path.write_text(content)
    with pytest.raises(UsageError, match=message) as caught:
        resolve_credentials("reg.example", env={}, docker_config_dir=str(tmp_path))
    assert str(path) in str(caught.value)
    assert_no_secret(str(caught.value))
    assert caught.value.exit_code == 2


def test_malformed_docker_auth_config(tmp_path: Path) -> None:
    env = {"DOCKER_AUTH_CONFIG": f'{{"auths": {{"reg.example": {{"password": "{PASSWORD}"\n'}
    with pytest.raises(UsageError, match=r"DOCKER_AUTH_CONFIG is not valid JSON \(line 2 column 1") as caught:
        resolve_credentials("reg.example", env=env, docker_config_dir=str(tmp_path))
    assert_no_secret(str(caught.value))


def test_config_json_not_utf8(tmp_path: Path) -> None:
    (tmp_path / "config.json").write_bytes(b'{"auths": "\xff"}')
    with pytest.raises(UsageError, match=r"is not UTF-8 \(byte 11\)"):
        resolve_credentials("reg.example", env={}, docker_config_dir=str(tmp_path))


def test_unreadable_config_json(tmp_path: Path) -> None:
    (tmp_path / "config.json").mkdir()
    with pytest.raises(UsageError, match="cannot read"):
        resolve_credentials("reg.example", env={}, docker_config_dir=str(tmp_path))
