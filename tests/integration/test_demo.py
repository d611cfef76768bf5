"""``scripts/demo.sh``'s explain runs, as a new user sees them: the demo in a subprocess, its output piped.

The expectations are derived by hand from testdata/dockerfiles/explain-demo.Dockerfile and its edited variant
(tests/harness/make_testdata.py ``EXPLAIN_DEMO``): the sample's records are the BuildKit keys of the four steps
of explain-demo.Dockerfile (WORKDIR /app, ``COPY . .``, ``RUN make``, ``RUN make check``) on base_image(1),
which the demo pushes to library/demo-base:1, the ref the Dockerfile names with ``--build-arg REGISTRY``.
"""

from __future__ import annotations

import re
import subprocess
import sys

from tests.harness.paths import REPO_ROOT
from tests.harness.support import require_registry_binary

# The FROM is step 1 of 5 (convert.go numbering), so the four cached steps are [2/5]..[5/5].
UNCHANGED = ["✓ [2/5] WORKDIR /app", "✓ [3/5] COPY . .", "✓ [4/5] RUN make", "✓ [5/5] RUN make check"]


def explain_sections(output: str) -> list[list[str]]:
    """The lines each ``$ cacheinspect explain`` of the demo printed, from its command line to its exit code."""
    sections: list[list[str]] = []
    for line in output.splitlines():
        if not line:
            continue
        if line.startswith("$ "):
            sections.append([line])
        elif sections:
            sections[-1].append(line)
    return [section for section in sections if section[0].startswith("$ cacheinspect explain ")]


def test_the_demo_explains_its_sample_with_hits_then_a_first_miss_and_its_cause() -> None:
    require_registry_binary()
    result = subprocess.run(
        [sys.executable, "-m", "scripts.demo"],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        stdin=subprocess.DEVNULL,
    )
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert not [line for line in lines if line != line.rstrip()], "piped output is not padded"
    unchanged, edited = explain_sections(result.stdout)

    # The Dockerfile that wrote the cache, the same base and the same context files (main.c and Makefile,
    # the bytes and mode 0644 of the cached COPY layer): every key is in the cache on top of the previous one.
    steps = [line for line in unchanged if line.startswith(("✓", "✗"))]
    assert [re.sub(r"  hit from .*", "", line) for line in steps] == UNCHANGED
    assert all("hit from " in line and "/samples/explain-demo:latest" in line for line in steps)
    assert "every step is cached" in unchanged and unchanged[-1] == "# exit code 0"

    # `RUN make` edited to `RUN make CFLAGS=-O2`: WORKDIR's and COPY's FileOps are unchanged on the same base
    # and hit; the edited RUN's ExecOp args (/bin/sh -c "make CFLAGS=-O2") give a digest no record holds ->
    # "the instruction or its environment changed"; `RUN make check` has its old op digest, but that record
    # sits only on top of the old `RUN make` -> "an earlier step or the base image changed". Cold from [4/5];
    # --strict: exit 10.
    steps = [line for line in edited if line.startswith(("✓", "✗"))]
    assert [re.sub(r"  hit from .*", "", line) for line in steps[:2]] == UNCHANGED[:2]
    assert len(steps) == 4
    assert steps[2].startswith(
        "✗ [4/5] RUN make CFLAGS=-O2  miss: the instruction or its environment changed"
    )
    assert steps[3].startswith("✗ [5/5] RUN make check  miss: an earlier step or the base image changed")
    assert "this build will be cold from [4/5] RUN make CFLAGS=-O2" in edited
    assert edited[-1] == "# exit code 10"
