"""`cacheinspect explain` end to end: generated caches of a "previous build" in the real registry, the next
build's Dockerfile, and the verdict the CLI prints.

Each cache is written by the fixture generator with the record digests BuildKit gives the previous build's
steps: ``step_keys`` of the previous Dockerfile (inspector/cache/naming/keys.py, whose WORKDIR, ``COPY . .``
and RUN encodings tests/cache/test_keys.py checks against the real exports 08, 09, 11 and fullcycle-node).
The base images are real OCI images pushed beside the caches, so ``--resolve-bases`` computes their root
keys (ChainID and manifest key) from the registry, as the generator computed the caches' roots.
Every expected verdict is derived by hand from the two Dockerfiles, next to the assertion.
"""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path
from typing import Any

import httpx
import pytest

from inspector.cli import run
from tests.harness.explaingen import CONTEXT_FILES, base_image, previous_cache
from tests.harness.fixturegen import BaseImage, CacheExport, Platform
from tests.harness.paths import REALWORLD, schema
from tests.harness.registry import LocalRegistry
from tests.harness.support import run_cli, validate_json
from tests.integration.test_repo import push_blob

MAIN_C = CONTEXT_FILES["main.c"]
MAKEFILE = CONTEXT_FILES["Makefile"]

# The previous build. [1/5] is the FROM; WORKDIR, COPY, two RUNs are steps 2..5 (convert.go numbering).
PREVIOUS = """\
FROM {base}
ARG GREETING=hello
WORKDIR /app
COPY . .
RUN echo "$GREETING" > /greeting
RUN make
"""


def push_image(host: str, repository: str, tag: str, image: BaseImage) -> None:
    documents = image.image(Platform())
    for data in (documents.config_bytes, *documents.blobs.values()):
        push_blob(host, repository, data)
    put_manifest(host, repository, tag, documents.manifest_bytes)


def put_manifest(host: str, repository: str, tag: str, body: bytes) -> None:
    response = httpx.put(
        f"http://{host}/v2/{repository}/manifests/{tag}",
        content=body,
        headers={"Content-Type": "application/vnd.oci.image.manifest.v1+json"},
    )
    assert response.status_code == 201, response.text


def push_cache(host: str, repository: str, tag: str, export: CacheExport) -> None:
    for data in export.layout_blobs().values():
        push_blob(host, repository, data)
    assert {d.digest for d in export.layer_descriptors} <= set(export.blobs), "every layer has bytes"
    put_manifest(host, repository, tag, export.document("image-manifest"))


@pytest.fixture(scope="module")
def scenario(registry: LocalRegistry) -> dict[str, str]:
    """base:1 and base:2 in the registry (the generator's base under the name the Dockerfile uses: its roots
    depend on the image's digest and diffIDs, not the name); explain/app:main = the previous build on base:1 (2026-01-01),
    explain/app:pr-1 = a branch's build, `RUN make` edited to `RUN make all` (2026-02-01, newer)."""
    host = registry.host
    for version in (1, 2):
        push_image(host, "explain/base", str(version), base_image(version))
    base = f"{host}/explain/base:1"
    previous = PREVIOUS.format(base=base)
    branch = previous.replace("RUN make\n", "RUN make all\n")
    push_cache(
        host,
        "explain/app",
        "main",
        previous_cache(previous, replace(base_image(1), name=base), started_at="2026-01-01T10:00:00Z"),
    )
    push_cache(
        host,
        "explain/app",
        "pr-1",
        previous_cache(branch, replace(base_image(1), name=base), started_at="2026-02-01T10:00:00Z"),
    )
    return {
        "host": host,
        "previous": previous,
        "branch": branch,
        "main": f"{host}/explain/app:main",
        "pr": f"{host}/explain/app:pr-1",
    }


def context_dir(tmp_path: Path, main_c: bytes = MAIN_C) -> Path:
    root = tmp_path / "context"
    root.mkdir()
    (root / "main.c").write_bytes(main_c)
    (root / "Makefile").write_bytes(MAKEFILE)
    for path in root.iterdir():
        path.chmod(0o644)  # what make_tar writes for the cached layer's files
    return root


def explain(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, dockerfile: str, *args: str, code: int = 0
) -> dict[str, Any]:
    path = tmp_path / "Dockerfile"
    path.write_text(dockerfile)
    status = run(["explain", *args, "-f", str(path), "--resolve-bases", "--json"])
    captured = capsys.readouterr()
    assert status == code, captured.err
    document: dict[str, Any] = json.loads(captured.out)
    validate_json(document, schema("explain"))
    return document


def verdicts(document: dict[str, Any]) -> list[tuple[str, str, str | None]]:
    return [(step["label"], step["status"], step["cause"]) for step in document["steps"]]


# Progress labels expand ARGs in scope (convert.go), so the RUN reads `echo "hello"`.
LABELS = ["[2/5] WORKDIR /app", "[3/5] COPY . .", '[4/5] RUN echo "hello" > /greeting', "[5/5] RUN make"]


def test_the_same_build_hits_every_step(
    scenario: dict[str, str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # Same Dockerfile, same base, same context files as the cached COPY layer (main.c, Makefile, 0644):
    # every key is in :main on top of the previous one, the COPY's only version has the same files.
    doc = explain(
        capsys,
        tmp_path,
        scenario["previous"],
        scenario["main"],
        "--context",
        str(context_dir(tmp_path)),
        "--strict",
    )
    assert verdicts(doc) == [(label, "hit", None) for label in LABELS]
    assert doc["allCached"] is True and doc["coldFrom"] is None and doc["notes"] == []
    assert {s["hitRef"] for s in doc["steps"]} == {scenario["main"]}


def test_without_context_the_copy_depends_on_it(
    scenario: dict[str, str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # No --context: the COPY's op is cached on WORKDIR with one build-context version (one checksum root);
    # whether this context equals it is not known, and the RUNs on top of it hit only if it does.
    doc = explain(capsys, tmp_path, scenario["previous"], scenario["main"])
    assert [s["status"] for s in doc["steps"]] == ["hit", "context", "context", "context"]
    assert doc["steps"][1]["refs"][0]["versions"] and len(doc["steps"][1]["refs"][0]["versions"]) == 1
    assert doc["coldFrom"] is None and doc["allCached"] is False


def test_edited_run_misses_for_its_instruction(
    scenario: dict[str, str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # `RUN make` -> `RUN make all`: its ExecOp args differ, so its digest is in no record of :main
    # (cause "instruction"); the three steps below it are unchanged and hit. Cold from [5/5]; --strict: 10.
    edited = scenario["previous"].replace("RUN make\n", "RUN make all\n")
    doc = explain(
        capsys,
        tmp_path,
        edited,
        scenario["main"],
        "--context",
        str(context_dir(tmp_path)),
        "--strict",
        code=10,
    )
    assert verdicts(doc) == [
        *[(label, "hit", None) for label in LABELS[:3]],
        ("[5/5] RUN make all", "miss", "instruction"),
    ]
    assert doc["coldFrom"]["label"] == "[5/5] RUN make all"


def test_changed_build_arg_misses_at_the_first_run_that_sees_it(
    scenario: dict[str, str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # --build-arg GREETING=bye: WORKDIR and COPY do not carry ARGs in their ops (FileOp actions) and hit;
    # the first RUN's env holds GREETING (ARGs in scope are RUN env), so its digest is new: "instruction".
    # The second RUN carries the same env, so it misses too, whatever the cause reported for it.
    # (No real document here pins how an ARG is written into a RUN's env; the verdict needs only that the
    # value is part of the key, which BuildKit's ExecOp env makes it.)
    doc = explain(
        capsys,
        tmp_path,
        scenario["previous"],
        scenario["main"],
        "--context",
        str(context_dir(tmp_path)),
        "--build-arg",
        "GREETING=bye",
    )
    bye = LABELS[2].replace("hello", "bye")
    assert verdicts(doc)[:3] == [
        *[(label, "hit", None) for label in LABELS[:2]],
        (bye, "miss", "instruction"),
    ]
    assert doc["steps"][3]["status"] == "miss"
    assert doc["coldFrom"]["label"] == bye


def test_new_base_image_misses_at_the_first_step_for_its_parent(
    scenario: dict[str, str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # FROM base:2: same Env (PATH only), so WORKDIR's FileOp digest is unchanged and is in :main, but that
    # record's input links only to base:1's two roots; base:2 resolves to other roots (another manifest
    # digest, another ChainID) -> "parent" at [2/5]; everything above has no parent in the cache either.
    newer = scenario["previous"].replace("explain/base:1", "explain/base:2")
    doc = explain(capsys, tmp_path, newer, scenario["main"], "--context", str(context_dir(tmp_path)))
    assert verdicts(doc)[0] == (LABELS[0], "miss", "parent")
    assert [s["status"] for s in doc["steps"]] == ["miss"] * 4
    assert doc["coldFrom"]["label"] == LABELS[0]


def test_changed_context_file_misses_at_the_copy_and_names_the_file(
    scenario: dict[str, str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # main.c edited: the COPY's op and parent are cached, but its one cached version's layer holds the old
    # main.c -> "inputs", naming app/main.c (WORKDIR /app, `COPY . .` lands in /app/). The RUN above it was
    # cached only on the old version -> "parent"; cold from the COPY.
    changed = context_dir(tmp_path, b"int main(void) { return 1; }\n")
    doc = explain(capsys, tmp_path, scenario["previous"], scenario["main"], "--context", str(changed))
    assert verdicts(doc)[:3] == [
        (LABELS[0], "hit", None),
        (LABELS[1], "miss", "inputs"),
        (LABELS[2], "miss", "parent"),
    ]
    assert doc["steps"][1]["changedFiles"] == ["changed app/main.c"]
    assert doc["coldFrom"]["label"] == LABELS[1]


def test_reordered_cache_from_changes_the_first_ref_not_the_verdict(
    scenario: dict[str, str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # The branch's Dockerfile (`RUN make all`) against :main (older) and :pr-1 (newer). Steps 2-4 are in
    # both, [5/5] only in :pr-1. BuildKit queries every import and loads the newest result, so the verdict
    # (all hit) and the loaded ref (:pr-1, created a month later) are the same in both orders; only the
    # first ref holding steps 2-4 follows the order given.
    context = str(context_dir(tmp_path))
    forward = explain(
        capsys,
        tmp_path,
        scenario["branch"],
        scenario["main"],
        scenario["pr"],
        "--context",
        context,
        "--strict",
    )
    backward = explain(
        capsys,
        tmp_path,
        scenario["branch"],
        scenario["pr"],
        scenario["main"],
        "--context",
        context,
        "--strict",
    )
    assert [s["status"] for s in forward["steps"]] == [s["status"] for s in backward["steps"]] == ["hit"] * 4
    assert [s["hitRef"] for s in forward["steps"]] == [scenario["main"]] * 3 + [scenario["pr"]]
    assert [s["hitRef"] for s in backward["steps"]] == [scenario["pr"]] * 4
    assert {s["loadRef"] for s in forward["steps"] + backward["steps"]} == {scenario["pr"]}
    # With :main alone the branch build misses at its edited step.
    alone = explain(capsys, tmp_path, scenario["branch"], scenario["main"], "--context", context)
    assert alone["coldFrom"]["label"] == "[5/5] RUN make all"


def test_cli_in_a_subprocess_human_view_and_strict_exit(scenario: dict[str, str], tmp_path: Path) -> None:
    edited = scenario["previous"].replace("RUN make\n", "RUN make all\n")
    path = tmp_path / "Dockerfile"
    path.write_text(edited)
    summary = tmp_path / "summary.md"
    summary.write_text("earlier step\n")
    result = run_cli(
        "explain",
        scenario["main"],
        "-f",
        str(path),
        "--resolve-bases",
        "--context",
        str(context_dir(tmp_path)),
        "--strict",
        env={"GITHUB_STEP_SUMMARY": str(summary)},
    )
    assert result.returncode == 10, result.stderr
    # The job summary is appended to $GITHUB_STEP_SUMMARY, as GitHub expects of every step; "[" is written
    # as &#91; (markdown_text: no link can start in a label), which GitHub renders as "[".
    label = "&#91;5/5&#93; RUN make all"
    assert summary.read_text().startswith(
        f"earlier step\n### cacheinspect explain: this build will be cold from {label}\n"
    )
    assert f"| {label} | ✗ miss | the instruction or its environment changed" in summary.read_text()
    lines = result.stdout.splitlines()
    assert any(
        line.startswith("✓ [2/5] WORKDIR /app") and f"hit from {scenario['main']}" in line for line in lines
    )
    assert any(line.startswith("✗ [5/5] RUN make all") and "miss: the instruction" in line for line in lines)
    assert "this build will be cold from [5/5] RUN make all" in lines
    # A summary CI asked for and that cannot be written: explain changed nothing, so it is exit 2.
    unwritable = run_cli(
        "explain", scenario["main"], "-f", str(path), env={"GITHUB_STEP_SUMMARY": str(tmp_path)}
    )
    assert unwritable.returncode == 2 and "GITHUB_STEP_SUMMARY" in unwritable.stderr
    missing = run_cli("explain", f"{scenario['host']}/explain/app:nope", "-f", str(path), "--strict")
    # A cache BuildKit cannot import is a miss with its reason (the build goes on without it): exit 10.
    assert missing.returncode == 10 and "not imported" in missing.stdout and "Traceback" not in missing.stderr


def test_real_export_fullcycle_node_without_its_base_config_is_unknown_not_guessed(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """committed-caches/fullcycle-node (= export 11) with mynode_app/Dockerfile (SOURCES.md); the base
    node:21.1.0-slim cannot be fetched here, so no --resolve-bases: its RUNs' keys are unknown, and every
    step above the first RUN depends on it -> unknown, never guessed; the root is taken on trust (a note)."""
    dockerfile = tmp_path / "Dockerfile"
    dockerfile.write_text(
        "ARG NODE_VERSION=21.1.0\nFROM node:${NODE_VERSION}-slim\n"
        "RUN apt-get update && apt-get install -y vim && rm -rf /var/lib/apt/lists/*\n"
        'ENV PORT=3001\nENV MESSAGE="Hello Docker!"\nWORKDIR /app\nCOPY package*.json ./\nRUN npm install\n'
        'COPY . .\nCMD ["node", "index.js"]\n'
    )
    layout = f"oci:{REALWORLD / 'committed-caches' / 'fullcycle-node'}"
    assert run(["explain", layout, "-f", str(dockerfile), "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    validate_json(doc, schema("explain"))
    assert [s["status"] for s in doc["steps"]] == ["unknown"] * 5
    assert "base image config not available" in doc["steps"][0]["detail"]
    assert any("node:21.1.0-slim" in note for note in doc["notes"])


def test_mode_min_cache_runs_from_the_first_step_without_a_layer(
    scenario: dict[str, str], registry: LocalRegistry, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # The previous build exported with mode=min: every record is written, but only the target's last step
    # ([5/5] RUN make) carries a layer. The edited `RUN make all` misses at [5/5]; BuildKit then needs the
    # layer of [4/5], which no cache holds, nor of [3/5] or [2/5]: the build runs from [2/5] (its base image
    # comes from its registry). The earlier steps still match by key (hit / context), only without layers.
    base = f"{scenario['host']}/explain/base:1"
    export = previous_cache(
        scenario["previous"], replace(base_image(1), name=base), started_at="2026-01-01T10:00:00Z", mode="min"
    )
    push_cache(scenario["host"], "explain/app", "min", export)
    edited = scenario["previous"].replace("RUN make\n", "RUN make all\n")
    doc = explain(capsys, tmp_path, edited, f"{scenario['host']}/explain/app:min")
    assert [(s["status"], s["hasLayer"]) for s in doc["steps"]] == [
        ("hit", False),
        ("context", False),
        ("context", False),
        ("miss", False),
    ]
    assert doc["coldFrom"]["label"] == "[5/5] RUN make all"
    assert doc["runsFrom"]["label"] == LABELS[0]
    # The same against the mode=max cache: [4/5]'s layer is there, so it runs from the miss itself.
    full = explain(capsys, tmp_path, edited, scenario["main"])
    assert full["runsFrom"]["label"] == "[5/5] RUN make all"


def test_an_inline_cache_image_is_unread_not_a_miss(
    scenario: dict[str, str],
    registry: LocalRegistry,
    seeded: dict[str, dict[str, str]],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    # samples/not-a-cache: "inline-cache" is an image whose config carries moby.buildkit.cache.v0 (BuildKit
    # imports it as a cache), "image" a plain image (BuildKit imports nothing from it). Against the plain
    # image every step misses with its reason; with the inline one in the list nothing is said to miss:
    # explain does not read inline caches, so those steps are unknown there.
    repo = f"{registry.host}/samples/not-a-cache"
    plain = explain(capsys, tmp_path, scenario["previous"], f"{repo}:image")
    assert {(s["status"], s["cause"]) for s in plain["steps"]} == {("miss", None)}
    assert "container image" in plain["steps"][0]["detail"]
    both = explain(capsys, tmp_path, scenario["previous"], f"{repo}:image", f"{repo}:inline-cache")
    assert {s["status"] for s in both["steps"]} == {"unknown"}
    assert both["coldFrom"] is None
    assert "inline cache" in both["steps"][0]["refs"][1]["detail"]
