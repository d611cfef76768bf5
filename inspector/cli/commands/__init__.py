"""The commands: each module registers its commands on ``app`` when imported.

``load_commands(name)`` imports only the module of the command a command line names (a one-request ``tags``
does not pay for the imports of ``show``, ``gc`` or ``probe``, nor for typer building their options), or every
module; reading ``app`` from here loads every command, listed by ``--help`` in ``MODULES`` order.
"""

import importlib
import typing

if typing.TYPE_CHECKING:
    from inspector.cli.conventions import HouseTyper

#: The command modules, in the order ``--help`` lists their commands.
MODULES = ("show", "tags", "repo", "gc", "probe", "copy", "completion")
#: The module of each command.
COMMANDS = {
    "show": "show",
    "tags": "tags",
    "du": "repo",
    "diff": "repo",
    "gc": "gc",
    "probe": "probe",
    "copy": "copy",
    "completion": "completion",
}


def load_commands(name: str | None = None) -> "HouseTyper":
    """The app with the command ``name`` registered (with every command when ``name`` is None or unknown:
    click then lists them, or says which one was meant)."""
    from inspector.cli.app import app

    if name in COMMANDS:
        importlib.import_module(f"{__name__}.{COMMANDS[name]}")
        return app
    for module in MODULES:
        importlib.import_module(f"{__name__}.{module}")
    order = {f"{__name__}.{module}": index for index, module in enumerate(MODULES)}
    # One order whichever command a process ran first (tests run several in one process).
    app.registered_commands.sort(
        key=lambda info: order.get(getattr(info.callback, "__module__", ""), len(order))
    )
    return app


def __getattr__(name: str) -> typing.Any:
    if name == "app":
        globals()["app"] = everything = load_commands()
        return everything
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = ["COMMANDS", "MODULES", "app", "load_commands"]
