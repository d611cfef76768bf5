"""`cacheinspect show` and `tags` end to end against a real docker-registry seeded by oras-py."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from inspector.cli import run
from inspector.oci.digest import sha256_digest
from tests.harness.paths import TESTDATA, schema
from tests.harness.registry import LocalRegistry
from tests.harness.support import validate_json

SCHEMA = schema("show")


def show_json(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, dict[str, Any]]:
    code = run(["show", *args, "--json"])
    out = capsys.readouterr().out
    return code, json.loads(out)


def sample(samples: list[dict[str, Any]], name: str) -> dict[str, Any]:
    return next(s for s in samples if s["name"] == name)


def cache_samples() -> list[tuple[str, str]]:
    entries = json.loads((TESTDATA / "samples.json").read_text())
    return [(s["name"], tag) for s in entries if s["name"] != "not-a-cache" for tag in s["tags"]]


@pytest.mark.parametrize(("name", "tag"), cache_samples())
def test_every_sample_in_the_registry(
    registry: LocalRegistry,
    seeded: dict[str, dict[str, str]],
    samples: list[dict[str, Any]],
    capsys: pytest.CaptureFixture[str],
    name: str,
    tag: str,
) -> None:
    entry = sample(samples, name)
    code, doc = show_json(capsys, f"{registry.host}/samples/{name}:{tag}")
    assert code == 0
    validate_json(doc, SCHEMA)
    assert doc["digest"] == seeded[name][tag]
    assert doc["form"] == entry["forms"][tag]
    assert len(doc["layers"]) == entry["layers"]
    if "config-invalid" in entry["expected_problems"]:  # nothing of the config is trusted
        assert (doc["records"], doc["mode"], doc["stages"]) == ([], None, [])
    else:
        assert len(doc["records"]) == entry["records"]
        assert doc["mode"] == entry["mode"]
    assert sorted({p["code"] for p in doc["health"]["problems"] if p["severity"] == "error"}) == sorted(
        entry["expected_problems"]
    )
    assert doc["health"]["ok"] is (not entry["expected_problems"])
    if doc["stages"]:
        # Every layer blob of the cache is attributed to some stage's base or step.
        attributed = {d for stage in doc["stages"] for d in stage["layers"]}
        assert attributed | set(doc["unattributedLayers"]) == {layer["digest"] for layer in doc["layers"]}
    assert doc["totalSize"] == sum(layer["size"] for layer in doc["layers"])


def test_three_wire_forms_and_the_local_layout_agree(
    registry: LocalRegistry, seeded: dict[str, dict[str, str]], capsys: pytest.CaptureFixture[str]
) -> None:
    views = []
    for tag in ("image-manifest", "oci-index", "docker-manifest-list"):
        views.append(show_json(capsys, f"{registry.host}/samples/multistage-max:{tag}")[1])
    views.append(show_json(capsys, f"oci:{TESTDATA / 'layouts' / 'multistage-max'}:oci-index")[1])
    forms = [v["form"] for v in views]
    assert forms == ["image-manifest", "oci-index", "docker-manifest-list", "oci-index"]
    assert len({v["digest"] for v in views[:3]}) == 3  # three different documents...
    assert len({v["config"]["digest"] for v in views}) == 1  # ...wrapping one config

    def shape(view: dict[str, Any]) -> list[Any]:
        return [
            (s["base"]["label"], s["layers"], [(st["number"], st["layers"]) for st in s["steps"]])
            for s in view["stages"]
        ]

    assert all(shape(v) == shape(views[0]) for v in views)
    assert all(
        [layer["digest"] for layer in v["layers"]] == [layer["digest"] for layer in views[0]["layers"]]
        for v in views
    )
    assert len(views[0]["stages"]) == 2
    build, final = views[0]["stages"]
    assert build["base"]["verified"] and len(build["base"]["layers"]) == 3
    assert [step["number"] for step in build["steps"]] == [2, 3, 4, 5, 6]
    assert final["steps"][-1]["inputs"] == [
        {"slot": 1, "kind": "stage", "stage": 0, "selector": sha256_digest("/out/app")}
    ]
    # the docker manifest list spells layer types the Docker way
    assert {layer["mediaType"] for layer in views[2]["layers"]} == {
        "application/vnd.docker.image.rootfs.diff.tar.gzip"
    }


def test_missing_blob_is_reported_with_its_digest_and_strict_exits_10(
    registry: LocalRegistry,
    seeded: dict[str, dict[str, str]],
    samples: list[dict[str, Any]],
    capsys: pytest.CaptureFixture[str],
) -> None:
    (removed,) = sample(samples, "missing-blob")["removed_blobs"]
    ref = f"{registry.host}/samples/missing-blob:latest"
    code, doc = show_json(capsys, ref)
    assert code == 0
    problems = [p for p in doc["health"]["problems"] if p["code"] == "blob-missing"]
    assert [p["digest"] for p in problems] == [removed]
    assert next(layer for layer in doc["layers"] if layer["digest"] == removed)["present"] is False
    broken = [r for r in doc["records"] if r["status"] in ("broken", "partial")]
    parents = {layer["index"]: layer for layer in doc["configLayers"]}

    def chain(top: int) -> list[str]:  # a result's chain: its top layer and the parents below it
        blobs = []
        while top != -1:
            blobs.append(parents[top]["blob"])
            top = parents[top]["parent"]
        return blobs

    assert broken and all(
        any(removed in chain(result["layerIndex"]) for result in r["results"]) for r in broken
    )
    assert run(["show", ref, "--strict"]) == 10
    human = capsys.readouterr().out
    assert "UNHEALTHY" in human and removed[:19] in human
    assert run(["show", ref, "--strict", "--no-check-blobs", "--json"]) == 0  # not checked, not known missing
    capsys.readouterr()


def test_oversized_config_and_loop_verdicts(
    registry: LocalRegistry, seeded: dict[str, dict[str, str]], capsys: pytest.CaptureFixture[str]
) -> None:
    _, big = show_json(capsys, f"{registry.host}/samples/oversized-config:latest")
    assert big["config"]["size"] > 1 << 20
    assert [p["code"] for p in big["health"]["problems"] if p["severity"] == "error"] == ["config-too-large"]
    _, loop = show_json(capsys, f"{registry.host}/samples/loop:latest")
    (problem,) = [p for p in loop["health"]["problems"] if p["code"] == "config-invalid"]
    assert "looping layer" in problem["message"]
    assert loop["stages"] == [] and loop["layers"]


@pytest.mark.parametrize(("tag", "words"), [("image", "container image"), ("inline-cache", "inline cache")])
def test_not_a_cache_says_what_it_is(
    registry: LocalRegistry,
    seeded: dict[str, dict[str, str]],
    capsys: pytest.CaptureFixture[str],
    tag: str,
    words: str,
) -> None:
    assert run(["show", f"{registry.host}/samples/not-a-cache:{tag}"]) == 8
    err = capsys.readouterr().err
    assert words in err
    assert "not a registry cache" in err or "not a BuildKit cache" in err
    assert "Traceback" not in err


@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        (["show", "{host}/samples/multistage-max:nope"], 3, "MANIFEST_UNKNOWN"),
        (["show", "{host}/samples/no-such-repo:latest"], 3, "MANIFEST_UNKNOWN"),  # distribution 2.8 says so
        (["show", "{host}/Samples/x"], 2, "lowercase"),
        (["show", "oci:/nonexistent/dir"], 2, "no such directory"),
        (["show", "oci:{testdata}/layouts/multistage-max:nope"], 3, "no tag 'nope'"),
        (["tags", "{host}/samples/multistage-max:tag"], 2, "without tag"),
        (["show", "127.0.0.1:1/x:y", "--timeout", "2"], 6, "nothing listens at 127.0.0.1:1 — is the"),
        (["show", "{host}/x:y", "--username", "u"], 2, "--password-stdin"),
    ],
)
def test_errors_are_one_line_with_documented_exit_codes(
    registry: LocalRegistry,
    seeded: dict[str, dict[str, str]],
    capsys: pytest.CaptureFixture[str],
    args: list[str],
    code: int,
    message: str,
) -> None:
    argv = [a.format(host=registry.host, testdata=TESTDATA) for a in args]
    assert run(argv) == code
    captured = capsys.readouterr()
    assert message in captured.err
    assert captured.err.count("\n") <= 2 and "Traceback" not in captured.err


def test_json_errors_are_json(
    registry: LocalRegistry, seeded: dict[str, dict[str, str]], capsys: pytest.CaptureFixture[str]
) -> None:
    assert run(["show", f"{registry.host}/samples/multistage-max:nope", "--json"]) == 3
    doc = json.loads(capsys.readouterr().out)
    assert doc["error"]["exitCode"] == 3 and doc["error"]["code"] == "NotFound"


def test_tags(
    registry: LocalRegistry, seeded: dict[str, dict[str, str]], capsys: pytest.CaptureFixture[str]
) -> None:
    assert run(["tags", f"{registry.host}/samples/multistage-max"]) == 0
    assert sorted(capsys.readouterr().out.split()) == ["docker-manifest-list", "image-manifest", "oci-index"]
    assert run(["tags", f"{registry.host}/samples/not-a-cache", "--json", "-n", "1"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["repository"] == f"{registry.host}/samples/not-a-cache"
    assert sorted(doc["tags"]) == ["image", "inline-cache"]


def test_realworld_local_export_without_its_layers(
    tmp_path: Path, realworld: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A real 2026 BuildKit local export whose layer blobs were never committed: every layer is missing."""
    manifest = (realworld / "10-local-2026-oci-image-manifest-cacheconfig.json").read_bytes()
    config = (realworld / "11-local-2026-cacheconfig.json").read_bytes()
    blobs = tmp_path / "blobs" / "sha256"
    blobs.mkdir(parents=True)
    for data in (manifest, config):
        (blobs / sha256_digest(data).hex).write_bytes(data)
    (tmp_path / "index.json").write_text(
        json.dumps(
            {
                "schemaVersion": 2,
                "manifests": [
                    {
                        "mediaType": "application/vnd.oci.image.manifest.v1+json",
                        "digest": sha256_digest(manifest),
                        "size": len(manifest),
                        "annotations": {"org.opencontainers.image.ref.name": "latest"},
                    }
                ],
            }
        )
    )
    code, doc = show_json(capsys, f"oci:{tmp_path}")
    assert code == 0
    validate_json(doc, SCHEMA)
    assert doc["health"]["ok"] is False
    assert len([p for p in doc["health"]["problems"] if p["code"] == "blob-missing"]) == 10
    (stage,) = doc["stages"]
    assert stage["base"]["verified"] and len(stage["base"]["layers"]) == 5 and len(stage["steps"]) == 5


def test_console_script_end_to_end(registry: LocalRegistry, seeded: dict[str, dict[str, str]]) -> None:
    """The installed entry points, as a user runs them: output piped, so no progress bar on stderr."""
    exe = shutil.which("cacheinspect") or pytest.fail("the cacheinspect console script is not installed")
    version = subprocess.run([exe, "--version"], capture_output=True, text=True, check=True)
    assert version.stdout.startswith("cacheinspect ")
    shown = subprocess.run(
        [
            sys.executable,
            "-m",
            "inspector",
            "show",
            f"{registry.host}/samples/multistage-max:oci-index",
            "--json",
        ],
        capture_output=True,
        text=True,
    )
    assert shown.returncode == 0 and shown.stderr == ""
    assert json.loads(shown.stdout)["form"] == "oci-index"
    human = subprocess.run(
        [exe, "show", f"{registry.host}/samples/multistage-min:latest"], capture_output=True, text=True
    )
    assert (
        human.returncode == 0
        and "stage 2" in human.stdout
        and "health" in human.stdout
        and human.stderr == ""
    )


def test_blob_checks_reuse_keep_alive_connections(
    registry: LocalRegistry, seeded: dict[str, dict[str, str]]
) -> None:
    """HEAD answers must be drained so their connections go back to the pool (one per worker, not per blob)."""
    import httpx

    from inspector.cache.report import inspect_cache
    from inspector.cache.source import RegistrySource
    from inspector.oci.reference import parse_reference
    from inspector.registry.client import ClientOptions, RegistryClient

    opened: list[int] = []

    class CountingTransport(httpx.HTTPTransport):
        def handle_request(self, request: httpx.Request) -> httpx.Response:
            response = super().handle_request(request)
            stream = response.extensions.get("network_stream")
            if stream is not None and id(stream) not in opened:
                opened.append(id(stream))
            return response

    with RegistryClient(ClientOptions(concurrency=2), transport=CountingTransport()) as client:
        report = inspect_cache(
            RegistrySource(client, parse_reference(f"{registry.host}/samples/multistage-max:oci-index"))
        )
        assert all(layer.present for layer in report.layers) and len(report.layers) == 10
    assert len(opened) <= 3, f"{len(opened)} connections for {len(report.layers) + 2} requests"
