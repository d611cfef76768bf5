"""Which build-context files changed since a cached ``COPY``: the local ``--context`` against the cached layers.

BuildKit keys a build-context copy by a content checksum of the copied paths (``cache/contenthash``:
file headers and contents, hashed per directory), written to the cache only as a ``sha256(checksum + "@-1")``
root. That hash is not recomputed here (its exact header encoding, ``.dockerignore`` handling and uid/gid
of the sending client are not all knowable from here), so the checksum root cannot be matched directly.
What the cache does hold is each cached version's *layer*: the diff a ``COPY`` wrote is exactly the files it
copied, under its destination. Comparing those files (path, content sha256, permission bits) with the files
the same ``COPY`` would take from ``--context`` answers in one direction with certainty: a file whose content
differs from every cached version means a different checksum, so a miss. Equal files are reported as a hit
(the checksum also covers metadata this comparison does not see, such as the client's uid/gid).

A version without a layer (``mode=min`` writes none for intermediate steps), a layer over the size cap, a
compression this module does not read, or a ``COPY`` with wildcards or several sources whose placement is
ambiguous: then it cannot tell, and says so.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import os
import posixpath
import re
import stat
import tarfile
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Literal

from inspector.cache.config import CacheConfig
from inspector.cache.explain import ContentCheck, ImportedCache
from inspector.cache.naming.dockerfile import PlannedStep, normalize_workdir
from inspector.oci.digest import Digest

__all__ = [
    "LAYER_LIMIT",
    "UNPACKED_LIMIT",
    "FileState",
    "LayerFiles",
    "compare_chain",
    "compare_versions",
    "context_files",
    "copy_arguments",
    "copy_destination",
    "diff_files",
    "layer_files",
    "make_content_check",
    "version_chains",
]

#: Largest compressed layer fetched to compare; larger versions are "cannot tell".
LAYER_LIMIT = 256 * 1024 * 1024
#: Largest total of file bytes read from one layer or one context (a decompression bomb stops here).
UNPACKED_LIMIT = 1024 * 1024 * 1024

FileState = tuple[str, int]  # (content sha256 hex, permission bits)
LayerFiles = dict[str, FileState | None]  # path -> state; None: whited out (``dir/``: an opaque directory)


def copy_arguments(step: PlannedStep) -> tuple[list[str], str] | None:
    """The sources and destination of a ``COPY``/``ADD``, or None when they are not paths in the context
    (URLs, git sources, here-documents)."""
    args = list(step.args)
    if step.kind not in ("COPY", "ADD") or step.heredoc or len(args) < 2:
        return None
    if any("://" in a or a.startswith("git@") for a in args):
        return None
    return args[:-1], args[-1]


def _dockerignore(context: Path) -> list[tuple[bool, re.Pattern[str]]]:
    """``.dockerignore`` patterns as (exclude?, regex) in order, the last match wins (moby/patternmatcher)."""
    path = context / ".dockerignore"
    if not path.is_file():
        return []
    rules: list[tuple[bool, re.Pattern[str]]] = []
    for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        exclude = not line.startswith("!")
        pattern = posixpath.normpath(line.lstrip("!").strip().lstrip("/"))
        regex = ""
        i = 0
        while i < len(pattern):
            if pattern.startswith("**", i):
                regex += ".*"
                i += 2
            elif pattern[i] == "*":
                regex += "[^/]*"
                i += 1
            elif pattern[i] == "?":
                regex += "[^/]"
                i += 1
            else:
                regex += re.escape(pattern[i])
                i += 1
        rules.append((exclude, re.compile(f"^{regex}(/.*)?$")))
    return rules


def _ignored(rel: str, rules: list[tuple[bool, re.Pattern[str]]]) -> bool:
    ignored = False
    for exclude, regex in rules:
        if regex.match(rel):
            ignored = exclude
    return ignored


class _TooLarge(Exception):
    """More than ``UNPACKED_LIMIT`` bytes of local files to hash: the comparison gives up (cannot tell)."""


def _hash_file(path: Path, budget: list[int]) -> FileState:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(1 << 20):
            budget[0] -= len(chunk)
            if budget[0] < 0:
                raise _TooLarge
            digest.update(chunk)
    return digest.hexdigest(), stat.S_IMODE(path.stat().st_mode)


def _walk(root: Path) -> Iterator[Path]:
    for dirpath, dirnames, filenames in os.walk(root, followlinks=False):
        dirnames.sort()
        for name in sorted(filenames):
            yield Path(dirpath) / name


def _expand(root: Path, sources: list[str]) -> list[str] | None:
    """Sources with wildcards (``allowWildcard``) replaced by what they match, when every match is a regular
    file (a matched directory is copied as itself, not its contents: not worked out here, so None)."""
    out: list[str] = []
    for source in sources:
        if not any(ch in source for ch in "*?["):
            out.append(source)
            continue
        matches = sorted(root.glob(posixpath.normpath(source.lstrip("/"))))
        if any(not m.is_file() or m.is_symlink() for m in matches):
            return None
        out.extend(m.relative_to(root).as_posix() for m in matches)
    return out


def context_files(context: Path, sources: list[str], dest: str) -> dict[str, FileState] | None:
    """The regular files ``COPY sources dest`` takes from ``context``, keyed by their path in the layer, or
    None when a wildcard matches a directory or the files hold more than ``UNPACKED_LIMIT`` bytes.

    ``dest`` is absolute, ending with ``/`` when it names a directory (``convert.go`` dispatchCopy: a
    destination ``.``, empty or ending with ``/``). A directory source copies its contents
    (``dirCopyContents``), a file source lands at ``dest/name`` when ``dest`` is a directory or there are
    several sources or a wildcard, else at ``dest``. Paths leaving the context and symlinks are skipped."""
    root = context.resolve()
    rules = _dockerignore(root)
    budget = [UNPACKED_LIMIT]
    out: dict[str, FileState] = {}
    expanded = _expand(root, sources)
    if expanded is None:
        return None
    several = len(sources) > 1 or any(ch in "".join(sources) for ch in "*?[")
    try:
        _collect(root, rules, expanded, dest, several, budget, out)
    except _TooLarge:
        return None
    return out


def _collect(
    root: Path,
    rules: list[tuple[bool, re.Pattern[str]]],
    sources: list[str],
    dest: str,
    several: bool,
    budget: list[int],
    out: dict[str, FileState],
) -> None:
    for source in sources:
        rel_source = posixpath.normpath(source.lstrip("/")) if source.strip("/") else "."
        base = (root / rel_source).resolve()
        if base != root and root not in base.parents:
            continue
        if base.is_dir():
            for path in _walk(base):
                rel = path.relative_to(root).as_posix()
                if path.is_symlink() or not path.is_file() or _ignored(rel, rules):
                    continue
                out[posixpath.join(dest, path.relative_to(base).as_posix()).lstrip("/")] = _hash_file(
                    path, budget
                )
        elif base.is_file() and not _ignored(rel_source, rules):
            into_dir = dest.endswith("/") or several
            target = posixpath.join(dest, base.name) if into_dir else dest
            out[target.lstrip("/")] = _hash_file(base, budget)


def layer_files(blob: bytes, media_type: str) -> LayerFiles | None:
    """The regular files of a layer tar (gzip or uncompressed), or None for a compression not read here.

    A whiteout ``dir/.wh.name`` is ``dir/name: None`` (deleted below), an opaque directory
    ``dir/.wh..wh..opq`` is ``dir/: None`` (everything below it hidden)."""
    if "zstd" in media_type:
        return None
    raw: io.IOBase = gzip.GzipFile(fileobj=io.BytesIO(blob)) if "gzip" in media_type else io.BytesIO(blob)
    out: LayerFiles = {}
    budget = UNPACKED_LIMIT
    try:
        with tarfile.open(fileobj=raw, mode="r|") as archive:
            for member in archive:
                name = member.name.removeprefix("./").lstrip("/")
                name = posixpath.normpath(name) if name else ""
                parent, base = posixpath.split(name)
                if base == ".wh..wh..opq":
                    out[f"{parent}/" if parent else "/"] = None
                    continue
                if base.startswith(".wh."):
                    out[posixpath.join(parent, base[4:])] = None
                    continue
                if not member.isfile():
                    continue
                budget -= member.size
                if budget < 0:
                    return None
                handle = archive.extractfile(member)
                digest = hashlib.sha256()
                while handle is not None and (chunk := handle.read(1 << 20)):
                    digest.update(chunk)
                out[name] = (digest.hexdigest(), member.mode & 0o7777)
    except (tarfile.TarError, OSError, EOFError):
        return None
    return out


def _difference(path: str, local: FileState, cached: FileState) -> str | None:
    if local[0] != cached[0]:
        return f"changed {path}"
    if local[1] != cached[1]:
        return f"mode {path} {cached[1]:o} -> {local[1]:o}"
    return None


def diff_files(local: Mapping[str, FileState], cached: Mapping[str, FileState | None]) -> tuple[str, ...]:
    """Paths that differ between the local files and one layer taken as the whole copy: ``changed``,
    ``mode``, ``added`` (only local), ``removed`` (only cached)."""
    out: list[str] = []
    for path in sorted(set(local) | {p for p, state in cached.items() if state is not None}):
        state = cached.get(path)
        if state is None:
            out.append(f"added {path}")
        elif path not in local:
            out.append(f"removed {path}")
        elif (difference := _difference(path, local[path], state)) is not None:
            out.append(difference)
    return tuple(out)


def _lookup(files: LayerFiles, path: str) -> FileState | Literal["absent"] | None:
    """``path`` in one layer: its state, ``absent`` (whited out, or under an opaque directory), or None
    (the layer does not touch it: look further down)."""
    if path in files:
        return files[path] or "absent"
    parts = path.split("/")
    for depth in range(len(parts) - 1, 0, -1):
        if (
            files.get("/".join(parts[:depth]) + "/", ()) is None
            or files.get("/".join(parts[:depth]), ()) is None
        ):
            return "absent"
    return "absent" if files.get("/", ()) is None else None


def compare_chain(
    local: Mapping[str, FileState], chain: tuple[Digest, ...], read: Callable[[Digest], LayerFiles | None]
) -> tuple[tuple[str, ...], bool] | None:
    """One cached version against the local files: (certain differences, whether some path could not be
    decided), or None when its own layer cannot be read. ``chain``: the version's layers, its own first.

    BuildKit stores a step's *diff*: a copied file equal to the one already below is left out of the
    layer. So a local file missing from the copy's layer is looked up in the layers below (topmost first):
    equal there means equal; not there, nor anywhere below, means added; an unreadable layer on the way
    leaves it undecided. Files in the copy's layer are what the copy wrote: any difference there is certain.
    """
    top = read(chain[0])
    if top is None:
        return None
    differences: list[str] = []
    for path, state in top.items():
        if state is None or path.endswith("/"):
            continue
        if path not in local:
            differences.append(f"removed {path}")
        elif (difference := _difference(path, local[path], state)) is not None:
            differences.append(difference)
    differences.extend(f"added {path}" for path in local if path in top and top[path] is None)
    pending = sorted(path for path in local if path not in top)
    undecided = False
    for blob in chain[1:]:
        if not pending:
            break
        files = read(blob)
        if files is None:
            undecided = True
            break
        still: list[str] = []
        for path in pending:
            found = _lookup(files, path)
            if found is None:
                still.append(path)
            elif found == "absent":
                differences.append(f"added {path}")
            elif (difference := _difference(path, local[path], found)) is not None:
                differences.append(difference)
        pending = still
    if not undecided:
        differences.extend(f"added {path}" for path in pending)
    return tuple(sorted(differences, key=lambda d: d.split(" ", 1)[1])), undecided


def version_chains(config: CacheConfig, versions: tuple[int, ...]) -> dict[int, tuple[Digest, ...] | None]:
    """Each version record's layer chain, its own layer first, or None without a result."""
    out: dict[int, tuple[Digest, ...] | None] = {}
    for record in versions:
        results = config.records[record].results
        chain = config.chain(results[0].layer) if results else None
        out[record] = tuple(config.layers[i].blob for i in reversed(chain)) if chain else None
    return out


def copy_destination(step: PlannedStep, dest: str, base_workdir: str = "/") -> str:
    """``dest`` made absolute against the step's working directory (the base image's ``WorkingDir`` when no
    ``WORKDIR`` ran), ``/``-terminated when it names a directory."""
    directory = dest in (".", "") or dest.endswith("/")
    joined = normalize_workdir(step.workdir or normalize_workdir("/", base_workdir), dest)
    return joined.rstrip("/") + "/" if directory else joined


def compare_versions(
    local: Mapping[str, FileState],
    versions: Mapping[int, tuple[Digest, ...] | None],
    read: Callable[[Digest], LayerFiles | None],
) -> tuple[tuple[str, ...] | None, tuple[int, ...]]:
    """(the certain differences from the closest version when every version has some, else None: it cannot
    tell; the versions whose files equal the local ones). ``read(blob)``: a layer's files, None when it
    cannot be read."""
    same: list[int] = []
    closest: tuple[str, ...] | None = None
    undecided = False
    for record, chain in versions.items():
        compared = compare_chain(local, chain, read) if chain else None
        if compared is None:
            undecided = True
            continue
        differences, unsure = compared
        if not differences and not unsure:
            same.append(record)
        elif not differences:
            undecided = True
        elif closest is None or len(differences) < len(closest):
            closest = differences
    if same:
        return (), tuple(same)
    if undecided:
        return None, ()
    return closest, ()


LayerFetch = Callable[[Digest], tuple[bytes, str] | None]


def make_content_check(
    context: Path,
    fetchers: Mapping[str, LayerFetch],
    base_workdirs: Mapping[str, str] | None = None,
) -> ContentCheck:
    """A :data:`~inspector.cache.explain.ContentCheck` over ``context``: ``fetchers[ref](blob)`` reads one
    cached layer (its bytes and media type; None when it cannot), ``base_workdirs`` the base images'
    ``WorkingDir`` by ``FROM`` reference (default ``/``). Each layer blob is fetched and read at most once
    (a blob digest names its bytes, so two caches holding it hold the same files)."""
    read_layers: dict[Digest, LayerFiles | None] = {}

    def check(
        step: PlannedStep, cache: ImportedCache, versions: tuple[int, ...]
    ) -> tuple[tuple[str, ...] | None, tuple[int, ...]]:
        arguments = copy_arguments(step)
        fetch = fetchers.get(cache.ref)
        if arguments is None or fetch is None or cache.config is None:
            return None, ()
        sources, dest = arguments
        base_workdir = (base_workdirs or {}).get(step.root_image or "", "/")
        local = context_files(context, sources, copy_destination(step, dest, base_workdir))
        if local is None:
            return None, ()

        def read(blob: Digest) -> LayerFiles | None:
            if blob not in read_layers:
                fetched = fetch(blob)
                read_layers[blob] = layer_files(*fetched) if fetched is not None else None
            return read_layers[blob]

        return compare_versions(local, version_chains(cache.config, versions), read)

    return check
