"""gc writes its job summary after its deletions, so a summary that cannot be written is a warning there
(probe's exit 2 is in tests/cli/test_reporting.py): the real CLI against the real registry."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.harness.registry import LocalRegistry
from tests.harness.support import run_cli


@pytest.mark.parametrize("where", ["--summary", "GITHUB_STEP_SUMMARY"])
def test_gc_warns_when_its_summary_cannot_be_written(
    registry: LocalRegistry, seeded: dict[str, dict[str, str]], tmp_path: Path, where: str
) -> None:
    branches = tmp_path / "branches.txt"
    branches.write_text("main\n")
    unwritable = tmp_path / "a-directory"
    unwritable.mkdir()
    args = ["gc", f"{registry.host}/samples/multistage-min", "-t", "{branch}-buildcache"]
    args += ["--branches-file", str(branches)]
    env = {"GITHUB_STEP_SUMMARY": ""}
    if where == "--summary":
        args += ["--summary", str(unwritable)]
    else:
        env["GITHUB_STEP_SUMMARY"] = str(unwritable)
    result = run_cli(*args, env=env)
    assert result.returncode == 0, result.stderr  # a dry run: the plan was printed, nothing else failed
    assert (
        f"cacheinspect: warning: cannot write the summary to {unwritable}: Is a directory\n" in result.stderr
    )
    assert "dry run: nothing was deleted" in result.stdout
