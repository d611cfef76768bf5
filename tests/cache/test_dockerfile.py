"""The Dockerfile planner: stages, totals and labels as BuildKit's convert.go prints them."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from inspector.cache.naming.dockerfile import BaseConfig, expand, plan_dockerfile
from inspector.errors import UsageError
from tests.harness.support import run_cli

GO_BUILD = """\
# syntax=docker/dockerfile:1
ARG REGISTRY=docker.io
ARG GO=1.23
FROM ${REGISTRY}/library/golang:${GO}-alpine AS build
ENV CGO_ENABLED=0 OUT=/out
WORKDIR /src
COPY go.mod go.sum ./
RUN --mount=type=cache,target=/root/.cache go mod download
COPY . .
RUN go build -o $OUT/app && echo $UNSET

FROM build AS test
RUN go test ./...

FROM ${REGISTRY}/library/alpine:3.20
WORKDIR /
RUN apk add --no-cache ca-certificates
COPY --from=build /out/app /usr/local/bin/app
WORKDIR app
"""


def labels(text: str, **kwargs: object) -> list[str]:
    plan = plan_dockerfile(text, **kwargs)  # type: ignore[arg-type]
    return [step.label() for stage in plan.stages for step in stage.steps]


def test_labels_totals_and_pruning() -> None:
    plan = plan_dockerfile(GO_BUILD)
    assert [s.name for s in plan.stages] == ["build", "stage-2"]  # "test" is not needed by the last stage
    build, final = plan.stages
    assert (build.base_kind, build.base_ref, build.total) == (
        "image",
        "docker.io/library/golang:1.23-alpine",
        6,
    )
    assert [s.label() for s in build.steps] == [
        "[build 2/6] WORKDIR /src",
        "[build 3/6] COPY go.mod go.sum ./",
        "[build 4/6] RUN --mount=type=cache,target=/root/.cache go mod download",
        "[build 5/6] COPY . .",
        "[build 6/6] RUN go build -o /out/app && echo $UNSET",  # ENV expanded, unset left as written
    ]
    # WORKDIR / counts in the total but makes no op, so it takes no number.
    assert final.total == 5
    assert [s.label() for s in final.steps] == [
        "[stage-2 2/5] RUN apk add --no-cache ca-certificates",
        "[stage-2 3/5] COPY --from=build /out/app /usr/local/bin/app",
        "[stage-2 4/5] WORKDIR app",
    ]
    assert final.steps[1].from_stage == "build" and build.steps[1].context_input


def test_build_args_and_target() -> None:
    plan = plan_dockerfile(GO_BUILD, target="test", build_args={"REGISTRY": "127.0.0.1:5000", "GO": "1.24"})
    assert [s.name for s in plan.stages] == ["build", "test"]
    assert plan.stages[0].base_ref == "127.0.0.1:5000/library/golang:1.24-alpine"
    test = plan.stages[1]
    assert (test.base_kind, test.base_stage, test.total) == ("stage", "build", 1)
    assert [s.label() for s in test.steps] == ["[test 1/1] RUN go test ./..."]


def test_width_of_step_numbers_follows_the_total() -> None:
    text = "FROM alpine\n" + "".join(f"RUN echo {i}\n" for i in range(11))
    # A Dockerfile with a single stage prints no stage name (convert.go).
    assert labels(text)[:2] == ["[ 2/12] RUN echo 0", "[ 3/12] RUN echo 1"]
    assert plan_dockerfile(text).stages[0].steps[0].label("linux/arm64") == "[linux/arm64  2/12] RUN echo 0"
    two = "FROM alpine AS a\n" + "".join(f"RUN echo {i}\n" for i in range(11)) + "FROM a\n"
    assert labels(two, target="a")[0] == "[a  2/12] RUN echo 0"


def test_platform_args() -> None:
    text = "FROM --platform=$BUILDPLATFORM alpine\nARG TARGETARCH\nRUN echo $TARGETARCH $TARGETPLATFORM\n"
    assert labels(text) == ["[2/2] RUN echo $TARGETARCH $TARGETPLATFORM"]
    assert labels(text, platform="linux/arm64/v8") == ["[2/2] RUN echo arm64 $TARGETPLATFORM"]


def test_scratch_numeric_from_and_mounts() -> None:
    text = (
        "FROM alpine AS a\nRUN make\n"
        "FROM scratch\nCOPY --from=0 /bin/app /app\nCOPY --link conf /etc/conf\n"
        "FROM alpine\nRUN --mount=type=bind,from=a,source=/x,target=/x cat /x\nCOPY --from=1 /app /app\n"
    )
    a, scratch, last = plan_dockerfile(text).stages
    assert (scratch.base_kind, scratch.total) == ("scratch", 2)
    assert (
        scratch.steps[0].from_stage == "a"
        and scratch.steps[0].label() == "[stage-1 1/2] COPY --from=0 /bin/app /app"
    )
    assert scratch.steps[1].link and scratch.steps[1].context_input
    assert last.steps[0].from_stage == "a" and last.steps[1].from_stage == "stage-1"
    assert a.steps[0].root_selector


def test_copy_from_an_image_is_not_a_stage() -> None:
    (stage,) = plan_dockerfile("FROM alpine\nCOPY --from=busybox:1.36 /bin/busybox /bin/\n").stages
    assert stage.steps[0].from_image == "busybox:1.36" and stage.steps[0].from_stage is None


@pytest.mark.parametrize(
    ("text", "message"),
    [("RUN echo\n", "no FROM"), ('FROM alpine\nRUN ["unterminated\n', "")],
)
def test_bad_dockerfiles(text: str, message: str) -> None:
    try:
        plan_dockerfile(text)
    except UsageError as exc:
        assert message in str(exc)
    else:
        assert message == "", "expected a UsageError"


def test_unknown_target() -> None:
    with pytest.raises(UsageError, match="no such stage"):
        plan_dockerfile(GO_BUILD, target="nope")


@pytest.mark.parametrize(
    ("word", "expected"),
    [
        ("$A", "1"),
        ("${A}-x", "1-x"),
        ("${B:-d}", "d"),
        ("${A:+alt}", "alt"),
        ("${B:+alt}", ""),
        ("$B", "$B"),
        ("\\$A", "\\$A"),
        ("${E:-fallback}", "fallback"),
        ("${E-kept}", ""),
    ],
)
def test_expand(word: str, expected: str) -> None:
    assert expand(word, {"A": "1", "E": ""}, keep_unset=True) == expected


@pytest.mark.parametrize(
    ("text", "message"),
    [
        # instructions/parse.go parseBuildStageName: `case len(args) != 1: "FROM requires either one or three
        # arguments"`; a bare FROM has none, `FROM alpine AS` two.
        ("FROM\n", "line 1: FROM requires either one or three arguments"),
        ("FROM alpine AS\n", "line 1: FROM requires either one or three arguments"),
        # parseBuildStageName: a name must match validStageName ^[a-z][a-z0-9-_.]*$ (after lowering).
        ("FROM alpine AS 1st\n", "line 1: invalid name for build stage: '1st'"),
        # ParseInstruction's default case: UnknownInstructionError "unknown instruction: RUNN", wrapped by
        # parseError as "dockerfile parse error on line N: …".
        ("FROM alpine\n\nRUNN x\n", "dockerfile parse error on line 3: unknown instruction: RUNN"),
    ],
)
def test_parse_errors_name_the_file_and_line_as_buildkit_does(text: str, message: str) -> None:
    with pytest.raises(UsageError, match=re.escape("app/Dockerfile: dockerfile parse error on ")) as caught:
        plan_dockerfile(text, name="app/Dockerfile")
    assert message in str(caught.value)


@pytest.mark.parametrize("text", ["FROM\n", "FROM alpine\nRUNN x\n", "FROM alpine AS\n"])
def test_cli_malformed_dockerfile_exits_2_with_file_and_line(tmp_path: Path, text: str) -> None:
    # Checked before any request, so the (unreachable) reference is never contacted.
    path = tmp_path / "Dockerfile"
    path.write_text(text)
    shown = run_cli("show", "127.0.0.1:9/none/cache:latest", "--dockerfile", str(path))
    assert shown.returncode == 2, shown.stderr
    (line,) = shown.stderr.strip().splitlines()
    assert f"{path}: dockerfile parse error on line" in line and "Traceback" not in shown.stderr


def test_env_of_a_parent_stage_is_expanded_in_run_labels() -> None:
    # convert.go dispatchRun: the label is processCmdEnv(shlex, c.String(), getEnv(d.state)); a stage FROM
    # another starts from that stage's state (its ENV) and inherits its buildArgs (`ds.buildArgs =
    # append(ds.buildArgs, ds.base.buildArgs...)`), so `RUN echo $X` prints `RUN echo 1` in the child.
    text = "FROM alpine AS base\nENV X=1\nARG V=dev\nRUN true\nFROM base AS child\nRUN echo $X $V $UNSET\n"
    assert labels(text) == ["[base 2/2] RUN true", "[child 1/1] RUN echo 1 dev $UNSET"]


def test_env_and_workdir_of_a_resolved_base_image_are_used() -> None:
    # The image's config Env is the state's env from the start (llb.Image with the resolved config), and its
    # WorkingDir the starting directory of dispatchWorkdir: `WORKDIR ..` from /go is /, which makes no op.
    text = "FROM golang:1.23\nRUN echo $GOPATH $PATH\nWORKDIR ..\nRUN go version\n"
    config = BaseConfig({"GOPATH": "/go", "PATH": "/go/bin:/usr/bin"}, "/go")
    plan = plan_dockerfile(text, base_configs={"golang:1.23": config})
    assert [s.label() for s in plan.stages[0].steps] == [
        "[2/4] RUN echo /go /go/bin:/usr/bin",
        "[3/4] RUN go version",  # prefixCommand increments cmdIndex; the no-op WORKDIR never calls it
    ]
    # Unresolved, the variables stay as written and the working directory starts at "/" (WORKDIR .. is "/").
    assert labels(text) == ["[2/4] RUN echo $GOPATH $PATH", "[3/4] RUN go version"]


@pytest.mark.parametrize(
    ("workdir", "numbered"),
    [
        # dispatchWorkdir: wd = NormalizeWorkdir(current, c.Path) (util/system/path.go NormalizePath: joined to
        # the current directory, path.Clean); only `if wd != "/"` makes the Mkdir FileOp that takes a number.
        ("/tmp/..", False),
        ("//", False),
        ("/./", False),
        ("/app/../..", False),
        ("$EMPTY/", False),  # expands to "/" (EMPTY is unset)
        ("/tmp/../app", True),
        ("sub", True),
    ],
)
def test_workdir_that_normalises_to_root_makes_no_op(workdir: str, numbered: bool) -> None:
    text = f"FROM alpine\nWORKDIR {workdir}\nRUN true\n"
    expected = [f"[2/3] WORKDIR {workdir}", "[3/3] RUN true"] if numbered else ["[2/3] RUN true"]
    assert labels(text) == expected


def test_copy_link_with_chmod_is_no_merge() -> None:
    # convert_copy.go dispatchCopy: `if cfg.opt.llbCaps.Supports(pb.CapMergeOp) == nil && cfg.link &&
    # cfg.chmod == ""` makes the MergeOp (the same condition in v0.10.0 convert.go and v0.11 … v0.32
    # convert_copy.go); with --chmod the copy is `d.state.File(a, …)`, a plain FileOp on the state.
    text = (
        "FROM alpine\nCOPY --link a /a\nCOPY --link --chmod=755 b /b\nCOPY --link --chmod= c /c\n"
        "ADD --link --chmod=644 d /d\n"
    )
    steps = plan_dockerfile(text).stages[0].steps
    assert [s.link for s in steps] == [True, False, True, False]


def test_a_lone_surrogate_is_refused_before_the_parser_sees_it() -> None:
    """The parser is Go behind a C binding: given a lone surrogate it kills the whole process (SIGSEGV,
    seen by hand), so no traceback or error could ever be printed. A Dockerfile read from disk with
    strict UTF-8 cannot hold one; a library caller's string can."""
    with pytest.raises(UsageError, match="not UTF-8 text"):
        plan_dockerfile("FROM alpine\nRUN echo \udcff\n", name="Dockerfile")
