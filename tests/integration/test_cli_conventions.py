"""The CLI behaves like its neighbours (git, regctl, crane): each test runs the real CLI in a subprocess.

Global flags anywhere, help on a bare call, ``REF`` in usage lines, untruncated command summaries,
click's usage errors in the house format, exit 1 reserved for ``diff --exit-code``, shell completion.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from inspector.errors import ExitCode
from tests.harness.paths import REPO_ROOT
from tests.harness.registry import LocalRegistry
from tests.harness.support import run_cli

LAYOUTS = REPO_ROOT / "testdata" / "layouts"
VENV_BIN = Path(sys.executable).parent

# A colour SGR sequence: 30-37/90-97 foreground or 38;… (bold "1" and dim "2" are not colours).
_COLOUR = re.compile(r"\x1b\[(?:\d+;)*(?:3[0-8]|9[0-7])(?:;\d+)*m")


def _log_lines(stderr: str) -> list[str]:
    """The ``-v`` request log lines (``HH:MM:SS inspector.registry.client: GET …``)."""
    return [line for line in stderr.splitlines() if re.match(r"\d\d:\d\d:\d\d inspector\.", line)]


# --------------------------------------------------------------------------- global flags
@pytest.mark.parametrize("placement", ["before", "after", "between"])
def test_verbose_works_before_or_after_the_subcommand(
    registry: LocalRegistry, seeded: dict[str, dict[str, str]], placement: str
) -> None:
    repo = f"{registry.host}/samples/multistage-min"
    args = {
        "before": ["-v", "tags", repo],
        "after": ["tags", repo, "-v"],
        "between": ["tags", "-v", repo],
    }[placement]
    result = run_cli(*args)
    assert result.returncode == 0, result.stderr
    # The tag list is one GET of /v2/<repo>/tags/list; -v logs each request (client.py's log.debug).
    assert any("/v2/samples/multistage-min/tags/list" in line for line in _log_lines(result.stderr)), (
        result.stderr
    )
    assert result.stdout.split() == ["latest"]  # samples.json: multistage-min has the one tag "latest"


def test_debug_after_the_subcommand(registry: LocalRegistry, seeded: dict[str, dict[str, str]]) -> None:
    result = run_cli("tags", f"{registry.host}/samples/multistage-min", "--debug")
    assert result.returncode == 0, result.stderr
    assert _log_lines(result.stderr), result.stderr  # --debug implies -v


def test_a_flag_value_that_looks_like_a_global_flag_stays_a_value(
    registry: LocalRegistry, seeded: dict[str, dict[str, str]]
) -> None:
    # "--tag-pattern -v" is du's own option with the value "-v": no tag matches it, and nothing is logged.
    result = run_cli("du", f"{registry.host}/samples/multistage-min", "--tag-pattern", "-v", "--json")
    assert result.returncode == 0, result.stderr
    assert not _log_lines(result.stderr), result.stderr
    # And after "--" a "-v" is an argument, never a flag: here the (invalid) repository name "-v".
    after_dashes = run_cli("tags", "--", "-v")
    assert after_dashes.returncode == int(ExitCode.USAGE), after_dashes.stderr
    assert not _log_lines(after_dashes.stderr)


@pytest.mark.parametrize("placement", ["before", "after"])
def test_no_color_before_or_after_the_subcommand(placement: str) -> None:
    layout = f"oci:{LAYOUTS / 'missing-blob'}"
    # FORCE_COLOR makes rich colour a pipe; the blob-missing problem is rendered red (render.py _health).
    coloured = run_cli("show", layout, env={"FORCE_COLOR": "1"})
    assert coloured.returncode == 0, coloured.stderr
    assert _COLOUR.search(coloured.stdout), "the control run must be coloured, or this test proves nothing"
    args = ["--no-color", "show", layout] if placement == "before" else ["show", layout, "--no-color"]
    plain = run_cli(*args, env={"FORCE_COLOR": "1"})
    assert plain.returncode == 0, plain.stderr
    assert not _COLOUR.search(plain.stdout), plain.stdout[:400]
    assert "blob-missing" in plain.stdout


# --------------------------------------------------------------------------- help and usage


def test_bare_call_prints_help_and_exits_0() -> None:
    result = run_cli()
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("Usage: cacheinspect [OPTIONS] COMMAND [ARGS]...")
    assert "Commands:" in result.stdout and result.stderr == ""


@pytest.mark.parametrize(
    ("command", "usage"),
    [
        # The arguments as the commands declare them (commands*.py): show(ref), tags(repository),
        # du(repository), diff(ref_a, ref_b), gc(repository: optional), probe(target: optional).
        ("show", "Usage: cacheinspect show [OPTIONS] REF"),
        ("tags", "Usage: cacheinspect tags [OPTIONS] REPOSITORY"),
        ("diff", "Usage: cacheinspect diff [OPTIONS] REF_A REF_B"),
        ("gc", "Usage: cacheinspect gc [OPTIONS] [REPOSITORY]"),
        ("completion", "Usage: cacheinspect completion [OPTIONS] SHELL"),
    ],
)
def test_usage_lines_name_arguments_in_capitals(command: str, usage: str) -> None:
    result = run_cli(command, "--help")
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[0] == usage
    assert "{" not in result.stdout.splitlines()[0]


def test_top_level_help_keeps_each_command_summary_whole() -> None:
    result = run_cli("--help")
    assert result.returncode == 0
    commands = result.stdout.split("Commands:", 1)[1]
    flat = " ".join(commands.split())
    # First sentences of the commands' docstrings, word for word; click cut them at ~45 columns ("...").
    for sentence in (
        "Show a cache: layers per Dockerfile stage, sizes, dates and a health verdict.",
        "Disk usage of every cache tag in a repository: size, bytes unique to it, bytes shared, age, total.",
        "Check that a registry can hold a BuildKit registry cache, and which --cache-to flags work there.",
    ):
        assert sentence in flat, flat
    assert "..." not in commands


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["show"], "cacheinspect: error: Missing argument 'REF'."),
        (["show", "x", "--no-such-flag"], "cacheinspect: error: No such option: --no-such-flag"),
        (["show", "x", "-j", "0"], "cacheinspect: error: Invalid value for '--concurrency' / '-j': 0"),
        (["no-such-command"], "cacheinspect: error: No such command 'no-such-command'."),
        (["-v"], "cacheinspect: error: Missing command."),
    ],
)
def test_click_usage_errors_use_the_house_format(args: list[str], message: str) -> None:
    result = run_cli(*args)
    assert result.returncode == int(ExitCode.USAGE) == 2
    lines = result.stderr.splitlines()
    assert lines[0].startswith(message), result.stderr
    assert len(lines) == 2 and lines[1].startswith("cacheinspect: hint: see 'cacheinspect"), result.stderr
    assert "Usage:" not in result.stderr and "Try '" not in result.stderr
    assert result.stdout == ""


# --------------------------------------------------------------------------- exit codes

_BUG_SCRIPT = """
import sys
import inspector.oci.reference

def broken(text):
    raise RuntimeError("injected bug")

inspector.oci.reference.parse_repository = broken
from inspector.cli import run
sys.exit(run(sys.argv[1:]))
"""


def test_an_internal_error_exits_70_not_1() -> None:
    # A bug injected into the real CLI process (parse_repository raises what no code expects).
    result = subprocess.run(
        [sys.executable, "-c", _BUG_SCRIPT, "tags", "example.com/x"],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=REPO_ROOT,
        stdin=subprocess.DEVNULL,
    )
    assert result.returncode == int(ExitCode.BUG) == 70, result.stderr
    assert result.stderr.splitlines() == [
        "cacheinspect: internal error: RuntimeError: injected bug (rerun with --debug for a traceback)"
    ]
    assert [c for c in ExitCode if c.value == 1] == [ExitCode.DIFFERENT]


def test_docs_document_exit_70_and_1_once() -> None:
    rows = [
        line
        for line in (REPO_ROOT / "docs" / "exit-codes.md").read_text().splitlines()
        if line.startswith("| ")
    ]
    ones = [r for r in rows if r.startswith("| 1 |")]
    assert len(ones) == 1 and ones[0].startswith("| 1 | (`diff --exit-code`) the two caches differ"), ones
    assert any(r.startswith("| 70 | internal error") for r in rows)


def test_a_reader_that_leaves_is_not_an_internal_error() -> None:
    read_end, write_end = os.pipe()
    os.close(read_end)  # the reader is gone before the first byte: every write is EPIPE
    try:
        result = subprocess.run(
            [sys.executable, "-m", "inspector", "completion", "bash"],
            stdout=write_end,
            stderr=subprocess.PIPE,
            text=True,
            timeout=60,
            cwd=REPO_ROOT,
        )
    finally:
        os.close(write_end)
    assert result.returncode == 141, result.stderr  # 128 + SIGPIPE, as a shell reports it
    assert result.stderr == ""


# --------------------------------------------------------------------------- completion


def _completion_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("_CACHEINSPECT")}
    env["PATH"] = f"{VENV_BIN}{os.pathsep}{env.get('PATH', '')}"
    env.update(extra)
    return env


def test_bash_completion_script_completes_commands_and_options() -> None:
    if not (VENV_BIN / "cacheinspect").exists():
        pytest.skip("the cacheinspect entry point is not installed beside this python")
    script = (
        'eval "$(cacheinspect completion bash)"\n'
        "COMP_WORDS=(cacheinspect d); COMP_CWORD=1; _cacheinspect_completion cacheinspect\n"
        'printf "%s\\n" "${COMPREPLY[@]}"; echo --\n'
        "COMP_WORDS=(cacheinspect show --no-check); COMP_CWORD=2; _cacheinspect_completion cacheinspect\n"
        'printf "%s\\n" "${COMPREPLY[@]}"\n'
    )
    result = subprocess.run(
        ["bash", "--norc", "--noprofile", "-c", script],
        capture_output=True,
        text=True,
        timeout=60,
        env=_completion_env(),
    )
    assert result.returncode == 0, result.stderr
    commands, options = result.stdout.split("--\n")
    assert commands.split() == ["du", "diff"]  # the commands starting with "d", in registration order
    assert options.split() == ["--no-check-blobs"]


@pytest.mark.parametrize(
    ("shell", "extra", "expected"),
    [
        # What the printed scripts pass (typer's zsh and fish templates): the words so far in
        # _TYPER_COMPLETE_ARGS; fish also asks for the candidates with ..._FISH_ACTION=get-args.
        ("zsh", {}, ['"du":', '"diff":']),
        ("fish", {"_TYPER_COMPLETE_FISH_ACTION": "get-args"}, ["du\t", "diff\t"]),
    ],
)
def test_zsh_and_fish_completion(shell: str, extra: dict[str, str], expected: list[str]) -> None:
    script = run_cli("completion", shell)
    assert script.returncode == 0, script.stderr
    assert "_CACHEINSPECT_COMPLETE=complete_" + shell in script.stdout
    answer = subprocess.run(
        [sys.executable, "-m", "inspector"],
        capture_output=True,
        text=True,
        timeout=60,
        env=_completion_env(
            _CACHEINSPECT_COMPLETE=f"complete_{shell}", _TYPER_COMPLETE_ARGS="cacheinspect d", **extra
        ),
    )
    assert answer.returncode == 0, answer.stderr
    for candidate in expected:
        assert candidate in answer.stdout, answer.stdout
    assert "show" not in answer.stdout


def test_completion_of_an_unknown_shell_is_a_usage_error() -> None:
    result = run_cli("completion", "tcsh")
    assert result.returncode == 2
    assert (
        result.stderr.splitlines()[0]
        == "cacheinspect: error: completion 'tcsh': expected one of bash, zsh, fish"
    )
