"""The session registry holds every sample exactly as ``testdata/`` has it: pushed children first, byte for byte.

The expected bytes and digests are read from the OCI layouts in ``testdata/`` (what the fixture generator wrote),
not from the registry, so a seeding bug that pushes the wrong document or skips an index's children is caught.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import httpx

from tests.harness.paths import TESTDATA
from tests.harness.registry import LocalRegistry


def sha(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def _sample(name: str) -> dict[str, Any]:
    samples: list[dict[str, Any]] = json.loads((TESTDATA / "samples.json").read_text())
    return next(s for s in samples if s["name"] == name)


def _tagged(entry: dict[str, Any], tag: str) -> tuple[str, bytes]:
    layout: Path = TESTDATA / entry["layout"]
    index = json.loads((layout / "index.json").read_bytes())
    top = next(m for m in index["manifests"] if m["annotations"]["org.opencontainers.image.ref.name"] == tag)
    return top["digest"], (layout / "blobs" / "sha256" / top["digest"].removeprefix("sha256:")).read_bytes()


def test_seed_sample_honours_push_and_children_first(
    registry: LocalRegistry, seeded: dict[str, dict[str, str]]
) -> None:
    entry = _sample("named-build")
    accept = "application/vnd.oci.image.index.v1+json, application/vnd.oci.image.manifest.v1+json"
    for tag, target in entry["push"].items():
        repo, _, reference = target.rpartition(":")
        response = httpx.get(f"{registry.url}/v2/{repo}/manifests/{reference}", headers={"Accept": accept})
        assert response.status_code == 200
        digest, data = _tagged(entry, tag)
        assert response.content == data and seeded["named-build"][tag] == digest
        for child in json.loads(data)["manifests"]:  # children were pushed to the same repository
            got = httpx.get(
                f"{registry.url}/v2/{repo}/manifests/{child['digest']}", headers={"Accept": accept}
            )
            assert got.status_code == 200 and sha(got.content) == child["digest"]
    assert seeded["named-build"]["latest"] == _tagged(entry, "latest")[0]
