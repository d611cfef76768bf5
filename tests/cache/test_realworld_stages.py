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


# cp-5641dc2: the Next.js frontend (node:18-alpine; SOURCES.md: builder + runner). Roots: R0, R2, R4, R7, R14, R17,
# R19. R12 (807b3e87, WORKDIR /app as in 08 and 11) is on [R7 | R17], the base's two root keys; its result L3
# chains L12 (parent -1) -> L10 -> L0 -> L1 -> L3, so the base is the 4 layers L12, L10, L0, L1 (node:18-alpine's
# four) and WORKDIR adds L3. Two records are on R12: R15 (slot 1 root R19: COPY from the context) and R5 (RUN,
# "/"), so R12 is a stage of its own and both grow from it. Builder (mode=min: no results): R15 -> R13 (RUN on
# R15) -> R3 (0b7ec3a1 on R13, context root R4: COPY . .) -> R9 (RUN) -> R11 (RUN). Runner, each result one
# layer on the previous step's: R5 (L5 on L3) -> R18 (L6) -> R6 (L8) -> R16 (L2), four RUNs -> R8 (slot 1
# [R11 with a selector | root R14]: COPY --from the builder, L9) -> R10 (slot 1 [R0 | R11 sel]: L4) -> R1 (slot
# 1 [R2 | R11 sel]: the empty layer L7) -> R20 (RUN, L11). The builder comes first: the runner copies from it.
STAGES_CP5641: Expected = [
    ("image", None, [(12, (), {})]),
    ("stage", 0, [(15, (), {}), (13, (), {}), (3, (), {}), (9, (), {}), (11, (), {})]),
    (
        "stage",
        0,
        [
            (5, (), {}),
            (18, (), {}),
            (6, (), {}),
            (16, (), {}),
            (8, (), {1: 1}),
            (10, (), {1: 1}),
            (1, (), {1: 1}),
            (20, (), {}),
        ],
    ),
]
# Layers, from the parents above: base L12 L10 L0 L1; stage 1 has no result; the runner's steps one layer each.
LAYERS_CP5641 = [
    ((12, 10, 0, 1), [(3,)]),
    (None, [(), (), (), (), ()]),
    (None, [(5,), (6,), (8,), (2,), (9,), (4,), (7,), (11,)]),
]

# dto-pattern: Dockerfile @ 125ee613, build FROM maven:3.9-eclipse-temurin-24 (WORKDIR /app, COPY pom.xml, RUN
# --mount=type=cache mvn dependency:go-offline, COPY src src, RUN --mount=type=cache mvn package) and a runtime
# FROM eclipse-temurin:24-jre (WORKDIR /app, COPY --from=build the jar). Roots: R0, R2, R3, R6, R7, R10, R11.
# R8 and R9 share the digest 807b3e87 (WORKDIR /app) on different bases: R8 on [R0 | R6], result L13 whose chain
# is L11 L2 L12 L4 L17 L18 L16 L8 L5 L15 L13 (10 base layers), R9 on [R3 | R7], L7 over L11 L14 L9 L3 L1 (5): the
# same op on another state is another step, so two stages. Build: R8 -> R4 (slot 1 root R11: COPY pom.xml, L10)
# -> R1 (RUN "/", the empty layer L6: a cache mount leaves the rootfs unchanged) -> R13 (slot 1 root R10: COPY
# src, L20) -> R5 (RUN "/", the 48 MB L0). Runtime: R9 -> R12 (slot 1 [root R2 | R5 with a selector]: COPY
# --from=build, L19, 48 MB like the jar it copies).
STAGES_DTO: Expected = [
    ("image", None, [(8, (), {}), (4, (), {}), (1, (), {}), (13, (), {}), (5, (), {})]),
    ("image", None, [(9, (), {}), (12, (), {1: 0})]),
]
LAYERS_DTO = [
    ((11, 2, 12, 4, 17, 18, 16, 8, 5, 15), [(13,), (10,), (6,), (20,), (0,)]),
    ((11, 14, 9, 3, 1), [(7,), (19,)]),
]


def _layers(graph: CacheGraph) -> list[tuple[tuple[int, ...] | None, list[tuple[int, ...]]]]:
    return [
        (stage.base.image.layers if stage.base.image else None, [step.layers for step in stage.steps])
        for stage in graph.stages
    ]


@pytest.mark.parametrize(
    ("folder", "expected", "layers"),
    [("cp-5641dc2", STAGES_CP5641, LAYERS_CP5641), ("dto-pattern", STAGES_DTO, LAYERS_DTO)],
)
def test_committed_cache_layers_per_step(
    realworld: Path,
    folder: str,
    expected: Expected,
    layers: list[tuple[tuple[int, ...] | None, list[tuple[int, ...]]]],
) -> None:
    graph = _layout(realworld / "committed-caches" / folder)
    assert _summary(graph) == expected
    assert _layers(graph) == layers
    # Each base is verified: one of its root keys is the ChainID key of exactly those layers (diffIDs from the
    # wrapper's containerd.io/uncompressed annotations).
    assert all(stage.base.image.verified for stage in graph.stages if stage.base.image is not None)


# 13 (BuildKit PR 7048's cyclic-merge-chain.json, mode=max, config only). Roots: R5, R10, R15, R17, R19. R3 is on
# [R5 | R15] (an image's two root keys), result L15 over L0 (parent -1): base L0, R3 adds L15. R14 and R18 are two
# different RUNs ("/") on R3 that wrote the same blob (both L12, the coincidence the PR describes), so R3 is a
# stage both grow from. R9 is on the lone root R10 (the context: R10 is the plain copy source of R22-R24) with a
# one-layer result L1 (parent -1): a COPY onto scratch; R22 (fd7408b5, on R9, slot 1 R10) copies again onto it.
# Chain A: R14 -> R7 (57a5ab45) -> R20 (slot 1 root R19: COPY) -> R6 -> R0 -> R13 -> R1 (RUNs) -> R2 (slot 1
# root R17: COPY) -> R16 (RUN) -> R11 (70d5a948, slot 1 [R10 | R22 with a selector]: copies from the scratch
# stage) -> R23 (fd7408b5, slot 1 R10 only). Chain B: R18 -> R8 (57a5ab45 again, on another state: another step)
# -> R21 (slot 1 R19) -> R12 (70d5a948, slot 1 [R10 | R22 sel]) -> R24 (fd7408b5, slot 1 [R10 | R22 with the
# selector a7cb13d0 the PR's test checks]) -> R4 (RUN). Every result is one layer on its input 0's (L12 on L15,
# L11 on L12, ...). The three fd7408b5 records are on three states (R9, R11, R12): three steps, no variants.
# Order: a stage after those it grows from or copies from, then by first record: R3, R9, A (R14), B (R18).
STAGES_13: Expected = [
    ("image", None, [(3, (), {})]),
    ("scratch", None, [(9, (), {}), (22, (), {})]),
    (
        "stage",
        0,
        [
            (14, (), {}),
            (7, (), {}),
            (20, (), {}),
            (6, (), {}),
            (0, (), {}),
            (13, (), {}),
            (1, (), {}),
            (2, (), {}),
            (16, (), {}),
            (11, (), {1: 1}),
            (23, (), {}),
        ],
    ),
    ("stage", 0, [(18, (), {}), (8, (), {}), (21, (), {}), (12, (), {1: 1}), (24, (), {1: 1}), (4, (), {})]),
]
LAYERS_13 = [
    ((0,), [(15,)]),
    (None, [(1,), (16,)]),
    (None, [(12,), (11,), (17,), (4,), (6,), (7,), (8,), (10,), (9,), (3,), (14,)]),
    (None, [(12,), (11,), (17,), (2,), (13,), (5,)]),
]

# 14 (BuildKit PR 4429's s3 "mega manifest", config only; its layers carry diffIDs, so bases can be verified).
# 18 roots (R1 R2 R4 R7 R14 R15 R17 R18 R20 R22 R24 R36 R39 R44 R47 R49 R50 R51), no "/" selectors.
# * Image X [R4 | R18] (6 layers: L25 L26 L48 L6 L2 L45) has five different ops on it, R0, R6, R43, R46, R48,
#   each adding one 140-byte layer (L13, L49, L36, L50, L20, all parent L45) and each the only record on it:
#   five one-step stages.
# * Image Z [R15 | R44] (8 layers: L24 L0 L5 L21 L27 L46 L42 L47): R25 (L32) -> R37 -> R38 -> R40 -> R13 (slot 1
#   root R24: COPY, the empty layer L9) -> R3 (slot 1 R51) -> R23 (slot 1 R14) -> R19 (L43). R41 (L28) and R27
#   are both on R19: two stages grow from this one.
# * Image W [R1 | R47] (3 layers: L4 L35 L8): R21 (807b3e87, WORKDIR, L29) -> R28 -> R45 (L12).
# * COPY --link: the diff is a copy onto scratch (one slot: the source), the merge (digest 9db38c9f, nine
#   records) takes the state in slot 0 and the diff in slot 1; the merged layer is the diff's blob on the
#   state's chain (R27's L19 is R9's L18 blob on L43). Diffs: R26 [R22] and R42 [R36] copy from the context; R8
#   from R0, R10 from R6, R11 from R43, R12 from R46, R9 from R48 (image X's five stages), R5 from R45 (image W's
#   stage), R16 from R41 (the stage on R19), each linked with a path selector.
# * Merges: R28 on R21 merges R26 (in image W's stage); R27 (on R19) -> R32 -> R31 -> R30 -> R33 -> R29 -> R35 ->
#   R34 merge R9, R8, R10, R12, R11, R5, R42, R16: the final stage, FROM image Z's stage.
# Order (a stage after what it grows from or copies from, then by first record): R0, R6, R8, R10, R25, R26,
# R21, R5, R41, R16, R42, R43, R11, R46, R12, R48, R9, then the merges R27...
STAGES_14: Expected = [
    ("image", None, [(0, (), {})]),
    ("image", None, [(6, (), {})]),
    ("scratch", None, [(8, (), {0: 0})]),
    ("scratch", None, [(10, (), {0: 1})]),
    (
        "image",
        None,
        [
            (25, (), {}),
            (37, (), {}),
            (38, (), {}),
            (40, (), {}),
            (13, (), {}),
            (3, (), {}),
            (23, (), {}),
            (19, (), {}),
        ],
    ),
    ("scratch", None, [(26, (), {})]),
    ("image", None, [(21, (), {}), (28, (), {1: 5}), (45, (), {})]),
    ("scratch", None, [(5, (), {0: 6})]),
    ("stage", 4, [(41, (), {})]),
    ("scratch", None, [(16, (), {0: 8})]),
    ("scratch", None, [(42, (), {})]),
    ("image", None, [(43, (), {})]),
    ("scratch", None, [(11, (), {0: 11})]),
    ("image", None, [(46, (), {})]),
    ("scratch", None, [(12, (), {0: 13})]),
    ("image", None, [(48, (), {})]),
    ("scratch", None, [(9, (), {0: 15})]),
    (
        "stage",
        4,
        [
            (27, (), {1: 16}),
            (32, (), {1: 2}),
            (31, (), {1: 3}),
            (30, (), {1: 14}),
            (33, (), {1: 12}),
            (29, (), {1: 7}),
            (35, (), {1: 10}),
            (34, (), {1: 9}),
        ],
    ),
]
IMAGE_X, IMAGE_Z, IMAGE_W = (25, 26, 48, 6, 2, 45), (24, 0, 5, 21, 27, 46, 42, 47), (4, 35, 8)
LAYERS_14 = [
    (IMAGE_X, [(13,)]),
    (IMAGE_X, [(49,)]),
    (None, [(16,)]),
    (None, [(22,)]),
    (IMAGE_Z, [(32,), (1,), (37,), (7,), (9,), (3,), (44,), (43,)]),
    (None, [(30,)]),
    (IMAGE_W, [(29,), (31,), (12,)]),
    (None, [(38,)]),
    (None, [(28,)]),
    (None, [(33,)]),
    (None, [(40,)]),
    (IMAGE_X, [(36,)]),
    (None, [(10,)]),
    (IMAGE_X, [(50,)]),
    (None, [(14,)]),
    (IMAGE_X, [(20,)]),
    (None, [(18,)]),
    (None, [(19,), (17,), (23,), (15,), (11,), (39,), (41,), (34,)]),
]


@pytest.mark.parametrize(
    ("document", "expected", "layers"),
    [
        ("13-buildkit-pr7048-cyclic-merge-chain-cacheconfig.json", STAGES_13, LAYERS_13),
        ("14-buildkit-pr4429-s3-config-with-annotations.json", STAGES_14, LAYERS_14),
    ],
)
def test_buildkit_test_configs_read_as_the_builds_they_were(
    realworld: Path,
    document: str,
    expected: Expected,
    layers: list[tuple[tuple[int, ...] | None, list[tuple[int, ...]]]],
) -> None:
    graph = analyze(parse_cache_config((realworld / document).read_bytes()), {})
    assert _summary(graph) == expected
    assert _layers(graph) == layers
    assert graph.unattributed_layers == ()
    # Every non-root record is in exactly one step; no stage is drawn twice.
    placed = [r for stage in graph.stages for step in stage.steps for r in (step.record, *step.variants)]
    assert sorted(placed) == sorted({i for i, r in enumerate(graph.config.records) if not r.is_root})


def test_14_bases_are_verified_from_the_configs_own_diff_ids(realworld: Path) -> None:
    # 14's layers carry annotations.diffID: each image's ChainID key is among its roots, so all three images
    # (X, Z, W above) are verified, and image X is one base for its five stages.
    graph = analyze(
        parse_cache_config((realworld / "14-buildkit-pr4429-s3-config-with-annotations.json").read_bytes()),
        {},
    )
    assert sorted((image.roots, image.layers, image.verified) for image in graph.bases) == [
        ((1, 47), IMAGE_W, True),
        ((4, 18), IMAGE_X, True),
        ((15, 44), IMAGE_Z, True),
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
