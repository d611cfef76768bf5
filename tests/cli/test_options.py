"""The registry connection options are declared once (``Connection``'s fields) and every command that talks to a
registry offers them the same way: same flags, help, defaults and place (last, before ``--help``)."""

from __future__ import annotations

from typing import Annotated, Any

import pytest
import typer
from typer.core import TyperGroup, TyperOption
from typer.testing import CliRunner

from inspector.cli.commands import app
from inspector.cli.options import Connection, connection_options

# What the options looked like when each command still declared them itself (the --help of 0.1.0):
# (flags, help, default). -j/--concurrency is absent from tags (one page after another) and probe (its
# checks run one request at a time); both pass one request in flight.
EXPECTED = [
    (("--plain-http",), "Use plain HTTP (always on for localhost/127.0.0.0/8/::1).", False),
    (("--insecure",), "Skip TLS certificate verification.", False),
    (("--ca-file",), "PEM file of CA certificates to trust (also means TLS for localhost).", None),
    (("--username", "-u"), "Registry user (password from --password-stdin).", None),
    (("--password-stdin",), "Read the password or token from stdin.", False),
    # 0.2: no -j means adaptive (the default is None, not 8), and --http1 joined last.
    (
        ("--concurrency", "-j"),
        "Requests in flight, fixed (default: adaptive, from 8 up to 64 on HTTP/2, 16 on HTTP/1.1).",
        None,
    ),
    (("--timeout",), "Seconds to wait for each response.", 30.0),
    (("--http1",), "Speak HTTP/1.1 only (default: HTTP/2 where a TLS registry offers it).", False),
]
WITHOUT_CONCURRENCY = [option for option in EXPECTED if option[0][0] != "--concurrency"]
REGISTRY_COMMANDS = {
    "show": EXPECTED,
    "tags": WITHOUT_CONCURRENCY,
    "du": EXPECTED,
    "explain": EXPECTED,
    "diff": EXPECTED,
    "gc": EXPECTED,
    "probe": WITHOUT_CONCURRENCY,
    "copy": EXPECTED,
    "history": EXPECTED,
}


def _group() -> TyperGroup:
    group = typer.main.get_command(app)
    assert isinstance(group, TyperGroup)
    return group


def _options(name: str) -> list[TyperOption]:
    return [p for p in _group().commands[name].params if isinstance(p, TyperOption)]


@pytest.mark.parametrize("name", sorted(REGISTRY_COMMANDS))
def test_every_registry_command_ends_with_the_same_connection_options(name: str) -> None:
    expected = REGISTRY_COMMANDS[name]
    last = _options(name)[-len(expected) :]  # typer adds --help after the command's own parameters
    assert [(tuple(o.opts + o.secondary_opts), o.help, o.default) for o in last] == expected


def test_only_the_registry_commands_offer_them() -> None:
    offering = {name for name in _group().commands if any(o.opts == ["--plain-http"] for o in _options(name))}
    assert offering == set(REGISTRY_COMMANDS)


def test_the_command_receives_one_connection_built_from_the_flags() -> None:
    received: list[Connection] = []
    probe_app = typer.Typer()

    @probe_app.command()
    @connection_options()
    def fetch(
        name: Annotated[str, typer.Argument()], *, connection: Connection
    ) -> None:  # its own argument comes first
        assert name == "x"
        received.append(connection)

    result = CliRunner().invoke(probe_app, ["x", "--insecure", "-j", "3", "--ca-file", "ca.pem"])
    assert result.exit_code == 0, result.output
    assert received == [Connection(False, True, "ca.pem", None, False, 3, 30.0)]


def test_fixed_fields_are_not_offered_and_keep_their_value() -> None:
    received: list[Connection] = []
    probe_app = typer.Typer()

    @probe_app.command()
    @connection_options(fixed={"concurrency": 1})
    def fetch(*, connection: Connection) -> None:
        received.append(connection)

    assert CliRunner().invoke(probe_app, ["--timeout", "5"]).exit_code == 0
    assert received == [Connection(concurrency=1, timeout=5.0)]
    refused = CliRunner().invoke(probe_app, ["-j", "4"])
    assert refused.exit_code == 2 and "No such option: -j" in refused.output


def test_a_misdeclared_command_is_refused_at_import() -> None:
    def no_connection(name: str) -> None:
        pass

    with pytest.raises(TypeError, match="takes no 'connection: Connection'"):
        connection_options()(no_connection)
    kwargs: dict[str, Any] = {"fixed": {"concurency": 1}}
    with pytest.raises(TypeError, match="not connection options: concurency"):
        connection_options(**kwargs)
