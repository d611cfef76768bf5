"""`cacheinspect probe` exit codes when no cache form is confirmed, run as the real CLI in a subprocess.

No confirmed form is never a pass. The distribution spec's API version check says what a
registry is: ``GET /v2/`` answers 200 or 401, and "404 Not Found, or other unexpected status"
means the endpoint does not implement the V2 API (distribution ``docs/spec/api.md``, *API Version
Check*). So a plain web server, the usual result of a wrong port or URL, exits 3; a real registry
that refuses every form exits 9.
"""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.harness.paths import schema
from tests.harness.registry import LocalRegistry, RegistryUnavailable, start_registry
from tests.harness.support import registry_unavailable, run_cli, validate_json
from tests.harness.vendor_proxy import check_junit, seed_repository, storage_state

SCHEMA = schema("probe")


@contextmanager
def web_server(directory: Path) -> Iterator[str]:
    """``python -m http.server`` serving ``directory`` on a free loopback port; yields HOST:PORT."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "http.server",
            str(port),
            "--bind",
            "127.0.0.1",
            "--directory",
            str(directory),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                httpx.get(f"http://127.0.0.1:{port}/", timeout=1)
                break
            except httpx.TransportError:
                if time.monotonic() > deadline or process.poll() is not None:
                    pytest.fail("python -m http.server did not start")
                time.sleep(0.05)
        yield f"127.0.0.1:{port}"
    finally:
        process.terminate()
        process.wait(timeout=10)


def probe(*args: str) -> tuple[int, dict[str, Any]]:
    done = run_cli("probe", *args, "--json", timeout=60)
    assert "Traceback" not in done.stderr, done.stderr
    doc: dict[str, Any] = json.loads(done.stdout)
    validate_json(doc, SCHEMA)
    assert doc["exitCode"] == done.returncode
    return done.returncode, doc


def check(doc: dict[str, Any], check_id: str) -> dict[str, Any]:
    found: dict[str, Any] = next(c for c in doc["checks"] if c["id"] == check_id)
    return found


@pytest.mark.parametrize("page", [False, True], ids=["404", "html-page"])
def test_a_plain_web_server_is_not_a_registry(page: bool, tmp_path: Path) -> None:
    """A typo in the port or host reaches a web server: exit 3 (configuration), never a green pre-flight.

    ``http.server`` answers ``GET /v2/`` with 404 (no such directory), or, when ``v2/index.html``
    exists, with 200 ``text/html`` and no ``Docker-Distribution-Api-Version`` header: a web page.
    """
    site = tmp_path / "site"
    site.mkdir()
    if page:
        (site / "v2").mkdir()
        (site / "v2" / "index.html").write_text("<html><body>docs</body></html>")
    with web_server(site) as host:
        code, doc = probe(f"{host}/acme/app")
        assert code == 3
        discovery = check(doc, "discovery")
        assert discovery["status"] == "config-error"
        assert discovery["answer"]["status"] == (200 if page else 404)
        assert "no registry API" in discovery["summary"]
        # nothing else could run; the forms are blocked behind discovery, and the reason says so
        assert all(c["status"] == "skipped" for c in doc["checks"] if c["id"] != "discovery")
        assert doc["recommendation"]["form"] is None
        assert "discovery" in doc["recommendation"]["reason"]
        assert doc["requests"] == 1  # GET /v2/ only: nothing is written to a server that is not a registry

        junit = tmp_path / "probe.xml"
        cache_to = f"type=registry,ref={host}/acme/app:main,mode=max"
        done = run_cli("probe", f"{host}/acme/app", "--cache-to", cache_to, "--junit", str(junit))
    assert done.returncode == 3, done.stdout + done.stderr
    assert "Traceback" not in done.stderr
    assert "config-error" in done.stdout and "no registry API" in done.stdout
    root = check_junit(junit.read_text())
    failed = {c.get("name") for c in root.iter("testcase") if c.find("failure") is not None}
    assert failed == {"discovery", "cache-to"}


@pytest.fixture(scope="module")
def read_only_registry(
    registry: LocalRegistry, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[LocalRegistry]:
    """A second distribution 2.8.2 serving the session registry's storage in read-only maintenance mode.

    distribution's ``storage.maintenance.readonly`` refuses every upload with 405 (checked by hand:
    ``POST /v2/a/b/blobs/uploads/`` → ``405 Method Not Allowed``, ``Allow: GET, HEAD``).
    """
    data = registry.root / "data"
    config = {
        "storage": {
            "filesystem": {"rootdirectory": str(data)},
            "maintenance": {"readonly": {"enabled": True}, "uploadpurging": {"enabled": False}},
        }
    }
    try:
        instance = start_registry(tmp_path_factory.mktemp("registry-readonly"), extra_config=config)
    except RegistryUnavailable as exc:
        registry_unavailable(str(exc))
        raise
    yield instance
    instance.stop()


def test_a_registry_that_refuses_every_form_exits_9(
    registry: LocalRegistry, read_only_registry: LocalRegistry, tmp_path: Path
) -> None:
    """Uploads refused (405): no form can be written, whatever its media type. Exit 9 with and without
    ``--cache-to`` (this run exited 0 before: every form check was only "skipped")."""
    repo = "probe/read-only"
    seed_repository(registry.url, repo)
    seed_repository(registry.url, repo, "other")
    before = storage_state(registry.root, repo)
    target = f"{read_only_registry.host}/{repo}"
    junit = tmp_path / "probe.xml"
    code, doc = probe(target, "--family", "distribution", "--junit", str(junit))
    assert code == 9
    # Only the check that makes the run fail is a JUnit failure. distribution 2.8.2 ignores ?n= (two tags
    # listed for n=1): tags-n is unsupported, a fact that decides nothing, so a passed case.
    outcomes = junit_outcomes(junit)
    assert {name for name, outcome in outcomes.items() if outcome in ("failure", "error")} == {"blob-upload"}
    assert check(doc, "tags-n")["status"] == "unsupported"
    assert (outcomes["tags-n"], outcomes["manifest-image"]) == ("passed", "skipped")
    upload = check(doc, "blob-upload")
    assert upload["status"] == "unsupported" and upload["answer"]["status"] == 405
    for check_id in ("manifest-image", "manifest-index", "manifest-list"):
        found = check(doc, check_id)
        assert (found["status"], found["blockedBy"]) == ("skipped", "blob-upload")
    assert "refused every cache form" in doc["recommendation"]["reason"]

    code, doc = probe(target, "--family", "distribution", "--cache-to", f"type=registry,ref={target}:main")
    assert code == 9 and doc["cacheTo"]["verdict"] == "will-not-work"
    assert doc["cacheTo"]["reason"].startswith("blob-upload:")
    assert storage_state(registry.root, repo) == before


def junit_outcomes(path: Path) -> dict[str, str]:
    """Each test case's outcome: failure, error, skipped or passed."""
    root = check_junit(path.read_text())
    out: dict[str, str] = {}
    for case in root.iter("testcase"):
        outcome = next((c.tag for c in case if c.tag in ("failure", "error", "skipped")), "passed")
        out[str(case.get("name"))] = outcome
    return out
