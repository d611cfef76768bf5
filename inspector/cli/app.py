"""The typer commands: each collects options, calls one library function, renders the result."""

from __future__ import annotations

import dataclasses
import json
import logging
import sys
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from inspector._version import __version__
from inspector.cli.conventions import HouseGroup, HouseTyper
from inspector.errors import CacheInspectError, ExitCode, UsageError
from inspector.oci.reference import Reference

if TYPE_CHECKING:
    from rich.console import Console

    from inspector.cache.naming.align import DockerfileSource
    from inspector.registry.client import RegistryClient
    from inspector.registry.credentials import Credentials

__all__ = ["STATE", "app", "report_error"]


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


def report_error(exc: CacheInspectError) -> None:
    """One line on stderr (plus a hint line); in --json mode also a JSON error document on stdout."""
    from inspector._sanitize import sanitize

    message, hint = sanitize(exc.message), sanitize(exc.hint) if exc.hint else None
    if STATE.json:
        doc = {
            "error": {
                "code": type(exc).__name__,
                "exitCode": int(exc.exit_code),
                "message": message,
                "hint": hint,
            }
        }
        print(json.dumps(doc))
    print(f"cacheinspect: error: {message}", file=sys.stderr)
    if hint:
        print(f"cacheinspect: hint: {hint}", file=sys.stderr)


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
    int, typer.Option("--concurrency", "-j", min=1, max=64, help="Requests in flight per registry.")
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


@dataclass(frozen=True)
class _Connection:
    plain_http: bool
    insecure: bool
    ca_file: str | None
    username: str | None
    password_stdin: bool
    concurrency: int
    timeout: float

    def client(
        self, registry: str | None, fallback: Callable[[str], Credentials | None] | None = None
    ) -> RegistryClient:
        """A client for a command whose (first) reference is on ``registry``: the flags' credentials go there
        (or to --registry-auth HOST) and nowhere else; every other registry uses its own source.
        ``fallback(host)``: credentials for a host no configured source has (gc: ECR's API)."""
        from inspector.registry.client import ClientOptions, RegistryClient
        from inspector.registry.credentials import resolve_credentials, same_registry

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
            return found if found is not None or fallback is None else fallback(host)

        options = ClientOptions(
            plain_http=self.plain_http,
            insecure=self.insecure,
            ca_file=self.ca_file,
            timeout=self.timeout,
            concurrency=self.concurrency,
        )
        if STATE.deadline is not None:
            options = dataclasses.replace(options, deadline=STATE.deadline)
        return RegistryClient(options, credentials=lookup)


@contextmanager
def _progress(enabled: bool, description: str) -> Iterator[Callable[[int, int], None] | None]:
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


@app.command()
def show(
    ref: Annotated[
        str,
        typer.Argument(
            help="Cache reference (registry/repo:tag, @sha256:…) or oci:DIR[:TAG] for a local cache."
        ),
    ],
    json_out: JsonOut = False,
    output: Output = None,
    top: Annotated[
        int | None,
        typer.Option(
            "--top",
            min=1,
            metavar="N",
            help="List the N largest layers with their stage and step (why is this cache big?).",
        ),
    ] = None,
    strict: Annotated[
        bool, typer.Option("--strict", help=f"Exit {int(ExitCode.UNHEALTHY)} when the cache is unhealthy.")
    ] = False,
    no_check_blobs: Annotated[
        bool, typer.Option("--no-check-blobs", help="Skip the HEAD request per layer blob.")
    ] = False,
    dockerfile: Annotated[
        Path | None,
        typer.Option(
            "--dockerfile", "-f", help="Name stages and steps from this Dockerfile.", metavar="PATH"
        ),
    ] = None,
    target: Target = None,
    build_arg: BuildArg = None,
    resolve_bases: Annotated[
        bool,
        typer.Option(
            "--resolve-bases",
            help="Resolve each external FROM image in its registry and name bases exactly by their root keys.",
        ),
    ] = False,
    base: Annotated[
        list[str] | None,
        typer.Option(
            "--base",
            help="A base image reference to resolve (repeatable; implies --resolve-bases).",
            metavar="REF",
        ),
    ] = None,
    image: Annotated[
        str | None,
        typer.Option(
            "--image",
            help="The image the same build pushed: its history and provenance (mode=max) give exact step names.",
            metavar="REF",
        ),
    ] = None,
    graph: Annotated[
        str | None,
        typer.Option(
            "--graph",
            help="Print the stage graph as 'mermaid' or 'dot' instead of the tables.",
            metavar="FORMAT",
        ),
    ] = None,
    plain_http: PlainHttp = False,
    insecure: Insecure = False,
    ca_file: CaFile = None,
    username: Username = None,
    password_stdin: PasswordStdin = False,
    concurrency: Concurrency = 8,
    timeout: Timeout = 30.0,
) -> None:
    """Show a cache: layers per Dockerfile stage, sizes, dates and a health verdict."""
    no_tsv = None if top else "show prints a report, not rows: give --top N (the largest layers as rows)"
    fmt = output_format(json_out, output, no_tsv=no_tsv)
    json_out = fmt == "json"
    from inspector.cache.naming.align import label_report
    from inspector.cache.report import inspect_cache, report_to_json
    from inspector.cache.source import LayoutSource, RegistrySource, parse_source
    from inspector.oci.reference import parse_reference

    if graph is not None and graph not in ("mermaid", "dot"):
        raise UsageError(f"--graph {graph!r}: expected 'mermaid' or 'dot'")
    if graph is not None and fmt != "table":
        raise UsageError(f"--graph prints a diagram: it excludes --output {fmt}")
    recipe = dockerfile_recipe(dockerfile, target, build_arg)
    base_refs = list(base or [])
    if resolve_bases and recipe is None and not base_refs:
        raise UsageError("--resolve-bases needs --dockerfile (for its FROM lines) or --base REF")
    image_ref = parse_reference(image) if image else None
    for candidate in base_refs:
        parse_reference(candidate)  # a bad reference is a usage error before any request

    target_ref = parse_source(ref)
    connection = _Connection(plain_http, insecure, ca_file, username, password_stdin, concurrency, timeout)
    with ExitStack() as stack:
        opened: list[RegistryClient] = []

        def client() -> RegistryClient:
            if not opened:
                registry = target_ref.repository.registry if isinstance(target_ref, Reference) else None
                opened.append(stack.enter_context(connection.client(registry)))
            return opened[0]

        with _progress(not json_out and not no_check_blobs, "checking blobs") as on_progress:
            source = (
                RegistrySource(client(), target_ref)
                if isinstance(target_ref, Reference)
                else LayoutSource(target_ref)
            )
            report = inspect_cache(source, check_blobs=not no_check_blobs, on_progress=on_progress)
        report = label_report(
            report,
            client=client,
            dockerfile=recipe,
            image=image_ref,
            base_refs=base_refs,
            resolve_bases=resolve_bases or bool(base_refs),
        )
    if report.graph is not None:
        from inspector._sanitize import sanitize as _sanitize_line

        for warning in report.graph.warnings:
            print(f"cacheinspect: warning: {_sanitize_line(warning)}", file=sys.stderr)
    if graph is not None:
        from inspector._sanitize import sanitize
        from inspector.cache.graph import render_graph

        sys.stdout.write(
            sanitize(render_graph(report, "mermaid" if graph == "mermaid" else "dot"), keep_newlines=True)
        )
    else:
        from inspector.cache.top import TOP_TSV_HEADER, largest_layers, top_layers_json, top_layers_tsv_rows

        largest = largest_layers(report, top) if top else None
        if fmt == "json":
            document = report_to_json(report)
            if largest is not None:
                document["largestLayers"] = top_layers_json(largest)
            print(json.dumps(document, indent=2))
        elif fmt == "tsv":
            assert largest is not None
            write_tsv(TOP_TSV_HEADER, top_layers_tsv_rows(largest))
        else:
            from inspector.cli.render.cache import render_report

            console().print(render_report(report, largest))
    if strict and not report.health.ok:
        raise typer.Exit(int(ExitCode.UNHEALTHY))


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


@app.command()
def tags(
    repository: Annotated[
        str, typer.Argument(help="Repository, e.g. ghcr.io/org/app or localhost:5000/cache.")
    ],
    json_out: JsonOut = False,
    output: Output = None,
    page_size: PageSize = None,
    plain_http: PlainHttp = False,
    insecure: Insecure = False,
    ca_file: CaFile = None,
    username: Username = None,
    password_stdin: PasswordStdin = False,
    timeout: Timeout = 30.0,
) -> None:
    """List the tags of a repository, following pagination."""
    fmt = output_format(json_out, output)
    from inspector.oci.reference import parse_repository

    repo = parse_repository(repository)
    connection = _Connection(plain_http, insecure, ca_file, username, password_stdin, 1, timeout)
    with connection.client(repo.registry) as client:
        if fmt != "table":  # one document: the names are held (at most MAX_TAGS), never the pages
            names = client.list_tags(repo, page_size=page_size)
            if fmt == "json":
                print(json.dumps({"repository": str(repo), "tags": names}, indent=2))
            else:
                write_tsv(("tag",), [(name,) for name in names])
            return
        from inspector._sanitize import sanitize

        printed = 0
        for page in client.iter_tag_pages(repo, page_size=page_size):  # each page printed as it arrives
            sys.stdout.write("".join(sanitize(name) + "\n" for name in page))
            sys.stdout.flush()
            printed += len(page)
    if not printed:
        print(f"{repo}: no tags", file=sys.stderr)


from inspector.cli.commands import repo as commands_repo  # noqa: E402,F401  (registers du and diff)

from inspector.cli.commands import gc as commands_gc  # noqa: E402,F401  (registers gc)  # isort: skip
from inspector.cli.commands import probe as commands_probe  # noqa: E402,F401  (registers probe)

from inspector.cli.commands import copy as commands_copy  # noqa: E402,F401  (registers copy)  # isort: skip

from inspector.cli.commands import completion as commands_completion  # noqa: E402,F401  (registers completion)  # isort: skip
