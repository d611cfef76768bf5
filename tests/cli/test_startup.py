"""Start-up of one-request commands: ``tags`` imports its own command module and what its request needs,
nothing of the other commands, no rich, and no CA bundle for a plain-HTTP loopback registry."""

from __future__ import annotations

import subprocess
import sys

import pytest

from inspector.cli.entry import _command_name

COMMANDS_IN_HELP_ORDER = ["show", "tags", "du", "diff", "gc", "probe", "copy", "completion"]


def _run_then_list_modules(*argv: list[str]) -> set[str]:
    """Run each command line in one fresh interpreter; the names of the modules imported afterwards."""
    code = (
        "import sys\n"
        "from inspector.cli.entry import run\n"
        f"for argv in {list(argv)!r}: run(argv)\n"
        "print(' '.join(sorted(sys.modules)))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return set(done.stdout.strip().splitlines()[-1].split())


def test_a_tags_run_imports_no_other_command_no_rich_and_not_httpx_own_cli() -> None:
    # Port 1 on loopback: nothing listens, the request fails at once (exit 6) after every import it needs.
    modules = _run_then_list_modules(["tags", "127.0.0.1:1/app"])
    assert "inspector.cli.commands.tags" in modules and "httpx" in modules
    others = {f"inspector.cli.commands.{name}" for name in ("show", "repo", "gc", "probe", "copy")}
    assert not modules & others
    # rich and pygments came only through httpx._main (httpx's own CLI) while click is installed.
    assert "rich" not in modules and "pygments" not in modules


def test_help_lists_every_command_in_one_order_whichever_ran_first() -> None:
    code = (
        "from inspector.cli.entry import run\n"
        "run(['tags', '--help']); run(['completion', 'bash']); run(['--help'])\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    listing = out[out.rindex("Commands:") :]
    names = [line.split()[0] for line in listing.splitlines()[1:] if line.startswith("  ") and line[2] != " "]
    assert names == COMMANDS_IN_HELP_ORDER


@pytest.mark.parametrize(
    ("argv", "name"),
    [
        (["tags", "r/a"], "tags"),
        (["-v", "--deadline", "20", "du", "r/a"], "du"),
        (["--authfile=a.json", "--registry-auth", "ghcr.io", "show", "x"], "show"),
        (["--deadline", "tags"], None),  # "tags" is the deadline's (bad) value: every command is loaded
        (["--help"], None),
        (["--", "tags"], None),
    ],
)
def test_the_command_a_line_names(argv: list[str], name: str | None) -> None:
    assert _command_name(argv) == name
