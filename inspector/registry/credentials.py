"""Where registry credentials come from, in the order users expect.

``resolve_credentials(host)`` walks the sources once and returns the first hit::

    explicit username + password (flags)                      source "--username/--password-stdin"
    CACHEINSPECT_USERNAME / CACHEINSPECT_PASSWORD              source "CACHEINSPECT_USERNAME/…"
    DOCKER_AUTH_CONFIG (JSON shaped like config.json)          source "DOCKER_AUTH_CONFIG"
    --authfile, else REGISTRY_AUTH_FILE (podman/skopeo         source "--authfile <path>",
        auth.json: the same format)                                   "REGISTRY_AUTH_FILE <path>"
    $DOCKER_CONFIG/config.json (default ~/.docker/config.json) source "DOCKER_CONFIG <path>", "<path>"
        credHelpers[host] -> credsStore -> auths[host]
    nothing                                                    None (anonymous)

The flags' credentials belong to one registry (the CLI binds them with ``same_registry``):
any other registry a command talks to gets its own source's, never these.

Secrets never appear in ``repr(Credentials)`` or in an error message: errors name
the file, variable, key or helper, and JSON errors give a position, not content.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import json
import logging
import os
import signal
import subprocess
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from inspector._redact import redact
from inspector.errors import AuthError, UsageError

__all__ = [
    "DOCKER_HUB_SERVER",
    "HELPER_OUTPUT_LIMIT",
    "HELPER_TIMEOUT",
    "SOURCES_LOOKED_AT",
    "Credentials",
    "normalize_registry_host",
    "resolve_credentials",
    "same_registry",
]

logger = logging.getLogger(__name__)

#: The key ``docker login`` writes for Docker Hub, and the server URL its helpers expect.
DOCKER_HUB_SERVER = "https://index.docker.io/v1/"
_DOCKER_HUB_HOSTS = frozenset({"docker.io", "index.docker.io", "registry-1.docker.io"})
_DOCKER_HUB = "index.docker.io"

#: Seconds a ``docker-credential-*`` helper may take before we give up on it.
HELPER_TIMEOUT = 30.0
#: Bytes read from a helper's stdout and from its stderr; its answer is a small JSON object.
HELPER_OUTPUT_LIMIT = 64 * 1024

_ENV_USERNAME = "CACHEINSPECT_USERNAME"
_ENV_PASSWORD = "CACHEINSPECT_PASSWORD"
_ENV_AUTH_CONFIG = "DOCKER_AUTH_CONFIG"
_ENV_AUTH_FILE = "REGISTRY_AUTH_FILE"
_FLAGS = "--username/--password-stdin"
_ENV_PAIR = f"{_ENV_USERNAME}/{_ENV_PASSWORD}"
#: Where ``resolve_credentials`` looks, for "no credentials found" messages.
SOURCES_LOOKED_AT = (
    "--username/--password-stdin, CACHEINSPECT_USERNAME/CACHEINSPECT_PASSWORD, DOCKER_AUTH_CONFIG, "
    "--authfile or REGISTRY_AUTH_FILE, $DOCKER_CONFIG/config.json or ~/.docker/config.json"
)
_TOKEN_USERNAME = "<token>"
_NOT_FOUND_TEXT = "credentials not found"


@dataclass(frozen=True, slots=True)
class Credentials:
    """Secrets for one registry; only ``username`` and ``source`` show in ``repr``."""

    username: str | None = None
    password: str | None = field(default=None, repr=False)
    #: docker ``identitytoken`` (an OAuth2 refresh token), or a helper's Secret when Username is "<token>".
    identity_token: str | None = field(default=None, repr=False)
    #: docker ``registrytoken``: a bearer token sent to the registry as is.
    registry_token: str | None = field(default=None, repr=False)
    #: Where they came from, for messages ("--username/--password-stdin",
    #: "DOCKER_CONFIG /x/config.json (credHelper x)").
    source: str = ""


def normalize_registry_host(key: str) -> str:
    """The lowercase ``host[:port]`` a config key or registry name stands for.

    Keys may be URLs (``https://index.docker.io/v1/``); Docker Hub's aliases all
    become ``index.docker.io``.
    """
    text = key.strip().lower()
    for prefix in ("https://", "http://"):
        if text.startswith(prefix):
            text = text[len(prefix) :]
            break
    text = text.split("/", 1)[0]
    return _DOCKER_HUB if text in _DOCKER_HUB_HOSTS else text


def _server_url(host: str) -> str:
    """What a credential helper is asked for: Docker Hub's legacy URL, else the host."""
    return DOCKER_HUB_SERVER if normalize_registry_host(host) == _DOCKER_HUB else host


def resolve_credentials(
    host: str,
    *,
    username: str | None = None,
    password: str | None = None,
    env: Mapping[str, str] | None = None,
    docker_config_dir: str | None = None,
    auth_file: str | None = None,
) -> Credentials | None:
    """Credentials for the registry at ``host`` (``host[:port]``), or None for anonymous access.

    Raises ``UsageError`` for a half-given username/password pair, a malformed
    config or a missing ``auth_file`` (``--authfile``), and ``AuthError`` when a
    configured credential helper cannot be run.
    """
    environ: Mapping[str, str] = os.environ if env is None else env

    explicit = _pair(username, password, _FLAGS, "--username", "--password")
    if explicit is not None:
        return explicit
    from_env = _pair(
        environ.get(_ENV_USERNAME), environ.get(_ENV_PASSWORD), _ENV_PAIR, _ENV_USERNAME, _ENV_PASSWORD
    )
    if from_env is not None:
        return from_env

    inline = environ.get(_ENV_AUTH_CONFIG)
    if inline is not None and inline.strip():
        config = _parse_config(inline, _ENV_AUTH_CONFIG)
        found = _from_config(config, host, _ENV_AUTH_CONFIG)
        if found is not None:
            return found

    found = _from_auth_file(host, auth_file, environ)
    if found is not None:
        return found

    label = ""
    if docker_config_dir is not None:
        config_dir = Path(docker_config_dir)
    elif environ.get("DOCKER_CONFIG"):
        config_dir = Path(environ["DOCKER_CONFIG"])
        label = "DOCKER_CONFIG "
    else:
        try:
            config_dir = Path.home() / ".docker"
        except RuntimeError:  # no HOME and no passwd entry
            logger.debug("no home directory; not reading a docker config")
            return None
    path = config_dir / "config.json"
    loaded = _load_config_file(path, required=False)
    return None if loaded is None else _from_config(loaded, host, f"{label}{path}")


def _from_auth_file(host: str, auth_file: str | None, environ: Mapping[str, str]) -> Credentials | None:
    """podman/skopeo's auth file: ``--authfile`` (must exist), else ``REGISTRY_AUTH_FILE`` (may be absent)."""
    if auth_file:
        path, label, required = Path(auth_file), "--authfile", True
    elif environ.get(_ENV_AUTH_FILE):
        path, label, required = Path(environ[_ENV_AUTH_FILE]), _ENV_AUTH_FILE, False
    else:
        return None
    config = _load_config_file(path, required=required)
    return None if config is None else _from_config(config, host, f"{label} {path}")


def _load_config_file(path: Path, *, required: bool) -> dict[str, Any] | None:
    """A docker-config-shaped JSON file; None when it is absent (unless ``required``) or empty."""
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        if required:
            raise UsageError(f"--authfile {path}: no such file") from None
        logger.debug("no credentials file at %s", path)
        return None
    except OSError as exc:
        raise UsageError(f"cannot read {path}: {exc.strerror or type(exc).__name__}") from None
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise UsageError(f"{path} is not UTF-8 (byte {exc.start})") from None
    if not text.strip():
        return None
    return _parse_config(text, str(path))


def same_registry(host: str, registry: str) -> bool:
    """True when ``host`` (what a request went to) is ``registry`` (what the user named), Docker Hub's aliases
    included: the flags' credentials go to that registry only."""
    return normalize_registry_host(host) == normalize_registry_host(registry)


def _pair(
    username: str | None, password: str | None, source: str, user_name: str, password_name: str
) -> Credentials | None:
    if not username and not password:
        return None
    if not username:
        raise UsageError(f"{password_name} was given without {user_name}")
    if not password:
        raise UsageError(f"{user_name} was given without {password_name}")
    return Credentials(username=username, password=password, source=source)


def _parse_config(text: str, where: str) -> dict[str, Any]:
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as exc:
        # exc.msg and the position describe the fault without quoting the content.
        raise UsageError(
            f"{where} is not valid JSON (line {exc.lineno} column {exc.colno}: {exc.msg})"
        ) from None
    except (RecursionError, ValueError):  # nesting or a number beyond what Python parses
        raise UsageError(
            f"{where} is not a usable JSON document (too deeply nested or an oversized number)"
        ) from None
    if not isinstance(doc, dict):
        raise UsageError(f"{where} must hold a JSON object, not {type(doc).__name__}")
    return doc


def _section(config: Mapping[str, Any], name: str, where: str) -> Mapping[str, Any]:
    value = config.get(name)
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise UsageError(f"{where}: {name!r} must be a JSON object")
    return value


def _match_key(keys: list[str], host: str) -> str | None:
    """The config key standing for ``host``: exact first, then Docker Hub's key, then by hostname."""
    wanted = normalize_registry_host(host)
    if host in keys:
        return host
    if wanted == _DOCKER_HUB and DOCKER_HUB_SERVER in keys:
        return DOCKER_HUB_SERVER
    for key in keys:
        if normalize_registry_host(key) == wanted:
            return key
    return None


def _from_config(config: Mapping[str, Any], host: str, where: str) -> Credentials | None:
    helpers = _section(config, "credHelpers", where)
    helper_key = _match_key(list(helpers), host)
    if helper_key is not None:
        name = helpers[helper_key]
        if not isinstance(name, str) or not name:
            raise UsageError(f"{where}: credHelpers[{helper_key!r}] must be a helper name")
        found = _run_helper(name, host, f"{where} (credHelper {name})")
        if found is not None:
            return found

    store = config.get("credsStore")
    if store is not None:
        if not isinstance(store, str):
            raise UsageError(f"{where}: 'credsStore' must be a helper name")
        if store:
            found = _run_helper(store, host, f"{where} (credsStore {store})")
            if found is not None:
                return found

    auths = _section(config, "auths", where)
    key = _match_key(list(auths), host)
    if key is None:
        return None
    entry = auths[key]
    if not isinstance(entry, dict):
        raise UsageError(f"{where}: auths[{key!r}] must be a JSON object")
    return _from_auth_entry(entry, key, where)


def _str_field(entry: Mapping[str, Any], name: str, key: str, where: str) -> str | None:
    value = entry.get(name)
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise UsageError(f"{where}: auths[{key!r}].{name} must be a string")
    return value


def _from_auth_entry(entry: Mapping[str, Any], key: str, where: str) -> Credentials | None:
    username = _str_field(entry, "username", key, where)
    password = _str_field(entry, "password", key, where)
    encoded = _str_field(entry, "auth", key, where)
    if encoded is not None:
        try:
            decoded = base64.b64decode(encoded, validate=True).decode("utf-8")
        except (binascii.Error, ValueError):
            raise UsageError(f"{where}: auths[{key!r}].auth is not base64 of 'user:password'") from None
        user, sep, secret = decoded.partition(":")
        if not sep:
            raise UsageError(f"{where}: auths[{key!r}].auth is not base64 of 'user:password'")
        username = user or username
        password = secret or password
    identity_token = _str_field(entry, "identitytoken", key, where)
    registry_token = _str_field(entry, "registrytoken", key, where)
    if not (password or identity_token or registry_token):
        logger.debug("%s: auths[%r] holds no secret; ignoring it", where, key)
        return None
    return Credentials(
        username=username,
        password=password,
        identity_token=identity_token,
        registry_token=registry_token,
        source=where,
    )


def _first_line(text: str) -> str:
    line = next((ln.strip() for ln in text.splitlines() if ln.strip()), "")
    return redact(line)[:200]


def _run_capped(argv: list[str], stdin: bytes) -> subprocess.CompletedProcess[str | None]:
    """Run a helper with ``HELPER_TIMEOUT`` for the whole exchange and at most ``HELPER_OUTPUT_LIMIT``
    bytes kept per stream; a stream over it comes back as None and the helper is killed."""
    deadline = time.monotonic() + HELPER_TIMEOUT
    process = subprocess.Popen(
        argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True
    )
    outputs: dict[str, bytes | None] = {}

    def drain(name: str, stream: Any) -> None:
        data = stream.read(HELPER_OUTPUT_LIMIT + 1)
        if len(data) > HELPER_OUTPUT_LIMIT:
            outputs[name] = None
            with contextlib.suppress(OSError):
                os.killpg(process.pid, signal.SIGKILL)
        else:
            outputs[name] = data
        stream.close()

    readers = [
        threading.Thread(target=drain, args=(name, stream), daemon=True)
        for name, stream in (("stdout", process.stdout), ("stderr", process.stderr))
    ]
    for reader in readers:
        reader.start()
    try:
        assert process.stdin is not None
        try:
            process.stdin.write(stdin)
            process.stdin.close()
        except BrokenPipeError:
            pass
        returncode = process.wait(timeout=HELPER_TIMEOUT)
        for reader in readers:
            reader.join(timeout=max(0.0, deadline - time.monotonic()))
        if any(reader.is_alive() for reader in readers):  # a child of the helper holds the pipe open
            raise subprocess.TimeoutExpired(argv, HELPER_TIMEOUT)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(OSError):
            os.killpg(process.pid, signal.SIGKILL)  # its own session: the helper and its children
        process.wait()
        raise

    def text(name: str) -> str | None:
        data = outputs.get(name)
        return None if data is None else data.decode("utf-8", "replace")

    return subprocess.CompletedProcess(argv, returncode, text("stdout"), text("stderr"))


def _run_helper(name: str, host: str, source: str) -> Credentials | None:
    """Ask ``docker-credential-<name> get`` for ``host``; None when it has nothing stored."""
    if not name or "\x00" in name or "/" in name:
        raise AuthError(f"credential helper name {name[:40]!r} from {source} is not a program name")
    program = f"docker-credential-{name}"
    server = _server_url(host)
    logger.debug("asking %s for %s", program, server)
    try:
        done = _run_capped([program, "get"], server.encode())
    except FileNotFoundError:
        raise AuthError(
            f"credential helper {program} (from {source}) is not installed or not on PATH",
            hint=f"install {program}, or remove it from the docker config",
        ) from None
    except subprocess.TimeoutExpired:
        raise AuthError(f"credential helper {program} did not answer within {HELPER_TIMEOUT:g} s") from None
    except OSError as exc:
        raise AuthError(
            f"credential helper {program} could not be run: {exc.strerror or type(exc).__name__}"
        ) from None
    if done.stdout is None or done.stderr is None:
        raise AuthError(
            f"credential helper {program} wrote more than {HELPER_OUTPUT_LIMIT} bytes; it was stopped"
        )
    if done.returncode != 0:
        said = f"{done.stdout}\n{done.stderr}"
        if _NOT_FOUND_TEXT in said.lower():
            logger.debug("%s has no credentials for %s", program, server)
            return None
        detail = _first_line(done.stderr) or _first_line(done.stdout)
        raise AuthError(
            f"credential helper {program} failed for {server} (exit {done.returncode})"
            + (f": {detail}" if detail else "")
        )
    try:
        doc = json.loads(done.stdout)
    except json.JSONDecodeError as exc:
        raise AuthError(
            f"credential helper {program} answered with invalid JSON (line {exc.lineno} column {exc.colno})"
        ) from None
    if not isinstance(doc, dict):
        raise AuthError(f"credential helper {program} answered with JSON that is not an object")
    username = doc.get("Username")
    secret = doc.get("Secret")
    if not isinstance(username, str) or not isinstance(secret, str):
        raise AuthError(f"credential helper {program} answered without string Username and Secret")
    if not secret:
        return None
    if username == _TOKEN_USERNAME:
        return Credentials(identity_token=secret, source=source)
    return Credentials(username=username or None, password=secret, source=source)
