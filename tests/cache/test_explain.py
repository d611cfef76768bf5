"""explain's matching rules on hand-written cache configs and hand-built step keys.

Each config below is written by hand in BuildKit's wire shape (spec §2.4: record ``inputs[k]`` are the
alternatives for input k, ``link`` indexes ``records``); digests are stand-ins (``sha256:aa…``), since what is
tested here is the matching, not the key encoding. The rules (solver/cachemanager.go Query, edge.go,
combinedcache.go) and the expected verdicts are derived by hand beside each case.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from inspector.cache.config import parse_cache_config
from inspector.cache.explain import ImportedCache, StepVerdict, explain_build, explanation_markdown
from inspector.cache.naming.dockerfile import BaseConfig, PlannedStep, plan_dockerfile
from inspector.cache.naming.keys import step_keys
from inspector.oci.digest import Digest

DOCKERFILE = "FROM alpine:3.20 AS app\nWORKDIR /app\nCOPY . .\nRUN make\n"


def d(char: str) -> Digest:
    return Digest("sha256:" + char * 64)


BASE_V1, BASE_V2 = d("1"), d("2")
SUM_A, SUM_B = d("3"), d("4")  # content-checksum roots of two context versions
WORKDIR, COPY, RUN, RUN_EDITED = d("a"), d("b"), d("c"), d("e")
ROOT_SELECTOR = "sha256:8a5edab282632443219e051e4ade2d1d5bbc671c781051bf1437897cbdfea0f1"  # sha256("/")


@dataclass(frozen=True, slots=True)
class Key:
    step: PlannedStep
    digest: Digest | None
    unknown: str | None = None
    content_input: bool = False
    variants: tuple[Digest, ...] = ()
    copy_digest: Digest | None = None


def keys(run: Digest | None = RUN) -> list[Key]:
    plan = plan_dockerfile(DOCKERFILE)
    workdir, copy, run_step = plan.stages[0].steps
    return [
        Key(workdir, WORKDIR),
        Key(copy, COPY, content_input=True),
        Key(run_step, run, unknown=None if run else "RUN needs the base image's config (--resolve-bases)"),
    ]


def config(created: str = "2026-01-01T00:00:00Z") -> bytes:
    """R0 base root, R1/R2 checksum roots of context A/B, R3 WORKDIR on R0, R4 COPY on R3 with A,
    R5 COPY on R3 with B, R6 RUN on R4 (rootfs selector "/"). Layers: L0 WORKDIR, L1 COPY A, L2 RUN."""
    layer = {"blob": "", "parent": -1}
    layers = [
        dict(layer, blob=str(d("7"))),
        dict(layer, blob=str(d("8")), parent=0),
        dict(layer, blob=str(d("9"))),
    ]
    layers[2]["parent"] = 1

    def result(layer: int) -> list[dict[str, object]]:
        return [{"layer": layer, "createdAt": created}]

    records = [
        {"digest": str(BASE_V1)},
        {"digest": str(SUM_A)},
        {"digest": str(SUM_B)},
        {"layers": result(0), "digest": str(WORKDIR), "inputs": [[{"link": 0}]]},
        {"layers": result(1), "digest": str(COPY), "inputs": [[{"link": 3}], [{"link": 1}]]},
        {"digest": str(COPY), "inputs": [[{"link": 3}], [{"link": 2}]]},
        {"layers": result(2), "digest": str(RUN), "inputs": [[{"selector": ROOT_SELECTOR, "link": 4}]]},
    ]
    return json.dumps({"layers": layers, "records": records}).encode()


def cache(ref: str = "reg/app:main", created: str = "2026-01-01T00:00:00Z") -> ImportedCache:
    return ImportedCache(ref, parse_cache_config(config(created)))


def statuses(steps: tuple[StepVerdict, ...]) -> list[tuple[str, str | None]]:
    return [(v.status, v.cause) for v in steps]


def test_without_context_a_build_context_copy_and_what_follows_it_are_conditional() -> None:
    # WORKDIR: R3 has its digest and links to the base root R0 (base taken on trust) -> hit.
    # COPY: R4 and R5 have its digest on R3 -> two context versions, the content is not known -> context.
    # RUN: R6 is on R4, one of those versions -> it hits only if the copy does -> context.
    result = explain_build(plan_dockerfile(DOCKERFILE), keys(), [cache()])
    assert statuses(result.steps) == [("hit", None), ("context", None), ("context", None)]
    assert result.steps[1].refs[0].versions == (4, 5)
    assert result.cold_from is None
    assert any("--resolve-bases" in note for note in result.notes)


def test_same_context_as_a_cached_version_hits_all_the_way() -> None:
    # The content check says the files equal version R4 -> COPY hits R4, RUN's R6 links to R4 -> hit.
    result = explain_build(
        plan_dockerfile(DOCKERFILE), keys(), [cache()], content_check=lambda step, c, versions: ((), (4,))
    )
    assert statuses(result.steps) == [("hit", None), ("hit", None), ("hit", None)]
    assert result.all_cached


def test_changed_context_is_an_inputs_miss_and_the_build_is_cold_from_the_copy() -> None:
    # The files differ from both versions -> COPY misses with cause "inputs"; then RUN's R6 (on R4) is not on
    # top of anything this build has -> RUN misses with cause "parent"; cold from the COPY.
    result = explain_build(
        plan_dockerfile(DOCKERFILE),
        keys(),
        [cache()],
        content_check=lambda step, c, versions: (("main.c",), ()),
    )
    assert statuses(result.steps) == [("hit", None), ("miss", "inputs"), ("miss", "parent")]
    assert result.cold_from is not None and result.cold_from.step.kind == "COPY"
    assert result.steps[1].changed_files == ("main.c",)


def test_edited_run_is_an_instruction_miss() -> None:
    # RUN_EDITED is in no record -> cause "instruction".
    result = explain_build(
        plan_dockerfile(DOCKERFILE), keys(run=RUN_EDITED), [cache()], content_check=lambda s, c, v: ((), (4,))
    )
    assert statuses(result.steps)[2] == ("miss", "instruction")


def test_new_base_image_is_a_parent_miss_at_the_first_step() -> None:
    # The resolved base has root BASE_V2; the cache's WORKDIR R3 links only to R0 = BASE_V1 -> "parent".
    plan = plan_dockerfile(DOCKERFILE)
    result = explain_build(plan, keys(), [cache()], base_roots={"alpine:3.20": frozenset({BASE_V2})})
    assert statuses(result.steps)[0] == ("miss", "parent")
    assert result.cold_from is not None and result.cold_from.step.kind == "WORKDIR"
    same = explain_build(plan, keys(), [cache()], base_roots={"alpine:3.20": frozenset({BASE_V1})})
    assert statuses(same.steps)[0] == ("hit", None)
    assert not same.notes


def test_unknown_key_is_unknown_never_a_guess() -> None:
    result = explain_build(
        plan_dockerfile(DOCKERFILE), keys(run=None), [cache()], content_check=lambda s, c, v: ((), (4,))
    )
    assert statuses(result.steps)[2] == ("unknown", None)
    assert "--resolve-bases" in result.steps[2].detail


def test_cache_from_order_changes_the_first_ref_not_the_verdict_nor_the_loaded_result() -> None:
    # Both caches hold the chain; BuildKit queries both and loads the newest result (compareCacheRecord),
    # so "load" names the newer cache in either order while "first" follows the given order.
    old, new = cache("reg/app:main", "2026-01-01T00:00:00Z"), cache("reg/app:pr-1", "2026-02-01T00:00:00Z")
    check = lambda s, c, v: ((), (4,))  # noqa: E731
    forward = explain_build(plan_dockerfile(DOCKERFILE), keys(), [old, new], content_check=check)
    backward = explain_build(plan_dockerfile(DOCKERFILE), keys(), [new, old], content_check=check)
    assert statuses(forward.steps) == statuses(backward.steps) == [("hit", None)] * 3
    assert [v.hit_ref for v in forward.steps] == ["reg/app:main"] * 3
    assert [v.hit_ref for v in backward.steps] == ["reg/app:pr-1"] * 3
    assert {v.load_ref for v in forward.steps} == {v.load_ref for v in backward.steps} == {"reg/app:pr-1"}


def test_a_chain_does_not_continue_across_caches() -> None:
    # Cache X holds only WORKDIR (R0 root, R1 WORKDIR); cache Y holds COPY/RUN but its WORKDIR record is on
    # another base root. Each cache manager resolves keys through its own links (getIDFromDeps), so the COPY
    # in Y is not on top of a WORKDIR key Y knows for this build -> COPY misses ("parent").
    only_workdir = {
        "records": [{"digest": str(BASE_V1)}, {"digest": str(WORKDIR), "inputs": [[{"link": 0}]]}]
    }
    other = json.loads(config())
    other["records"][0]["digest"] = str(BASE_V2)
    caches = [
        ImportedCache("x", parse_cache_config(json.dumps(only_workdir).encode())),
        ImportedCache("y", parse_cache_config(json.dumps(other).encode())),
    ]
    plan = plan_dockerfile(DOCKERFILE)
    result = explain_build(plan, keys(), caches, base_roots={"alpine:3.20": frozenset({BASE_V1})})
    assert statuses(result.steps)[:2] == [("hit", None), ("miss", "parent")]
    assert result.steps[0].hit_ref == "x"


def test_a_cache_that_could_not_be_imported_is_a_miss_that_says_why() -> None:
    broken = ImportedCache("reg/app:gone", None, "manifest unknown")
    result = explain_build(plan_dockerfile(DOCKERFILE), keys(), [broken])
    assert result.steps[0].status == "miss" and result.steps[0].cause is None
    assert "manifest unknown" in result.steps[0].detail


# antoniosasso00/cp backend/Dockerfile @ 70b32ba4 (SOURCES.md: the build of 08 = committed-caches/cp-70b32ba),
# instructions as in that file; comments, EXPOSE and CMD dropped (they make no op).
BACKEND = """\
FROM python:3.11-slim AS builder
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1
WORKDIR /app
RUN apt-get update && apt-get install -y --no-install-recommends build-essential netcat-openbsd && rm -rf /var/lib/apt/lists/*
COPY requirements.txt .
RUN pip install --upgrade pip && pip install -r requirements.txt
COPY . .
FROM python:3.11-slim
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1
WORKDIR /app
RUN apt-get update && apt-get install -y --no-install-recommends netcat-openbsd && rm -rf /var/lib/apt/lists/*
COPY --from=builder /usr/local /usr/local
COPY --from=builder /app /app
RUN mkdir -p /app/reports && chmod 755 /app/reports
RUN chmod +x /app/start.sh
"""


def real(realworld: Path, name: str) -> ImportedCache:
    return ImportedCache(name, parse_cache_config((realworld / name).read_bytes()))


def test_export_11_with_the_node_base_config_hits_to_the_first_copy(realworld: Path) -> None:
    # Export 11 by hand (records in document order): R1, R4 roots of node:21.1.0-slim; R3 RUN apt-get on
    # them; R6 WORKDIR on R3; R7 COPY package*.json on R6 with checksum root R8; R2 RUN npm install on R7;
    # R0 COPY . . on R2 with checksum root R5. With node's Env (issue 18, pinned by test_keys) every key is
    # computable: the RUN and WORKDIR hit (R3, R6; the base roots taken on trust), each COPY is cached with
    # one context version (R7, R0) that this checkout cannot be compared with, and the RUN between them
    # hits only if the first copy does.
    from tests.cache.test_keys import FULLCYCLE_NODE, NODE_21_ENV

    plan = plan_dockerfile(FULLCYCLE_NODE, platform="linux/amd64")
    keys = step_keys(plan, base_configs={"node:21.1.0-slim": BaseConfig(NODE_21_ENV)})
    result = explain_build(plan, keys, [real(realworld, "11-local-2026-cacheconfig.json")])
    got = [(v.step.kind, v.status, v.refs[0].records, v.refs[0].versions) for v in result.steps]
    assert got == [
        ("RUN", "hit", (3,), ()),
        ("WORKDIR", "hit", (6,), ()),
        ("COPY", "context", (), (7,)),
        ("RUN", "context", (), (2,)),
        ("COPY", "context", (), (0,)),
    ]
    assert result.cold_from is None


def test_export_08_workdirs_hit_and_no_step_is_said_to_miss(realworld: Path) -> None:
    # Export 08 by hand: R11 = WORKDIR /app (807b3e87) on the two python:3.11-slim roots R4/R17, shared by
    # both stages (same op, same base). python:3.11-slim's Env is not known here, so each RUN's key is
    # unknown and every step above one is unknown too; but each COPY's digest is in the cache (R8 COPY
    # requirements.txt, R0/R1 COPY . ., R10 and R16 the two COPY --from=builder), so none is a miss.
    plan = plan_dockerfile(BACKEND, platform="linux/amd64")
    result = explain_build(plan, step_keys(plan), [real(realworld, "08-local-2025-cacheconfig.json")])
    got = [(v.step.stage, v.step.kind, v.status) for v in result.steps]
    assert got == [
        ("builder", "WORKDIR", "hit"),
        ("builder", "RUN", "unknown"),
        ("builder", "COPY", "unknown"),
        ("builder", "RUN", "unknown"),
        ("builder", "COPY", "unknown"),
        ("stage-1", "WORKDIR", "hit"),
        ("stage-1", "RUN", "unknown"),
        ("stage-1", "COPY", "unknown"),
        ("stage-1", "COPY", "unknown"),
        ("stage-1", "RUN", "unknown"),
        ("stage-1", "RUN", "unknown"),
    ]
    assert [v.refs[0].records for v in result.steps if v.status == "hit"] == [(11,), (11,)]
    copies = [v for v in result.steps if v.step.kind == "COPY"]
    assert all(v.refs[0].detail == "an earlier step's key is not known" for v in copies)


def test_copy_link_merges_share_a_digest_and_are_told_apart_by_their_copy() -> None:
    # COPY --link: a copy onto scratch (its own digest, on a checksum root) and a MergeOp whose CacheMap holds
    # no paths, so two different --link copies on one parent are two merges with one digest. R0 base root,
    # R1/R2 checksum roots, R3 copy X (on R1), R4 copy Y (on R2), R5 merge(R0, R3), R6 merge(R0, R4).
    merge, copy_x, copy_y = d("5"), d("6"), d("f")
    records = [
        {"digest": str(BASE_V1)},
        {"digest": str(SUM_A)},
        {"digest": str(SUM_B)},
        {"digest": str(copy_x), "inputs": [[{"link": 1}]]},
        {"digest": str(copy_y), "inputs": [[{"link": 2}]]},
        {"digest": str(merge), "inputs": [[{"link": 0}], [{"link": 3}]]},
        {"digest": str(merge), "inputs": [[{"link": 0}], [{"link": 4}]]},
    ]
    imported = ImportedCache("c", parse_cache_config(json.dumps({"records": records}).encode()))
    plan = plan_dockerfile("FROM alpine:3.20\nCOPY --link a /a\n")
    step = plan.stages[0].steps[0]
    # Copy X: only R5 joins it -> one version; the copy Y is R6's and is not this step's.
    x = explain_build(plan, [Key(step, merge, content_input=True, copy_digest=copy_x)], [imported])
    assert x.steps[0].status == "context" and x.steps[0].refs[0].versions == (5,)
    # A copy whose digest is in no record: the merge digest says nothing (every merge has it), the copy op
    # itself is new -> "instruction".
    other = explain_build(plan, [Key(step, merge, content_input=True, copy_digest=d("0"))], [imported])
    assert (other.steps[0].status, other.steps[0].cause) == ("miss", "instruction")
    # The copy is cached but joined onto another parent (base:2's root) -> "parent".
    moved = explain_build(
        plan,
        [Key(step, merge, content_input=True, copy_digest=copy_x)],
        [imported],
        base_roots={"alpine:3.20": frozenset({BASE_V2})},
    )
    assert (moved.steps[0].status, moved.steps[0].cause) == ("miss", "parent")


def test_copy_from_a_rebuilt_stage_still_depends_on_its_files() -> None:
    # FROM … AS build; RUN make; FROM …; COPY --from=build /out /out. R0 base root, R1 RUN make on R0,
    # R2 checksum root, R3 the COPY on R0 whose source input links R1 (path selector) or R2 (content
    # checksum, no selector). An edited RUN misses, but BuildKit then checksums /out of the rebuilt stage
    # and may still hit R3 through R2 (edge.go slow cache): "context", not a miss. Without the R2 link it
    # is a "parent" miss.
    plan = plan_dockerfile(
        "FROM alpine:3.20 AS build\nRUN make\nFROM alpine:3.20\nCOPY --from=build /out /out\n"
    )
    run_step, copy_step = plan.stages[0].steps[0], plan.stages[1].steps[0]
    source: list[dict[str, object]] = [{"selector": str(d("d")), "link": 1}, {"link": 2}]
    roots: list[dict[str, object]] = [
        {"digest": str(BASE_V1)},
        {"digest": str(RUN), "inputs": [[{"selector": ROOT_SELECTOR, "link": 0}]]},
        {"digest": str(SUM_A)},
    ]

    def verdicts(run_digest: Digest, links: list[dict[str, object]]) -> list[tuple[str, str | None]]:
        document = {"records": [*roots, {"digest": str(COPY), "inputs": [[{"link": 0}], links]}]}
        imported = ImportedCache("c", parse_cache_config(json.dumps(document).encode()))
        keys = [Key(run_step, run_digest), Key(copy_step, COPY, content_input=True)]
        return statuses(explain_build(plan, keys, [imported]).steps)

    assert verdicts(RUN, source) == [("hit", None), ("hit", None)]
    assert verdicts(RUN_EDITED, source) == [("miss", "instruction"), ("context", None)]
    assert verdicts(RUN_EDITED, source[:1]) == [("miss", "instruction"), ("miss", "parent")]


def test_the_job_summary_cannot_be_broken_by_a_hostile_label() -> None:
    # A Dockerfile is input: a `|` in a RUN would end the table cell, `*` start emphasis, `<` HTML.
    plan = plan_dockerfile("FROM alpine:3.20\nRUN echo '|*x*|' <b>\n")
    result = explain_build(plan, [Key(plan.stages[0].steps[0], RUN_EDITED)], [cache()])
    markdown = explanation_markdown(result)
    row = next(line for line in markdown.splitlines() if line.startswith("| ") and "RUN echo" in line)
    assert row.count("|") == 4  # the table's own four bars, none from the label
    assert "*x*" not in row and "<b>" not in row
    assert markdown.startswith(
        "### cacheinspect explain: this build will be cold from &#91;2/2&#93; RUN echo"
    )


def test_a_copy_from_a_stage_that_hangs_on_the_context_hangs_on_it_too() -> None:
    # Stage "app" (WORKDIR, COPY . ., RUN make) as in config(); a second stage copies from it. Without
    # --context app's COPY is "context", so is everything above it in app, and so is the COPY --from=app
    # in the next stage, even though its record links to app's RUN: that RUN hits only if the copy does.
    dockerfile = DOCKERFILE + "FROM alpine:3.20\nCOPY --from=app /out /out\n"
    plan = plan_dockerfile(dockerfile)
    workdir, copy, run = plan.stages[0].steps
    final = plan.stages[1].steps[0]
    document = json.loads(config())
    document["records"].append(
        {"digest": str(d("9")), "inputs": [[{"link": 0}], [{"selector": str(d("d")), "link": 6}]]}
    )
    imported = ImportedCache("c", parse_cache_config(json.dumps(document).encode()))
    keys = [Key(workdir, WORKDIR), Key(copy, COPY, content_input=True), Key(run, RUN), Key(final, d("9"))]
    result = explain_build(plan, keys, [imported])
    assert statuses(result.steps) == [("hit", None), ("context", None), ("context", None), ("context", None)]
    # With the context known to be the same, the whole chain hits.
    same = explain_build(plan, keys, [imported], content_check=lambda s, c, v: ((), (4,)))
    assert statuses(same.steps) == [("hit", None)] * 4


def test_every_key_hits_but_no_layer_to_load_runs_the_build() -> None:
    # The config's records without their results: a mode=min cache exported by a build of another target
    # (every key of the graph written, layers only for that target's last step). Every key here hits, but
    # the target's last step (RUN make) has no layer, nor has any step below it: the build runs from WORKDIR.
    document = json.loads(config())
    for record in document["records"]:
        record.pop("layers", None)
    imported = ImportedCache("c", parse_cache_config(json.dumps(document).encode()))
    check = lambda s, c, v: ((), (4,))  # noqa: E731
    result = explain_build(plan_dockerfile(DOCKERFILE), keys(), [imported], content_check=check)
    assert statuses(result.steps) == [("hit", None)] * 3
    assert result.cold_from is None and not result.all_cached
    assert result.runs_from is not None and result.runs_from.step.kind == "WORKDIR"
    assert explanation_markdown(result).startswith(
        "### cacheinspect explain: every key hits, but no cache holds the layers: it runs from &#91;2/4&#93; WORKDIR"
    )
    # With the layers (config() as written) it runs nothing.
    full = explain_build(plan_dockerfile(DOCKERFILE), keys(), [cache()], content_check=check)
    assert full.runs_from is None and full.all_cached
