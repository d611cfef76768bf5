"""What ``gc`` may delete: tag templates, branch slugs, durations, rules and the TOML policy file.

Everything here is pure (no I/O except reading the policy file). A *template*
maps cache tags to branches: ``{branch}-buildcache`` captures the branch's
*slug*, ``pr-{number}-buildcache`` a pull/merge request number. Tags that match
no template are never touched, whatever the rules say.

Policy file (TOML)::

    version = 1

    [defaults]                      # applies to every [[repository]]; each key optional
    tag-templates = ["{branch}-buildcache", "pr-{number}-buildcache"]
    protect = ["main", "release/*"]
    max-age = "14d"
    keep-last = 20
    branches-from-git = "https://github.com/acme/app.git"
    # branches-file = "branches.txt"   (relative to this file; "-" is stdin)
    max-deletes = 200
    slug = { preset = "docker", lowercase = false, max-length = 128 }

    [[repository]]
    name = "ghcr.io/acme/app-cache"   # required; any key of [defaults] may be set again here
    untagged = true                   # also delete untagged caches (GHCR, ECR and Google backends)
    # backend = "ghcr"                # auto (default: ghcr, ecr or google by host, else oci), oci, ghcr, ecr, google
    # github-api-url = "https://ghe.example.com/api/v3"
    # package = "acme/app-cache"      # OWNER/NAME on GitHub; only in a [[repository]] table

    [[discover]]                      # repositories found, not listed (gc/discover.py)
    source = "ghcr.io/acme"           # required: REGISTRY[/PREFIX]; GHCR: the org's or user's packages,
                                      # ECR: DescribeRepositories, else GET /v2/_catalog (under PREFIX/)
    match = "*-cache"                 # glob over the name below PREFIX/ (default "*"; "*" crosses "/")
    keep-last = 5                     # any key of [defaults] but package may be set again here

A file needs at least one ``[[repository]]`` or ``[[discover]]`` table. A discovered repository is
planned only if one of its tags matches its templates; one that a ``[[repository]]`` table names is
planned under that table instead.

Precedence: built-in default < ``[defaults]`` < the repository's (or discover) table <
command-line flags. Flags replace the file's value, except ``--protect``,
which adds to it: a flag never removes protection.
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, fields, replace
from datetime import timedelta
from fnmatch import fnmatchcase
from pathlib import Path
from typing import Any, Literal

from inspector.errors import UsageError
from inspector.oci.reference import Repository

__all__ = [
    "MIN_MAX_AGE",
    "SLUG_PRESETS",
    "BackendKind",
    "DiscoverTable",
    "PolicyFile",
    "RepositoryPolicy",
    "Rules",
    "Settings",
    "SlugRule",
    "TagTemplate",
    "format_duration",
    "load_policy",
    "parse_backend",
    "parse_duration",
    "parse_template",
    "resolve_policy",
    "spell_duration",
    "whole_days",
]

#: Which deletion backend gc uses: ``auto`` picks GHCR's REST API for ghcr.io, ECR's API for
#: ``*.dkr.ecr.*.amazonaws.com``, Google's (GCR, Artifact Registry) for ``gcr.io``, ``*.gcr.io`` and
#: ``*-docker.pkg.dev``, else the OCI API.
BackendKind = Literal["auto", "oci", "ghcr", "ecr", "google"]
_BACKENDS: dict[str, BackendKind] = {
    "auto": "auto",
    "oci": "oci",
    "ghcr": "ghcr",
    "ecr": "ecr",
    "google": "google",
}
_TAG_CHARS = re.compile(r"^[A-Za-z0-9_.-]*$")
_GLOB_META = frozenset("*?[]!")


@dataclass(frozen=True, slots=True)
class SlugRule:
    """How CI turns a branch name into the tag part: ``[^allowed]`` -> ``-``, cut, then trim.

    The default is docker/metadata-action's (and the common shell idiom's): ``/``
    and every character outside ``[A-Za-z0-9_.-]`` become ``-``, cut to 128.
    """

    lowercase: bool = False
    allowed: str = "A-Za-z0-9_.-"
    max_length: int = 128
    trim: str = ""
    _pattern: re.Pattern[str] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if not self.allowed or not _TAG_CHARS.match(self.allowed):
            raise UsageError(
                f"slug: allowed characters {self.allowed!r} must be a character class of [A-Za-z0-9_.-]"
            )
        if not 1 <= self.max_length <= 128:
            raise UsageError(f"slug: max-length {self.max_length} must be between 1 and 128")
        if not _TAG_CHARS.match(self.trim):
            raise UsageError(f"slug: trim characters {self.trim!r} must come from [A-Za-z0-9_.-]")
        try:
            pattern = re.compile(f"[^{self.allowed}]")
        except re.error as exc:
            raise UsageError(f"slug: allowed characters {self.allowed!r}: {exc}") from None
        object.__setattr__(self, "_pattern", pattern)

    def slug(self, name: str) -> str:
        text = name.lower() if self.lowercase else name
        text = self._pattern.sub("-", text)[: self.max_length]
        return text.strip(self.trim) if self.trim else text

    def slug_glob(self, glob: str) -> str:
        """A protect glob in slug space: ``release/*`` -> ``release-*`` (glob characters kept, no cut)."""
        text = glob.lower() if self.lowercase else glob
        return "".join(ch if ch in _GLOB_META else self._pattern.sub("-", ch) for ch in text)

    def describe(self) -> dict[str, Any]:
        return {
            "lowercase": self.lowercase,
            "allowed": self.allowed,
            "maxLength": self.max_length,
            "trim": self.trim,
        }


SLUG_PRESETS: Mapping[str, SlugRule] = {
    # docker/metadata-action type=ref, and ${BRANCH//[^A-Za-z0-9_.-]/-} in shell.
    "docker": SlugRule(),
    # GitLab's CI_COMMIT_REF_SLUG: lowercase, [^a-z0-9] -> '-', 63 bytes, no leading/trailing '-'.
    "gitlab": SlugRule(lowercase=True, allowed="a-z0-9", max_length=63, trim="-"),
    # rlespinasse/github-slug-action GITHUB_REF_SLUG: lowercase, [^a-z0-9._] -> '-', 63, trimmed.
    "github-slug": SlugRule(lowercase=True, allowed="a-z0-9._", max_length=63, trim="-"),
}


@dataclass(frozen=True, slots=True)
class TagTemplate:
    """``prefix{branch}suffix`` or ``prefix{number}suffix``; ``match`` returns the captured part."""

    text: str
    kind: Literal["branch", "number"]
    prefix: str
    suffix: str

    @property
    def specificity(self) -> int:
        return len(self.prefix) + len(self.suffix)

    def match(self, tag: str) -> str | None:
        if len(tag) <= self.specificity or not tag.startswith(self.prefix) or not tag.endswith(self.suffix):
            return None
        middle = tag[len(self.prefix) : len(tag) - len(self.suffix)]
        if self.kind == "number" and not (middle.isascii() and middle.isdigit()):
            return None
        return middle

    def __str__(self) -> str:
        return self.text


def parse_template(text: str) -> TagTemplate:
    """Parse ``--tag-template``: one ``{branch}`` or ``{number}``, the rest tag characters."""
    found = [(name, text.find("{" + name + "}")) for name in ("branch", "number") if "{" + name + "}" in text]
    if len(found) != 1 or text.count("{") != 1 or text.count("}") != 1:
        raise UsageError(
            f"tag template {text!r}: expected exactly one {{branch}} or {{number}} "
            "(e.g. '{branch}-buildcache', 'pr-{number}-buildcache')"
        )
    name, at = found[0]
    prefix, suffix = text[:at], text[at + len(name) + 2 :]
    if not _TAG_CHARS.match(prefix + suffix):
        raise UsageError(f"tag template {text!r}: tags may only contain [A-Za-z0-9_.-]")
    if prefix[:1] in (".", "-"):
        raise UsageError(f"tag template {text!r}: a tag cannot start with {prefix[0]!r}")
    kind: Literal["branch", "number"] = "branch" if name == "branch" else "number"
    return TagTemplate(text, kind, prefix, suffix)


_DURATION_PART = re.compile(r"(\d+)\s*([smhdw])")
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def parse_backend(text: str | None, where: str = "--backend") -> BackendKind:
    """``auto`` (also for None), ``oci``, ``ghcr``, ``ecr`` or ``google``."""
    kind = _BACKENDS.get(text or "auto")
    if kind is None:
        raise UsageError(f"{where}: backend {text!r}: expected auto, oci, ghcr, ecr or google")
    return kind


def parse_duration(text: str) -> timedelta:
    """``14d``, ``2w 3d``, ``36h``, ``90m``, ``45s`` (units s, m, h, d, w; no months: they vary)."""
    compact = text.strip().lower()
    if not compact or _DURATION_PART.sub("", compact).strip():
        raise UsageError(f"duration {text!r}: expected e.g. 14d, 2w, 36h, '1w 3d' (units s m h d w)")
    seconds = sum(int(n) * _UNIT_SECONDS[unit] for n, unit in _DURATION_PART.findall(compact))
    return timedelta(seconds=seconds)


MIN_MAX_AGE = timedelta(hours=1)
_SPELLED = (("day", 86400), ("hour", 3600), ("minute", 60), ("second", 1))


def spell_duration(value: timedelta) -> str:
    """``14 days``, ``1 day 12 hours``: for people (days, as ``format_duration`` writes them for files)."""
    seconds = int(value.total_seconds())
    if seconds == 0:
        return "0 seconds"
    parts = []
    for name, size in _SPELLED:
        n, seconds = divmod(seconds, size)
        if n:
            parts.append(f"{n} {name}{'s' if n != 1 else ''}")
    return " ".join(parts)


def whole_days(value: timedelta) -> int:
    """``value`` in days, rounded up, at least 1: vendor cleanup rules count whole days."""
    return max(1, -(-int(value.total_seconds()) // 86_400))


def format_duration(value: timedelta) -> str:
    seconds = int(value.total_seconds())
    if seconds == 0:
        return "0s"
    parts = []
    for unit in ("d", "h", "m", "s"):  # days, not weeks: "30d" reads better than "4w2d"
        n, seconds = divmod(seconds, _UNIT_SECONDS[unit])
        if n:
            parts.append(f"{n}{unit}")
    return "".join(parts)


@dataclass(frozen=True, slots=True)
class Rules:
    """The selection rules of one repository (see ``gc.plan_repository`` for their order)."""

    templates: tuple[TagTemplate, ...]
    protect: tuple[str, ...] = ()
    max_age: timedelta | None = None
    keep_last: int | None = None
    slug: SlugRule = SlugRule()
    unpulled_for: timedelta | None = None  # needs pull times from a vendor API (ECR)

    def __post_init__(self) -> None:
        if not self.templates:
            raise UsageError(
                "no tag template: give --tag-template (e.g. '{branch}-buildcache'); "
                "tags that match no template are never touched"
            )
        if self.keep_last is not None and self.keep_last < 1:
            raise UsageError(f"keep-last {self.keep_last}: must be at least 1")
        if self.max_age is not None and self.max_age < MIN_MAX_AGE:
            # 0 deletes every cache, live branches included; '2m' is two minutes, not two months.
            raise UsageError(
                f"max-age {format_duration(self.max_age)} ({spell_duration(self.max_age)}) is under one hour: "
                "every cache still being written would be deleted (units: s m h d w; 'm' is minutes)"
            )

    @property
    def uses_branches(self) -> bool:
        return any(t.kind == "branch" for t in self.templates)

    def protection(self, tag: str, captured: str, branches: Sequence[str]) -> str | None:
        """The first protect glob matching the tag, its captured slug/number, or a live branch mapping to it."""
        for glob in self.protect:
            if (
                fnmatchcase(tag, glob)
                or fnmatchcase(captured, glob)
                or fnmatchcase(captured, self.slug.slug_glob(glob))
                or any(fnmatchcase(branch, glob) for branch in branches)
            ):
                return glob
        return None


@dataclass(frozen=True, slots=True)
class Settings:
    """One layer of settings (file defaults, a repository table, or the flags); None = not set here."""

    tag_templates: tuple[str, ...] | None = None
    protect: tuple[str, ...] | None = None
    max_age: str | None = None
    keep_last: int | None = None
    branches_from_git: str | None = None
    branches_file: str | None = None
    max_deletes: int | None = None
    slug_preset: str | None = None
    slug_lowercase: bool | None = None
    slug_max_length: int | None = None
    slug_allowed: str | None = None
    slug_trim: str | None = None
    backend: str | None = None
    github_api_url: str | None = None
    package: str | None = None
    untagged: bool | None = None

    def over(self, base: Settings) -> Settings:
        """These settings on top of ``base``: set values replace, ``protect`` is replaced too."""
        merged = {f.name: getattr(self, f.name) for f in fields(self) if getattr(self, f.name) is not None}
        return replace(base, **merged)


@dataclass(frozen=True, slots=True)
class RepositoryPolicy:
    """Everything ``gc`` needs to plan one repository."""

    repository: Repository
    rules: Rules
    branches_from_git: str | None = None
    branches_file: str | None = None
    max_deletes: int | None = None
    backend: BackendKind = "auto"
    github_api_url: str | None = None
    package: str | None = None
    untagged: bool = False


@dataclass(frozen=True, slots=True)
class DiscoverTable:
    """One ``[[discover]]`` table as written: its source, its glob and its settings."""

    source: str
    match: str
    settings: Settings


@dataclass(frozen=True, slots=True)
class PolicyFile:
    path: Path
    defaults: Settings
    repositories: tuple[tuple[str, Settings], ...]
    discover: tuple[DiscoverTable, ...] = ()


_KEYS = {
    "tag-templates": "tag_templates",
    "protect": "protect",
    "max-age": "max_age",
    "keep-last": "keep_last",
    "branches-from-git": "branches_from_git",
    "branches-file": "branches_file",
    "max-deletes": "max_deletes",
    "slug": "",
    "backend": "backend",
    "github-api-url": "github_api_url",
    "package": "package",
    "untagged": "untagged",
}
_SLUG_KEYS = {
    "preset": "slug_preset",
    "lowercase": "slug_lowercase",
    "max-length": "slug_max_length",
    "allowed": "slug_allowed",
    "trim": "slug_trim",
}


def _settings(table: Mapping[str, Any], where: str, base_dir: Path) -> Settings:
    values: dict[str, Any] = {}
    for key, value in table.items():
        if key not in _KEYS:
            known = ", ".join(sorted(_KEYS))
            raise UsageError(f"{where}: unknown key {key!r} (known: {known})")
        if key == "slug":
            if not isinstance(value, dict):
                raise UsageError(f"{where}.slug: expected a table like {{ preset = 'gitlab' }}")
            for sub, item in value.items():
                if sub not in _SLUG_KEYS:
                    raise UsageError(f"{where}.slug: unknown key {sub!r} (known: {', '.join(_SLUG_KEYS)})")
                values[_SLUG_KEYS[sub]] = _typed(item, _SLUG_KEYS[sub], f"{where}.slug.{sub}")
            continue
        name = _KEYS[key]
        typed = _typed(value, name, f"{where}.{key}")
        if name == "branches_file" and typed != "-":
            typed = str(base_dir / typed)
        values[name] = typed
    return Settings(**values)


def _typed(value: Any, name: str, where: str) -> Any:
    if name in ("tag_templates", "protect"):
        if isinstance(value, str):
            value = [value]
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise UsageError(f"{where}: expected a list of strings")
        return tuple(value)
    if name in ("keep_last", "max_deletes", "slug_max_length"):
        if isinstance(value, bool) or not isinstance(value, int):
            raise UsageError(f"{where}: expected an integer")
        return value
    if name in ("slug_lowercase", "untagged"):
        if not isinstance(value, bool):
            raise UsageError(f"{where}: expected true or false")
        return value
    if not isinstance(value, str):
        raise UsageError(f"{where}: expected a string")
    return value


def load_policy(path: Path) -> PolicyFile:
    """Read and check a policy file; every problem is a ``UsageError`` naming the key."""
    try:
        doc = tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise UsageError(f"--policy {path}: {exc.strerror}") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise UsageError(f"--policy {path}: not valid TOML ({exc})") from None
    except (RecursionError, ValueError):  # nesting or a number beyond what Python parses
        raise UsageError(
            f"--policy {path}: not a usable TOML document (too deeply nested or an oversized number)"
        ) from None
    unknown = set(doc) - {"version", "defaults", "repository", "discover"}
    if unknown:
        raise UsageError(f"--policy {path}: unknown top-level key {sorted(unknown)[0]!r}")
    if doc.get("version", 1) != 1:
        raise UsageError(f"--policy {path}: version {doc.get('version')!r} is not supported (expected 1)")
    base_dir = path.parent
    defaults_table = doc.get("defaults", {})
    if not isinstance(defaults_table, dict):
        raise UsageError(f"--policy {path}: [defaults] must be a table")
    defaults = _settings(defaults_table, f"{path}: defaults", base_dir)
    if defaults.package is not None:
        raise UsageError(
            f"--policy {path}: defaults.package: a package names one repository; set it in its [[repository]]"
        )
    entries = doc.get("repository", [])
    discover = _discover_tables(doc.get("discover", []), path)
    if not isinstance(entries, list) or not (entries or discover):
        raise UsageError(f"--policy {path}: no [[repository]] or [[discover]] tables")
    repositories: list[tuple[str, Settings]] = []
    for i, entry in enumerate(entries):
        if not isinstance(entry, dict):
            raise UsageError(f"--policy {path}: repository[{i}] must be a table")
        name = entry.get("name")
        if not isinstance(name, str) or not name:
            raise UsageError(f"--policy {path}: repository[{i}] needs name = 'registry/path'")
        if any(name == seen for seen, _ in repositories):
            raise UsageError(f"--policy {path}: repository {name!r} appears twice")
        rest = {k: v for k, v in entry.items() if k != "name"}
        repositories.append((name, _settings(rest, f"{path}: repository {name!r}", base_dir)))
    return PolicyFile(path, defaults, tuple(repositories), discover)


def _discover_tables(entries: Any, path: Path) -> tuple[DiscoverTable, ...]:
    if not isinstance(entries, list):
        raise UsageError(f"--policy {path}: discover must be [[discover]] tables")
    tables: list[DiscoverTable] = []
    for i, entry in enumerate(entries):
        where = f"--policy {path}: discover[{i}]"
        if not isinstance(entry, dict):
            raise UsageError(f"{where} must be a table")
        source, match = entry.get("source"), entry.get("match", "*")
        if not isinstance(source, str) or not source.strip("/ "):
            raise UsageError(f"{where} needs source = 'REGISTRY[/PREFIX]'")
        if not isinstance(match, str) or not match:
            raise UsageError(f"{where}.match: expected a glob such as '*-cache'")
        if any(t.source == source and t.match == match for t in tables):
            raise UsageError(f"{where}: source {source!r} with match {match!r} appears twice")
        rest = {k: v for k, v in entry.items() if k not in ("source", "match")}
        settings = _settings(rest, f"{path}: discover {source!r}", path.parent)
        if settings.package is not None:
            raise UsageError(f"{where}.package: a package names one repository; set it in its [[repository]]")
        tables.append(DiscoverTable(source, match, settings))
    return tuple(tables)


def resolve_policy(repository: Repository, layers: Sequence[Settings], flags: Settings) -> RepositoryPolicy:
    """Merge ``layers`` (lowest first) and then the flags; ``--protect`` adds to the file's globs."""
    merged = Settings()
    for layer in layers:
        merged = layer.over(merged)
    file_protect = merged.protect or ()
    merged = flags.over(merged)
    protect = tuple(dict.fromkeys((*file_protect, *(flags.protect or ()))))
    slug = SLUG_PRESETS["docker"]
    if merged.slug_preset is not None:
        if merged.slug_preset not in SLUG_PRESETS:
            raise UsageError(
                f"slug preset {merged.slug_preset!r}: expected one of {', '.join(sorted(SLUG_PRESETS))}"
            )
        slug = SLUG_PRESETS[merged.slug_preset]
    slug_changes: dict[str, Any] = {}
    if merged.slug_lowercase is not None:
        slug_changes["lowercase"] = merged.slug_lowercase
    if merged.slug_max_length is not None:
        slug_changes["max_length"] = merged.slug_max_length
    if merged.slug_allowed is not None:
        slug_changes["allowed"] = merged.slug_allowed
    if merged.slug_trim is not None:
        slug_changes["trim"] = merged.slug_trim
    if slug_changes:
        slug = SlugRule(
            **{
                "lowercase": slug.lowercase,
                "allowed": slug.allowed,
                "max_length": slug.max_length,
                "trim": slug.trim,
                **slug_changes,
            }
        )
    if merged.branches_from_git and merged.branches_file:
        raise UsageError(f"{repository}: give branches-from-git or branches-file, not both")
    if merged.max_deletes is not None and merged.max_deletes < 0:
        raise UsageError(f"{repository}: max-deletes must not be negative")
    backend = parse_backend(merged.backend, str(repository))
    if merged.package is not None:
        owner, _, name = merged.package.partition("/")
        if not owner or not name or name.startswith("/") or name.endswith("/"):
            raise UsageError(f"{repository}: package {merged.package!r}: expected OWNER/NAME")
    templates = tuple(parse_template(t) for t in dict.fromkeys(merged.tag_templates or ()))
    rules = Rules(
        templates=templates,
        protect=protect,
        max_age=parse_duration(merged.max_age) if merged.max_age is not None else None,
        keep_last=merged.keep_last,
        slug=slug,
    )
    return RepositoryPolicy(
        repository=repository,
        rules=rules,
        branches_from_git=merged.branches_from_git,
        branches_file=merged.branches_file,
        max_deletes=merged.max_deletes,
        backend=backend,
        github_api_url=merged.github_api_url,
        package=merged.package,
        untagged=bool(merged.untagged),
    )
