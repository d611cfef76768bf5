"""gc discovery without a registry: ``--shard`` partitions, source parsing, name selection, ``[[discover]]``."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from inspector.errors import UsageError
from inspector.gc.discover import (
    Shard,
    Skipped,
    has_template_tag,
    parse_discover_source,
    parse_shard,
    select_names,
    source_kind,
)
from inspector.gc.policy import Settings, load_policy, parse_template
from inspector.oci.reference import Repository, parse_repository

COMPONENT = r"[a-z0-9]{1,8}(-[a-z0-9]{1,4})?"
NAMES = st.lists(
    st.from_regex(rf"{COMPONENT}(/{COMPONENT}){{1,2}}", fullmatch=True), unique=True, max_size=40
)


def repositories(paths: list[str]) -> list[Repository]:
    return [parse_repository(f"registry.example.com/{p}") for p in paths]


def owners(shards: list[Shard], names: list[Repository]) -> dict[Repository, int]:
    placed: dict[Repository, int] = {}
    for shard in shards:
        for name in names:
            if shard.holds(name):
                assert name not in placed, f"{name} is in shards {placed[name]} and {shard.index}"
                placed[name] = shard.index
    return placed


@given(NAMES, st.integers(min_value=1, max_value=9))
def test_shards_are_disjoint_and_cover_every_repository(paths: list[str], count: int) -> None:
    names = repositories(paths)
    placed = owners([Shard(k, count) for k in range(count)], names)
    assert set(placed) == set(names)


@given(NAMES, st.from_regex(rf"{COMPONENT}/{COMPONENT}", fullmatch=True), st.integers(1, 9))
def test_adding_a_repository_moves_no_other_between_shards(paths: list[str], added: str, count: int) -> None:
    shards = [Shard(k, count) for k in range(count)]
    before = owners(shards, repositories(paths))
    after = owners(shards, repositories([*paths, added]))
    assert {name: after[name] for name in before} == before


def test_the_shard_of_a_name_is_its_sha256_mod_n() -> None:
    # `printf %s registry.example.com/acme/app-cache | sha256sum` ends in ...bfa9, and a big-endian number
    # mod 4 is its last two bits: 0x9 = 0b1001 -> 1. For .../web-cache it ends in ...6572: 0x2 -> 2.
    app = parse_repository("registry.example.com/acme/app-cache")
    web = parse_repository("registry.example.com/acme/web-cache")
    assert [k for k in range(4) if Shard(k, 4).holds(app)] == [1]
    assert [k for k in range(4) if Shard(k, 4).holds(web)] == [2]
    # mod 2 is the last bit: 0x9 -> 1, 0x2 -> 0; one shard holds everything.
    assert Shard(1, 2).holds(app) and Shard(0, 2).holds(web)
    assert Shard(0, 1).holds(app) and Shard(0, 1).holds(web)


def test_shards_are_zero_based_k_of_n() -> None:
    assert parse_shard("0/4") == Shard(0, 4)
    assert parse_shard("3/4") == Shard(3, 4)
    assert parse_shard(" 2 / 3 ") == Shard(2, 3)


@pytest.mark.parametrize("text", ["3/3", "a/b", "0/0", "-1/2", "4", "1/2/3", "", "1.0/2"])
def test_a_bad_shard_is_refused(text: str) -> None:
    with pytest.raises(UsageError, match="--shard"):
        parse_shard(text)


def test_a_source_is_a_registry_and_an_optional_prefix() -> None:
    source = parse_discover_source("registry.example.com/acme/caches/", "*", Settings(), "--discover")
    assert (source.registry, source.prefix) == ("registry.example.com", "acme/caches")
    assert source.below_prefix("acme/caches/app") == "app"
    assert source.below_prefix("acme/cachesx/app") is None  # a prefix is whole path segments
    assert source.below_prefix("acme/caches") is None
    whole = parse_discover_source("registry.example.com", "*", Settings(), "--discover")
    assert whole.prefix == "" and whole.below_prefix("any/thing") == "any/thing"


def test_what_lists_a_source_follows_its_backend() -> None:
    def kind(text: str, backend: str | None = None) -> str:
        return source_kind(parse_discover_source(text, "*", Settings(), "--discover"), backend)

    assert kind("ghcr.io/acme") == "ghcr"
    assert kind("123456789012.dkr.ecr.us-east-1.amazonaws.com/team") == "ecr"
    assert kind("registry.example.com/acme") == "catalog"
    assert kind("127.0.0.1:5000/acme", "ghcr") == "ghcr"
    with pytest.raises(UsageError, match="needs an owner"):
        kind("ghcr.io")
    assert kind("us-docker.pkg.dev/project/repo") == "artifact-registry"
    assert kind("europe-west1-docker.pkg.dev/project/repo/team") == "artifact-registry"


def test_what_artifact_registry_discovery_cannot_list_is_refused_in_one_line(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def kind(text: str, backend: str | None = None) -> str:
        return source_kind(parse_discover_source(text, "*", Settings(), "--discover"), backend)

    monkeypatch.delenv("CLOUDSDK_ARTIFACTS_LOCATION", raising=False)
    # GCR is not walked (tags/list child names); an AR source must name PROJECT/REPOSITORY (packages.list lists one
    # repository); a host that names no location (a test endpoint) needs gcloud's artifacts/location.
    with pytest.raises(UsageError, match="GCR discovery is not supported"):
        kind("gcr.io/project")
    with pytest.raises(UsageError, match="GCR discovery is not supported"):
        kind("eu.gcr.io/project/app")
    with pytest.raises(UsageError, match=r"LOCATION-docker\.pkg\.dev/PROJECT/REPOSITORY"):
        kind("us-docker.pkg.dev/project")
    with pytest.raises(UsageError, match="CLOUDSDK_ARTIFACTS_LOCATION"):
        kind("127.0.0.1:5000/project/repo", "google")
    monkeypatch.setenv("CLOUDSDK_ARTIFACTS_LOCATION", "us")
    assert kind("127.0.0.1:5000/project/repo", "google") == "artifact-registry"


def test_names_are_selected_by_prefix_glob_and_shard() -> None:
    source = parse_discover_source("registry.example.com/acme", "*-cache", Settings(), "--discover")
    paths = [
        "acme/Bad-cache",
        "acme/a-cache",
        "acme/web",
        "other/b-cache",
        "acme/a-cache",
        "acme/x/y-cache",
    ]
    got = list(select_names(source, paths, None))
    # other/b-cache is outside the prefix (not looked at); acme/a-cache is listed twice, read once;
    # "*" crosses "/", so x/y-cache matches.
    # A name that is no repository name (upper case) is reported, not fatal.
    assert got[0] == Skipped("registry.example.com/acme/Bad-cache", "error", got[0].detail)  # type: ignore[union-attr]
    assert got[1:] == [
        parse_repository("registry.example.com/acme/a-cache"),
        Skipped(
            "registry.example.com/acme/web",
            "excluded-by-glob",
            "'web' does not match '*-cache'",
        ),
        parse_repository("registry.example.com/acme/x/y-cache"),
    ]
    # app-cache is in shard 1 of 4 (test above): shard 0 skips it.
    app = parse_repository("registry.example.com/acme/app-cache")
    assert list(select_names(source, ["acme/app-cache"], Shard(0, 4))) == [
        Skipped(str(app), "other-shard", "not in shard 0/4")
    ]
    assert list(select_names(source, ["acme/app-cache"], Shard(1, 4))) == [app]


def test_a_repository_is_gc_business_only_with_a_tag_a_template_reads() -> None:
    templates = [parse_template("{branch}-buildcache"), parse_template("pr-{number}-cache")]
    assert has_template_tag(["latest", "main-buildcache"], templates)
    assert has_template_tag(["pr-7-cache"], templates)
    assert not has_template_tag(["latest", "pr-x-cache", "-buildcache"], templates)
    assert not has_template_tag([], templates)


def test_discover_tables_in_the_policy_file(tmp_path: Path) -> None:
    path = tmp_path / "gc.toml"
    path.write_text(
        'version = 1\n[defaults]\ntag-templates = ["{branch}-buildcache"]\n'
        '[[discover]]\nsource = "ghcr.io/acme"\nmatch = "*-cache"\nkeep-last = 5\n'
        '[[discover]]\nsource = "registry.example.com/team"\n',
        encoding="utf-8",
    )
    loaded = load_policy(path)  # no [[repository]] table: discovery alone is a policy
    assert loaded.repositories == ()
    assert [(t.source, t.match, t.settings.keep_last) for t in loaded.discover] == [
        ("ghcr.io/acme", "*-cache", 5),
        ("registry.example.com/team", "*", None),
    ]


@pytest.mark.parametrize(
    ("table", "message"),
    [
        ('match = "*"', "needs source"),
        ('source = "ghcr.io/acme"\npackage = "acme/x"', "package"),
        ('source = "ghcr.io/acme"\nsurprise = 1', "unknown key 'surprise'"),
        ('source = "ghcr.io/acme"\nmatch = ""', "match"),
    ],
)
def test_a_bad_discover_table_is_refused_naming_it(tmp_path: Path, table: str, message: str) -> None:
    path = tmp_path / "gc.toml"
    path.write_text(
        f'[defaults]\ntag-templates = ["{{branch}}-c"]\n[[discover]]\n{table}\n', encoding="utf-8"
    )
    with pytest.raises(UsageError, match=message):
        load_policy(path)


def test_a_policy_file_needs_a_repository_or_a_discover_table(tmp_path: Path) -> None:
    path = tmp_path / "gc.toml"
    path.write_text('[defaults]\ntag-templates = ["{branch}-c"]\n', encoding="utf-8")
    with pytest.raises(UsageError, match=r"no \[\[repository\]\] or \[\[discover\]\] tables"):
        load_policy(path)
