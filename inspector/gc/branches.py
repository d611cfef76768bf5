"""Which branches and pull/merge requests are alive: from ``git ls-remote`` or a file.

A line is a branch name, a ref (``refs/heads/NAME``, ``refs/pull/N/head``,
``refs/merge-requests/N/head``) or a ``git ls-remote`` line (``SHA<TAB>REF``);
blank lines and lines starting with ``#`` are skipped, other refs (tags,
``HEAD``) ignored. A leading byte order mark is dropped; a line that is only a
commit hash (``git ls-remote … | cut -f1``) is refused: it names no branch. So ``git ls-remote origin | cacheinspect gc --branches-file -``
works, and so does ``gh pr list --json number -q '.[] | "refs/pull/\\(.number)/head"'``.

When a source names no pull/merge request at all, ``pulls`` is None: nothing is
known about them (a GitLab remote has no ``refs/pull/``; a plain branch list has
none), and PR caches are then not judged by liveness.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

from inspector._redact import redact
from inspector.errors import TransportError, UsageError

__all__ = ["LiveRefs", "git_ls_remote", "parse_ref_lines", "read_branches_file"]

_PULL_REF = re.compile(r"^refs/(?:pull|merge-requests)/([0-9]+)/(?:head|merge)$")
_HEX = re.compile(r"^[0-9a-f]{40}(?:[0-9a-f]{24})?$")
Runner = Callable[..., "subprocess.CompletedProcess[str]"]


@dataclass(frozen=True, slots=True)
class LiveRefs:
    source: str
    branches: frozenset[str]
    pulls: frozenset[int] | None


def parse_ref_lines(lines: Iterable[str], source: str) -> LiveRefs:
    branches: set[str] = set()
    pulls: set[int] = set()
    for number, raw in enumerate(lines, 1):
        # A byte order mark (Notepad, PowerShell 5's Set-Content -Encoding UTF8) is not part of a name.
        line = raw.lstrip("\ufeff").strip()
        if not line or line.startswith("#"):
            continue
        parts = line.split()
        if len(parts) == 2 and _HEX.match(parts[0]):
            line = parts[1]
        elif len(parts) != 1:
            raise UsageError(
                f"{source}: cannot read line {number} {line[:80]!r} (expected a branch name or a ref)"
            )
        elif _HEX.match(line.lower()):
            # `git ls-remote | cut -f1` or `git rev-parse` output: no branch is named, so taking it as
            # one would judge every cache's branch gone.
            raise UsageError(
                f"{source}: line {number} {line[:80]!r} is a commit hash, not a branch name or a ref "
                "(give `git ls-remote` lines whole, or the branch names)"
            )
        pull = _PULL_REF.match(line)
        if pull:
            pulls.add(int(pull.group(1)))
        elif line.startswith("refs/heads/"):
            branches.add(line.removeprefix("refs/heads/"))
        elif not line.startswith("refs/") and line != "HEAD":
            branches.add(line)
    return LiveRefs(source, frozenset(branches), frozenset(pulls) if pulls else None)


def read_branches_file(path: str, stdin: TextIO | None = None) -> LiveRefs:
    """``--branches-file FILE`` (``-`` reads stdin)."""
    if path == "-":
        return parse_ref_lines((stdin or sys.stdin).read().splitlines(), "branches from stdin")
    try:
        text = Path(path).read_text(encoding="utf-8-sig")
    except OSError as exc:
        raise UsageError(f"--branches-file {path}: {exc.strerror}") from None
    except UnicodeDecodeError:
        raise UsageError(f"--branches-file {path}: not UTF-8 text") from None
    return parse_ref_lines(text.splitlines(), f"branches file {path}")


def git_ls_remote(
    remote: str, *, pulls: bool, timeout: float = 120.0, run: Runner = subprocess.run
) -> LiveRefs:
    """``git ls-remote --refs REMOTE refs/heads/*`` (+ pull and merge request heads when ``pulls``).

    Never prompts for credentials (``GIT_TERMINAL_PROMPT=0``): a cron job must
    fail, not hang. A failure is a ``TransportError`` (exit 6) carrying git's message.
    """
    shown = redact(remote)  # a remote URL may carry a token
    patterns = ["refs/heads/*"]
    if pulls:
        patterns += ["refs/pull/*/head", "refs/merge-requests/*/head"]
    env = {**os.environ, "GIT_TERMINAL_PROMPT": "0"}
    try:
        done = run(
            ["git", "ls-remote", "--refs", remote, *patterns],
            capture_output=True,
            text=True,
            timeout=timeout,
            env=env,
            check=False,
        )
    except FileNotFoundError:
        raise UsageError("--branches-from-git: git is not installed") from None
    except subprocess.TimeoutExpired:
        raise TransportError(f"git ls-remote {shown}: no answer within {timeout:.0f} s") from None
    if done.returncode != 0:
        message = next(
            (ln for ln in done.stderr.splitlines() if ln.strip()), f"exit status {done.returncode}"
        )
        raise TransportError(f"git ls-remote {shown} failed: {redact(message.strip())[:300]}")
    return parse_ref_lines(done.stdout.splitlines(), f"git ls-remote {shown}")
