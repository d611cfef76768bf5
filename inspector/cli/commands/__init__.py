"""The commands: importing this package registers every command on ``app``, in the order ``--help`` lists them."""

# isort: off
from inspector.cli.app import app
from inspector.cli.commands import show, tags  # noqa: F401
from inspector.cli.commands import repo  # noqa: F401  (du and diff)
from inspector.cli.commands import history  # noqa: F401
from inspector.cli.commands import explain  # noqa: F401
from inspector.cli.commands import gc, probe, copy, completion  # noqa: F401

# isort: on

__all__ = ["app"]
