"""Process entry point: argument handling, error-to-exit-code mapping, nothing else.

Heavy imports (typer, rich, httpx) happen only when a command needs them, so
``cacheinspect --version`` starts fast.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

__all__ = ["main", "run"]


def run(argv: Sequence[str] | None = None) -> int:
    """Run the CLI with ``argv`` and return the exit code (never raises for expected failures)."""
    args = list(sys.argv[1:] if argv is None else argv)
    if args in (["--version"], ["-V"]):
        from ._version import __version__

        print(f"cacheinspect {__version__}")
        return 0

    from . import commands
    from .errors import CacheInspectError, ExitCode

    state = commands.STATE
    state.reset()
    try:
        # Standalone mode: typer reports usage errors itself and ends with SystemExit.
        commands.app(args=args, prog_name="cacheinspect", standalone_mode=True)
    except SystemExit as exc:
        if exc.code is None:
            return 0
        return exc.code if isinstance(exc.code, int) else int(ExitCode.BUG)
    except CacheInspectError as exc:
        commands.report_error(exc)
        return int(exc.exit_code)
    except KeyboardInterrupt:
        print("cacheinspect: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:  # a bug: say so in one line, full traceback only with --debug
        if state.debug:
            raise
        from ._sanitize import sanitize

        print(
            f"cacheinspect: internal error: {type(exc).__name__}: {sanitize(str(exc))} "
            "(rerun with --debug for a traceback)",
            file=sys.stderr,
        )
        return int(ExitCode.BUG)
    return 0


def main() -> None:
    sys.exit(run())
