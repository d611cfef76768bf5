"""``-o table|json|tsv``, ``du`` ages and ``--sort``, through the real CLI against the real registry.

Caches are pushed with plain httpx (``tests.integration.test_gc.Seeder``) with layer sizes and ages chosen
here; every expected number below is derived from those choices, and sizes of the cache configs (which
the seeder writes) are read back from the pushed manifests, not from cacheinspect.
"""

from __future__ import annotations

import hashlib
import json
import random
import uuid
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from tests.harness.paths import TESTDATA, schema
from tests.harness.registry import LocalRegistry
from tests.harness.support import run_cli, validate_json
from tests.integration.test_gc import Seeder

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
    validate_json(document, schema("du"))
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
    ``app`` that matches no template; the live branches are main and old, in a file whose path holds a tab
    and a newline."""
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
    odd = tmp_path / "a\tdir\nname"  # a tab and a newline in the branch source's path, which reasons quote
    odd.mkdir()
    branches = odd / "branches.txt"
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
    # the path's tab and newline are escapes in the field: every row still has its 8 fields
    shown = str(branches).replace("\t", "\\x09").replace("\n", "\\x0a")
    assert by_tag["gone-buildcache"][6] == f"no live branch slug 'gone' in branches file {shown}"
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


def named_build_top(
    samples: list[dict[str, Any]], count: int
) -> list[tuple[int, str, list[tuple[str, str, str | None]]]]:
    """The ``count`` largest layers of testdata's named-build cache with their places, from the layout
    (sizes) and samples.json (which step made each layer, and its [stage k/n] label), not from cacheinspect.

    ``test`` is ``FROM build`` and adds one step to build's chain of records, so the record graph has one
    chain for both, which show names ``build + test`` (its stage tables too); ``stage-2`` is the final stage.
    Layers no step made are base layers: golang:1.23-alpine's three (build's base) and alpine:3.20's one,
    which is golang's bottom layer (testdata/README.md), so it is the base of build and of stage-2.
    """
    layout = TESTDATA / "layouts" / "named-build"
    index = json.loads((layout / "index.json").read_text())

    def manifest_of(name: str) -> dict[str, Any]:
        entry = next(
            m for m in index["manifests"] if m["annotations"]["org.opencontainers.image.ref.name"] == name
        )
        return dict(json.loads((layout / "blobs" / "sha256" / entry["digest"][7:]).read_text()))

    def base_layers(name: str) -> set[str]:
        first = manifest_of(name)["manifests"][0]  # linux/amd64, the platform the cache was built for
        image = json.loads((layout / "blobs" / "sha256" / first["digest"][7:]).read_text())
        return {layer["digest"] for layer in image["layers"]}

    entry = next(s for s in samples if s["name"] == "named-build")
    steps = {s["layer"]: s for s in entry["expected_steps"] if s.get("layer")}
    golang, alpine = base_layers("base-golang"), base_layers("base-alpine")
    out = []
    for layer in sorted(manifest_of("latest")["layers"], key=lambda x: (-x["size"], x["digest"]))[:count]:
        digest = layer["digest"]
        places: list[tuple[str, str, str | None]] = []
        if digest in steps:
            step = steps[digest]
            stage = "build + test" if step["stage"] in ("build", "test") else step["stage"]
            places.append((stage, f"#{step['number']}", step["label"]))
        places += [("build + test", "base", None)] if digest in golang else []
        places += [("stage-2", "base", None)] if digest in alpine else []
        out.append((layer["size"], digest, places))
    return out


def test_show_top_lists_the_largest_layers_with_stage_step_and_instruction(
    registry: LocalRegistry, seeded: dict[str, dict[str, str]], samples: list[dict[str, Any]]
) -> None:
    ref = f"{registry.host}/samples/named-build:latest"
    dockerfile = ("--dockerfile", str(TESTDATA / "dockerfiles" / "named-build.Dockerfile"))
    expected = named_build_top(samples, 4)
    # by hand: 2802 alpine's layer (bases of build and stage-2), 2123 golang's, 2014 COPY --from=build, 1984
    # go build; the two largest are base layers, so the largest *step* is the final stage's COPY of the app
    assert [(size, places[0][:2]) for size, _, places in expected] == [
        (2802, ("build + test", "base")),
        (2123, ("build + test", "base")),
        (2014, ("stage-2", "#3")),
        (1984, ("build + test", "#6")),
    ]
    rows = tsv_rows(ok("show", ref, *dockerfile, "--top", "4", "-o", "tsv"))
    assert rows[0] == ["size", "digest", "stage", "step", "instruction", "places"]
    assert rows[1:] == [
        [str(size), digest, places[0][0], places[0][1], places[0][2] or "", str(len(places))]
        for size, digest, places in expected
    ]
    document = json.loads(ok("show", ref, *dockerfile, "--top", "4", "--json"))
    validate_json(document, schema("show"))
    assert [
        (layer["size"], layer["digest"], [(p["stage"], p["step"], p["instruction"]) for p in layer["places"]])
        for layer in document["largestLayers"]
    ] == expected
    lines = ok("show", ref, *dockerfile, "--top", "4").split("\n")
    start = lines.index(next(line for line in lines if line.startswith("largest layers")))
    # 2802 + 2123 + 2014 + 1984 = 8923 of the 12 layers' 11945 bytes: 74 %
    assert lines[start] == "largest layers (4 of 12: 8.9 kB, 74 % of the cache)"
    # each layer: size, short digest and its first place on one line; further places under the first
    copy = "stage-2 #3  [stage-2 3/4] COPY --from=build /out/app /usr/local/bin/app"
    assert lines[start + 1] == f"2.8 kB  sha256:{expected[0][1][7:19]}  build + test base"
    assert lines[start + 2] == " " * 29 + "stage-2 base"
    assert lines[start + 4] == f"2.0 kB  sha256:{expected[2][1][7:19]}  {copy}"
    # without --dockerfile the same layers, placed by structure only (no instruction)
    structural = tsv_rows(ok("show", ref, "--top", "4", "-o", "tsv"))
    assert [row[:2] for row in structural[1:]] == [[str(s), d] for s, d, _ in expected]
    assert all(row[4] == "" for row in structural[1:])


def test_show_and_diff_and_probe_refuse_tsv_with_a_reason(
    registry: LocalRegistry, seeded: dict[str, dict[str, str]]
) -> None:
    ref = f"{registry.host}/samples/named-build:latest"
    assert "give --top N" in refused("show", ref, "-o", "tsv")
    assert "excludes --output tsv" in refused("show", ref, "--graph", "dot", "--top", "3", "-o", "tsv")


def test_probe_tsv_is_one_row_per_check_as_in_its_json() -> None:
    """The rows carry what the JSON document's checks say, field for field (the same report, two forms)."""
    args = ("probe", "--offline", "gcr.io/acme/app")
    document = json.loads(ok(*args, "--json"))
    rows = tsv_rows(ok(*args, "-o", "tsv"))
    assert rows[0] == ["id", "group", "status", "basis", "summary", "hint"]
    assert rows[1:] == [
        [c["id"], c["group"], c["status"], c["basis"], c["summary"], c["hint"] or ""]
        for c in document["checks"]
    ]
    assert stable(json.loads(ok(*args, "-o", "json"))) == stable(document)


def stable(document: Any) -> Any:
    """A probe document without what differs between two runs (start time, durations)."""
    if isinstance(document, dict):
        return {k: stable(v) for k, v in document.items() if k not in ("startedAt", "durationMs")}
    if isinstance(document, list):
        return [stable(v) for v in document]
    return document


def test_diff_output_json_is_the_json_flag_and_tsv_is_refused(
    registry: LocalRegistry, seeded: dict[str, dict[str, str]]
) -> None:
    a, b = (
        f"{registry.host}/samples/named-build:latest",
        f"{registry.host}/samples/multistage-max:image-manifest",
    )
    assert json.loads(ok("diff", a, b, "-o", "json")) == json.loads(ok("diff", a, b, "--json"))
    assert "use -o json" in refused("diff", a, b, "-o", "tsv")


GO_MOD_DOWNLOAD = "[build 4/6] RUN go mod download"


@pytest.fixture(scope="module")
def go_mod_changed(registry: LocalRegistry, samples: list[dict[str, Any]]) -> tuple[str, str, str]:
    """named-build's cache as A, and as B the same cache whose ``RUN go mod download`` record has another
    digest (the instruction changed); both pushed byte for byte with plain httpx. Returns A, B and the
    record digest of that step in A (from samples.json)."""
    layout = TESTDATA / "layouts" / "named-build"
    index = json.loads((layout / "index.json").read_text())
    entry = next(
        m for m in index["manifests"] if m["annotations"]["org.opencontainers.image.ref.name"] == "latest"
    )

    def blob(digest: str) -> bytes:
        return (layout / "blobs" / "sha256" / digest[7:]).read_bytes()

    raw = blob(entry["digest"])
    manifest = json.loads(raw)
    config = json.loads(blob(manifest["config"]["digest"]))
    (step,) = [
        s
        for s in next(s for s in samples if s["name"] == "named-build")["expected_steps"]
        if s["label"] == GO_MOD_DOWNLOAD
    ]
    (record,) = [r for r in config["records"] if r["digest"] == step["record"]]
    record["digest"] = "sha256:" + hashlib.sha256(b"RUN go mod download -x").hexdigest()
    changed = json.dumps(config, separators=(",", ":")).encode()
    repository = f"fmt/diff-{uuid.uuid4().hex[:8]}"
    seeder = Seeder(registry.host, repository)
    for layer in manifest["layers"]:
        seeder.blob(blob(layer["digest"]))
    seeder.blob(blob(manifest["config"]["digest"]))
    seeder.put("a", raw, manifest["mediaType"])
    manifest["config"] = {**manifest["config"], "digest": seeder.blob(changed), "size": len(changed)}
    seeder.put("b", json.dumps(manifest, separators=(",", ":")).encode(), manifest["mediaType"])
    seeder.http.close()
    base = f"{registry.host}/{repository}"
    return f"{base}:a", f"{base}:b", step["record"]


def test_diff_dockerfile_names_the_first_differing_step_by_its_instruction(
    go_mod_changed: tuple[str, str, str],
) -> None:
    a, b, record = go_mod_changed
    dockerfile = ("--dockerfile", str(TESTDATA / "dockerfiles" / "named-build.Dockerfile"))
    # by hand: build's #2 WORKDIR and #3 COPY go.mod match, #4 is the renamed record; the final stage's
    # COPY --from=build still matches (its alternative key is the /out/app checksum, as in testdata)
    document = json.loads(ok("diff", a, b, *dockerfile, "--json"))
    validate_json(document, schema("diff"))
    build = next(s for s in document["stages"] if s["b"]["label"] == "build + test")
    first = build["firstDifference"]
    assert (first["change"], first["stepA"], first["stepB"], first["recordA"]) == ("changed", 4, 4, record)
    assert first["instructionA"] == first["instructionB"] == GO_MOD_DOWNLOAD
    lines = ok("diff", a, b, *dockerfile).split("\n")
    line = next(line for line in lines if line.startswith("build + test: "))
    assert line.startswith(f"build + test: steps #2-#3 match, #4 {GO_MOD_DOWNLOAD} differs (record ")
    # without the Dockerfile: the same step, by number only
    plain = json.loads(ok("diff", a, b, "--json"))
    unnamed = [s["firstDifference"] for s in plain["stages"] if s["firstDifference"]]
    assert [(d["stepB"], d["instructionA"], d["instructionB"]) for d in unnamed] == [(4, None, None)]
    assert "--dockerfile" in refused("diff", a, b, "--target", "build")


@pytest.mark.parametrize("command", ["show", "tags", "du", "diff", "gc", "probe"])
def test_each_subcommand_help_lists_the_global_options(command: str) -> None:
    """The global options work after the subcommand (HouseGroup hoists them); its help says so."""
    text = ok(command, "--help")
    section = text.split("Global options (also before the command):\n", 1)[1]
    names = [
        word.rstrip(",") for line in section.splitlines() for word in line.split()[:2] if word.startswith("-")
    ]
    assert names == [
        "-v",
        "--verbose",
        "--debug",
        "--no-color",
        "--deadline",
        "--authfile",
        "--registry-auth",
    ]
    assert "--version" not in section  # a top-level action, not an option of the command
