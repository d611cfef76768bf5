"""explain's human view: one line per step, where the build turns cold, and hostile labels kept inert."""

from __future__ import annotations

from rich.console import Console

from inspector.cache.explain import explain_build
from inspector.cache.naming.dockerfile import plan_dockerfile
from inspector.cli.render.explain import render_explanation
from tests.cache.test_explain import COPY, DOCKERFILE, RUN_EDITED, WORKDIR, Key, cache


def text(dockerfile: str, keys: list[Key]) -> list[str]:
    console = Console(record=True, width=300, color_system=None)
    console.print(render_explanation(explain_build(plan_dockerfile(dockerfile), keys, [cache()])))
    return console.export_text().splitlines()


def test_cold_from_says_when_steps_before_it_could_not_be_checked() -> None:
    # No --context: the COPY is "context" (~); the edited RUN misses (✗). The first certain miss is the RUN,
    # but the copy before it may miss too: the line says so. (One stage: labels carry no stage name.) One of
    # the COPY's versions (R4) has a layer, so the build need not run from further back: no runs-from line.
    plan = plan_dockerfile(DOCKERFILE)
    workdir, copy, run = plan.stages[0].steps
    lines = text(
        DOCKERFILE, [Key(workdir, WORKDIR), Key(copy, COPY, content_input=True), Key(run, RUN_EDITED)]
    )
    assert lines[2].startswith("✓ [2/4] WORKDIR /app  hit from reg/app:main")
    assert lines[3].startswith("~ [3/4] COPY . .  depends on the build context")
    assert lines[4].startswith("✗ [4/4] RUN make  miss: the instruction or its environment changed")
    assert (
        lines[5]
        == "this build will be cold from [4/4] RUN make (or earlier: 1 step before it could not be checked)"
    )


def test_control_characters_in_a_label_are_shown_escaped() -> None:
    dockerfile = "FROM alpine:3.20 AS app\nWORKDIR /app\x1b[31m\n"
    plan = plan_dockerfile(dockerfile)
    lines = text(dockerfile, [Key(plan.stages[0].steps[0], RUN_EDITED)])
    assert "\x1b" not in "".join(lines)
    assert any("WORKDIR /app\\x1b[31m" in line for line in lines)
