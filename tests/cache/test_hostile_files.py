"""Hostile local files against the real CLI in a subprocess: an ``oci:DIR`` layout whose blobs are FIFOs
or symlinks out of the layout, and ``--dockerfile`` pointing at a FIFO, a device, binary or huge input.

The rules (README, Transport): a local file is read only when it is a regular file (checked with fstat on a
non-blocking open, so nothing waits for a FIFO's writer), a layout file only when it resolves inside the
layout directory, and at most its cap (4 MiB for a manifest or index.json, the descriptor's size for a blob,
1 MiB for a Dockerfile); a Dockerfile must be UTF-8 text without NUL bytes. Each refusal is exit 2.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import time
from pathlib import Path

import pytest

from inspector.errors import AuthError
from tests.harness.evilserver import EvilServer, Reply
from tests.harness.paths import TESTDATA
from tests.harness.support import run_cli

TAG = "image-manifest"
BOUND = 20.0  # seconds: a hang is the failure these tests look for


def _layout(tmp_path: Path) -> tuple[Path, dict[str, object]]:
    """A copy of a generated layout, and the manifest its ``image-manifest`` tag names."""
    root = tmp_path / "layout"
    shutil.copytree(TESTDATA / "layouts" / "multistage-max", root)
    index = json.loads((root / "index.json").read_text())
    entry = next(
        m for m in index["manifests"] if m["annotations"]["org.opencontainers.image.ref.name"] == TAG
    )
    manifest = json.loads(_blob(root, entry["digest"]).read_bytes())
    return root, {"entry": entry, "manifest": manifest}


def _blob(root: Path, digest: str) -> Path:
    return root / "blobs" / "sha256" / digest.removeprefix("sha256:")


def _show(*args: str) -> tuple[int, str, float]:
    started = time.monotonic()
    result = run_cli("show", *args, timeout=BOUND)
    assert "Traceback" not in result.stderr, result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("cacheinspect: error:")]
    assert len(errors) <= 1, result.stderr
    return result.returncode, errors[0] if errors else "", time.monotonic() - started


def test_a_fifo_as_the_manifest_blob_is_refused_without_waiting(tmp_path: Path) -> None:
    root, found = _layout(tmp_path)
    path = _blob(root, found["entry"]["digest"])  # type: ignore[index]
    path.unlink()
    os.mkfifo(path)  # no writer ever comes: a blocking open or read waits forever
    code, error, elapsed = _show(f"oci:{root}:{TAG}", "--no-check-blobs")
    assert code == 2, error
    assert "not a regular file" in error
    assert elapsed < BOUND


def test_a_layer_symlinked_out_of_the_layout_is_neither_statted_nor_reported(tmp_path: Path) -> None:
    root, found = _layout(tmp_path)
    layer = found["manifest"]["layers"][0]  # type: ignore[index]
    outside = tmp_path / "secret.bin"
    outside.write_bytes(b"x" * 123457)  # a size that would show in blob-size-mismatch
    path = _blob(root, layer["digest"])
    path.unlink()
    path.symlink_to(outside)
    result = run_cli("show", f"oci:{root}:{TAG}", "--json", timeout=BOUND)
    assert result.returncode == 2, result.stderr
    assert "leads outside" in result.stderr
    assert "123457" not in result.stdout + result.stderr


def test_a_symlink_inside_the_layout_is_followed(tmp_path: Path) -> None:
    root, found = _layout(tmp_path)
    path = _blob(root, found["entry"]["digest"])  # type: ignore[index]
    moved = root / "blobs" / "manifest-copy"
    path.rename(moved)
    path.symlink_to(moved)
    code, error, _ = _show(f"oci:{root}:{TAG}", "--no-check-blobs", "--json")
    assert code == 0, error


def test_index_json_symlinked_out_of_the_layout_is_refused(tmp_path: Path) -> None:
    root, _ = _layout(tmp_path)
    outside = tmp_path / "elsewhere.json"
    (root / "index.json").rename(outside)
    (root / "index.json").symlink_to(outside)
    code, error, _ = _show(f"oci:{root}:{TAG}", "--no-check-blobs")
    assert code == 2, error
    assert "leads outside" in error


@pytest.mark.parametrize("kind", ["fifo", "dev-zero", "directory"])
def test_dockerfile_that_is_not_a_regular_file_is_a_usage_error(tmp_path: Path, kind: str) -> None:
    if kind == "fifo":
        dockerfile = tmp_path / "Dockerfile"
        os.mkfifo(dockerfile)
    elif kind == "dev-zero":
        dockerfile = Path("/dev/zero")  # endless: read_text() would read until memory runs out
    else:
        dockerfile = tmp_path
    root, _ = _layout(tmp_path)
    code, error, elapsed = _show(f"oci:{root}:{TAG}", "--dockerfile", str(dockerfile))
    assert code == 2, error
    assert "not a regular file" in error
    assert elapsed < BOUND


@pytest.mark.parametrize(
    "content, message",
    [
        (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + bytes(range(256)), "not UTF-8 text"),
        (b"FROM alpine\x00\nRUN true\n", "NUL bytes"),
        (b"FROM alpine\n" + b"# padding\n" * 110_000, "1048576 byte limit"),  # 1.1 MB of comments
    ],
    ids=["binary", "nul", "over-1-mib"],
)
def test_dockerfile_binary_or_huge_is_a_usage_error(tmp_path: Path, content: bytes, message: str) -> None:
    dockerfile = tmp_path / "Dockerfile"
    dockerfile.write_bytes(content)
    root, _ = _layout(tmp_path)
    code, error, _ = _show(f"oci:{root}:{TAG}", "--dockerfile", str(dockerfile))
    assert code == 2, error
    assert message in error


# --------------------------------------------------------------------------- a credential helper


def _helper(tmp_path: Path, body: str) -> dict[str, str]:
    """``docker-credential-evil`` on PATH, named by the Docker config's ``credsStore``."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    helper = bin_dir / "docker-credential-evil"
    helper.write_text(f"#!{sys.executable}\nimport sys\n{body}\n")
    helper.chmod(0o755)
    (tmp_path / "config.json").write_text(json.dumps({"credsStore": "evil"}))
    return {"DOCKER_CONFIG": str(tmp_path), "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}"}


def _challenging_registry() -> EvilServer:
    return EvilServer(lambda request: Reply(401, {"WWW-Authenticate": 'Basic realm="evil"'}))


def test_a_helper_writing_megabytes_is_stopped_at_64_kib(tmp_path: Path) -> None:
    # 8 MiB on stdout then exit 0: read in full it is "invalid JSON"; capped, the helper is stopped.
    env = _helper(tmp_path, "sys.stdout.write('x' * (8 << 20)); sys.stdout.flush()")
    with _challenging_registry() as evil:
        result = run_cli("tags", f"{evil.host}/app", env=env, timeout=BOUND)
    assert result.returncode == 4, result.stderr
    assert "wrote more than 65536 bytes" in result.stderr
    assert "Traceback" not in result.stderr


def test_a_helper_that_never_closes_its_output_is_stopped_at_the_timeout(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from inspector.registry import credentials

    # The helper exits at once but leaves a child holding stdout open: waiting for EOF would never end.
    env = _helper(
        tmp_path,
        "import subprocess; subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)'])",
    )
    monkeypatch.setattr(credentials, "HELPER_TIMEOUT", 1.0)
    monkeypatch.setenv("DOCKER_CONFIG", env["DOCKER_CONFIG"])
    monkeypatch.setenv("PATH", env["PATH"])
    started = time.monotonic()
    with pytest.raises(AuthError, match="did not answer within 1 s"):
        credentials.resolve_credentials("127.0.0.1:9")
    assert time.monotonic() - started < 10
