"""Registry references, parsed once into frozen values.

Grammar and normalisation follow distribution's ``reference`` package as docker
uses it: a first component with a dot, a colon or equal to ``localhost`` is a
registry host; otherwise the reference is on Docker Hub (``docker.io``), where a
single-component name gains ``library/``. The API host of Docker Hub is
``registry-1.docker.io``.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass

from inspector.errors import InvalidReference
from inspector.oci.digest import Digest

__all__ = [
    "DOCKER_HUB",
    "DOCKER_HUB_API",
    "Reference",
    "Repository",
    "is_loopback_host",
    "parse_reference",
    "parse_repository",
]

DOCKER_HUB = "docker.io"
DOCKER_HUB_API = "registry-1.docker.io"
_HUB_ALIASES = frozenset({"docker.io", "index.docker.io", "registry-1.docker.io"})

_COMPONENT = r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*"
_COMPONENT_RE = re.compile(_COMPONENT)
_HOST_LABEL = r"(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])"
_HOST_RE = re.compile(rf"(?:{_HOST_LABEL}(?:\.{_HOST_LABEL})*|\[[0-9A-Fa-f:.]+\])(?::[0-9]{{1,5}})?")
_TAG_RE = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}")  # always fullmatch: "$" allows a final newline
_MAX_NAME = 255


def is_loopback_host(host: str) -> bool:
    """True for ``localhost``, 127.0.0.0/8 and ::1, with or without a port."""
    name = host
    if name.startswith("["):
        name = name[1 : name.find("]")] if "]" in name else name
    elif name.count(":") == 1:
        name = name.split(":", 1)[0]
    if name.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


@dataclass(frozen=True, slots=True)
class Repository:
    """A repository on a registry: ``registry`` is the canonical host[:port]."""

    registry: str
    path: str

    def tag(self, tag: str) -> Reference:
        if not _TAG_RE.fullmatch(tag):
            raise InvalidReference(f"invalid tag {tag!r}")
        return Reference(self, tag=tag)

    def at(self, digest: Digest) -> Reference:
        return Reference(self, digest=digest)

    def __str__(self) -> str:
        return f"{self.registry}/{self.path}"


@dataclass(frozen=True, slots=True)
class Reference:
    """A manifest in a repository, by tag, by digest, or both (digest wins)."""

    repository: Repository
    tag: str | None = None
    digest: Digest | None = None

    @property
    def identifier(self) -> str:
        """What goes after ``/manifests/`` in the API path."""
        if self.digest is not None:
            return str(self.digest)
        return self.tag or "latest"

    def with_digest(self, digest: Digest) -> Reference:
        return Reference(self.repository, tag=self.tag, digest=digest)

    def __str__(self) -> str:
        text = str(self.repository)
        if self.tag is not None:
            text += f":{self.tag}"
        if self.digest is not None:
            text += f"@{self.digest}"
        return text


def _split_host(text: str) -> tuple[str, str]:
    first, sep, rest = text.partition("/")
    if sep and ("." in first or ":" in first or first == "localhost" or first.startswith("[")):
        if not _HOST_RE.fullmatch(first):
            raise InvalidReference(f"invalid registry host {first!r} in {text!r}")
        host = first.lower()
        if host in _HUB_ALIASES:
            host = DOCKER_HUB
        return host, rest
    return DOCKER_HUB, text


def _check_path(path: str, original: str) -> str:
    if not path:
        raise InvalidReference(f"invalid reference {original!r}: empty repository name")
    for component in path.split("/"):
        if _COMPONENT_RE.fullmatch(component):
            continue
        if _COMPONENT_RE.fullmatch(component.lower()):
            raise InvalidReference(f"invalid reference {original!r}: repository name must be lowercase")
        raise InvalidReference(f"invalid reference {original!r}: bad repository name component {component!r}")
    return path


_USERINFO_RE = re.compile(r"^((?:[A-Za-z][A-Za-z0-9+.-]*://)?)[^/@]*@(?!sha256:|sha512:)")


def _shown(text: str) -> str:
    """``text`` for an error message: ``user:password@`` typed before the host becomes ``***@``."""
    return _USERINFO_RE.sub(r"\1***@", text)


def _parse(text: str) -> tuple[Repository, str | None, Digest | None]:
    if not isinstance(text, str) or not text.strip():
        raise InvalidReference("empty reference")
    shown = _shown(text)
    if shown != text:
        raise InvalidReference(
            f"invalid reference {shown!r}: credentials do not belong in a reference",
            hint="pass them with --username and --password-stdin, or docker login",
        )
    if text != text.strip() or any(ch.isspace() for ch in text):
        raise InvalidReference(f"invalid reference {shown!r}: contains whitespace")
    if "://" in text:
        raise InvalidReference(
            f"invalid reference {shown!r}: leave out the URL scheme (e.g. ghcr.io/org/repo:tag)"
        )
    remainder, at, digest_text = text.partition("@")
    digest: Digest | None = None
    if at:
        try:
            digest = Digest(digest_text)
        except InvalidReference as exc:
            raise InvalidReference(f"invalid reference {shown!r}: {exc}") from None
    host, path = _split_host(remainder)
    tag: str | None = None
    last_slash = path.rfind("/")
    colon = path.rfind(":")
    if colon > last_slash:
        path, tag = path[:colon], path[colon + 1 :]
        if not _TAG_RE.fullmatch(tag):
            raise InvalidReference(f"invalid reference {shown!r}: bad tag {tag!r}")
    path = _check_path(path, text)
    if host == DOCKER_HUB and "/" not in path:
        path = f"library/{path}"
    if len(host) + 1 + len(path) > _MAX_NAME:
        raise InvalidReference(f"invalid reference {shown[:80]!r}…: name longer than {_MAX_NAME} characters")
    return Repository(host, path), tag, digest


def parse_reference(text: str, *, default_tag: str = "latest") -> Reference:
    """Parse ``[host[:port]/]path[:tag][@digest]``; no tag and no digest means ``default_tag``."""
    repository, tag, digest = _parse(text)
    if tag is None and digest is None:
        tag = default_tag
    return Reference(repository, tag=tag, digest=digest)


def parse_repository(text: str) -> Repository:
    """Parse a repository name; a tag or digest is an error (the command works on the whole repository)."""
    repository, tag, digest = _parse(text)
    if tag is not None or digest is not None:
        raise InvalidReference(f"expected a repository without tag or digest, got {_shown(text)!r}")
    return repository
