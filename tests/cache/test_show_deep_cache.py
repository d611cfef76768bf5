"""A deep, valid mode=max cache through the real CLI: ``show --json`` stays linear in the config's size."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

from inspector.oci.digest import sha256_digest
from tests.harness.paths import schema
from tests.harness.support import run_cli, validate_json

SCHEMA = schema("show")
STEPS = 3400
CREATED = "2025-05-22T10:15:33.515337026Z"


def _write_linear_cache(root: Path, steps: int) -> tuple[int, int]:
    """An OCI layout of a linear mode=max cache: a root record, then ``steps`` RUNs each adding one layer.

    Shaped as BuildKit writes it (exporter.go: one result per record, its layer's parent the previous
    layer; each record's input 0 is the previous record), without the optional annotations and selectors
    so that 3,400 steps fit BuildKit's 1 MiB limit as in issue 13 (config 915 kB, manifest 524 kB).
    Returns the sizes of the manifest and the config.
    """
    blobs = root / "blobs" / "sha256"
    blobs.mkdir(parents=True)
    descriptors = []
    layers = []
    for i in range(steps):
        raw = f"layer {i}\n".encode()
        data = gzip.compress(raw, mtime=0)
        digest = sha256_digest(data)
        (blobs / digest.hex).write_bytes(data)
        descriptors.append(
            {
                "mediaType": "application/vnd.oci.image.layer.v1.tar+gzip",
                "digest": digest,
                "size": len(data),
            }
        )
        layers.append({"blob": digest, "parent": i - 1})
    records: list[dict[str, object]] = [{"digest": sha256_digest("source: the base image")}]
    for i in range(steps):
        records.append(
            {
                "layers": [{"layer": i, "createdAt": CREATED}],
                "digest": sha256_digest(f"RUN step {i}"),
                "inputs": [[{"link": i}]],
            }
        )
    config = json.dumps({"layers": layers, "records": records}, separators=(",", ":")).encode()
    (blobs / sha256_digest(config).hex).write_bytes(config)
    manifest = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": {
                "mediaType": "application/vnd.buildkit.cacheconfig.v0",
                "digest": sha256_digest(config),
                "size": len(config),
            },
            "layers": descriptors,
        },
        separators=(",", ":"),
    ).encode()
    (blobs / sha256_digest(manifest).hex).write_bytes(manifest)
    (root / "oci-layout").write_text('{"imageLayoutVersion":"1.0.0"}')
    index = {
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
    (root / "index.json").write_text(json.dumps(index))
    return len(manifest), len(config)


def test_3400_step_linear_cache_shows_as_json_with_health_ok(tmp_path: Path) -> None:
    manifest_size, config_size = _write_linear_cache(tmp_path, STEPS)
    # Under BuildKit's 1 MiB import limit (import.go readBlob), so BuildKit imports it: not "invalid content".
    assert config_size < 1 << 20 and manifest_size < 1 << 20
    shown = run_cli("show", f"oci:{tmp_path}", "--json", timeout=300)
    assert shown.returncode == 0, shown.stderr
    document = json.loads(shown.stdout)
    validate_json(document, SCHEMA)
    assert document["health"]["ok"] is True
    assert [len(stage["steps"]) for stage in document["stages"]] == [STEPS]
    # Every result names its own top layer: record i+1 results in layer i.
    assert all(r["results"][0]["layerIndex"] == i - 1 for i, r in enumerate(document["records"]) if i)
    # Linear in the config: listing each result's whole chain would print STEPS²/2 = 5.8 million digests
    # (over 400 MB); one entry per layer and per record stays within a few times the documents' bytes.
    assert len(shown.stdout) < 6 * (config_size + manifest_size)
