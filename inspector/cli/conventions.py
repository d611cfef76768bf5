"""Click/typer classes that make the CLI behave like its neighbours (git, regctl, crane).

- global flags (``-v``, ``--debug``, ``--no-color``, ``--deadline N``) are accepted after the subcommand too;
- a bare ``cacheinspect`` prints the help and exits 0;
- usage lines name arguments as ``REF``, not typer's ``{ref}``;
- the command list in the top-level help is not cut at 45 characters;
- each subcommand's help lists the global options it accepts.

Only the CLI imports this module (it needs typer); the library core never does.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

import typer
from typer import _click as click
from typer.core import TyperCommand, TyperGroup

__all__ = [
    "COMPLETE_VAR",
    "GLOBAL_FLAGS",
    "GLOBAL_OPTIONS",
    "HouseCommand",
    "HouseGroup",
    "HouseTyper",
    "hoist_global_flags",
]

#: The environment variable shell completion scripts set (see ``cacheinspect completion``).
COMPLETE_VAR = "_CACHEINSPECT_COMPLETE"

#: Flags of the top-level callback that may also be written after the subcommand.
GLOBAL_FLAGS = frozenset({"-v", "--verbose", "--debug", "--no-color"})
#: Options of the top-level callback, with a value, that may also be written after the subcommand.
GLOBAL_OPTIONS = frozenset({"--deadline", "--authfile", "--registry-auth"})

_F = TypeVar("_F", bound=Callable[..., Any])


def _is_argument(param: click.Parameter) -> bool:
    return param.param_type_name == "argument"


def _takes_value(param: click.Parameter) -> bool:
    """True for an option whose next word is its value (``--timeout 5``), not a flag."""
    if param.param_type_name != "option":
        return False
    return not (getattr(param, "is_flag", False) or getattr(param, "count", False))


def hoist_global_flags(args: list[str], command: click.Command) -> tuple[list[str], list[str]]:
    """Split ``args`` (a subcommand's words) into the global flags found in it and the rest, in order.

    A word that is the value of one of the
    command's own options (``--tag-pattern -v``), a flag the command defines itself, and everything
    after ``--`` stay where they are.
    """
    own: set[str] = set()
    valued: set[str] = set()
    for param in command.params:
        names = [*getattr(param, "opts", ()), *getattr(param, "secondary_opts", ())]
        own.update(names)
        if _takes_value(param):
            valued.update(names)
    hoisted: list[str] = []
    rest: list[str] = []
    index = 0
    while index < len(args):
        word = args[index]
        index += 1
        if word == "--":
            rest.extend(args[index - 1 :])
            break
        name = word.split("=", 1)[0]
        if word in GLOBAL_FLAGS and word not in own:
            hoisted.append(word)
            continue
        if name in GLOBAL_OPTIONS and name not in own:
            hoisted.append(word)
            if word == name and index < len(args):  # "--deadline 20", not "--deadline=20"
                hoisted.append(args[index])
                index += 1
            continue
        rest.append(word)
        if word in valued and index < len(args):
            rest.append(args[index])
            index += 1
    return hoisted, rest


class HouseCommand(TyperCommand):
    """A subcommand whose usage line reads ``cacheinspect show [OPTIONS] REF``."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        for param in self.params:
            if _is_argument(param) and param.metavar is None and param.name:
                param.metavar = param.name.upper()

    def format_options(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        """The command's options, then the global ones it accepts too (hoisted by ``HouseGroup``)."""
        super().format_options(ctx, formatter)
        parent = ctx.parent.command if ctx.parent is not None else None
        if parent is None:
            return
        own = {name for param in self.params for name in getattr(param, "opts", ())}
        rows = []
        for param in parent.params:
            names = set(getattr(param, "opts", ()))
            if names & (GLOBAL_FLAGS | GLOBAL_OPTIONS) and not names & own:
                record = param.get_help_record(ctx)
                if record is not None:
                    rows.append(record)
        if rows:
            with formatter.section("Global options (also before the command)"):
                formatter.write_dl(rows)

    def collect_usage_pieces(self, ctx: click.Context) -> list[str]:
        pieces = [self.options_metavar] if self.options_metavar else []
        for param in self.get_params(ctx):
            if not _is_argument(param):
                continue
            name = param.metavar or (param.name or "").upper()
            if param.nargs != 1:
                name += "..."
            pieces.append(name if param.required else f"[{name}]")
        return pieces


class HouseGroup(TyperGroup):
    """The top-level group: help on a bare call, global flags anywhere, full command summaries."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        if not args and not ctx.resilient_parsing:
            click.echo(ctx.get_help(), color=ctx.color)
            ctx.exit(0)
        return super().parse_args(ctx, self._global_flags_first(ctx, args))

    def _global_flags_first(self, ctx: click.Context, args: list[str]) -> list[str]:
        """Move global flags written after the subcommand in front of it, where click expects them."""
        position = next((i for i, word in enumerate(args) if not word.startswith("-")), None)
        if position is None:
            return args
        command = self.get_command(ctx, args[position])
        if command is None:
            return args
        hoisted, rest = hoist_global_flags(args[position + 1 :], command)
        return [*args[:position], *hoisted, args[position], *rest]

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        rows: list[tuple[str, str]] = []
        for name in self.list_commands(ctx):
            command = self.get_command(ctx, name)
            if command is not None and not command.hidden:
                # The first sentence in full: the formatter wraps it; "..." hid what the command does.
                rows.append((name, command.get_short_help_str(limit=10_000)))
        if rows:
            with formatter.section("Commands"):
                formatter.write_dl(rows)


class HouseTyper(typer.Typer):
    """``typer.Typer`` whose commands are ``HouseCommand`` unless a command asks for another class."""

    def command(
        self, name: str | None = None, *, cls: type[TyperCommand] | None = None, **kwargs: Any
    ) -> Callable[[_F], _F]:
        return super().command(name, cls=cls or HouseCommand, **kwargs)
