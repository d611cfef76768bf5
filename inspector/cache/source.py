"""Where a cache is read from: a registry reference, or a local OCI layout (``--cache-to type=local``).

Both sources answer the same three questions (the top-level document, a small
blob, which blobs exist), so everything above this module is source-agnostic.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from inspector.errors import (
    CacheInspectError,
    DigestMismatch,
    InvalidContent,
    InvalidReference,
    MissingContent,
    NotFound,
    UsageError,
)
from inspector.oci import gojson
from inspector.oci.digest import Digest
from inspector.oci.models import Descriptor, ManifestDocument, parse_descriptor, parse_manifest
from inspector.oci.reference import Reference, parse_reference
from inspector.registry.client import MANIFEST_LIMIT, BlobStat, RegistryClient, verify_blob

__all__ = [
    "CacheSource",
    "LayoutReference",
    "LayoutSource",
    "RegistrySource",
    "parse_layout_reference",
    "parse_source",
    "read_local_file",
    "tag_suggestions",
]

Progress = Callable[[int, int], None]
LAYOUT_PREFIX = "oci:"
_IMAGE_NAME = "io.containerd.image.name"
_REF_NAME = "org.opencontainers.image.ref.name"


def read_local_file(path: Path, limit: int, what: str, *, within: Path | None = None) -> bytes:
    """The bytes of a local regular file, at most ``limit`` of them (``InvalidContent`` beyond).

    Opened non-blocking and checked with ``fstat`` before any read, so a FIFO, a device (``/dev/zero``)
    or a directory is a ``UsageError`` instead of a hang or an endless read. With ``within``, a path that
    resolves (through symlinks) outside that directory is refused before it is opened. A missing file
    is ``MissingContent``.
    """
    if within is not None:
        resolved, root = os.path.realpath(path), os.path.realpath(within)
        if os.path.commonpath([resolved, root]) != root:
            raise UsageError(f"{what}: {path} leads outside {within} (a symlink); not read")
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except FileNotFoundError:
        raise MissingContent(f"{what}: {path} does not exist") from None
    except OSError as exc:
        raise UsageError(f"{what}: cannot read {path}: {exc.strerror}") from None
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise UsageError(f"{what}: {path} is not a regular file")
    with os.fdopen(fd, "rb") as handle:
        try:
            data = handle.read(limit + 1)
        except OSError as exc:
            raise UsageError(f"{what}: cannot read {path}: {exc.strerror}") from None
    if len(data) > limit:
        raise InvalidContent(f"{what}: {path} is larger than the {limit} byte limit")
    return data


class CacheSource(Protocol):
    @property
    def display(self) -> str: ...

    def fetch_manifest(self) -> ManifestDocument: ...

    def fetch_blob(self, descriptor: Descriptor, *, limit: int) -> bytes: ...

    def stat_blobs(self, digests: Sequence[Digest], on_done: Progress | None = None) -> list[BlobStat]: ...


@dataclass(frozen=True, slots=True)
class LayoutReference:
    """``oci:PATH[:TAG]`` or ``oci:PATH@sha256:…``; the tag defaults to ``latest`` as in BuildKit."""

    path: Path
    tag: str | None = None
    digest: Digest | None = None

    def __str__(self) -> str:
        text = f"{LAYOUT_PREFIX}{self.path}"
        if self.digest is not None:
            return f"{text}@{self.digest}"
        return f"{text}:{self.tag or 'latest'}"


def parse_layout_reference(text: str) -> LayoutReference:
    if not text.startswith(LAYOUT_PREFIX) or len(text) == len(LAYOUT_PREFIX):
        raise InvalidReference(f"invalid layout reference {text!r}: expected oci:PATH[:TAG]")
    rest = text[len(LAYOUT_PREFIX) :]
    path, at, digest_text = rest.rpartition("@")
    if at and digest_text.startswith(("sha256:", "sha512:")):
        return LayoutReference(Path(path), digest=Digest(digest_text))
    path, colon, tag = rest.rpartition(":")
    if colon and "/" not in tag and tag:
        return LayoutReference(Path(path), tag=tag)
    return LayoutReference(Path(rest))


def parse_source(text: str) -> Reference | LayoutReference:
    """A registry reference, or ``oci:PATH[:TAG]`` for a local cache directory."""
    if text.startswith(LAYOUT_PREFIX):
        return parse_layout_reference(text)
    directory = _path_meant_as_layout(text)
    if directory is not None:
        raise UsageError(
            f"{text!r} is a local path, not a registry reference: did you mean {LAYOUT_PREFIX}{directory}?",
            hint=f"a local cache (--cache-to type=local,dest=DIR) is read as {LAYOUT_PREFIX}DIR[:TAG]",
        )
    return parse_reference(text)


def _path_meant_as_layout(text: str) -> str | None:
    """The directory ``text`` names when it is written as a path (``./dir``, ``/abs/dir``,
    ``oci-layout://dir``, an existing OCI layout), else None: it would otherwise fail as a registry host
    or go to Docker Hub."""
    for scheme in ("oci-layout://", "oci-dir://", "oci://"):
        if text.startswith(scheme):
            return text[len(scheme) :] or "."
    if text in (".", "..") or text.startswith(("./", "../", "/", "~/", ".\\")):
        return text
    if (Path(text) / "index.json").is_file() or (Path(text) / "oci-layout").is_file():
        return text
    return None


class RegistrySource:
    def __init__(self, client: RegistryClient, reference: Reference) -> None:
        self.client = client
        self.reference = reference

    @property
    def display(self) -> str:
        return str(self.reference)

    def fetch_manifest(self) -> ManifestDocument:
        try:
            return self.client.get_manifest(self.reference)
        except NotFound as exc:
            if self.reference.digest is None and exc.hint is None:
                exc.hint = tag_suggestions(self.client, self.reference)
            raise

    def fetch_blob(self, descriptor: Descriptor, *, limit: int) -> bytes:
        return self.client.get_blob(self.reference.repository, descriptor, limit=limit)

    def stat_blobs(self, digests: Sequence[Digest], on_done: Progress | None = None) -> list[BlobStat]:
        repo = self.reference.repository
        return self.client.map_bounded(lambda d: self.client.head_blob(repo, d), digests, on_done)


def tag_suggestions(client: RegistryClient, reference: Reference) -> str | None:
    """A hint for a tag the registry does not have: the closest existing tags, from the first page of the list.

    One extra request, made only after the 404. Nothing to suggest (the list fails, or nothing is close)
    leaves the error as it was, except for a repository without any tag, which is worth saying.
    """
    import difflib

    repo = reference.repository
    wanted = reference.tag or "latest"
    pages = client.iter_tag_pages(repo)
    try:
        tags = next(pages, [])
    except NotFound:
        return f"the repository {repo} does not exist (or holds no tags)"
    except CacheInspectError:
        return None
    if not tags:
        return f"the repository {repo} holds no tags"
    close = difflib.get_close_matches(wanted, tags, n=5, cutoff=0.6)
    if not close:
        return f"no tag of {repo} is close to {wanted!r}; `cacheinspect tags {repo}` lists its {len(tags)}"
    return f"closest tags in {repo}: {', '.join(close)}"


class LayoutSource:
    """An OCI image layout directory as BuildKit's local cache exporter writes it (spec §6.1)."""

    def __init__(self, reference: LayoutReference) -> None:
        self.reference = reference
        root = reference.path
        if not root.is_dir():
            raise UsageError(
                f"{root}: no such directory (expected a --cache-to type=local,dest=DIR directory)"
            )
        if not (root / "index.json").is_file():
            raise UsageError(f"{root}: not an OCI image layout (no index.json)")
        self.root = root

    @property
    def display(self) -> str:
        return str(self.reference)

    def _blob_path(self, digest: Digest) -> Path:
        return self.root / "blobs" / digest.algorithm / digest.hex

    def _read(self, path: Path, limit: int, what: str) -> bytes:
        return read_local_file(path, limit, what, within=self.root)

    def resolve(self) -> Descriptor:
        """The index.json entry for the tag (``io.containerd.image.name`` first, then ``ref.name``)."""
        raw = self._read(self.root / "index.json", MANIFEST_LIMIT, "layout index")
        doc = gojson.load(raw, f"{self.root}/index.json")
        f = gojson.fields(doc, ("manifests",), "index.json")
        entries = [
            parse_descriptor(item, f"index.json.manifests[{i}]")
            for i, item in enumerate(gojson.as_list(f.get("manifests"), "index.json.manifests"))
        ]
        if self.reference.digest is not None:
            for entry in entries:
                if entry.digest == self.reference.digest:
                    return entry
            raise MissingContent(f"{self.display}: index.json has no entry {self.reference.digest}")
        tag = self.reference.tag or "latest"
        for key in (_IMAGE_NAME, _REF_NAME):
            for entry in entries:
                if entry.annotations.get(key) == tag:
                    return entry
        names = sorted(
            {e.annotations.get(_REF_NAME) or e.annotations.get(_IMAGE_NAME) or "" for e in entries} - {""}
        )
        known = f" (tags there: {', '.join(names)})" if names else ""
        raise MissingContent(f"{self.display}: no tag {tag!r} in {self.root}/index.json{known}")

    def fetch_manifest(self) -> ManifestDocument:
        entry = self.resolve()
        raw = self._read(self._blob_path(entry.digest), MANIFEST_LIMIT, f"manifest {entry.digest.short}")
        if not entry.digest.matches(raw):
            raise DigestMismatch(f"{self._blob_path(entry.digest)} does not hash to {entry.digest}")
        return parse_manifest(raw, content_type=entry.media_type, what=f"manifest {entry.digest.short}")

    def fetch_blob(self, descriptor: Descriptor, *, limit: int) -> bytes:
        if descriptor.size > limit:
            raise InvalidContent(
                f"blob {descriptor.digest} is {descriptor.size} bytes; refusing to read more than {limit}"
            )
        data = self._read(
            self._blob_path(descriptor.digest), descriptor.size, f"blob {descriptor.digest.short}"
        )
        verify_blob(descriptor, data)
        return data

    def _regular_file_size(self, path: Path, what: str) -> int | None:
        """The size of a blob file (None when it is missing); the same refusals as ``read_local_file``."""
        resolved, root = os.path.realpath(path), os.path.realpath(self.root)
        if os.path.commonpath([resolved, root]) != root:
            raise UsageError(f"{what}: {path} leads outside {self.root} (a symlink); not read")
        try:
            info = os.stat(resolved)
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise UsageError(f"{what}: cannot read {path}: {exc.strerror}") from None
        if not stat.S_ISREG(info.st_mode):
            raise UsageError(f"{what}: {path} is not a regular file")
        return info.st_size

    def stat_blobs(self, digests: Sequence[Digest], on_done: Progress | None = None) -> list[BlobStat]:
        out = []
        for done, digest in enumerate(digests, 1):
            size = self._regular_file_size(self._blob_path(digest), f"blob {digest.short}")
            out.append(BlobStat(digest, exists=size is not None, size=size))
            if on_done:
                on_done(done, len(digests))
        return out
