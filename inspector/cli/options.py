"""Options that several commands share, declared once: registry connection, Dockerfile, output.

``Connection`` holds the registry options and turns them into a client; ``connection_options`` offers them
on a command; ``progress`` is the one progress bar.
"""

from __future__ import annotations

import dataclasses
import functools
import inspect
import sys
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from inspector.cli.app import STATE, console
from inspector.errors import UsageError

if TYPE_CHECKING:
    from inspector.cache.naming.align import DockerfileSource
    from inspector.registry.client import RegistryClient
    from inspector.registry.credentials import Credentials

__all__ = ["Connection", "connection_options", "dockerfile_recipe", "progress"]


# Registry options shared by every command that talks to a registry.
PlainHttp = Annotated[
    bool, typer.Option("--plain-http", help="Use plain HTTP (always on for localhost/127.0.0.0/8/::1).")
]
Insecure = Annotated[bool, typer.Option("--insecure", help="Skip TLS certificate verification.")]
CaFile = Annotated[
    str | None,
    typer.Option(
        "--ca-file",
        help="PEM file of CA certificates to trust (also means TLS for localhost).",
        metavar="FILE",
    ),
]
Username = Annotated[
    str | None,
    typer.Option("--username", "-u", help="Registry user (password from --password-stdin).", envvar=None),
]
PasswordStdin = Annotated[
    bool, typer.Option("--password-stdin", help="Read the password or token from stdin.")
]
Concurrency = Annotated[
    int | None,
    typer.Option(
        "--concurrency",
        "-j",
        min=1,
        max=64,
        help="Requests in flight, fixed (default: adaptive, from 8 up to 64 on HTTP/2, 16 on HTTP/1.1).",
    ),
]
Http1 = Annotated[
    bool,
    typer.Option(
        "--http1",
        envvar="CACHEINSPECT_HTTP1",
        help="Speak HTTP/1.1 only (default: HTTP/2 where a TLS registry offers it).",
    ),
]
Timeout = Annotated[float, typer.Option("--timeout", min=1.0, help="Seconds to wait for each response.")]
PageSize = Annotated[
    int | None,
    typer.Option("--page-size", "-n", min=1, help="Ask for N tags per page (registries may ignore it)."),
]
# Dockerfile options shared by show and diff (with --dockerfile; see dockerfile_recipe).
Target = Annotated[
    str | None, typer.Option("--target", help="The Dockerfile stage that was built (default: the last).")
]
BuildArg = Annotated[
    list[str] | None,
    typer.Option("--build-arg", help="K=V, as given to the build (for ARGs in FROM lines).", metavar="K=V"),
]
# Vendor-API options shared by gc and history.
GitHubPackage = Annotated[
    str | None,
    typer.Option(
        "--package",
        help="GitHub package of the repository (ghcr backend; default: the repository's path).",
        metavar="OWNER/NAME",
    ),
]
GitHubApiUrl = Annotated[
    str | None,
    typer.Option(
        "--github-api-url",
        help="GitHub REST API for the ghcr backend (default https://api.github.com).",
        metavar="URL",
    ),
]
AwsRegion = Annotated[
    str | None,
    typer.Option(
        "--aws-region", help="AWS region of the ECR API (default: the ECR host's).", metavar="REGION"
    ),
]
EcrRegistryId = Annotated[
    str | None,
    typer.Option(
        "--ecr-registry-id",
        help="AWS account id of the ECR registry (default: the ECR host's; lets --backend ecr serve another host).",
        metavar="ACCOUNT",
    ),
]


def _option(annotation: Any, default: Any) -> Any:
    """A ``Connection`` field offered as the command-line option ``annotation`` (see ``connection_options``)."""
    return field(default=default, metadata={"option": annotation})


@dataclass(frozen=True)
class Connection:
    """The registry connection options, declared once: each field is one option of every registry command,
    in this order at the end of its ``--help``."""

    plain_http: bool = _option(PlainHttp, False)
    insecure: bool = _option(Insecure, False)
    ca_file: str | None = _option(CaFile, None)
    username: str | None = _option(Username, None)
    password_stdin: bool = _option(PasswordStdin, False)
    concurrency: int | None = _option(Concurrency, None)  # None: adaptive
    timeout: float = _option(Timeout, 30.0)
    http1: bool = _option(Http1, False)

    def client(
        self, registry: str | None, fallback: Callable[[str], Credentials | None] | None = None
    ) -> RegistryClient:
        """A client for a command whose (first) reference is on ``registry``: the flags' credentials go there
        (or to --registry-auth HOST) and nowhere else; every other registry uses its own source.
        ``fallback(host)``: credentials for a host no configured source has (gc: ECR's API); then, for a
        Google host, Application Default Credentials when google-auth is installed."""
        from inspector.registry.client import ClientOptions, RegistryClient
        from inspector.registry.concurrency import DEFAULT_CONCURRENCY
        from inspector.registry.credentials import resolve_credentials, same_registry
        from inspector.registry.google import default_credentials

        if self.password_stdin and not self.username:
            raise UsageError("--password-stdin needs --username")
        if self.username and not self.password_stdin:
            raise UsageError("--username needs --password-stdin (passwords are never taken as arguments)")
        password = None
        if self.password_stdin:
            password = sys.stdin.readline().rstrip("\r\n")
            if not password:
                raise UsageError("--password-stdin: nothing on stdin")
        username = self.username
        bound = STATE.registry_auth or registry
        if username and bound is None:
            raise UsageError("--username: for which registry? give --registry-auth HOST")
        auth_file = STATE.auth_file

        def lookup(host: str) -> Credentials | None:
            if bound is not None and same_registry(host, bound):
                found = resolve_credentials(host, username=username, password=password, auth_file=auth_file)
            else:
                found = resolve_credentials(host, auth_file=auth_file)
            if found is None and fallback is not None:
                found = fallback(host)
            return found if found is not None else default_credentials(host)  # Google's ADC

        options = ClientOptions(
            plain_http=self.plain_http,
            insecure=self.insecure,
            ca_file=self.ca_file,
            timeout=self.timeout,
            concurrency=self.concurrency or DEFAULT_CONCURRENCY,
            adaptive=self.concurrency is None,
            http1=self.http1,
        )
        if STATE.deadline is not None:
            options = dataclasses.replace(options, deadline=STATE.deadline)
        return RegistryClient(options, credentials=lookup)


def connection_options(
    *, fixed: Mapping[str, Any] | None = None
) -> Callable[[Callable[..., None]], Callable[..., None]]:
    """Offer ``Connection``'s options on a command whose ``connection: Connection`` parameter receives them.

    The command's signature, as typer reads it, has ``connection`` replaced by one parameter per field, after
    the command's own; ``fixed`` names fields the command does not offer, with their value (one request in
    flight: ``{"concurrency": 1}``). Put it below ``@app.command()``.
    """
    pinned = dict(fixed or {})
    fields = [f for f in dataclasses.fields(Connection) if f.name not in pinned]
    unknown = set(pinned) - {f.name for f in dataclasses.fields(Connection)}
    if unknown:
        raise TypeError(f"not connection options: {', '.join(sorted(unknown))}")

    def decorate(command: Callable[..., None]) -> Callable[..., None]:
        signature = inspect.signature(command, eval_str=True)
        own = [p for name, p in signature.parameters.items() if name != "connection"]
        if len(own) == len(signature.parameters):
            raise TypeError(f"{command.__name__} takes no 'connection: Connection' parameter")
        offered = [
            inspect.Parameter(
                f.name, inspect.Parameter.KEYWORD_ONLY, default=f.default, annotation=f.metadata["option"]
            )
            for f in fields
        ]

        @functools.wraps(command)
        def with_connection(**kwargs: Any) -> None:
            values = {f.name: kwargs.pop(f.name) for f in fields}
            command(**kwargs, connection=Connection(**values, **pinned))

        parameters = [p.replace(kind=inspect.Parameter.KEYWORD_ONLY) for p in own] + offered
        with_connection.__signature__ = signature.replace(parameters=parameters)  # type: ignore[attr-defined]
        with_connection.__annotations__ = {p.name: p.annotation for p in parameters}
        return with_connection

    return decorate


@contextmanager
def progress(enabled: bool, description: str) -> Iterator[Callable[[int, int], None] | None]:
    """A rich progress bar on stderr, only when stderr is a terminal."""
    if not enabled or not sys.stderr.isatty():
        yield None
        return
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    with Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console(stderr=True),
        transient=True,
    ) as progress:
        task = progress.add_task(description, total=None)

        def update(done: int, total: int) -> None:
            progress.update(task, completed=done, total=total)

        yield update


DOCKERFILE_LIMIT = 1024 * 1024


def _read_dockerfile(path: Path) -> str:
    """A regular UTF-8 text file of at most 1 MiB; anything else (a FIFO, a device, binary) is exit 2."""
    from inspector.cache.source import read_local_file
    from inspector.errors import InvalidContent, MissingContent

    try:
        raw = read_local_file(path, DOCKERFILE_LIMIT, "--dockerfile")
    except (MissingContent, InvalidContent) as exc:
        raise UsageError(exc.message) from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise UsageError(f"--dockerfile {path}: not UTF-8 text (byte {exc.start}); a binary file?") from None
    if "\x00" in text:
        raise UsageError(f"--dockerfile {path}: not a text file (it holds NUL bytes)")
    return text


def dockerfile_recipe(
    dockerfile: Path | None, target: str | None, build_arg: list[str] | None
) -> DockerfileSource | None:
    """``--dockerfile`` with its ``--target`` and ``--build-arg``s, parsed before any request (a Dockerfile
    that does not parse is exit 2); for ``show`` and ``diff``."""
    from inspector.cache.naming.align import DockerfileSource

    if dockerfile is None:
        if target is not None or build_arg:
            raise UsageError("--target and --build-arg describe a Dockerfile: give it with --dockerfile")
        return None
    args = _build_args(build_arg or [])
    recipe = DockerfileSource(_read_dockerfile(dockerfile), target, args, str(dockerfile))
    recipe.plan()
    return recipe


def _build_args(values: list[str]) -> dict[str, str]:
    out: dict[str, str] = {}
    for value in values:
        key, eq, val = value.partition("=")
        if not eq or not key:
            raise UsageError(f"--build-arg {value!r}: expected KEY=VALUE")
        out[key] = val
    return out
