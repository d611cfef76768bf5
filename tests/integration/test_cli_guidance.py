"""Errors that say what to do: each test runs the real CLI in a subprocess (and the real registry where it matters).

A registry that never answers fails within the deadline and says how often it was tried over how long;
nothing listening is named as such; a local path without ``oci:`` is pointed at ``oci:DIR``.
"""

from __future__ import annotations

import re
import socket
import threading
import time
from collections.abc import Iterator

import pytest

from inspector.errors import ExitCode
from tests.harness.paths import REPO_ROOT
from tests.harness.registry import LocalRegistry
from tests.harness.support import run_cli

LAYOUTS = REPO_ROOT / "testdata" / "layouts"


@pytest.fixture
def silent_port() -> Iterator[int]:
    """A real TCP server on loopback that accepts every connection and never sends a byte."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(64)
    held: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        server.settimeout(0.2)
        while not stop.is_set():
            try:
                conn, _ = server.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            held.append(conn)

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    yield server.getsockname()[1]
    stop.set()
    thread.join(5)
    for conn in held:
        conn.close()
    server.close()


def _closed_port() -> int:
    """A loopback port nobody listens on (bound once, then released)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


# --------------------------------------------------------------------------- deadline


def test_a_silent_registry_fails_within_a_minute_by_default(silent_port: int) -> None:
    """No flags: before the deadline, 5 attempts x 30 s timeouts + backoff took 2 m 33 s, silently."""
    started = time.monotonic()
    result = run_cli("show", f"127.0.0.1:{silent_port}/app:cache", timeout=120)
    elapsed = time.monotonic() - started
    assert result.returncode == int(ExitCode.NETWORK), result.stderr
    assert elapsed < 60, elapsed
    # By hand: attempt 1 times out at 30 s (the default --timeout); the backoff (<= 0.25 s) leaves ~19.7 s of
    # the 50 s deadline, so attempt 2 gets a 19.7 s timeout; then no time is left for a third.
    assert elapsed > 45, elapsed
    (line,) = result.stderr.splitlines()
    match = re.search(
        r"timed out talking to 127\.0\.0\.1:\d+ \((\d+) attempts over ([\d.]+) s; --deadline 50 s\)$", line
    )
    assert match, line
    assert int(match.group(1)) == 2
    assert 49 <= float(match.group(2)) <= 51


def test_deadline_after_the_subcommand_with_a_line_per_retry(silent_port: int) -> None:
    started = time.monotonic()
    result = run_cli("tags", f"127.0.0.1:{silent_port}/app", "--timeout", "1", "-v", "--deadline", "4")
    elapsed = time.monotonic() - started
    assert result.returncode == int(ExitCode.NETWORK), result.stderr
    # 4 s of attempts, plus the interpreter's start-up.
    assert 3.5 < elapsed < 8, elapsed
    retries = [
        line for line in result.stderr.splitlines() if re.search(r"; retry \d+ of 4 in [\d.]+ s$", line)
    ]
    error = result.stderr.splitlines()[-1]
    match = re.search(r"\((\d+) attempts over ([\d.]+) s; --deadline 4 s\)$", error)
    assert match, result.stderr
    # Every attempt but the last announced the retry that followed it, under -v.
    assert len(retries) == int(match.group(1)) - 1 >= 2, result.stderr
    assert all("GET http://127.0.0.1:" in line and "failed (ReadTimeout)" in line for line in retries)
    assert float(match.group(2)) <= 4.0


def test_without_verbose_no_retry_lines(silent_port: int) -> None:
    result = run_cli("tags", f"127.0.0.1:{silent_port}/app", "--timeout", "1", "--deadline", "3")
    assert result.returncode == int(ExitCode.NETWORK)
    assert len(result.stderr.splitlines()) == 1, result.stderr


# --------------------------------------------------------------------------- connection refused


def test_connection_refused_names_the_address_and_is_not_retried() -> None:
    port = _closed_port()
    started = time.monotonic()
    result = run_cli("tags", f"127.0.0.1:{port}/app", "-v")
    elapsed = time.monotonic() - started
    assert result.returncode == int(ExitCode.NETWORK)
    assert result.stderr.splitlines()[-1] == (
        f"cacheinspect: error: list tags of 127.0.0.1:{port}/app: "
        f"nothing listens at 127.0.0.1:{port} — is the registry address right?"
    )
    assert "retry" not in result.stderr
    assert elapsed < 5, elapsed  # no backoff: 4 retries used to add up to ~3 s


def test_connection_refused_spells_out_the_default_port() -> None:
    # "localhost" without a port is plain HTTP (loopback), so port 80; nothing listens there in the test box.
    with socket.socket() as probe:
        try:
            probe.connect(("127.0.0.1", 80))
        except OSError:
            pass
        else:
            pytest.skip("something listens on 127.0.0.1:80 here")
    result = run_cli("tags", "127.0.0.1/app")
    assert "nothing listens at 127.0.0.1:80 — is the registry address right?" in result.stderr


# --------------------------------------------------------------------------- local paths


@pytest.mark.parametrize(
    ("written", "meant"),
    [
        ("./buildx-cache", "oci:./buildx-cache"),
        ("/abs/dir", "oci:/abs/dir"),
        ("oci-layout://dir", "oci:dir"),
        ("../cache", "oci:../cache"),
    ],
)
@pytest.mark.parametrize("command", ["show", "diff"])
def test_a_path_without_oci_prefix_gets_did_you_mean(written: str, meant: str, command: str) -> None:
    args = ["show", written] if command == "show" else ["diff", written, "oci:x"]
    result = run_cli(*args)
    assert result.returncode == int(ExitCode.USAGE), result.stderr
    first = result.stderr.splitlines()[0]
    assert first == (
        f"cacheinspect: error: {written!r} is a local path, not a registry reference: did you mean {meant}?"
    )


def test_an_existing_layout_written_without_prefix_is_not_sent_to_docker_hub() -> None:
    # testdata/layouts/loop has an index.json: without the check, "testdata/layouts/loop" parses as
    # docker.io/testdata/layouts/loop:latest and the CLI would try Docker Hub.
    result = run_cli("show", "testdata/layouts/loop")
    assert result.returncode == int(ExitCode.USAGE), result.stderr
    assert "did you mean oci:testdata/layouts/loop?" in result.stderr
    assert "docker.io" not in result.stderr


# --------------------------------------------------------------------------- missing tags
@pytest.mark.parametrize(
    ("tag_or_repo", "hint"),
    [
        # multistage-max holds image-manifest, oci-index, docker-manifest-list (testdata/samples.json).
        # difflib's ratio of "oci-indx" and "oci-index" is 2*8/17 = 0.94; against the other two it is below
        # the 0.6 cutoff (few common letters in order), so exactly one suggestion.
        ("multistage-max:oci-indx", "closest tags in {host}/samples/multistage-max: oci-index"),
        # "zzzz" shares no character with any tag: ratio 0.
        (
            "multistage-max:zzzz",
            "no tag of {host}/samples/multistage-max is close to 'zzzz'; "
            "`cacheinspect tags {host}/samples/multistage-max` lists its 3",
        ),
        # distribution answers the tag list of an unknown repository with 404 NAME_UNKNOWN.
        (
            "no-such-repo:latest",
            "the repository {host}/samples/no-such-repo does not exist (or holds no tags)",
        ),
    ],
)
def test_a_missing_tag_lists_the_closest_tags(
    registry: LocalRegistry, seeded: dict[str, dict[str, str]], tag_or_repo: str, hint: str
) -> None:
    result = run_cli("show", f"{registry.host}/samples/{tag_or_repo}")
    assert result.returncode == int(ExitCode.NOT_FOUND), result.stderr
    lines = result.stderr.splitlines()
    assert len(lines) == 2 and "MANIFEST_UNKNOWN" in lines[0], result.stderr
    assert lines[1] == "cacheinspect: hint: " + hint.format(host=registry.host)


def test_a_missing_tag_in_diff_is_named_with_suggestions(
    registry: LocalRegistry, seeded: dict[str, dict[str, str]]
) -> None:
    repo = f"{registry.host}/samples/multistage-max"
    result = run_cli("diff", f"{repo}:image-manifest", f"{repo}:image-manfest")
    assert result.returncode == int(ExitCode.NOT_FOUND), result.stderr
    # "image-manfest" vs "image-manifest": ratio 2*13/27 = 0.96; the other two tags stay under 0.6.
    assert result.stderr.splitlines()[-1] == f"cacheinspect: hint: closest tags in {repo}: image-manifest"
