"""``-o table|json|tsv``, ``du`` ages and ``--sort``, through the real CLI against the real registry.

Caches are pushed with plain httpx (``tests.test_integration_gc.Seeder``) with layer sizes and ages chosen
here; every expected number below is derived from those choices, and sizes of the cache configs (which
the seeder writes) are read back from the pushed manifests, not from cacheinspect.
"""

from __future__ import annotations

import json
import random
import uuid
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from tests.registry import LocalRegistry
from tests.support import run_cli
from tests.test_integration_gc import Seeder

pytestmark = pytest.mark.integration

DAY, HOUR = timedelta(days=1), timedelta(hours=1)


def ok(*args: str) -> str:
    done = run_cli(*args)
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


def refused(*args: str) -> str:
    """Exit 2, nothing on stdout, one error line (and at most a hint) on stderr: the error line."""
    done = run_cli(*args)
    assert done.returncode == 2, done.stdout + done.stderr
    assert done.stdout == ""
    lines = done.stderr.splitlines()
    assert 1 <= len(lines) <= 2 and lines[0].startswith("cacheinspect: error: "), done.stderr
    return lines[0]


def tsv_rows(text: str) -> list[list[str]]:
    assert text.endswith("\n")
    return [line.split("\t") for line in text[:-1].split("\n")]


@pytest.fixture(scope="module")
def sized(registry: LocalRegistry) -> Iterator[tuple[str, dict[str, dict[str, Any]]]]:
    """Five caches sharing one 5000-byte base layer, each ``{tag: its manifest as the registry serves it}``.

    own bytes (unique): a-old 1000, b-twin 50, c-twin 50, d-mid 2000, e-big 9000; the twins also share a
    20000-byte layer with each other. Ages: a-old 20 days, b-twin 10 days, c-twin 12 days, d-mid 5 hours,
    e-big 2 days.
    """
    repository = f"fmt/du-{uuid.uuid4().hex[:8]}"
    seeder = Seeder(registry.host, repository)
    rng = random.Random(repository)
    base, pair = rng.randbytes(5000), rng.randbytes(20000)
    seeder.cache("a-old", layers=[base, rng.randbytes(1000)], age=20 * DAY)
    seeder.cache("b-twin", layers=[base, pair, rng.randbytes(50)], age=10 * DAY)
    seeder.cache("c-twin", layers=[base, pair, rng.randbytes(50)], age=12 * DAY)
    seeder.cache("d-mid", layers=[base, rng.randbytes(2000)], age=5 * HOUR)
    seeder.cache("e-big", layers=[base, rng.randbytes(9000)], age=2 * DAY)
    served = {tag: seeder.manifest(tag).json() for tag in ("a-old", "b-twin", "c-twin", "d-mid", "e-big")}
    seeder.http.close()
    yield f"{registry.host}/{repository}", served


def expected_row(tag: str, manifest: dict[str, Any], own: int) -> list[str]:
    """The du -o tsv row, by hand: size = the layers' bytes plus the config blob's, unique = own layer plus
    the config (every config is distinct: its record digest is the tag's hash), shared = the rest."""
    layers = sum(layer["size"] for layer in manifest["layers"])
    config = manifest["config"]["size"]
    size, unique = layers + config, own + config
    created = manifest["layers"][0]["annotations"]["buildkit/createdat"]  # every layer carries the same time
    return [
        tag,
        "",
        "image-manifest",
        str(len(manifest["layers"])),
        str(size),
        str(unique),
        str(size - unique),
        created,
    ]


OWN = {"a-old": 1000, "b-twin": 50, "c-twin": 50, "d-mid": 2000, "e-big": 9000}


def test_du_tsv_has_a_header_and_one_row_per_cache_in_bytes(
    sized: tuple[str, dict[str, dict[str, Any]]],
) -> None:
    repo, served = sized
    rows = tsv_rows(ok("du", repo, "-o", "tsv"))
    assert rows[0] == ["tags", "digest", "form", "layers", "size", "unique", "shared", "created"]
    body = {row[0]: row for row in rows[1:]}
    assert set(body) == set(OWN)
    for tag, row in body.items():
        want = expected_row(tag, served[tag], OWN[tag])
        assert row[1].startswith("sha256:") and len(row[1]) == 71
        assert row[:1] + row[2:] == want[:1] + want[2:], tag
    # the default order, as the table's: unique bytes, largest first (the twins' configs list one layer
    # more than a-old's, ~90 bytes, which does not make up for 1000 - 50)
    assert [row[0] for row in rows[1:]] == ["e-big", "d-mid", "a-old", "b-twin", "c-twin"]


@pytest.mark.parametrize(
    ("key", "order"),
    [
        # size: twins 5000 + 20000 + 50, e-big 14000, d-mid 7000, a-old 6000 (plus configs of ~300 bytes)
        ("size", ["b-twin", "c-twin", "e-big", "d-mid", "a-old"]),
        ("unique", ["e-big", "d-mid", "a-old", "b-twin", "c-twin"]),
        ("age", ["a-old", "c-twin", "b-twin", "e-big", "d-mid"]),  # oldest first
        ("tag", ["a-old", "b-twin", "c-twin", "d-mid", "e-big"]),
    ],
)
def test_du_sort_orders_rows_in_every_format(
    sized: tuple[str, dict[str, dict[str, Any]]], key: str, order: list[str]
) -> None:
    repo, _ = sized
    assert [row[0] for row in tsv_rows(ok("du", repo, "--sort", key, "-o", "tsv"))[1:]] == order
    document = json.loads(ok("du", repo, "--sort", key, "--json"))
    assert [m["tags"][0] for m in document["manifests"]] == order
    table = ok("du", repo, "--sort", key).split("\n")
    assert [line.split()[0] for line in table if line.split()[:1] and line.split()[0] in OWN] == order


def test_du_shows_each_cache_age_spelled_in_the_table_and_as_written_in_json(
    sized: tuple[str, dict[str, dict[str, Any]]],
) -> None:
    repo, served = sized
    lines = ok("du", repo).split("\n")
    header = next(line for line in lines if line.split()[:2] == ["tags", "manifest"])
    assert header.split() == ["tags", "manifest", "form", "layers", "size", "unique", "shared", "age"]
    ages = {
        "a-old": "20 days ago",
        "b-twin": "10 days ago",
        "c-twin": "12 days ago",
        "d-mid": "5 hours ago",
        "e-big": "2 days ago",
    }
    for tag, age in ages.items():
        row = next(line for line in lines if line.startswith(tag + " "))
        assert row.endswith(age), row
    document = json.loads(ok("du", repo, "--json"))
    for manifest in document["manifests"]:
        (tag,) = manifest["tags"]
        assert manifest["createdAt"] == served[tag]["layers"][0]["annotations"]["buildkit/createdat"]


def test_output_json_is_the_json_flag(sized: tuple[str, dict[str, dict[str, Any]]]) -> None:
    repo, _ = sized
    for command in (["du", repo], ["tags", repo]):
        assert json.loads(ok(*command, "-o", "json")) == json.loads(ok(*command, "--json"))
        assert json.loads(ok(*command, "--output=json")) == json.loads(ok(*command, "--json"))


def test_tags_tsv_is_a_header_and_one_tag_per_row(sized: tuple[str, dict[str, dict[str, Any]]]) -> None:
    repo, _ = sized
    rows = tsv_rows(ok("tags", repo, "-o", "tsv"))
    assert rows[0] == ["tag"] and sorted(rows[1:]) == [[tag] for tag in sorted(OWN)]  # the registry's order


def test_formats_asked_wrongly_are_one_line_and_exit_2(sized: tuple[str, dict[str, dict[str, Any]]]) -> None:
    repo, _ = sized
    assert "expected one of table, json, tsv" in refused("du", repo, "-o", "xml")
    assert "two formats" in refused("tags", repo, "--json", "-o", "tsv")
    assert "expected one of size, unique, age, tag" in refused("du", repo, "--sort", "bytes")


@pytest.fixture
def gc_repo(registry: LocalRegistry, tmp_path: Path) -> Iterator[tuple[str, dict[str, str], Path]]:
    """main (1 day, branch alive), old (30 days, alive), gone (2 days, branch gone) and a non-cache image
    ``app`` that matches no template; the live branches are main and old."""
    repository = f"fmt/gc-{uuid.uuid4().hex[:8]}"
    seeder = Seeder(registry.host, repository)
    rng = random.Random(repository)
    digests = {
        "main-buildcache": seeder.cache("main-buildcache", layers=[rng.randbytes(300)], age=DAY),
        "old-buildcache": seeder.cache("old-buildcache", layers=[rng.randbytes(300)], age=30 * DAY),
        "gone-buildcache": seeder.cache("gone-buildcache", layers=[rng.randbytes(300)], age=2 * DAY),
        "app": seeder.image("app", [rng.randbytes(300)]),
    }
    seeder.http.close()
    branches = tmp_path / "branches.txt"
    branches.write_text("main\nold\n")
    yield f"{registry.host}/{repository}", digests, branches


def test_gc_tsv_is_one_row_per_tag_with_action_rule_and_reason(
    gc_repo: tuple[str, dict[str, str], Path],
) -> None:
    repo, digests, branches = gc_repo
    rules = ("-t", "{branch}-buildcache", "--max-age", "14d", "--branches-file", str(branches))
    rows = tsv_rows(ok("gc", repo, *rules, "-o", "tsv"))
    assert rows[0] == ["repository", "tag", "digest", "action", "rule", "created", "reason", "outcome"]
    by_tag = {row[1]: row for row in rows[1:]}
    assert set(by_tag) == set(digests) and all(len(row) == 8 for row in rows)
    for tag, row in by_tag.items():
        assert row[0] == repo and row[2] == digests[tag]
        assert row[7] == ""  # a dry run: no outcome
    # gc's rule order: a gone branch first, then the age of a live one; main is young and alive
    assert by_tag["gone-buildcache"][3:5] == ["delete", "branch-gone"]
    assert by_tag["gone-buildcache"][6].startswith("no live branch slug 'gone' in ")
    assert by_tag["old-buildcache"][3:5] == ["delete", "max-age"]
    reason = by_tag["old-buildcache"][6]
    assert reason.startswith("newest layer created 30 days") and reason.endswith(", older than 14 days")
    assert by_tag["main-buildcache"][3:5] == ["keep", "kept"]
    assert by_tag["main-buildcache"][6].startswith("branch alive; ")
    assert by_tag["app"][3:7] == ["ignore", "no-template", "", "matches no template"]
    # created: the seeder's buildkit/createdat, 30 days before the push (same second, any fraction)
    assert by_tag["old-buildcache"][5].endswith("Z") and by_tag["app"][5] == ""

    applied = tsv_rows(ok("gc", repo, *rules, "--apply", "-o", "tsv"))
    outcome = {row[1]: row[7] for row in applied[1:]}
    assert outcome == {
        "gone-buildcache": "deleted",
        "old-buildcache": "deleted",
        "main-buildcache": "",
        "app": "",
    }
    assert sorted(tsv_rows(ok("tags", repo, "-o", "tsv"))[1:]) == [["app"], ["main-buildcache"]]


def test_gc_summary_spells_out_the_rules_as_the_plan_does(
    gc_repo: tuple[str, dict[str, str], Path], tmp_path: Path
) -> None:
    """--max-age 60d deletes nothing here (old is 30 days): the duration can only come from the rules line."""
    repo, _, branches = gc_repo
    summary = tmp_path / "summary.md"
    args = (
        "-t",
        "{branch}-buildcache",
        "--max-age",
        "1440h",
        "--keep-last",
        "3",
        "--branches-file",
        str(branches),
        "--summary",
        str(summary),
    )
    plan = ok("gc", repo, *args)
    assert "older than 60 days; beyond the 3 newest per template" in plan
    markdown = summary.read_text(encoding="utf-8")
    line = next(line for line in markdown.splitlines() if line.startswith("Delete when: "))
    assert line.endswith("; older than 60 days; beyond the 3 newest per template"), line
    assert line.startswith("Delete when: branch gone (2 live branches from ")
