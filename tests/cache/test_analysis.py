"""Stage reconstruction on the spec's example build (spec §2.5) and on real BuildKit exports."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from inspector.cache.analysis import CacheGraph, analyze, chain_id, image_manifest_key, source_record_key
from inspector.cache.config import parse_cache_config
from inspector.cache.fetch import find_cache_config
from inspector.oci.digest import Digest, sha256_digest
from inspector.oci.models import parse_manifest
from tests.harness.paths import TESTDATA

SPEC = TESTDATA / "spec"
ALPINE = "sha256:96006280b2ec9365a5c2def48896135172c5f678abb7aa07e955472421583f2d"
APK = "sha256:5b340055b6d75bd56e24bdeb81a1c1f732444397ecf0d0790cd6d4201bc28fcd"
COPY_SRC = "sha256:13770c64e792a3dcc32b43469222e662d0029d9a6d76f4c52ea41a17bbb6d2bc"
GCC = "sha256:bb9c6b2abc0783d97155e32bad55abde684dd668fcd089f677cdff2e52cf37e9"
FINAL = "sha256:c0718bf693f4e8e3ee0f9198f08b2379e8bf3f9e5cc79169681aba555c803847"


def load(manifest: Path, config: Path) -> CacheGraph:
    document = parse_manifest(manifest.read_bytes())
    found = find_cache_config(document)
    assert found is not None
    annotations = {d.digest: d.annotations for d in found[1]}
    return analyze(parse_cache_config(config.read_bytes()), annotations)


def blobs(graph: CacheGraph, layers: tuple[int, ...]) -> list[str]:
    return [graph.config.layers[i].blob for i in layers]


def test_key_formulas_reproduce_the_spec_roots() -> None:
    diff = Digest("sha256:0db1b44e8cc72d74c613f43b0f1901fcecdae88a5aea216269ef2094d74a8e40")
    assert chain_id([diff]) == diff
    assert (
        source_record_key(diff) == "sha256:4f2a62c1c806b3343cb133b0cf4f26efad8aaf19a8d8e98d2d22165d10a53c15"
    )
    manifest_key = image_manifest_key(
        Digest("sha256:dfdb17f05669066f5f7d7c60d5cedd4270f29cf07f92be3c4a782f0e3ebb11b9"), "linux", "amd64"
    )
    assert manifest_key == "sha256:f46577938c6c6662e6aea4598415dfe3610f3eafdcabf496544456f5200173ba"
    assert (
        source_record_key(manifest_key)
        == "sha256:bb39352f1b61078855a402a5b490531a3b7d3013a952a3690dfbf2ad049c344a"
    )
    assert chain_id([diff, diff]) == sha256_digest(f"{diff} {diff}")


@pytest.mark.parametrize("form", ["oci-manifest", "oci-index", "docker-list"])
def test_spec_max_example_stages(form: str) -> None:
    graph = load(SPEC / f"max-{form}.json", SPEC / "max-config.json")
    build, final = graph.stages
    # Both stages start FROM alpine, identified by recomputing its ChainID root key.
    for stage in (build, final):
        assert stage.base.kind == "image"
        assert stage.base.image is not None and stage.base.image.verified
        assert blobs(graph, stage.base.image.layers) == [ALPINE]
    assert [s.number for s in build.steps] == [2, 3, 4]
    assert [blobs(graph, s.layers) for s in build.steps] == [[APK], [COPY_SRC], [GCC]]
    assert [i.kind for i in build.steps[1].inputs] == ["context"]
    (step,) = final.steps
    assert step.number == 2 and blobs(graph, step.layers) == [FINAL]
    (edge,) = step.inputs
    assert (edge.kind, edge.stage, edge.selector) == ("stage", 0, sha256_digest("/out/hello"))
    assert blobs(graph, build.layers) == [ALPINE, APK, COPY_SRC, GCC]
    assert graph.unattributed_layers == ()
    # The two content-checksum roots are context roots; the four image roots belong to the base.
    assert len(graph.context_roots) == 2


def test_spec_min_example_has_the_same_stages_and_only_final_layers() -> None:
    graph = load(SPEC / "min-oci-manifest.json", SPEC / "min-config.json")
    build, final = graph.stages
    assert [s.number for s in build.steps] == [2, 3, 4]
    assert all(s.layers == () and not graph.config.records[s.record].has_result for s in build.steps)
    assert blobs(graph, final.steps[0].layers) == [FINAL]
    assert final.base.image is not None and final.base.image.verified


def test_realworld_2026_export_is_one_stage_on_a_verified_five_layer_base(realworld: Path) -> None:
    graph = load(
        realworld / "10-local-2026-oci-image-manifest-cacheconfig.json",
        realworld / "11-local-2026-cacheconfig.json",
    )
    (stage,) = graph.stages
    assert stage.base.image is not None and stage.base.image.verified and len(stage.base.image.layers) == 5
    assert [s.number for s in stage.steps] == [2, 3, 4, 5, 6]
    assert all(len(s.layers) == 1 for s in stage.steps)
    # RUN records carry the rootfs mount selector sha256("/") on input 0 and still continue the stage.
    assert graph.unattributed_layers == ()


def test_realworld_compose_cache_with_shared_base(realworld: Path) -> None:
    graph = load(
        realworld / "07-local-2025-oci-image-manifest-cacheconfig.json",
        realworld / "08-local-2025-cacheconfig.json",
    )
    first = graph.stages[0]
    assert first.base.image is not None and first.base.image.verified
    assert len(first.base.image.layers) == 4
    # Every layer in a result chain is attributed to a base or a step.
    assert graph.unattributed_layers == ()
    attributed = {layer for stage in graph.stages for layer in stage.layers}
    assert len({graph.config.layers[i].blob for i in attributed}) == 10


@pytest.mark.parametrize(
    "name",
    [
        "05-local-2021-cacheconfig.json",
        "09-local-2025-cacheconfig-dup-digests.json",
        "13-buildkit-pr7048-cyclic-merge-chain-cacheconfig.json",
        "14-buildkit-pr4429-s3-config-with-annotations.json",
    ],
)
def test_every_record_with_a_result_lands_in_a_stage(realworld: Path, name: str) -> None:
    config = parse_cache_config((realworld / name).read_bytes())
    graph = analyze(config, {})
    placed = {r for stage in graph.stages for step in stage.steps for r in (step.record, *step.variants)}
    non_roots = {i for i, r in enumerate(config.records) if not r.is_root}
    assert placed == non_roots


def test_manifest_key_of_a_windows_base_carries_os_version_and_features() -> None:
    # source/containerimage/pull.go mainManifestKey (since v0.13): json.Marshal of the struct {Digest, OS, Arch,
    # Variant omitempty, OSVersion omitempty, OSFeatures omitempty, Limit omitempty}, fields in that order.
    manifest = Digest("sha256:" + "ab" * 32)
    go_json = (
        '{"Digest":"sha256:' + "ab" * 32 + '","OS":"windows","Arch":"amd64",'
        '"OSVersion":"10.0.20348.2527","OSFeatures":["win32k"]}'
    )
    key = image_manifest_key(
        manifest, "windows", "amd64", os_version="10.0.20348.2527", os_features=("win32k",)
    )
    assert key == sha256_digest(go_json)
    # Without them (Linux), the v0.12 form is unchanged.
    assert image_manifest_key(manifest, "linux", "arm64", "v8") == sha256_digest(
        '{"Digest":"sha256:' + "ab" * 32 + '","OS":"linux","Arch":"arm64","Variant":"v8"}'
    )


def test_an_unverified_image_shared_by_two_stages_is_counted_below_every_step_on_it() -> None:
    """Two stages FROM one image with no diffIDs to verify it (records R0, R1 are its two root keys).

    R2 (stage A, the only step) is on [R0 | R1] with result L1 over L0: the image is inferred as L0, R2 adds L1.
    R3 (stage B's first step) is on the same roots with no result, R4 on R3 has result L2 over L0. The roots are
    the image's keys, so stage B starts from that same image L0: R4 adds L2 alone and R3 added nothing the cache
    holds. Before: stage B's image was "0 layers" (its first step has no result) and the two steps R3, R4 got
    L0 and L2 by position, the base layer drawn as a build step.
    """
    blob = [f"sha256:{n:064x}" for n in range(1, 4)]
    record = [f"sha256:{n:064x}" for n in range(0xA0, 0xA5)]
    created = "2025-01-01T00:00:00Z"
    config = {
        "layers": [{"blob": blob[0], "parent": -1}, {"blob": blob[1]}, {"blob": blob[2]}],
        "records": [
            {"digest": record[0]},
            {"digest": record[1]},
            {
                "layers": [{"layer": 1, "createdAt": created}],
                "digest": record[2],
                "inputs": [[{"link": 0}, {"link": 1}]],
            },
            {"digest": record[3], "inputs": [[{"link": 0}, {"link": 1}]]},
            {"layers": [{"layer": 2, "createdAt": created}], "digest": record[4], "inputs": [[{"link": 3}]]},
        ],
    }
    graph = analyze(parse_cache_config(json.dumps(config).encode()), {})
    shapes = [
        (stage.base.image.layers if stage.base.image else None, [(s.record, s.layers) for s in stage.steps])
        for stage in graph.stages
    ]
    assert shapes == [((0,), [(2, (1,))]), ((0,), [(3, ()), (4, (2,))])]
    assert len(graph.bases) == 1 and not any(s.inferred_layers for st in graph.stages for s in st.steps)
