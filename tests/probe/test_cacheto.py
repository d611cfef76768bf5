"""`--cache-to` strings: buildx's CSV parsing and BuildKit's choice of wire form per version.

Expected forms come from BuildKit's own code (cache/remotecache/registry/registry.go at each
version, export.go NewExportableCache) as summarised in buildkit-cache.md §1.1, written out
here by hand as a table.
"""

from __future__ import annotations

import pytest

from inspector.errors import UsageError
from inspector.probe.cacheto import (
    LATEST,
    csv_fields,
    format_cache_to,
    parse_buildkit_version,
    parse_cache_to,
    plan_cache_to,
)


@pytest.mark.parametrize(
    ("line", "fields"),
    [
        ("a,b,c", ["a", "b", "c"]),
        ("a,", ["a", ""]),
        ('"a,b",c', ["a,b", "c"]),
        ('"say ""hi""",x', ['say "hi"', "x"]),
        ('type=registry,"ref=r:1,2"', ["type=registry", "ref=r:1,2"]),
        ("a,b\n", ["a", "b"]),
    ],
)
def test_csv_fields_like_go_csvvalue(line: str, fields: list[str]) -> None:
    assert csv_fields(line) == fields


@pytest.mark.parametrize("line", ['a"b,c', '"open,c', '"a"b,c', ""])
def test_csv_fields_rejects_what_go_rejects(line: str) -> None:
    with pytest.raises(UsageError):
        csv_fields(line)


def test_parse_lowercases_keys_and_keeps_values() -> None:
    spec = parse_cache_to("type=registry,REF=ghcr.io/a/b:Cache,Mode=max")
    assert spec.type == "registry"
    assert dict(spec.attrs) == {"ref": "ghcr.io/a/b:Cache", "mode": "max"}


def test_a_lone_ref_is_a_registry_cache() -> None:
    spec = parse_cache_to("ghcr.io/a/b:cache")
    assert (spec.type, dict(spec.attrs)) == ("registry", {"ref": "ghcr.io/a/b:cache"})


@pytest.mark.parametrize("text", ["ref=x", "type=registry,oops", "a,b"])
def test_parse_errors(text: str) -> None:
    with pytest.raises(UsageError):
        parse_cache_to(text)


def test_other_cache_types_are_usage_errors() -> None:
    with pytest.raises(UsageError):
        plan_cache_to(parse_cache_to("type=gha,mode=max"))
    with pytest.raises(UsageError) as info:
        plan_cache_to(parse_cache_to("type=inline,mode=max"))
    assert info.value.hint is not None and "mode=min" in info.value.hint


# (attributes, BuildKit version) -> form BuildKit writes, or None when the export fails
FORMS: list[tuple[str, tuple[int, int], str | None]] = [
    ("", LATEST, "image-manifest"),
    ("image-manifest=false", LATEST, "oci-index"),
    ("oci-mediatypes=false", LATEST, "docker-manifest-list"),
    ("oci-mediatypes=false,image-manifest=false", LATEST, "docker-manifest-list"),
    ("oci-mediatypes=false,image-manifest=true", LATEST, None),
    ("", (0, 21), "image-manifest"),
    ("oci-mediatypes=false", (0, 21), None),
    ("oci-mediatypes=false,image-manifest=false", (0, 21), "docker-manifest-list"),
    ("", (0, 20), "oci-index"),
    ("image-manifest=true", (0, 20), "image-manifest"),
    ("image-manifest=true,oci-mediatypes=false", (0, 12), None),
    ("oci-mediatypes=false", (0, 12), "docker-manifest-list"),
    ("image-manifest=true", (0, 11), "oci-index"),
    ("oci-mediatypes=false", (0, 8), "docker-manifest-list"),
    ("", (0, 7), "docker-manifest-list"),
    ("image-manifest=True,oci-mediatypes=1", LATEST, "image-manifest"),
    ("oci-mediatypes=yes", LATEST, None),
]


@pytest.mark.parametrize(("attrs", "version", "form"), FORMS)
def test_form_per_buildkit_version(attrs: str, version: tuple[int, int], form: str | None) -> None:
    text = "type=registry,ref=r.example/a:c" + (f",{attrs}" if attrs else "")
    plan = plan_cache_to(parse_cache_to(text), version)
    assert plan.form == form
    if form is None:
        assert plan.errors


def test_the_021_trap_names_buildkits_error() -> None:
    plan = plan_cache_to(parse_cache_to("type=registry,ref=r.example/a:c,oci-mediatypes=false"), (0, 21))
    (error,) = plan.errors
    assert error.code == "oci-mediatypes-required"
    assert "OCI mediatypes are required for image-manifest cache format" in error.message


def test_legacy_form_is_a_warning_on_current_buildkit() -> None:
    plan = plan_cache_to(parse_cache_to("type=registry,ref=r.example/a:c,oci-mediatypes=false"))
    assert [p.code for p in plan.problems if p.severity == "warning"] == ["legacy-form"]


def test_traps_and_infos() -> None:
    plan = plan_cache_to(
        parse_cache_to(
            "type=registry,ref=r.example/a,mode=maximum,ignore-error=true,dest=./x,compression=brotli"
        )
    )
    codes = {p.code: p.severity for p in plan.problems}
    assert codes["invalid-mode"] == "warning" and plan.mode == "min"
    assert codes["ignore-error"] == "warning" and plan.ignore_error
    assert codes["unknown-attribute"] == "warning"
    assert codes["invalid-compression"] == "error"
    assert codes["default-tag"] == "info"
    assert plan.ref is not None and plan.ref.tag == "latest"


def test_missing_ref_is_an_export_error() -> None:
    plan = plan_cache_to(parse_cache_to("type=registry,mode=max"))
    assert [p.code for p in plan.errors] == ["missing-ref"]


def test_ignore_error_needs_012() -> None:
    plan = plan_cache_to(parse_cache_to("type=registry,ref=r.example/a:c,ignore-error=true"), (0, 11))
    assert not plan.ignore_error
    assert any(p.code == "ignored-by-version" for p in plan.problems)


def test_format_round_trips_through_the_parser() -> None:
    text = format_cache_to("registry", [("ref", "r.example/a:c"), ("note", 'x,"y"'), ("mode", "max")])
    assert dict(parse_cache_to(text).attrs) == {"ref": "r.example/a:c", "note": 'x,"y"', "mode": "max"}


@pytest.mark.parametrize(
    ("text", "version"),
    [("latest", LATEST), ("0.21", (0, 21)), ("v0.20.2", (0, 20)), ("0.12.5-rc1", (0, 12))],
)
def test_buildkit_versions(text: str, version: tuple[int, int]) -> None:
    assert parse_buildkit_version(text) == version


def test_bad_buildkit_version() -> None:
    with pytest.raises(UsageError):
        parse_buildkit_version("new")
