"""``cacheinspect completion SHELL``: print the shell completion script (typer's, for our program name)."""

from __future__ import annotations

from typing import Annotated

import typer

from inspector.cli.app import app
from inspector.cli.conventions import COMPLETE_VAR
from inspector.errors import UsageError

__all__ = ["SHELLS", "completion"]

SHELLS = ("bash", "zsh", "fish")


@app.command()
def completion(
    shell: Annotated[str, typer.Argument(help="bash, zsh or fish.", metavar="SHELL")],
) -> None:
    """Print the shell completion script: eval it in your shell's start-up file (see README)."""
    from typer._completion_shared import get_completion_script

    if shell not in SHELLS:
        raise UsageError(f"completion {shell!r}: expected one of {', '.join(SHELLS)}")
    print(get_completion_script(prog_name="cacheinspect", complete_var=COMPLETE_VAR, shell=shell))
