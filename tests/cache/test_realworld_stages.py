"""Stages and steps of real BuildKit caches, derived by hand from their record graphs.

Notation in the comments: Rn is record n of the config (in document order), Ln layer n; "on Rk" means input
slot 0 links to Rk (the state the op builds on), "/" is the rootfs selector sha256("/") that a RUN's input 0
carries (ops/exec.go), "-" no selector (COPY/WORKDIR destination). A record digest names an op
(solver/exporter.go rootKey); the cache key is the digest and its input links (cache/remotecache/v1/chains.go),
so one op digest written once per version of a root input (the build context) is one step with variants.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from inspector.cache.analysis import CacheGraph, analyze
from inspector.cache.config import parse_cache_config
from inspector.cache.fetch import find_cache_config
from inspector.oci.models import parse_manifest

# stage: (base kind, base stage, [(record, other variant records, {slot: source stage} of stage inputs)])
Expected = list[tuple[str, int | None, list[tuple[int, tuple[int, ...], dict[int, int]]]]]


def _layout(root: Path) -> CacheGraph:
    index = json.loads((root / "index.json").read_text())
    manifest = parse_manifest((root / "blobs" / "sha256" / index["manifests"][-1]["digest"][7:]).read_bytes())
    found = find_cache_config(manifest)
    assert found is not None
    config = parse_cache_config((root / "blobs" / "sha256" / found[0].digest.hex).read_bytes())
    return analyze(config, {d.digest: d.annotations for d in found[1]})


def _summary(graph: CacheGraph) -> Expected:
    return [
        (
            stage.base.kind,
            stage.base.stage,
            [
                (
                    step.record,
                    tuple(sorted(step.variants)),
                    {i.slot: i.stage for i in step.inputs if i.kind == "stage" and i.stage is not None},
                )
                for step in stage.steps
            ],
        )
        for stage in graph.stages
    ]


# 08 (= committed-caches/cp-70b32ba, the same export): backend/Dockerfile, python:3.11-slim builder + runtime.
# Roots: R4, R5, R7, R9, R13, R14, R17. R11 (WORKDIR /app, result L6) is on [R4 | R17], the base image's two root
# keys together in one slot. Two records are on R11: R2 (RUN, "/") and R15 (RUN, "/"): both stages start
# FROM python:3.11-slim + WORKDIR /app, one shared record, so R11 is a stage of its own and both grow from it.
# Builder: R2 -> R8 (COPY on R2, source root R7: the context) -> R3 (RUN on R8, "/") -> R0 and R1: the same
# digest 0b7ec3a1 on R3, source R5 in one and R14 in the other, both roots: one COPY . . seen with two context
# versions = one step, 2 variants. Runtime: R15 -> R10 (COPY on R15 from R0|R1, the builder) -> R16 (COPY
# on R10 from R1, the builder) -> R12 (RUN on R16) -> R6 (RUN on R12). Before the fix: 5 stages (R0, R1 alone).
STAGES_08: Expected = [
    ("image", None, [(11, (), {})]),
    ("stage", 0, [(2, (), {}), (8, (), {}), (3, (), {}), (0, (1,), {})]),
    ("stage", 0, [(15, (), {}), (10, (), {1: 1}), (16, (), {1: 1}), (12, (), {}), (6, (), {})]),
]

# 09 (= committed-caches/cp-f7093bf): the same backend build, an older export. R27 (WORKDIR, 807b3e87) on the
# base roots [R15 | R36]; R12 (RUN) and R34 (RUN) are on R27. Builder: R12 -> R21 (COPY, context R20) -> R14
# (RUN) -> R0..R11: twelve records of digest 0b7ec3a1, each on R14 with a different root as source (R13, R17,
# R19, R22, R23, R24, R26, R29, R30, R31, R32, R33): twelve context versions of one COPY . . step. Runtime: R34 ->
# R25 (COPY from any of R0..R11: builder) -> R35 (COPY from R5: builder) -> R16 (RUN). Before: 15 stages.
STAGES_09: Expected = [
    ("image", None, [(27, (), {})]),
    ("stage", 0, [(12, (), {}), (21, (), {}), (14, (), {}), (0, tuple(range(1, 12)), {})]),
    ("stage", 0, [(34, (), {}), (25, (), {1: 1}), (35, (), {1: 1}), (16, (), {})]),
]

# margo-sandbox: poc/device/agent/Dockerfile, a Go builder, a bare `FROM … AS docker-source`, an alpine runtime.
# Builder: R12 (WORKDIR) on roots [R14 | R18] -> R24 (COPY go.mod, context R7) -> R10 (RUN go mod download) ->
# R1, R2 (digest 0b7ec3a1 on R10, context R6 / R8: COPY . . twice) -> R21 on R1 and R20 on R2, the same digest
# ed195c70 ("/"): the RUN go build after each COPY version, one step with 2 variants. Runtime: R17 (RUN) on the
# alpine roots [R16 | R19] -> R4 and R9 (COPY from R20|R21: builder) -> R22 (COPY from root R23 with a
# selector: the docker-source image, which has no record of its own) -> R0 (RUN) -> R3 (COPY from R23 again)
# -> R25 (RUN, the empty layer 4f4fb700). Before the fix: 4 stages (R1+R21 and R2+R20 as two stages). Without
# results, a step is shown by its first record (R1, R20), the others are its variants.
STAGES_MARGO: Expected = [
    ("image", None, [(12, (), {}), (24, (), {}), (10, (), {}), (1, (2,), {}), (20, (21,), {})]),
    (
        "image",
        None,
        [
            (17, (), {}),
            (4, (), {1: 0}),
            (9, (), {1: 0}),
            (22, (), {}),
            (0, (), {}),
            (3, (), {}),
            (25, (), {}),
        ],
    ),
]

# cp-d70eea6: an earlier backend build. R6 (WORKDIR) on [R1 | R12]; R2 (RUN) and R11 (COPY, "-") on R6.
# Builder: R2 -> R4 (COPY, context R3) -> R7 (RUN) -> R0 (COPY . ., context R5, once). Runtime, FROM the same
# base + WORKDIR: R11 (COPY from R0: builder) -> R8 (COPY from R0: builder). No variants; unchanged by the fix.
STAGES_D70: Expected = [
    ("image", None, [(6, (), {})]),
    ("stage", 0, [(2, (), {}), (4, (), {}), (7, (), {}), (0, (), {})]),
    ("stage", 0, [(11, (), {1: 1}), (8, (), {1: 1})]),
]

# 11 (= committed-caches/fullcycle-node): mynode_app/Dockerfile, one stage FROM node:21.1.0-slim. R3 (RUN, "/")
# on [R1 | R4] -> R6 (WORKDIR) -> R7 (COPY, context R8) -> R2 (RUN) -> R0 (COPY . ., context R5). Each record
# has exactly one record on it: one stage of five steps. Unchanged by the fix.
STAGES_NODE: Expected = [("image", None, [(3, (), {}), (6, (), {}), (7, (), {}), (2, (), {}), (0, (), {})])]


# drone-buildkit (= 05, BuildKit v0.8.1, mode=min): roots R2, R3, R8, R10, R13. R0 is on [R8 | R10], a base
# image's two root keys together in one slot; R9 and R12 are both on R0, so R0 is a stage of its own that two
# stages grow from. Branch one: R9 -> R5 (on R9, slot 1 the root R2: a COPY from the context) -> R4. Branch
# two: R12 -> R1 -> R6. R11 is on the same base [R8 | R10], slot 1 [R3 | R4 with a selector]: a COPY from
# branch one's last step (R3 is a root alternative of that slot, the content key of the copied files);
# R7 is on R11, slot 1 [R6 with a selector | root R13]: a COPY from branch two. v0.8 has no "/" selector on
# RUN inputs, so no record tells RUN from WORKDIR; the shape alone is what is asserted.
STAGES_DRONE: Expected = [
    ("image", None, [(0, (), {})]),
    ("stage", 0, [(9, (), {}), (5, (), {}), (4, (), {})]),
    ("stage", 0, [(12, (), {}), (1, (), {}), (6, (), {})]),
    ("image", None, [(11, (), {1: 1}), (7, (), {1: 2})]),
]


def _realworld_config(realworld: Path, config: str, manifest: str) -> CacheGraph:
    found = find_cache_config(parse_manifest((realworld / manifest).read_bytes()))
    assert found is not None
    annotations = {d.digest: d.annotations for d in found[1]}
    return analyze(parse_cache_config((realworld / config).read_bytes()), annotations)


@pytest.mark.parametrize(
    ("folder", "expected"),
    [
        ("cp-70b32ba", STAGES_08),
        ("cp-f7093bf", STAGES_09),
        ("margo-sandbox", STAGES_MARGO),
        ("cp-d70eea6", STAGES_D70),
        ("fullcycle-node", STAGES_NODE),
        ("drone-buildkit", STAGES_DRONE),
    ],
)
def test_committed_cache_reads_as_the_build_it_was(realworld: Path, folder: str, expected: Expected) -> None:
    assert _summary(_layout(realworld / "committed-caches" / folder)) == expected


def test_08_and_09_have_no_phantom_stages(realworld: Path) -> None:
    manifest = "07-local-2025-oci-image-manifest-cacheconfig.json"
    assert _summary(_realworld_config(realworld, "08-local-2025-cacheconfig.json", manifest)) == STAGES_08
    # 09 has no manifest of its own here; its records are analysed without descriptor annotations.
    config = parse_cache_config((realworld / "09-local-2025-cacheconfig-dup-digests.json").read_bytes())
    assert _summary(analyze(config, {})) == STAGES_09
    manifest = "10-local-2026-oci-image-manifest-cacheconfig.json"
    assert _summary(_realworld_config(realworld, "11-local-2026-cacheconfig.json", manifest)) == STAGES_NODE


def test_the_same_op_on_another_state_or_source_stage_stays_another_step(realworld: Path) -> None:
    # 08's R11 (WORKDIR) heads both stages: one record, shown once, and each stage is based on it.
    graph = _layout(realworld / "committed-caches" / "cp-70b32ba")
    assert [stage.base.stage for stage in graph.stages] == [None, 0, 0]
    # Every record lands in exactly one step (as the step or one of its variants).
    placed = [r for stage in graph.stages for step in stage.steps for r in (step.record, *step.variants)]
    assert sorted(placed) == sorted(set(placed))
    assert set(placed) == {i for i, r in enumerate(graph.config.records) if not r.is_root}


def test_one_image_is_one_base_for_every_stage_on_its_root_keys(realworld: Path) -> None:
    """Issue 13.10: drone-buildkit (05) read without its wrapper's diffIDs, so no root key can be verified.

    R0 (stage 1) and R11 (stage 4) are both on [R8 | R10]: the same root keys, so the same image. Nothing names
    an unverified image's layers; the first step on it is assumed to add one layer. Stage 1's subtree (R0, R9,
    R5, R4, R12, R1, R6) has no result at all, so it proves nothing about the image; stage 4's first step R11
    has the result L2, whose chain is L0 (parent -1) then L2 (parent 0): the image is L0, R11 adds L2, and R7
    (result L1, parent 2) adds L1. Before the fix stage 1 read "0 layers" and stage 4 "1 layer", two bases for
    one image (two entries in ``bases``). With the wrapper's diffIDs R8 is the ChainID key of L0 (verified),
    and the answer is the same: both stages start FROM the one-layer image L0 (alpine-sized, 2.8 MB).
    """
    graph = analyze(parse_cache_config((realworld / "05-local-2021-cacheconfig.json").read_bytes()), {})
    first, fourth = graph.stages[0], graph.stages[3]
    assert first.base.image is not None and fourth.base.image is not None
    assert first.base.image.roots == fourth.base.image.roots == (8, 10)
    assert first.base.image.layers == fourth.base.image.layers == (0,)
    assert len(graph.bases) == 1
    assert [step.layers for step in fourth.steps] == [(2,), (1,)]
    verified = _layout(realworld / "committed-caches" / "drone-buildkit")
    assert verified.bases[0].verified and verified.bases[0].layers == (0,)
    assert [(stage.base.image.layers if stage.base.image else None) for stage in verified.stages] == [
        (0,),
        None,
        None,
        (0,),
    ]
