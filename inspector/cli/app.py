"""The typer app and its process-wide state: global options, the console, error reporting, output formats.

Commands register themselves on ``app`` from ``inspector.cli.commands``; nothing here imports them.
"""

from __future__ import annotations

import json
import logging
import os
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from inspector._version import __version__
from inspector.cli.conventions import HouseGroup, HouseTyper
from inspector.errors import CacheInspectError, UsageError

if TYPE_CHECKING:
    from rich.console import Console


__all__ = ["STATE", "app", "error_json", "report_error", "write_job_summary"]


@dataclass
class _State:
    """Process-wide CLI settings from the global options and the running command."""

    debug: bool = False
    verbose: bool = False
    json: bool = False
    no_color: bool = False
    deadline: float | None = None  # None: the client's default
    auth_file: str | None = None
    registry_auth: str | None = None  # the registry --username/--password-stdin are for

    def reset(self) -> None:
        self.debug = self.verbose = self.json = self.no_color = False
        self.deadline = None
        self.auth_file = self.registry_auth = None


STATE = _State()

app = HouseTyper(
    name="cacheinspect",
    help="Inspect, clean up and probe BuildKit registry build caches (--cache-to type=registry).",
    cls=HouseGroup,  # bare call prints help (exit 0); -v/--debug/--no-color also after the subcommand
    add_completion=False,
    context_settings={"help_option_names": ["-h", "--help"]},
    pretty_exceptions_enable=False,
    rich_markup_mode=None,  # plain help: rich markdown rendering cost ~100 ms of start-up
)


#: Line width when stdout is not a terminal: wide enough that no line is ever wrapped.
PIPE_WIDTH = 1 << 15


def console(*, stderr: bool = False) -> Console:
    """A rich console for human output, imported on first use (rich costs start-up time ``tags`` need not pay).

    Every rendered segment goes through ``sanitize``. On a terminal, today's tables at the terminal's width.
    Anywhere else (a pipe, a file, a CI log) full lines: never wrapped at 80 columns, never padded with
    trailing spaces, so ``grep``/``awk`` see whole digests, media types and reasons.
    """
    from rich.console import Console, ConsoleOptions, RenderableType
    from rich.segment import Segment

    from inspector._sanitize import sanitize

    class SafeConsole(Console):
        """Every rendered segment's text through ``sanitize`` (line breaks kept), and no hyperlinks:
        rich itself strips only a few control characters, and markup in a string can make an OSC 8 link."""

        def render(
            self, renderable: RenderableType, options: ConsoleOptions | None = None
        ) -> Iterator[Segment]:
            for segment in super().render(renderable, options):
                if segment.control:
                    yield segment
                    continue
                style = segment.style.clear_meta_and_links() if segment.style else None
                yield Segment(sanitize(segment.text, keep_newlines=True), style)

    no_color = True if STATE.no_color else None
    if stderr or sys.stdout.isatty():
        return SafeConsole(stderr=stderr, highlight=False, no_color=no_color)

    class PipeConsole(SafeConsole):
        def print(self, *objects: Any, **kwargs: Any) -> None:
            with self.capture() as captured:
                super().print(*objects, **kwargs)
            self.file.write("\n".join(line.rstrip() for line in captured.get().split("\n")))
            self.file.flush()

    return PipeConsole(highlight=False, width=PIPE_WIDTH, no_color=no_color)


def error_json(exc: CacheInspectError, *, sanitized: bool) -> dict[str, Any]:
    """An error as every ``--json`` document carries it: the error's class, exit code, message and hint.

    ``sanitized``: message and hint as the stderr lines show them (the command's own error document repeats
    those lines); otherwise as raised (gc's per-repository errors, beside the plan's other strings).
    """
    from inspector._sanitize import sanitize

    message, hint = exc.message, exc.hint
    if sanitized:
        message, hint = sanitize(message), sanitize(hint) if hint else None
    return {"code": type(exc).__name__, "exitCode": int(exc.exit_code), "message": message, "hint": hint}


def report_error(exc: CacheInspectError) -> None:
    """One line on stderr (plus a hint line); in --json mode also a JSON error document on stdout."""
    document = error_json(exc, sanitized=True)
    if STATE.json:
        print(json.dumps({"error": document}))
    print(f"cacheinspect: error: {document['message']}", file=sys.stderr)
    if document["hint"]:
        print(f"cacheinspect: hint: {document['hint']}", file=sys.stderr)


def write_job_summary(markdown: str, file: Path | None = None) -> None:
    """Markdown for the CI job's page: ``file`` (written), else ``$GITHUB_STEP_SUMMARY`` (appended, as GitHub
    expects: every step of the job adds to it), else nowhere. The one writer of a job summary.

    Raises ``OSError`` (``filename``: the file) when it cannot be written: the caller decides whether that
    fails the command (probe, which has changed nothing) or is a warning (gc, after its deletions).
    """
    if file is not None:
        target, mode = str(file), "w"
    else:
        target, mode = os.environ.get("GITHUB_STEP_SUMMARY", ""), "a"
        if not target:
            return
    with open(target, mode, encoding="utf-8") as handle:
        handle.write(markdown)


class _SafeFormatter(logging.Formatter):
    """Log lines carry registry text (challenges, URLs, answers): each one is ``sanitize``d."""

    def format(self, record: logging.LogRecord) -> str:
        from inspector._sanitize import sanitize

        return sanitize(super().format(record), keep_newlines=True)


def _version_callback(value: bool) -> None:
    if value:
        print(f"cacheinspect {__version__}")
        raise typer.Exit()


@app.callback()
def _main(
    version: Annotated[
        bool,
        typer.Option(
            "--version", "-V", help="Print the version and exit.", callback=_version_callback, is_eager=True
        ),
    ] = False,
    verbose: Annotated[
        bool, typer.Option("--verbose", "-v", help="Log each HTTP request (no secrets) to stderr.")
    ] = False,
    debug: Annotated[
        bool, typer.Option("--debug", help="Debug logging, and tracebacks for internal errors.")
    ] = False,
    no_color: Annotated[
        bool, typer.Option("--no-color", help="No colours in human output (as does NO_COLOR=1).")
    ] = False,
    deadline: Annotated[
        float | None,
        typer.Option(
            "--deadline",
            min=1.0,
            metavar="SECONDS",
            help="Give up on a registry request after this long, all its retries included (default 50).",
        ),
    ] = None,
    authfile: Annotated[
        str | None,
        typer.Option(
            "--authfile",
            metavar="FILE",
            help="podman/skopeo auth.json to read credentials from (default: $REGISTRY_AUTH_FILE).",
        ),
    ] = None,
    registry_auth: Annotated[
        str | None,
        typer.Option(
            "--registry-auth",
            metavar="HOST",
            help="The registry --username/--password-stdin are for (default: the first reference's).",
        ),
    ] = None,
) -> None:
    STATE.no_color = no_color
    STATE.deadline = deadline
    STATE.auth_file = authfile
    STATE.registry_auth = registry_auth
    STATE.debug = debug
    STATE.verbose = verbose or debug
    if STATE.verbose:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(_SafeFormatter("%(asctime)s %(name)s: %(message)s", "%H:%M:%S"))
        root = logging.getLogger("inspector")
        root.handlers[:] = [handler]
        root.setLevel(logging.DEBUG)


JsonOut = Annotated[bool, typer.Option("--json", help="Print one JSON document on stdout (as -o json).")]
Output = Annotated[
    str | None,
    typer.Option(
        "--output",
        "-o",
        metavar="FORMAT",
        help="table (default: the human view), json (as --json) or tsv (a header row, then tab-separated rows).",
    ),
]
FORMATS = ("table", "json", "tsv")


def output_format(json_out: bool, output: str | None, *, no_tsv: str | None = None) -> str:
    """The output format from ``-o/--output`` and its alias ``--json``, checked before any request.

    ``no_tsv``: why this command has no rows (``-o tsv`` is then exit 2 with that reason).
    """
    if output is not None and output not in FORMATS:
        raise UsageError(f"--output {output!r}: expected one of {', '.join(FORMATS)}")
    if json_out and output not in (None, "json"):
        raise UsageError(f"--json and --output {output} ask for two formats: give one")
    chosen = "json" if json_out else output or "table"
    STATE.json = chosen == "json"
    if chosen == "tsv" and no_tsv is not None:
        raise UsageError(f"--output tsv: {no_tsv}")
    return chosen


def write_tsv(header: tuple[str, ...], rows: list[tuple[object, ...]]) -> None:
    from inspector.cli.tsv import tsv

    sys.stdout.write(tsv(header, rows))
