from __future__ import annotations

import contextlib

import pytest
from hypothesis import given
from hypothesis import strategies as st

from inspector.errors import InvalidReference
from inspector.oci.reference import Reference, Repository, is_loopback_host, parse_reference, parse_repository

DIGEST = "sha256:" + "a" * 64


@pytest.mark.parametrize(
    ("text", "host", "path", "tag", "digest"),
    [
        ("alpine", "docker.io", "library/alpine", "latest", None),
        ("alpine:3.20", "docker.io", "library/alpine", "3.20", None),
        ("docker.io/alpine", "docker.io", "library/alpine", "latest", None),
        ("index.docker.io/library/alpine:3", "docker.io", "library/alpine", "3", None),
        ("user/app:main-buildcache", "docker.io", "user/app", "main-buildcache", None),
        ("ghcr.io/org/app:buildcache", "ghcr.io", "org/app", "buildcache", None),
        ("localhost/cache", "localhost", "cache", "latest", None),
        ("localhost:5000/a/b/c:t", "localhost:5000", "a/b/c", "t", None),
        ("127.0.0.1:41234/samples/x:oci-index", "127.0.0.1:41234", "samples/x", "oci-index", None),
        ("[::1]:5000/cache:t", "[::1]:5000", "cache", "t", None),
        (f"ghcr.io/org/app@{DIGEST}", "ghcr.io", "org/app", None, DIGEST),
        (f"ghcr.io/org/app:t@{DIGEST}", "ghcr.io", "org/app", "t", DIGEST),
        (
            "123456789012.dkr.ecr.us-east-1.amazonaws.com/team/cache:pr-12",
            "123456789012.dkr.ecr.us-east-1.amazonaws.com",
            "team/cache",
            "pr-12",
            None,
        ),
        ("REGISTRY.example.com/a:b", "registry.example.com", "a", "b", None),
        ("a__b/c--d.e_f:Tag_1.x", "docker.io", "a__b/c--d.e_f", "Tag_1.x", None),
    ],
)
def test_parse_reference(text: str, host: str, path: str, tag: str | None, digest: str | None) -> None:
    ref = parse_reference(text)
    assert ref.repository == Repository(host, path)
    assert ref.tag == tag
    assert ref.digest == digest
    assert parse_reference(str(ref)) == ref


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "empty"),
        ("Alpine", "lowercase"),
        ("ghcr.io/Org/app", "lowercase"),
        ("https://ghcr.io/org/app", "scheme"),
        ("ghcr.io/org/app:", "bad tag"),
        ("ghcr.io/org/app:-x", "bad tag"),
        ("ghcr.io/org/app@sha256:abc", "invalid digest"),
        ("ghcr.io//app", "bad repository name"),
        ("ghcr.io/org/app ", "whitespace"),
        ("a" * 300, "longer than"),
        ("-bad.host:5000/x", "registry host"),
    ],
)
def test_invalid_references(text: str, message: str) -> None:
    with pytest.raises(InvalidReference, match=message):
        parse_reference(text)


def test_parse_repository_refuses_tags() -> None:
    assert parse_repository("localhost:5000/cache") == Repository("localhost:5000", "cache")
    with pytest.raises(InvalidReference, match="without tag"):
        parse_repository("localhost:5000/cache:main")


@pytest.mark.parametrize(
    ("host", "loopback"),
    [
        ("localhost", True),
        ("localhost:5000", True),
        ("127.0.0.1:1", True),
        ("127.8.9.10", True),
        ("[::1]:5000", True),
        ("::1", True),
        ("10.0.0.1:5000", False),
        ("ghcr.io", False),
        ("localhost.example", False),
    ],
)
def test_loopback(host: str, loopback: bool) -> None:
    assert is_loopback_host(host) is loopback


_component = st.from_regex(r"[a-z0-9]{1,6}([._-][a-z0-9]{1,6}){0,2}", fullmatch=True)
_tag = st.from_regex(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,20}", fullmatch=True)
_host = st.sampled_from(["ghcr.io", "localhost:5000", "registry.example.com", "127.0.0.1:8080", "docker.io"])


@given(
    _host,
    st.lists(_component, min_size=1, max_size=3),
    st.one_of(st.none(), _tag),
    st.one_of(st.none(), st.from_regex(r"sha256:[a-f0-9]{64}", fullmatch=True)),
)
def test_round_trip(host: str, components: list[str], tag: str | None, digest: str | None) -> None:
    text = host + "/" + "/".join(components) + (f":{tag}" if tag else "") + (f"@{digest}" if digest else "")
    ref = parse_reference(text)
    assert parse_reference(str(ref)) == ref
    assert isinstance(ref, Reference)


@given(st.text(max_size=80))
def test_arbitrary_text_raises_only_invalid_reference(text: str) -> None:
    with contextlib.suppress(InvalidReference):
        parse_reference(text)
