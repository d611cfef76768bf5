"""RUN steps identified exactly once the base image's config is read from a registry (`--resolve-bases`).

The cache is the real committed-caches/fullcycle-node export (a local layout). Its base, node:21.1.0-slim,
cannot be pulled here, so an image with the same config ``Env`` (docker-library's node 21.1.0 image: PATH,
NODE_VERSION, YARN_VERSION, in that order) is pushed to the local registry and named in the Dockerfile's
FROM. Its root keys differ from the real node's (other layers), so the base stays matched; the RUN keys depend
only on its config, and the two RUN records of the cache (3fbcdd4e…, 44fb4bbb…, issue 18's worked examples)
become exact.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx
import pytest

from inspector.cli import run
from tests.cache.test_keys import FULLCYCLE_NODE, NODE_21_ENV
from tests.harness.registry import LocalRegistry
from tests.integration.test_repo import push_blob


def push_image(host: str, repository: str, tag: str, config: dict[str, Any]) -> None:
    layer = push_blob(host, repository, b"a layer")
    config_blob = json.dumps(config).encode()
    config_descriptor = push_blob(host, repository, config_blob)
    config_descriptor["mediaType"] = "application/vnd.oci.image.config.v1+json"
    manifest = {
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": config_descriptor,
        "layers": [layer],
    }
    response = httpx.put(
        f"http://{host}/v2/{repository}/manifests/{tag}",
        content=json.dumps(manifest).encode(),
        headers={"Content-Type": "application/vnd.oci.image.manifest.v1+json"},
    )
    assert response.status_code == 201, response.text


def test_resolved_base_config_makes_run_steps_exact(
    registry: LocalRegistry, realworld: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    env = [f"{key}={value}" for key, value in NODE_21_ENV.items()]
    config = {
        "architecture": "amd64",
        "os": "linux",
        "config": {"Env": env, "Cmd": ["node"]},
        "rootfs": {"type": "layers", "diff_ids": ["sha256:" + "1" * 64]},
    }
    push_image(registry.host, "library/node", "21.1.0-slim", config)
    dockerfile = tmp_path / "Dockerfile"
    dockerfile.write_text(
        FULLCYCLE_NODE.replace("FROM node:", "ARG REGISTRY\nFROM ${REGISTRY}/library/node:")
    )
    layout = f"oci:{realworld / 'committed-caches' / 'fullcycle-node'}"
    args = ["show", layout, "--no-check-blobs", "--json", "--dockerfile", str(dockerfile)]
    args += ["--build-arg", f"REGISTRY={registry.host}", "--resolve-bases"]
    assert run(args) == 0, capsys.readouterr().err
    document = json.loads(capsys.readouterr().out)
    steps = [(step["instruction"], step["basis"]) for step in document["stages"][0]["steps"]]
    assert steps == [
        ("[2/6] RUN apt-get update && apt-get install -y vim && rm -rf /var/lib/apt/lists/*", "exact"),
        ("[3/6] WORKDIR /app", "exact"),
        ("[4/6] COPY package*.json ./", "exact"),
        ("[5/6] RUN npm install", "exact"),
        ("[6/6] COPY . .", "exact"),
    ]


def test_a_base_with_other_env_leaves_run_steps_matched(
    registry: LocalRegistry, realworld: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # node 22's env (another NODE_VERSION): the RUN keys are computed but are not records of this cache, so
    # the RUNs are not exact; a COPY below a RUN whose key is missing is not pinned either (broken chain).
    env = [f"{key}={value}" for key, value in {**NODE_21_ENV, "NODE_VERSION": "22.0.0"}.items()]
    config = {
        "architecture": "amd64",
        "os": "linux",
        "config": {"Env": env},
        "rootfs": {"type": "layers", "diff_ids": ["sha256:" + "2" * 64]},
    }
    push_image(registry.host, "library/node", "22-slim", config)
    dockerfile = tmp_path / "Dockerfile"
    dockerfile.write_text(
        FULLCYCLE_NODE.replace(
            "FROM node:${NODE_VERSION}-slim", "ARG REGISTRY\nFROM ${REGISTRY}/library/node:22-slim"
        )
    )
    layout = f"oci:{realworld / 'committed-caches' / 'fullcycle-node'}"
    args = ["show", layout, "--no-check-blobs", "--json", "--dockerfile", str(dockerfile)]
    args += ["--build-arg", f"REGISTRY={registry.host}", "--resolve-bases"]
    assert run(args) == 0, capsys.readouterr().err
    document = json.loads(capsys.readouterr().out)
    bases = {step["instruction"]: step["basis"] for step in document["stages"][0]["steps"]}
    assert "exact" not in bases.values(), bases
