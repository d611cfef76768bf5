"""Naming reconstructed stages from a Dockerfile: every step the cache holds, with the right basis."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from inspector.cache.analysis import CacheGraph, analyze
from inspector.cache.config import parse_cache_config
from inspector.cache.naming.align import name_from_dockerfile
from inspector.cache.naming.dockerfile import plan_dockerfile
from inspector.cache.report import inspect_cache
from inspector.cache.source import LayoutSource, parse_layout_reference
from inspector.oci.digest import Digest
from tests.harness import make_testdata
from tests.harness.fixturegen import Build, Stage, copy, generate, run
from tests.harness.paths import TESTDATA, schema
from tests.harness.support import run_cli, validate_json

LAYOUTS = TESTDATA / "layouts"

MULTISTAGE = """\
FROM golang:1.23-alpine AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
RUN go build -o /out/app

FROM alpine:3.20
RUN apk add --no-cache ca-certificates
COPY --from=build /out/app /usr/local/bin/app
"""
MULTISTAGE_LABELS = {
    ("build", "FROM golang:1.23-alpine (matched)"): [
        "[build 2/6] WORKDIR /src",
        "[build 3/6] COPY go.mod go.sum ./",
        "[build 4/6] RUN go mod download",
        "[build 5/6] COPY . .",
        "[build 6/6] RUN go build -o /out/app",
    ],
    ("stage-1", "FROM alpine:3.20 (matched)"): [
        "[stage-1 2/3] RUN apk add --no-cache ca-certificates",
        "[stage-1 3/3] COPY --from=build /out/app /usr/local/bin/app",
    ],
}


def graph_of(layout: str) -> CacheGraph:
    return graph_of_layout(LAYOUTS / layout)


def graph_of_layout(layout: Path) -> CacheGraph:
    report = inspect_cache(LayoutSource(parse_layout_reference(f"oci:{layout}")), check_blobs=False)
    assert report.graph is not None
    return report.graph


def named(graph: CacheGraph) -> dict[tuple[str, str], list[str]]:
    from inspector.cache.report import base_label

    return {
        (stage.name or "", base_label(stage, graph)): [step.instruction or "" for step in stage.steps]
        for stage in graph.stages
    }


@pytest.mark.parametrize(
    "layout",
    [
        "multistage-max:image-manifest",
        "multistage-max:oci-index",
        "multistage-max:docker-manifest-list",
        "multistage-min",
        "missing-blob",
    ],
)
def test_multistage_build_every_step_named(layout: str) -> None:
    graph = name_from_dockerfile(graph_of(layout), plan_dockerfile(MULTISTAGE))
    assert named(graph) == MULTISTAGE_LABELS
    assert all(step.basis == "matched" for stage in graph.stages for step in stage.steps)
    assert [step.line for step in graph.stages[0].steps] == [2, 3, 4, 5, 6]
    assert graph.notes == ()  # every cache step explained, every Dockerfile step found


def test_stage_from_another_stage_and_scratch() -> None:
    dockerfile = """\
FROM golang:1.23-alpine AS build
WORKDIR /src
COPY . .
RUN go build -o /out/app

FROM build AS test
RUN go test ./... > /out/test-report.txt

FROM scratch AS release
COPY --from=build /out/app /app
COPY --from=test /out/test-report.txt /test-report.txt
"""
    graph = name_from_dockerfile(graph_of("three-stages"), plan_dockerfile(dockerfile))
    build, release = graph.stages
    # "test" grows from "build" without a branch: the cache cannot see the boundary, the labels can.
    assert build.name == "build + test"
    assert [s.instruction for s in build.steps] == [
        "[build 2/4] WORKDIR /src",
        "[build 3/4] COPY . .",
        "[build 4/4] RUN go build -o /out/app",
        "[test 1/1] RUN go test ./... > /out/test-report.txt",
    ]
    assert release.base.kind == "scratch" and release.name == "release"
    assert [s.instruction for s in release.steps] == [
        "[release 1/2] COPY --from=build /out/app /app",
        "[release 2/2] COPY --from=test /out/test-report.txt /test-report.txt",
    ]


def test_copy_link_names_the_merge_and_the_copied_layer() -> None:
    dockerfile = """\
FROM golang:1.23-alpine AS build
WORKDIR /src
COPY . .
RUN go build -o /out/app

FROM alpine:3.20 AS final
RUN apk add --no-cache ca-certificates
COPY --link --from=build /out/app /usr/local/bin/app
COPY --link config.yaml /etc/app/
"""
    graph = name_from_dockerfile(graph_of("copy-link"), plan_dockerfile(dockerfile))
    by_name: dict[str, list[str]] = {}
    for stage in graph.stages:
        by_name.setdefault(stage.name or "?", []).extend(s.instruction or "" for s in stage.steps)
    # The merges carry BuildKit's "LINK" label; the separate copy chains the plain one.
    assert by_name["final"] == [
        "[final 2/4] RUN apk add --no-cache ca-certificates",
        "[final 3/4] LINK COPY --link --from=build /out/app /usr/local/bin/app",
        "[final 4/4] LINK COPY --link config.yaml /etc/app/",
    ]
    assert sorted(by_name["final (COPY --link layer)"]) == [
        "[final 3/4] COPY --link --from=build /out/app /usr/local/bin/app",
        "[final 4/4] COPY --link config.yaml /etc/app/",
    ]


def test_a_dockerfile_that_does_not_fit_says_so() -> None:
    graph = name_from_dockerfile(
        graph_of("multistage-max:oci-index"), plan_dockerfile("FROM alpine\nRUN make\n")
    )
    # One RUN cannot explain half of a multi-stage cache: nothing is named, the stages stay structural.
    assert not [step for stage in graph.stages for step in stage.steps if step.instruction]
    assert all(stage.basis == "structural" and stage.name is None for stage in graph.stages)
    assert len(graph.warnings) == 1 and "does not fit" in graph.warnings[0]
    assert graph.warnings[0] in graph.notes


NODE_DOCKERFILE = """\
FROM node:20 AS deps
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci

FROM node:20-alpine
WORKDIR /app
COPY --from=deps /app/node_modules ./node_modules
COPY . .
RUN npm run build
"""


def test_a_node_dockerfile_on_a_go_cache_names_nothing_and_says_why(tmp_path: Path, realworld: Path) -> None:
    """Issue 13.4 through the CLI: margo-sandbox is a Go build (golang builder, alpine runtime; see
    test_realworld_stages). The Node Dockerfile's WORKDIR, COPY and RUN fit 5 of its 12 steps by shape alone
    (deps: WORKDIR/COPY/RUN on the builder's first three records; runtime: the first two), under half: no
    step or base may be called matched, and stderr says why in one line; the exit code stays 0.
    """
    dockerfile = tmp_path / "Dockerfile"
    dockerfile.write_text(NODE_DOCKERFILE)
    layout = f"oci:{realworld / 'committed-caches' / 'margo-sandbox'}"
    result = run_cli("show", layout, "--no-check-blobs", "--dockerfile", str(dockerfile))
    assert result.returncode == 0, result.stderr
    assert "matched" not in result.stdout and "npm" not in result.stdout
    warnings = [line for line in result.stderr.splitlines() if line.startswith("cacheinspect: warning:")]
    assert warnings == [
        "cacheinspect: warning: the Dockerfile does not fit this cache: it explains only 5 of its 12 steps "
        "(under half), so no step is named from it; was the cache built from this Dockerfile "
        "(and --target, --build-arg)?"
    ]
    doc = json.loads(
        run_cli("show", layout, "--no-check-blobs", "--json", "--dockerfile", str(dockerfile)).stdout
    )
    # Unnamed steps carry no basis and no instruction; stages and bases stay structural.
    assert {(step["instruction"], step["basis"]) for stage in doc["stages"] for step in stage["steps"]} == {
        (None, None)
    }
    assert {stage["basis"] for stage in doc["stages"]} == {"structural"}
    assert {stage["base"]["basis"] for stage in doc["stages"]} <= {"structural", None}
    # A Go Dockerfile of the same shape (hand-written from the record graph) fits: names are given, no warning.
    dockerfile.write_text(
        "FROM golang:1.22-alpine AS builder\nWORKDIR /src\nCOPY go.mod go.sum ./\nRUN go mod download\n"
        "COPY . .\nRUN go build -o /out/agent .\nFROM alpine:3.20\nRUN apk add --no-cache ca-certificates\n"
        "COPY --from=builder /out/agent /usr/local/bin/agent\nCOPY --from=builder /src/agent.yaml /etc/\n"
    )
    fits = run_cli("show", layout, "--no-check-blobs", "--dockerfile", str(dockerfile))
    assert fits.returncode == 0 and "warning" not in fits.stderr
    assert "[builder 6/6] RUN go build -o /out/agent ." in fits.stdout


def test_structurally_identical_stages_are_reported_ambiguous_not_guessed() -> None:
    alpine = make_testdata.ALPINE
    build = Build(
        (
            Stage("one", alpine, (run("make one", {"one": "1"}),)),
            Stage("two", alpine, (run("make two", {"two": "2"}),)),
            Stage(
                "final",
                alpine,
                (copy("/one", dest="/", from_stage="one"), copy("/two", dest="/", from_stage="two")),
            ),
        )
    )
    export = generate(build)
    annotations = {Digest(d.digest): dict(d.annotations) for d in export.layer_descriptors}
    graph = analyze(parse_cache_config(export.config_bytes), annotations)
    dockerfile = (
        "FROM alpine:3.20 AS one\nRUN make one\nFROM alpine:3.20 AS two\nRUN make two\n"
        "FROM alpine:3.20 AS final\nCOPY --from=one /one /\nCOPY --from=two /two /\n"
    )
    named_graph = name_from_dockerfile(graph, plan_dockerfile(dockerfile))
    labels = sorted(s.instruction or "-" for stage in named_graph.stages for s in stage.steps)
    # The two single-RUN stages fit either Dockerfile stage: left unnamed, with a note; the rest is named.
    assert labels.count("-") == 2
    assert "[final 2/3] COPY --from=one /one /" in labels
    assert any("ambiguous" in note for note in named_graph.notes)


def test_identical_steps_in_two_stages_collapse_into_one_named_record() -> None:
    alpine = make_testdata.ALPINE
    build = Build(
        (
            Stage("a", alpine, (run("apk add git", {"git": "g"}), run("make a", {"a": "a"}))),
            Stage("b", alpine, (run("apk add git", {"git": "g"}), run("make b", {"b": "b"}))),
            Stage(
                "final", alpine, (copy("/a", dest="/", from_stage="a"), copy("/b", dest="/", from_stage="b"))
            ),
        )
    )
    export = generate(build)
    annotations = {Digest(d.digest): dict(d.annotations) for d in export.layer_descriptors}
    graph = analyze(parse_cache_config(export.config_bytes), annotations)
    dockerfile = (
        "FROM alpine:3.20 AS a\nRUN apk add git\nRUN make a\nFROM alpine:3.20 AS b\nRUN apk add git\nRUN make b\n"
        "FROM alpine:3.20 AS final\nCOPY --from=a /a /\nCOPY --from=b /b /\n"
    )
    named_graph = name_from_dockerfile(graph, plan_dockerfile(dockerfile))
    labels = [s.instruction for stage in named_graph.stages for s in stage.steps]
    assert "[a 2/3] RUN apk add git | [b 2/3] RUN apk add git" in labels


# margo/sandbox poc/device/agent/Dockerfile @ 029ede05 (SOURCES.md: committed-caches/margo-sandbox), its build
# instructions as written there (comments, VOLUME, ENTRYPOINT and CMD left out: they make no record).
MARGO_DOCKERFILE = """\
FROM golang:1.25.5 AS builder
ARG VERSION
ARG COMMIT
ARG DATE
WORKDIR /app
COPY go.mod go.sum ./
RUN go mod download
COPY . .
RUN CGO_ENABLED=0 GOOS=linux go build -trimpath -o device-agent ./poc/device/agent
FROM docker:28.3.3-cli AS docker-source
FROM alpine:3.18
RUN apk add --no-cache ca-certificates tzdata
WORKDIR /
COPY --from=builder /app/device-agent .
COPY --from=builder /app/poc/device/agent/config ./config
COPY --from=docker-source /usr/local/bin/docker /usr/bin/docker
RUN mkdir -p /usr/local/libexec/docker/cli-plugins
COPY --from=docker-source /usr/local/libexec/docker/cli-plugins/docker-compose /usr/local/libexec/docker/cli-plugins/docker-compose
RUN chmod +x /usr/local/libexec/docker/cli-plugins/docker-compose
"""


def test_copy_from_a_stage_that_is_only_an_image_names_that_stage(tmp_path: Path, realworld: Path) -> None:
    """Issue 13.10: ``FROM docker:28.3.3-cli AS docker-source`` has no steps, so no record: BuildKit builds
    nothing for it and the copies link the image's root key. In margo-sandbox R22 (on R9, the runtime's 5th
    step) has slot 1 [R15 | R23 with a path selector] and R3 (on R0) slot 1 [R5 | R23 with another selector]:
    R15 and R5 are content keys of the copied files, R23 a root no record is on, linked with a selector as
    a copy source is. So the two COPY --from=docker-source are R22 and R3, and the stage they copy from is
    an image whose root key is R23: listed as "docker-source", no steps, base docker:28.3.3-cli, between
    builder and the runtime (a stage comes before the stages that copy from it). Before the fix both copies
    were "from an image", unnamed, and the alignment stopped there (R0, R3, R25 unnamed, docker-source absent).
    """
    graph = name_from_dockerfile(
        graph_of_layout(realworld / "committed-caches" / "margo-sandbox"), plan_dockerfile(MARGO_DOCKERFILE)
    )
    assert [(s.name, len(s.steps)) for s in graph.stages] == [
        ("builder", 5),
        ("docker-source", 0),
        ("stage-2", 7),
    ]
    source = graph.stages[1]
    assert source.base.kind == "image" and source.base.image is not None
    assert (source.base.image.name, source.base.image.roots, source.basis) == (
        "docker:28.3.3-cli",
        (23,),
        "matched",
    )
    runtime = graph.stages[2]
    # WORKDIR / makes no op (total 9: FROM, RUN, WORKDIR, three COPY, RUN, COPY, RUN; numbers skip the WORKDIR).
    assert [(s.record, s.instruction) for s in runtime.steps] == [
        (17, "[stage-2 2/9] RUN apk add --no-cache ca-certificates tzdata"),
        (4, "[stage-2 3/9] COPY --from=builder /app/device-agent ."),
        (9, "[stage-2 4/9] COPY --from=builder /app/poc/device/agent/config ./config"),
        (22, "[stage-2 5/9] COPY --from=docker-source /usr/local/bin/docker /usr/bin/docker"),
        (0, "[stage-2 6/9] RUN mkdir -p /usr/local/libexec/docker/cli-plugins"),
        (
            3,
            "[stage-2 7/9] COPY --from=docker-source /usr/local/libexec/docker/cli-plugins/docker-compose "
            "/usr/local/libexec/docker/cli-plugins/docker-compose",
        ),
        (25, "[stage-2 8/9] RUN chmod +x /usr/local/libexec/docker/cli-plugins/docker-compose"),
    ]
    # Each copy's input 1 now points at docker-source (stage 1) through R23; builder's copies at stage 0.
    sources = {s.record: [(i.slot, i.kind, i.stage, i.record) for i in s.inputs] for s in runtime.steps}
    assert sources[22] == sources[3] == [(1, "stage", 1, 23)]
    assert [(i.kind, i.stage) for i in runtime.steps[1].inputs] == [("stage", 0)]
    # Through the CLI: text and JSON say where the copy comes from.
    dockerfile = tmp_path / "Dockerfile"
    dockerfile.write_text(MARGO_DOCKERFILE)
    layout = f"oci:{realworld / 'committed-caches' / 'margo-sandbox'}"
    text = run_cli("show", layout, "--no-check-blobs", "--dockerfile", str(dockerfile))
    assert text.returncode == 0, text.stderr
    assert "docker-source (matched)  FROM docker:28.3.3-cli (matched)  0 steps, 0 B" in text.stdout
    assert "from an image" not in text.stdout and text.stdout.count("from docker-source") == 2
    doc = json.loads(
        run_cli("show", layout, "--no-check-blobs", "--json", "--dockerfile", str(dockerfile)).stdout
    )
    validate_json(doc, schema("show"))
    assert [(s["index"], s["name"], len(s["steps"])) for s in doc["stages"]] == [
        (0, "builder", 5),
        (1, "docker-source", 0),
        (2, "stage-2", 7),
    ]


def test_copy_from_a_bare_image_stage_on_a_generated_cache() -> None:
    """The generator's BuildKit rules (fixturegen): a stage without steps has the image's root keys as its
    state, so ``COPY --from=tools`` links both roots with the path selector, plus the copied files' content
    root. Nothing else is on those roots: no record of "tools" exists until the Dockerfile names it."""
    build = Build(
        (
            Stage("tools", make_testdata.GOLANG, ()),
            Stage(
                "final",
                make_testdata.ALPINE,
                (
                    run("apk add git", {"git": "g"}),
                    copy("/usr/local/go/bin/gofmt", dest="/usr/bin/", from_stage="tools"),
                ),
            ),
        )
    )
    export = generate(build)
    annotations = {Digest(d.digest): dict(d.annotations) for d in export.layer_descriptors}
    graph = analyze(parse_cache_config(export.config_bytes), annotations)
    assert len(graph.stages) == 1  # the cache alone: one stage, the copy "from an image"
    assert [i.kind for i in graph.stages[0].steps[1].inputs] == ["image"]
    dockerfile = (
        "FROM golang:1.23-alpine AS tools\nFROM alpine:3.20\nRUN apk add git\n"
        "COPY --from=tools /usr/local/go/bin/gofmt /usr/bin/\n"
    )
    named_graph = name_from_dockerfile(graph, plan_dockerfile(dockerfile))
    tools, final = named_graph.stages
    assert (tools.name, tools.steps, tools.base.kind) == ("tools", (), "image")
    assert tools.base.image is not None and tools.base.image.name == "golang:1.23-alpine"
    # The golang image's two root keys (manifest key, ChainID key) are the links with the selector.
    copy_record = graph.config.records[final.steps[1].record]
    assert set(tools.base.image.roots) == {link.link for link in copy_record.inputs[1] if link.selector}
    assert len(tools.base.image.roots) == 2
    assert [s.instruction for s in final.steps] == [
        "[stage-1 2/3] RUN apk add git",
        "[stage-1 3/3] COPY --from=tools /usr/local/go/bin/gofmt /usr/bin/",
    ]
    assert [(i.slot, i.kind, i.stage) for i in final.steps[1].inputs] == [(1, "stage", 0)]
    assert (final.base.stage, final.base.image is not None and final.base.image.name) == (None, "alpine:3.20")
