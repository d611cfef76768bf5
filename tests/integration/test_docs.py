"""The examples in README.md and docs/*.md, executed so the docs cannot rot.

Every ```console or ```sh block carries a marker on the line before it:

- ``<!-- run -->``: each ``$ command`` line (``\\`` continues it) runs in bash, through the real CLI, against the
  test registry (``$REGISTRY`` is its host, as ``scripts/demo.sh --keep`` prints it) seeded with the samples and
  the gc demo repository. The exit code must be 0, or N where the command ends in ``# exit N``. Lines shown
  under a command are its stable output: each must appear in what the command printed (``$REGISTRY`` replaced
  by the host, ``…`` matching anything).
- ``<!-- file: NAME -->``: the block is written to NAME in the working directory of the runnable examples that
  follow it (``$REGISTRY`` replaced by the host).
- ``<!-- not run: WHY -->``: needs what cannot run here (real ECR, GHCR, a cloud login). Every ``cacheinspect``
  command in it is still parsed: its subcommand and every option it uses must exist.

YAML (CI snippets), TOML (policy files) and JSON blocks must parse, and the ``cacheinspect`` commands in a CI
snippet's ``run:``/``script:`` lines are checked like a not-run block.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import sys
import tomllib
from collections.abc import Iterator
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import pytest
import typer
import yaml  # type: ignore[import-untyped]  # pyyaml ships no stubs

from inspector.cli.commands import app
from tests.harness.paths import REPO_ROOT
from tests.harness.registry import LocalRegistry, seed_gc_demo

DOC_FILES = sorted([REPO_ROOT / "README.md", *(REPO_ROOT / "docs").glob("*.md")])
_FENCE = re.compile(r"^(```+)\s*([\w-]*)\s*$")
_MARKER = re.compile(r"^<!--\s*(run|not run:[^>]*?|file: [\w.-]+)\s*-->$")
_EXPECTED_EXIT = re.compile(r"#\s*exit (\d+)\s*$")
_SHELL_OPERATORS = {"|", "||", "&&", ";", ">", ">>", "<", "&", "2>", "2>&1", "$(", ")"}


@dataclass(frozen=True)
class Block:
    path: Path
    line: int  # 1-based line of the opening fence
    lang: str
    marker: str | None  # "run", "not run: …" or None
    text: str

    @property
    def where(self) -> str:
        return f"{self.path.relative_to(REPO_ROOT)}:{self.line}"


def blocks(path: Path) -> list[Block]:
    """The fenced blocks of a Markdown file, each with the marker on the closest non-empty line above it."""
    found: list[Block] = []
    lines = path.read_text(encoding="utf-8").splitlines()
    index = 0
    while index < len(lines):
        opening = _FENCE.match(lines[index])
        if opening is None:
            index += 1
            continue
        fence, lang = opening.groups()
        previous = next((lines[i].strip() for i in range(index - 1, -1, -1) if lines[i].strip()), "")
        marker = _MARKER.match(previous)
        end = next(i for i in range(index + 1, len(lines)) if lines[i].rstrip() == fence)
        found.append(
            Block(
                path, index + 1, lang, marker.group(1) if marker else None, "\n".join(lines[index + 1 : end])
            )
        )
        index = end + 1
    return found


ALL_BLOCKS = [block for path in DOC_FILES for block in blocks(path)]


@dataclass(frozen=True)
class Command:
    text: str  # as bash gets it
    output: list[str]  # the lines the docs show under it


def console_commands(text: str) -> list[Command]:
    """``$ `` lines (with their ``\\`` continuations) and the output lines shown under each."""
    commands: list[Command] = []
    lines = text.splitlines()
    index = 0
    while index < len(lines):
        if not lines[index].startswith("$ "):
            index += 1
            continue
        parts = [lines[index][2:]]
        while parts[-1].endswith("\\") and index + 1 < len(lines):
            index += 1
            parts.append(lines[index])
        index += 1
        output: list[str] = []
        while index < len(lines) and not lines[index].startswith("$ "):
            output.append(lines[index])
            index += 1
        commands.append(Command("\n".join(parts), output))
    return commands


def shell_commands(text: str) -> list[str]:
    """The command lines of a ``sh`` block (comments and continuations handled by shlex)."""
    joined = re.sub(r"\\\n", " ", text)
    return [line for line in joined.splitlines() if line.strip() and not line.lstrip().startswith("#")]


def cacheinspect_invocations(command: str) -> Iterator[list[str]]:
    """The argument lists given to ``cacheinspect`` in one shell command line."""
    lexer = shlex.shlex(command, posix=True, punctuation_chars=True)
    lexer.whitespace_split = True
    lexer.commenters = "#"
    words = list(lexer)
    for start, word in enumerate(words):
        if Path(word).name != "cacheinspect":
            continue
        args: list[str] = []
        for arg in words[start + 1 :]:
            if arg in _SHELL_OPERATORS or arg.startswith((">", "|", "<")):
                break
            args.append(arg)
        yield args


@cache
def _cli() -> Any:
    """The CLI's command tree (typer's own click: its classes are not the installed click's)."""
    return typer.main.get_command(app)


def _options(command: Any) -> set[str]:
    names: set[str] = {"--help", "-h"}
    for param in command.params:
        if getattr(param, "param_type_name", "") == "option":
            names.update(param.opts)
            names.update(param.secondary_opts)
    return names


def check_invocation(args: list[str], where: str) -> None:
    """The subcommand exists and takes every option the example gives it (global options anywhere)."""
    group = _cli()
    global_options = _options(group)
    words = [a for a in args if not a.startswith("-")]
    if not args or args[0] in ("--help", "-h", "--version"):
        return
    assert words, f"{where}: no subcommand in cacheinspect {' '.join(args)}"
    name = words[0]
    assert name in group.commands, f"{where}: cacheinspect has no subcommand {name!r}"
    known = global_options | _options(group.commands[name])
    for arg in args:
        if arg.startswith("-") and arg not in ("-", "--"):
            option = arg.split("=", 1)[0]
            assert option in known, f"{where}: cacheinspect {name} has no option {option}"


# -- every block is accounted for -------------------------------------------------------------------------


def test_the_docs_exist_and_link_to_each_other() -> None:
    readme = (REPO_ROOT / "README.md").read_text(encoding="utf-8")
    for name in ("show", "gc", "probe", "auth", "ci", "exit-codes", "performance", "json"):
        assert (REPO_ROOT / "docs" / f"{name}.md").is_file(), name
        assert f"(docs/{name}.md)" in readme, f"README does not link docs/{name}.md"
    for path in DOC_FILES:
        text = path.read_text(encoding="utf-8")
        for target, anchor in re.findall(r"\]\(([^)#\s]*)(?:#([^)\s]*))?\)", text):
            if "://" in target:
                continue
            linked = path.parent / target if target else path
            where = f"{path.relative_to(REPO_ROOT)} links to {target}#{anchor}"
            assert linked.exists(), f"{where}: no such file"
            if anchor and linked.suffix == ".md":
                assert anchor in _anchors(linked), f"{where}: no such heading"


def _anchors(path: Path) -> set[str]:
    """GitHub's heading anchors: lower case, punctuation other than - and _ dropped, spaces as -."""
    headings = re.findall(r"^#{1,6} (.+)$", path.read_text(encoding="utf-8"), flags=re.MULTILINE)
    return {re.sub(r"[^\w\- ]", "", h.strip().lower()).replace(" ", "-") for h in headings}


def test_every_shell_example_is_run_or_says_why_not() -> None:
    unmarked = [
        b.where for b in ALL_BLOCKS if b.lang in ("console", "sh", "bash", "shell") and b.marker is None
    ]
    assert not unmarked, f"examples with neither <!-- run --> nor <!-- not run: why -->: {unmarked}"
    assert sum(b.marker == "run" for b in ALL_BLOCKS) >= 5


@pytest.mark.parametrize(
    "block",
    [b for b in ALL_BLOCKS if b.marker in ("run",) or (b.marker or "").startswith("not run")],
    ids=lambda b: b.where,
)
def test_examples_use_only_options_that_exist(block: Block) -> None:
    lines = (
        [c.text for c in console_commands(block.text)]
        if block.lang == "console"
        else shell_commands(block.text)
    )
    for line in lines:
        for args in cacheinspect_invocations(line):
            check_invocation(args, block.where)


def _run_lines(value: Any) -> Iterator[str]:
    """Strings under ``run:`` (GitHub Actions) or ``script:`` (GitLab CI), anywhere in a YAML document."""
    if isinstance(value, dict):
        for key, item in value.items():
            if key in ("run", "script", "before_script") and isinstance(item, str):
                yield item
            elif key in ("script", "before_script") and isinstance(item, list):
                yield from (str(x) for x in item)
            else:
                yield from _run_lines(item)
    elif isinstance(value, list):
        for item in value:
            yield from _run_lines(item)


@pytest.mark.parametrize("block", [b for b in ALL_BLOCKS if b.lang in ("yaml", "yml")], ids=lambda b: b.where)
def test_ci_snippets_parse_and_call_real_options(block: Block) -> None:
    document = yaml.safe_load(block.text)
    assert isinstance(document, (dict, list)), f"{block.where}: not a YAML mapping or list"
    for script in _run_lines(document):
        for line in shell_commands(script):
            for args in cacheinspect_invocations(line):
                check_invocation(args, block.where)


@pytest.mark.parametrize(
    "block", [b for b in ALL_BLOCKS if b.lang in ("toml", "json")], ids=lambda b: b.where
)
def test_config_examples_parse(block: Block) -> None:
    if block.lang == "toml":
        tomllib.loads(block.text)
    else:
        json.loads(block.text)


# -- the runnable examples, against the real registry -----------------------------------------------------


def _matches(expected: str, actual: list[str]) -> bool:
    pattern = ".*".join(re.escape(part) for part in expected.strip().split("…"))
    return any(re.search(pattern, line) for line in actual)


RUNNABLE_FILES = sorted({b.path for b in ALL_BLOCKS if b.marker == "run"})


@pytest.mark.parametrize("path", RUNNABLE_FILES, ids=lambda p: str(p.relative_to(REPO_ROOT)))
def test_runnable_examples(
    path: Path, registry: LocalRegistry, seeded: dict[str, dict[str, str]], tmp_path: Path
) -> None:
    """A file's runnable blocks in order, in one working directory, on a freshly seeded gc demo repository."""
    seed_gc_demo(registry.host)
    env = {
        **os.environ,
        "REGISTRY": registry.host,
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
        "NO_COLOR": "1",
    }
    for name in ("GITHUB_STEP_SUMMARY", "DOCKER_CONFIG", "REGISTRY_AUTH_FILE", "GH_TOKEN", "GITHUB_TOKEN"):
        env.pop(name, None)
    env["DOCKER_CONFIG"] = str(tmp_path / "docker-config")  # anonymous, whatever the machine has
    (tmp_path / "testdata").symlink_to(REPO_ROOT / "testdata")  # the examples run from the repository's root
    for block in blocks(path):
        if block.marker is not None and block.marker.startswith("file: "):
            (tmp_path / block.marker.removeprefix("file: ")).write_text(
                block.text.replace("$REGISTRY", registry.host) + "\n", encoding="utf-8"
            )
            continue
        if block.marker != "run":
            continue
        assert block.lang == "console", f"{block.where}: runnable examples are ```console blocks"
        commands = console_commands(block.text)
        assert commands, f"{block.where}: a runnable block without a $ command"
        for command in commands:
            found = _EXPECTED_EXIT.search(command.text)
            expected_code = int(found.group(1)) if found else 0
            result = subprocess.run(
                ["bash", "-c", command.text],
                cwd=tmp_path,
                env=env,
                capture_output=True,
                text=True,
                timeout=180,
                stdin=subprocess.DEVNULL,
            )
            said = (result.stdout + result.stderr).splitlines()
            context = f"{block.where}: $ {command.text}\n--- printed:\n{result.stdout}{result.stderr}"
            assert result.returncode == expected_code, (
                f"exit {result.returncode}, expected {expected_code}\n{context}"
            )
            assert "Traceback" not in result.stderr, context
            for line in command.output:
                if line.strip():
                    shown = line.replace("$REGISTRY", registry.host)
                    assert _matches(shown, said), f"shown line not printed: {shown!r}\n{context}"


def test_json_md_names_every_top_level_field_of_every_schema() -> None:
    text = (REPO_ROOT / "docs" / "json.md").read_text(encoding="utf-8")
    for schema_path in sorted((REPO_ROOT / "inspector" / "schemas").glob("*.schema.json")):
        schema = json.loads(schema_path.read_text(encoding="utf-8"))
        fields = set(schema.get("properties", {}))
        if schema_path.name == "gc-plan.schema.json":
            fields |= set(schema["$defs"]["repository"]["properties"])
        missing = sorted(f for f in fields if f"`{f}`" not in text)
        assert not missing, f"docs/json.md does not name {schema_path.name}'s {missing}"


def test_demo_keep_says_it_holds_the_terminal_and_its_commands_work(
    registry: LocalRegistry, seeded: dict[str, dict[str, str]], tmp_path: Path
) -> None:
    """What ``scripts/demo.sh --keep`` prints to try, run as printed (after its two exports) on the same seeding."""
    from scripts.demo import _try_these

    seed_gc_demo(registry.host)
    text = _try_these(registry.host)
    assert "this terminal is held until Ctrl-C" in text
    assert f"export REGISTRY={registry.host}" in text
    lines = shell_commands(text)
    exports = [line for line in lines if line.startswith("export ")]
    commands = [line for line in lines if not line.startswith("export ")]
    assert len(exports) == 2 and len(commands) >= 6
    (tmp_path / "testdata").symlink_to(REPO_ROOT / "testdata")
    env = {k: v for k, v in os.environ.items() if k not in ("GITHUB_STEP_SUMMARY", "REGISTRY")}
    env["DOCKER_CONFIG"] = str(tmp_path / "docker-config")
    for command in commands:
        for args in cacheinspect_invocations(command):
            check_invocation(args, "scripts/demo.py")
        script = "\n".join([*exports, command])
        result = subprocess.run(
            ["bash", "-c", script], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=180
        )
        expected = 10 if "--strict" in command else 0  # missing-blob is unhealthy: --strict exits 10
        assert result.returncode == expected, f"$ {command}\n{result.stdout}{result.stderr}"
        assert "Traceback" not in result.stderr
