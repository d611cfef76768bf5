"""Names end to end: `show --dockerfile`, `--resolve-bases` and `--image` against the real registry.

The expected labels, bases and records come from the fixture generator, which knows the truth (it built the
caches from the Dockerfiles); the reader only sees the registry.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

import httpx
import pytest

from inspector.cache.analysis import source_record_key
from inspector.cache.naming.bases import resolve_base
from inspector.cache.naming.dockerfile import BaseConfig
from inspector.cli import run
from inspector.oci.digest import sha256_digest
from inspector.oci.models import Platform
from inspector.oci.reference import parse_reference
from inspector.registry.client import ClientOptions, RegistryClient
from tests.harness.paths import TESTDATA
from tests.harness.registry import LocalRegistry
from tests.integration.test_repo import push_blob

NAMED = ["named-build", "named-build-min", "scratch-and-link", "multi-platform"]


def sample(samples: list[dict[str, Any]], name: str) -> dict[str, Any]:
    return next(s for s in samples if s["name"] == name)


def show(capsys: pytest.CaptureFixture[str], *args: str) -> dict[str, Any]:
    assert run(["show", *args, "--json", "--no-check-blobs"]) == 0, capsys.readouterr().err
    doc: dict[str, Any] = json.loads(capsys.readouterr().out)
    return doc


def labels_by_record(doc: dict[str, Any]) -> dict[int, tuple[str | None, str | None]]:
    return {
        step["recordIndex"]: (step["instruction"], step["basis"])
        for stage in doc["stages"]
        for step in stage["steps"]
    }


def expected_labels(entry: dict[str, Any], *, platforms: bool) -> dict[int, set[str]]:
    """record index -> the labels BuildKit prints for it (several when identical steps collapse)."""
    by_record: dict[int, set[str]] = {}
    config_records = None
    for step in entry["expected_steps"]:
        label = step["label"] if platforms else step["label"].replace(f"[{step['platform']} ", "[")
        if step.get("link_copy_record"):
            # COPY --link: the MergeOp record prints "LINK COPY …", the copy chain "COPY …".
            by_record.setdefault(step["record_index"], set()).add(
                step["link_label"] if platforms else step["link_label"].replace(f"[{step['platform']} ", "[")
            )
            config_records = config_records or _record_indexes(entry)
            for index in config_records.get(step["link_copy_record"], []):
                by_record.setdefault(index, set()).add(label)
            continue
        by_record.setdefault(step["record_index"], set()).add(label)
    return by_record


def _record_indexes(entry: dict[str, Any]) -> dict[str, list[int]]:
    layout = TESTDATA / entry["layout"]
    index = json.loads((layout / "index.json").read_text())
    cache = next(
        m for m in index["manifests"] if m["annotations"]["org.opencontainers.image.ref.name"] == "latest"
    )
    manifest = json.loads((layout / "blobs" / "sha256" / cache["digest"][7:]).read_text())
    config = json.loads((layout / "blobs" / "sha256" / manifest["config"]["digest"][7:]).read_text())
    out: dict[str, list[int]] = {}
    for i, record in enumerate(config["records"]):
        out.setdefault(record["digest"], []).append(i)
    return out


def dockerfile_args(entry: dict[str, Any]) -> list[str]:
    args = ["--dockerfile", str(TESTDATA / entry["dockerfile"])]
    for key, value in (entry.get("build_args") or {}).items():
        args += ["--build-arg", f"{key}={value}"]
    if entry.get("target"):
        args += ["--target", entry["target"]]
    return args


@pytest.mark.parametrize("name", [n for n in NAMED if n != "multi-platform"])
def test_dockerfile_names_every_step(
    registry: LocalRegistry,
    seeded: dict[str, dict[str, str]],
    samples: list[dict[str, Any]],
    capsys: pytest.CaptureFixture[str],
    name: str,
) -> None:
    entry = sample(samples, name)
    doc = show(capsys, f"{registry.host}/samples/{name}:latest", *dockerfile_args(entry))
    got = labels_by_record(doc)
    for record, labels in expected_labels(entry, platforms=False).items():
        instruction, basis = got[record]
        assert instruction is not None and set(instruction.split(" | ")) == labels, record
        assert basis == "matched"
    assert not [n for n in doc["notes"] if "ambiguous" in n or "explains only" in n]


@pytest.mark.parametrize("name", ["named-build", "named-build-min", "multi-platform"])
def test_resolve_bases_names_them_exactly(
    registry: LocalRegistry,
    seeded: dict[str, dict[str, str]],
    samples: list[dict[str, Any]],
    capsys: pytest.CaptureFixture[str],
    name: str,
) -> None:
    entry = sample(samples, name)
    doc = show(
        capsys,
        f"{registry.host}/samples/{name}:latest",
        *dockerfile_args(entry),
        "--build-arg",
        f"REGISTRY={registry.host}",
        "--resolve-bases",
    )
    bases = {
        tuple(sorted(stage["base"]["rootRecords"])): stage["base"]
        for stage in doc["stages"]
        if stage["base"]["rootRecords"]
    }
    for expected in entry["expected_bases"]:
        base = bases[tuple(sorted(expected["root_records"]))]
        assert base["basis"] == "exact"
        assert base["name"] == expected["ref"].replace("docker.io", registry.host, 1)
        assert base["platform"] == expected["platform"]
    # With platforms known, multi-platform labels carry their platform as BuildKit prints them.
    got = labels_by_record(doc)
    multi = len(entry["platforms"]) > 1
    for record, labels in expected_labels(entry, platforms=multi).items():
        instruction, _ = got[record]
        assert instruction is not None and set(instruction.split(" | ")) == labels, (
            record,
            instruction,
            labels,
        )


def test_resolving_a_base_the_cache_does_not_use_is_a_note(
    registry: LocalRegistry, seeded: dict[str, dict[str, str]], capsys: pytest.CaptureFixture[str]
) -> None:
    doc = show(
        capsys,
        f"{registry.host}/samples/multistage-max:image-manifest",
        "--base",
        f"{registry.host}/library/alpine:3.20",
        "--base",
        f"{registry.host}/library/nope:1",
    )
    assert any("does not match any base" in n for n in doc["notes"])
    assert any("could not resolve base" in n and "nope" in n for n in doc["notes"])


@pytest.mark.parametrize("name", ["named-build", "multi-platform"])
def test_image_provenance_gives_exact_labels(
    registry: LocalRegistry,
    seeded: dict[str, dict[str, str]],
    samples: list[dict[str, Any]],
    capsys: pytest.CaptureFixture[str],
    name: str,
) -> None:
    entry = sample(samples, name)
    doc = show(
        capsys, f"{registry.host}/samples/{name}:latest", "--image", f"{registry.host}/samples/{name}:image"
    )
    got = labels_by_record(doc)
    expected = expected_labels(entry, platforms=False)
    exact = {record: label for record, (label, basis) in got.items() if basis == "exact"}
    # BuildKit maps in provenance only the layers that had blobs when it attested: the final stage's chain.
    assert exact, "provenance named nothing"
    for record, label in exact.items():
        assert label is not None
        if len(entry["platforms"]) == 1:
            assert label in expected[record]
        else:  # no platform is known here: same stage and step, text may keep $TARGETARCH unexpanded
            assert label.split("] ", 1)[0] in {w.split("] ", 1)[0] for w in expected[record]}
    final_steps = [s for s in entry["expected_steps"] if s["stage"] not in ("build", "test")]
    assert all(got[s["record_index"]][1] == "exact" for s in final_steps)


def test_graph_outputs(
    registry: LocalRegistry,
    seeded: dict[str, dict[str, str]],
    samples: list[dict[str, Any]],
    capsys: pytest.CaptureFixture[str],
) -> None:
    entry = sample(samples, "named-build")
    ref = f"{registry.host}/samples/named-build:latest"
    assert run(["show", ref, *dockerfile_args(entry), "--graph", "mermaid", "--no-check-blobs"]) == 0
    mermaid = capsys.readouterr().out
    assert mermaid.startswith("flowchart TD\n")
    assert "build + test" in mermaid and "-.->|COPY --from|" in mermaid and "-->|FROM|" in mermaid
    assert run(["show", ref, "--graph", "dot", "--no-check-blobs"]) == 0
    dot = capsys.readouterr().out
    assert dot.startswith("digraph cache {") and dot.rstrip().endswith("}")
    assert dot.count("->") == mermaid.count("-->") + mermaid.count("-.->")
    assert run(["show", ref, "--graph", "svg"]) == 2
    assert "expected 'mermaid' or 'dot'" in capsys.readouterr().err


def _put_manifest(host: str, repository: str, reference: str, document: dict[str, Any]) -> str:
    raw = json.dumps(document).encode()
    response = httpx.put(
        f"http://{host}/v2/{repository}/manifests/{reference}",
        content=raw,
        headers={"Content-Type": document["mediaType"]},
    )
    assert response.status_code == 201, response.text
    return "sha256:" + hashlib.sha256(raw).hexdigest()


def test_a_windows_base_resolves_to_the_key_with_its_os_version_and_features(registry: LocalRegistry) -> None:
    """Issue 13.6: the manifest key of a Windows base carries OSVersion/OSFeatures, so it matches.

    source/containerimage/pull.go mainManifestKey marshals {Digest, OS, Arch, Variant omitempty, OSVersion
    omitempty, OSFeatures omitempty, Limit omitempty} of the platform dockerfile2llb took from the image
    (convert.go copies img.OSVersion and img.OSFeatures into d.platform). The index entry's platform here
    carries os.version 10.0.20348.2527 and os.features [win32k], so the key is the sha256 of the Go JSON
    below, written by hand; without those two fields the key would be another digest and never match.
    """
    repo = "bases/windows"
    config = {
        "architecture": "amd64",
        "os": "windows",
        "os.version": "10.0.20348.2527",
        "config": {"Env": ["APP=1", "EMPTY=", "EQ=a=b"], "WorkingDir": "/app"},
        "rootfs": {"type": "layers", "diff_ids": ["sha256:" + "1" * 64]},
    }
    config_descriptor = push_blob(registry.host, repo, json.dumps(config).encode())
    layer = push_blob(registry.host, repo, b"windows layer")
    manifest = {
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {**config_descriptor, "mediaType": "application/vnd.oci.image.config.v1+json"},
        "layers": [layer],
    }
    manifest_digest = _put_manifest(registry.host, repo, "windows-amd64", manifest)
    platform = {
        "architecture": "amd64",
        "os": "windows",
        "os.version": "10.0.20348.2527",
        "os.features": ["win32k"],
    }
    index = {
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": [
            {
                "mediaType": manifest["mediaType"],
                "digest": manifest_digest,
                "size": len(json.dumps(manifest).encode()),
                "platform": platform,
            }
        ],
    }
    index_digest = _put_manifest(registry.host, repo, "ltsc2022", index)
    go_json = (
        f'{{"Digest":"{index_digest}","OS":"windows","Arch":"amd64",'
        '"OSVersion":"10.0.20348.2527","OSFeatures":["win32k"]}'
    )
    expected = source_record_key(sha256_digest(go_json))
    with RegistryClient(ClientOptions()) as client:
        (resolved,) = resolve_base(client, parse_reference(f"{registry.host}/{repo}:ltsc2022"))
        assert resolved.platform == Platform("windows", "amd64", "", "10.0.20348.2527", ("win32k",))
        assert resolved.record_keys[0] == expected
        # Its config's Env ("K=V", split at the first "=") and WorkingDir are what labels expand.
        assert resolved.config == BaseConfig({"APP": "1", "EMPTY": "", "EQ": "a=b"}, "/app")
        # A single manifest (no index): the platform comes from the image config's os.version (no features).
        (single,) = resolve_base(client, parse_reference(f"{registry.host}/{repo}:windows-amd64"))
    go_json = f'{{"Digest":"{manifest_digest}","OS":"windows","Arch":"amd64","OSVersion":"10.0.20348.2527"}}'
    assert single.record_keys[0] == source_record_key(sha256_digest(go_json))
