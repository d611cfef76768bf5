"""``--cache-to`` strings: parsed as buildx parses them, planned as BuildKit would export them.

buildx (``util/buildflags/cache.go``) reads the flag as one CSV record (``go-csvvalue``: ``"``
quoting, ``""`` escapes, no trimming), a lone field without ``=`` meaning ``type=registry,ref=…``;
keys are lowercased and passed to BuildKit unchanged. BuildKit's registry exporter
(``cache/remotecache/registry/registry.go``, ``export.go``, ``control/control.go``,
``util/compression/attrs.go``) then decides the wire form from ``oci-mediatypes`` and
``image-manifest``, and that decision changed across versions (buildkit-cache.md §1.1)::

    < 0.8        Docker manifest list, attributes ignored
    0.8 – 0.11   OCI index; oci-mediatypes=false -> Docker manifest list
    0.12 – 0.20  OCI index; image-manifest=true (needs oci-mediatypes) -> OCI image manifest
    0.21         OCI image manifest; oci-mediatypes=false alone is an export error
    >= 0.22      OCI image manifest; oci-mediatypes=false alone implies image-manifest=false

``plan_cache_to`` returns that form plus every trap it can see in the string itself; the probe
then checks the form against the registry (``probe.evaluate_cache_to``).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Literal

from inspector.cache.fetch import Form
from inspector.errors import InvalidReference, UsageError
from inspector.oci.reference import Reference, parse_reference

__all__ = [
    "FORM_ATTRIBUTES",
    "LATEST",
    "CacheToPlan",
    "CacheToSpec",
    "Problem",
    "buildkit_label",
    "csv_fields",
    "format_cache_to",
    "parse_buildkit_version",
    "parse_cache_to",
    "plan_cache_to",
]

Version = tuple[int, int]
#: "latest": the behaviour of every BuildKit since 0.22 (the newest change of the form rules).
LATEST: Version = (0, 22)

KNOWN_ATTRIBUTES = frozenset(
    {
        "ref",
        "mode",
        "image-manifest",
        "oci-mediatypes",
        "compression",
        "compression-level",
        "force-compression",
        "ignore-error",
        "registry.insecure",
    }
)
_COMPRESSIONS = ("gzip", "zstd", "estargz", "uncompressed")
_TRUE = frozenset({"1", "t", "T", "TRUE", "true", "True"})
_FALSE = frozenset({"0", "f", "F", "FALSE", "false", "False"})

#: The attributes that select each wire form on BuildKit >= 0.12 (explicit, so every version agrees).
FORM_ATTRIBUTES: Mapping[Form, tuple[tuple[str, str], ...]] = MappingProxyType(
    {
        "image-manifest": (("image-manifest", "true"), ("oci-mediatypes", "true")),
        "oci-index": (("image-manifest", "false"), ("oci-mediatypes", "true")),
        "docker-manifest-list": (("image-manifest", "false"), ("oci-mediatypes", "false")),
    }
)


@dataclass(frozen=True, slots=True)
class Problem:
    """Something wrong or worth knowing about a ``--cache-to`` string.

    ``error``: BuildKit's export fails (or does nothing) because of the string alone;
    ``warning``: it works but hides a trap; ``info``: how BuildKit reads it.
    """

    severity: Literal["error", "warning", "info"]
    code: str
    message: str
    sources: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class CacheToSpec:
    """One cache destination as buildx hands it to BuildKit: type and lowercased attributes."""

    raw: str
    type: str
    attrs: Mapping[str, str]


@dataclass(frozen=True, slots=True)
class CacheToPlan:
    """What BuildKit ``buildkit`` would do with a spec: the form it writes (None = export error)."""

    spec: CacheToSpec
    buildkit: Version
    ref: Reference | None
    mode: Literal["min", "max"]
    form: Form | None
    ignore_error: bool
    problems: tuple[Problem, ...]

    @property
    def errors(self) -> tuple[Problem, ...]:
        return tuple(p for p in self.problems if p.severity == "error")


# --------------------------------------------------------------------------- parsing


def csv_fields(line: str) -> list[str]:
    """One CSV record exactly as ``go-csvvalue.Fields`` reads it (strict quotes, no trimming)."""
    if line.endswith("\r\n"):
        line = line[:-2]
    elif line.endswith("\n"):
        line = line[:-1]
    if not line:
        raise UsageError("--cache-to: empty value")
    out: list[str] = []
    pos = 0
    while True:
        if not line or line[0] != '"':
            comma = line.find(",")
            field = line if comma < 0 else line[:comma]
            quote = field.find('"')
            if quote >= 0:
                raise UsageError(f'--cache-to: bare " in a non-quoted field (column {pos + quote + 1})')
            out.append(field)
            if comma < 0:
                return out
            line = line[comma + 1 :]
            pos += comma + 1
            continue
        line = line[1:]
        pos += 1
        parts: list[str] = []
        while True:
            quote = line.find('"')
            if quote < 0:
                raise UsageError(f'--cache-to: extraneous or missing " in a quoted field (column {pos + 1})')
            parts.append(line[:quote])
            line = line[quote + 1 :]
            pos += quote + 1
            if line.startswith('"'):
                parts.append('"')
                line = line[1:]
                pos += 1
                continue
            if line.startswith(","):
                out.append("".join(parts))
                line = line[1:]
                pos += 1
                break
            if not line:
                out.append("".join(parts))
                return out
            raise UsageError(f'--cache-to: extraneous or missing " in a quoted field (column {pos})')


def parse_cache_to(text: str) -> CacheToSpec:
    """Parse a ``--cache-to`` value the way buildx does (``CacheOptionsEntry.UnmarshalText``)."""
    fields = csv_fields(text)
    if "=" not in text:
        if len(fields) != 1:
            raise UsageError(
                f"--cache-to {text!r} names {len(fields)} refs; give one cache destination per probe"
            )
        return CacheToSpec(text, "registry", MappingProxyType({"ref": fields[0]}))
    kind = ""
    attrs: dict[str, str] = {}
    for field in fields:
        key, eq, value = field.partition("=")
        if not eq:
            raise UsageError(f"--cache-to: invalid value {field!r} (expected key=value)")
        key = key.lower()
        if key == "type":
            kind = value
        else:
            attrs[key] = value
    if not kind:
        raise UsageError(f"--cache-to: type required for {text!r}")
    return CacheToSpec(text, kind, MappingProxyType(attrs))


def format_cache_to(kind: str, attrs: list[tuple[str, str]]) -> str:
    """``type=…,k=v,…`` with CSV quoting where a value needs it."""
    fields = [f"type={kind}"] + [f"{k}={v}" for k, v in attrs]
    return ",".join(f'"{f.replace(chr(34), chr(34) * 2)}"' if ("," in f or '"' in f) else f for f in fields)


_VERSION_RE = re.compile(r"^v?(\d+)\.(\d+)(?:\.\d+)?(?:[-+].*)?$")


def parse_buildkit_version(text: str) -> Version:
    """``latest``, ``0.21``, ``v0.20.2`` … -> (major, minor)."""
    if text.strip().lower() in ("", "latest"):
        return LATEST
    match = _VERSION_RE.match(text.strip())
    if match is None:
        raise UsageError(f"--buildkit-version {text!r}: expected 'latest' or a version like 0.21 or v0.20.2")
    return int(match.group(1)), int(match.group(2))


def buildkit_label(version: Version) -> str:
    if version >= LATEST:
        return "BuildKit >= 0.22 (current)"
    return f"BuildKit {version[0]}.{version[1]}"


# --------------------------------------------------------------------------- planning


def _go_bool(value: str) -> bool | None:
    """``strconv.ParseBool``; None when Go would refuse the value."""
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    return None


def _bool_attr(
    attrs: Mapping[str, str], key: str, default: bool, problems: list[Problem], *, fatal: bool = True
) -> tuple[bool, bool]:
    """(value, valid) of a boolean attribute; an invalid one is an export error when ``fatal``."""
    if key not in attrs:
        return default, True
    parsed = _go_bool(attrs[key])
    if parsed is not None:
        return parsed, True
    if fatal:
        problems.append(
            Problem(
                "error",
                "invalid-boolean",
                f"{key}={attrs[key]}: BuildKit fails the export (failed to parse {key}: not a boolean)",
            )
        )
    else:
        problems.append(
            Problem(
                "warning",
                "invalid-boolean",
                f"{key}={attrs[key]} is not a boolean: BuildKit ignores it silently",
            )
        )
    return default, False


def plan_cache_to(spec: CacheToSpec, buildkit: Version = LATEST) -> CacheToPlan:
    """The wire form BuildKit ``buildkit`` writes for ``spec``, and the traps in the string."""
    if spec.type != "registry":
        hint = None
        if spec.type == "inline" and spec.attrs.get("mode") == "max":
            hint = "type=inline only supports mode=min; use type=registry,ref=…,mode=max for a full cache"
        raise UsageError(
            f"--cache-to type={spec.type}: probe checks registry caches (type=registry)",
            hint=hint or "type=local/gha/s3/azblob caches do not go through a registry",
        )
    attrs = spec.attrs
    problems: list[Problem] = []
    label = buildkit_label(buildkit)

    ref: Reference | None = None
    raw_ref = attrs.get("ref", "")
    if not raw_ref:
        problems.append(Problem("error", "missing-ref", "no ref=: BuildKit fails the export (missing ref)"))
    else:
        try:
            ref = parse_reference(raw_ref)
        except InvalidReference as exc:
            problems.append(Problem("error", "invalid-ref", f"ref={raw_ref}: {exc}"))
        else:
            if ref.tag is not None and ref.digest is None and not _has_explicit_tag(raw_ref):
                problems.append(
                    Problem("info", "default-tag", f"ref={raw_ref} has no tag: BuildKit writes {ref}")
                )

    mode: Literal["min", "max"] = "min"
    raw_mode = attrs.get("mode")
    if raw_mode == "max":
        mode = "max"
    elif raw_mode is None:
        problems.append(
            Problem(
                "info",
                "mode-min",
                "no mode=: BuildKit exports mode=min (only the final stage's layers get results); "
                "mode=max caches every stage",
            )
        )
    elif raw_mode != "min":
        problems.append(
            Problem(
                "warning",
                "invalid-mode",
                f"mode={raw_mode} is neither min nor max: BuildKit silently falls back to mode=min",
            )
        )

    for key in sorted(set(attrs) - KNOWN_ATTRIBUTES):
        where = " (a type=local attribute)" if key in ("dest", "tag", "digest", "src") else ""
        problems.append(
            Problem(
                "warning",
                "unknown-attribute",
                f"{key}={attrs[key]}: unknown to the registry exporter{where}; BuildKit ignores it",
            )
        )

    if "compression" in attrs and attrs["compression"] not in _COMPRESSIONS:
        problems.append(
            Problem(
                "error",
                "invalid-compression",
                f"compression={attrs['compression']}: BuildKit fails the export (unsupported compression "
                f"type; one of {', '.join(_COMPRESSIONS)})",
            )
        )
    if "compression-level" in attrs and not re.fullmatch(r"[+-]?\d+", attrs["compression-level"]):
        problems.append(
            Problem(
                "error",
                "invalid-compression-level",
                f"compression-level={attrs['compression-level']}: BuildKit fails the export (not an integer)",
            )
        )
    if attrs.get("force-compression", ""):  # present and empty means true
        _bool_attr(attrs, "force-compression", False, problems)
    if "registry.insecure" in attrs:
        insecure, ok = _bool_attr(attrs, "registry.insecure", False, problems)
        if ok and insecure:
            problems.append(
                Problem(
                    "info", "insecure", "registry.insecure=true: plain HTTP or unverified TLS to the registry"
                )
            )

    ignore_error = False
    if "ignore-error" in attrs:
        if buildkit < (0, 12):
            problems.append(
                Problem(
                    "warning",
                    "ignored-by-version",
                    f"ignore-error needs BuildKit >= 0.12; {label} ignores it",
                )
            )
        else:
            ignore_error, _ = _bool_attr(attrs, "ignore-error", False, problems, fatal=False)
    if ignore_error:
        problems.append(
            Problem(
                "warning",
                "ignore-error",
                "ignore-error=true: a failed cache export does not fail the build, so a registry that "
                "refuses this cache gives green builds that never write a cache",
            )
        )

    form = _form(attrs, buildkit, label, problems)
    return CacheToPlan(spec, buildkit, ref, mode, form, ignore_error, tuple(problems))


def _has_explicit_tag(raw: str) -> bool:
    name = raw.split("@", 1)[0]
    return name.rfind(":") > name.rfind("/")


def _form(attrs: Mapping[str, str], buildkit: Version, label: str, problems: list[Problem]) -> Form | None:
    if buildkit < (0, 8):
        for key in ("oci-mediatypes", "image-manifest"):
            if key in attrs:
                problems.append(Problem("warning", "ignored-by-version", f"{key} is ignored by {label}"))
        return "docker-manifest-list"
    oci, oci_ok = _bool_attr(attrs, "oci-mediatypes", True, problems)
    if buildkit < (0, 12):
        if "image-manifest" in attrs:
            problems.append(
                Problem(
                    "warning",
                    "ignored-by-version",
                    f"image-manifest needs BuildKit >= 0.12; {label} ignores it and writes an index",
                    ("S1",),
                )
            )
        return "oci-index" if oci else "docker-manifest-list"
    if "image-manifest" in attrs:
        image_manifest, im_ok = _bool_attr(attrs, "image-manifest", True, problems)
        if not im_ok:
            return None
    elif buildkit >= LATEST:
        image_manifest = oci
    else:
        image_manifest = buildkit >= (0, 21)
    if not oci_ok:
        return None
    if image_manifest and not oci:
        if "image-manifest" in attrs:
            message = (
                "image-manifest=true with oci-mediatypes=false: BuildKit fails the export (invalid "
                "configuration for remote cache, OCI mediatypes are required for image-manifest cache format)"
            )
        else:
            message = (
                f"oci-mediatypes=false on {label}: image-manifest is the default there, so BuildKit fails "
                "the export (invalid configuration for remote cache, OCI mediatypes are required for "
                "image-manifest cache format); set image-manifest=false too, or drop oci-mediatypes=false"
            )
        problems.append(Problem("error", "oci-mediatypes-required", message, ("S2", "S3")))
        return None
    if not oci:
        problems.append(
            Problem(
                "warning",
                "legacy-form",
                "oci-mediatypes=false writes the legacy Docker manifest list whose entries are blobs: "
                "ECR, GCR, Quay and Harbor reject it; prefer image-manifest=true,oci-mediatypes=true",
                ("S3", "E1", "Q3"),
            )
        )
        return "docker-manifest-list"
    return "image-manifest" if image_manifest else "oci-index"
