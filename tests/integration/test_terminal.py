"""Human output where it is read: piped into CI logs and grep (full lines), and in a real terminal (tmux).

Piped, every command prints whole lines: no digest, media type, form or reason is split at 80 columns,
and no line ends in spaces. On a terminal the tables stay as they were, fitted to its width. What each
view must contain whole is taken from the same command's ``--json`` document, not from the human output.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.harness.paths import REPO_ROOT
from tests.harness.registry import LocalRegistry
from tests.harness.support import registry_unavailable, run_cli


def piped(*args: str) -> list[str]:
    done = run_cli(*args, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
    lines = done.stdout.split("\n")
    trailing = [line for line in lines if line != line.rstrip()]
    assert trailing == [], f"lines ending in whitespace: {trailing[:3]}"
    return lines


def json_of(*args: str) -> Any:
    done = run_cli(*args, "--json", timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
    return json.loads(done.stdout)


def on_one_line(lines: list[str], *parts: str) -> None:
    """Some line holds every one of ``parts`` whole."""
    assert any(all(part in line for part in parts) for line in lines), (parts, lines[:40])


def test_piped_output_keeps_lines_whole(
    registry: LocalRegistry, seeded: dict[str, dict[str, str]], tmp_path: Path
) -> None:
    repo = f"{registry.host}/samples/multistage-max"

    doc = json_of("du", repo)
    lines = piped("du", repo)
    for entry in doc["manifests"]:  # e.g. docker-manifest-list used to split into docker-man / ifest-list
        on_one_line(lines, ", ".join(entry["tags"]), entry["digest"].split(":")[1][:12], entry["form"])

    doc = json_of("show", f"{repo}:docker-manifest-list")
    lines = piped("show", f"{repo}:docker-manifest-list")
    on_one_line(lines, doc["digest"])
    on_one_line(lines, doc["form"])

    doc = json_of("tags", repo)
    lines = piped("tags", repo)
    for tag in doc["tags"]:
        on_one_line(lines, tag)

    branches = tmp_path / "branches.txt"
    branches.write_text("image-manifest\n")
    gc = ("gc", repo, "-t", "{branch}", "--branches-file", str(branches))
    doc = json_of(*gc)
    lines = piped(*gc)
    (plan,) = doc.get("repositories", [doc])
    reasons = [(t["tag"], t["action"], t["reason"]) for t in plan["tags"]]
    assert {action for _, action, _ in reasons} == {"keep", "delete"}
    for tag, action, reason in reasons:  # grep delete must find the whole reason on the tag's line
        on_one_line(lines, tag, action, reason)

    doc = json_of("probe", "--offline", "gcr.io/acme/app")
    lines = piped("probe", "--offline", "gcr.io/acme/app")
    for check in doc["checks"]:
        on_one_line(lines, check["id"], check["summary"])


def tmux_or_fail() -> str:
    tmux = shutil.which("tmux")
    if tmux is None:
        registry_unavailable("tmux is not installed (apt-get install -y tmux; scripts/bootstrap.sh does it)")
        raise AssertionError("unreachable")
    return tmux


@dataclass(frozen=True)
class Terminal:
    """What a tmux pane holds after a command ran in it."""

    screen: list[str]  # the lines the command left, down to (not including) the end marker
    title_before: str  # the pane's title before the command started, and after it ended
    title_after: str
    buffers: str  # tmux's paste buffers: with set-clipboard on, an OSC 52 clipboard write makes one


def run_in_terminal(command: list[str], width: int, *, shell_prefix: str = "sleep 0.5; ") -> Terminal:
    """Run ``command`` in a detached tmux session ``width`` columns wide, with ``set-clipboard on`` (tmux
    keeps what an application writes with OSC 52 as a paste buffer); the pane's title is read before the
    command starts (``shell_prefix`` gives that time) and after it ends."""
    tmux = tmux_or_fail()
    server = f"cacheinspect-test-{uuid.uuid4().hex[:8]}"
    marker = "__cacheinspect_done__"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CACHEINSPECT_", "DOCKER_"))}
    env["DOCKER_CONFIG"] = "/nonexistent-docker-config"
    shell = (
        shell_prefix
        + " ".join(subprocess.list2cmdline([part]) for part in command)
        + f"; echo {marker}; sleep 60"
    )
    base = [tmux, "-L", server, "-f", "/dev/null"]

    def query(*args: str) -> str:
        return subprocess.run([*base, *args], capture_output=True, text=True, check=True).stdout

    subprocess.run(
        [
            *base,
            "new-session",
            "-d",
            "-x",
            str(width),
            "-y",
            "60",
            "-c",
            str(REPO_ROOT),
            shell,
            ";",
            "set-option",
            "-g",
            "set-clipboard",
            "on",
        ],
        check=True,
        env=env,
    )
    try:
        title_before = query("display-message", "-p", "#{pane_title}").rstrip("\n")
        deadline = time.monotonic() + 60
        while True:
            screen = query("capture-pane", "-p", "-S", "-200")
            if marker in screen.replace(f"echo {marker}", ""):
                break
            assert time.monotonic() < deadline, screen
            time.sleep(0.2)
        title_after = query("display-message", "-p", "#{pane_title}").rstrip("\n")
        buffers = query("list-buffers")
    finally:
        subprocess.run([*base, "kill-server"], capture_output=True)
    lines = screen.split("\n")
    lines = lines[: next(i for i, line in enumerate(lines) if line.startswith(marker))]
    return Terminal(lines, title_before, title_after, buffers)


def in_terminal(command: list[str], width: int) -> list[str]:
    """Run ``command`` in a detached tmux session ``width`` columns wide; the screen, line by line."""
    return run_in_terminal(command, width, shell_prefix="").screen


@pytest.mark.parametrize("width", [80, 200])
def test_a_terminal_gets_tables_fitted_to_its_width(
    registry: LocalRegistry, seeded: dict[str, dict[str, str]], width: int
) -> None:
    repo = f"{registry.host}/samples/multistage-max"
    screen = in_terminal([sys.executable, "-m", "inspector", "du", repo], width)
    assert all(len(line) <= width for line in screen)
    assert any(
        line.split() == ["tags", "manifest", "form", "layers", "size", "unique", "shared", "age"]
        for line in screen
    )
    # the age column is never cut: each cache row ends in its whole age ("548 days ago"); the samples'
    # buildkit/createdat are in 2025, so days
    rows = [line for line in screen if re.fullmatch(r"[0-9a-f]{12}", [*line.split(), "", ""][1])]
    assert len(rows) == 3 and all(re.search(r" [0-9]+ days ago$", line) for line in rows), screen
    # the "total" row is longer than 80 columns: wrapped into the header's second column at 80, whole at 200
    total = next(i for i, line in enumerate(screen) if line.startswith("total"))
    follow = screen[total + 1]
    assert follow.startswith(" " * len("repository  ")) == (width == 80), screen


@pytest.mark.parametrize("width", [80, 200])
def test_show_top_in_a_terminal_keeps_size_digest_and_place_readable(
    registry: LocalRegistry, seeded: dict[str, dict[str, str]], width: int
) -> None:
    """named-build's third largest layer (2014 bytes, testdata's layout) is stage-2's COPY --from=build;
    its row is 29 columns of size and digest plus the 70-column label: whole at 200; at 80 the label
    wraps inside its own column, under where it starts."""
    dockerfile = str(REPO_ROOT / "testdata" / "dockerfiles" / "named-build.Dockerfile")
    ref = f"{registry.host}/samples/named-build:latest"
    command = [sys.executable, "-m", "inspector", "show", ref, "--dockerfile", dockerfile, "--top", "4"]
    screen = in_terminal(command, width)
    assert all(len(line) <= width for line in screen)
    assert "largest layers (4 of 12: 8.9 kB, 74 % of the cache)" in screen
    label = "stage-2 #3  [stage-2 3/4] COPY --from=build /out/app /usr/local/bin/app"
    prefix = "2.0 kB  sha256:b5cc720c3206  "
    row = next(i for i, line in enumerate(screen) if line.startswith(prefix))
    if width == 200:
        assert screen[row] == prefix + label
    else:
        wrapped = screen[row + 1]
        assert wrapped.startswith(" " * len(prefix)) and not wrapped[len(prefix)].isspace()
        assert " ".join([*screen[row][len(prefix) :].split(), *wrapped.split()]) == " ".join(label.split())
