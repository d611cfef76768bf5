"""Process entry point: argument handling, error-to-exit-code mapping, nothing else.

Heavy imports (typer, rich, httpx) happen only when a command needs them, so
``cacheinspect --version`` starts fast.
"""

from __future__ import annotations

import os
import sys
import types
from collections.abc import Sequence

__all__ = ["main", "run"]

#: The reader of stdout went away (``cacheinspect tags REPO | head -1``): 128 + SIGPIPE, as a shell says.
_EXIT_READER_LEFT = 141


def run(argv: Sequence[str] | None = None) -> int:
    """Run the CLI with ``argv`` and return the exit code (never raises for expected failures)."""
    args = list(sys.argv[1:] if argv is None else argv)
    if args in (["--version"], ["-V"]):
        from inspector._version import __version__

        print(f"cacheinspect {__version__}")
        return 0

    _without_httpx_cli()
    from typer import _click as click
    from typer.exceptions import Abort

    from inspector.cli.app import STATE, report_error
    from inspector.cli.commands import load_commands
    from inspector.cli.conventions import COMPLETE_VAR
    from inspector.errors import CacheInspectError, ExitCode

    if os.environ.get(COMPLETE_VAR):
        from typer._completion_classes import completion_init

        completion_init()  # typer's bash/zsh/fish answer formats, which its completion scripts expect
        app = load_commands()
    else:
        app = load_commands(_command_name(args))
    state = STATE
    state.reset()
    try:
        # Not standalone: usage errors come back here, to be reported in the house format.
        result = app(args=args, prog_name="cacheinspect", standalone_mode=False)
        sys.stdout.flush()  # a reader that left shows up here, as BrokenPipeError, not at interpreter exit
    except SystemExit as exc:
        if exc.code is None:
            return 0
        if isinstance(sys.stdout, click.utils.PacifyFlushWrapper):
            return _EXIT_READER_LEFT  # typer's own EPIPE handling, which would exit 1
        return exc.code if isinstance(exc.code, int) else int(ExitCode.BUG)
    except click.exceptions.UsageError as exc:
        return _report_usage_error(exc.format_message(), exc.ctx.command_path if exc.ctx else "cacheinspect")
    except click.exceptions.ClickException as exc:
        return _report_usage_error(exc.format_message(), "cacheinspect")
    except CacheInspectError as exc:
        report_error(exc)
        return int(exc.exit_code)
    except (KeyboardInterrupt, Abort):
        print("cacheinspect: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # `cacheinspect tags REPO | head -1`: the reader left; nothing to report
        sys.stdout = open(os.devnull, "w")  # noqa: SIM115 (the interpreter flushes it at exit)
        return _EXIT_READER_LEFT
    except Exception as exc:  # a bug: say so in one line, full traceback only with --debug
        if state.debug:
            raise
        from inspector._sanitize import sanitize

        print(
            f"cacheinspect: internal error: {type(exc).__name__}: {sanitize(str(exc))} "
            "(rerun with --debug for a traceback)",
            file=sys.stderr,
        )
        return int(ExitCode.BUG)
    return result if isinstance(result, int) else 0


def _without_httpx_cli() -> None:
    """Keep httpx from importing its own command line, which this process never runs.

    ``import httpx`` imports ``httpx._main`` (its ``httpx`` command: click, rich, pygments; ~50 ms) whenever
    click is installed, as it is beside the test tools; an empty module in its place makes httpx define
    its stub ``main`` instead, as it does where click is missing. Nothing else in httpx uses that module.
    """
    if "httpx" not in sys.modules:
        sys.modules.setdefault("httpx._main", types.ModuleType("httpx._main"))


def _command_name(args: list[str]) -> str | None:
    """The subcommand ``args`` names: the first word that is neither an option nor a global option's value."""
    from inspector.cli.conventions import GLOBAL_OPTIONS

    words = iter(args)
    for word in words:
        if word == "--":
            return None
        if word in GLOBAL_OPTIONS:  # "--deadline 20"; "--deadline=20" is one word
            next(words, None)
        elif not word.startswith("-"):
            return word
    return None


def _report_usage_error(message: str, command_path: str) -> int:
    """Click's usage errors in the house format: one error line, one hint line, exit 2."""
    from inspector.errors import ExitCode

    print(f"cacheinspect: error: {message}", file=sys.stderr)
    print(f"cacheinspect: hint: see '{command_path} --help'", file=sys.stderr)
    return int(ExitCode.USAGE)


def main() -> None:
    sys.exit(run())
