"""``diff_caches`` on the testdata samples and on hand-edited variants of ``multistage-max``.

Variants change the cache config the way a changed build would (an instruction,
the build context, a base image, an extra step), re-hash it and re-wrap it, so
every assertion is about what the diff makes of real bytes.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable, Sequence
from typing import Any

from inspector.cache.diff import ChangedInput, diff_caches, diff_to_json
from inspector.cache.fetch import find_cache_config
from inspector.cache.report import CacheReport, inspect_cache
from inspector.cli.render.repo import explain_stage, render_diff
from inspector.oci.digest import Digest, sha256_digest
from inspector.oci.models import Descriptor, ManifestDocument, parse_manifest
from inspector.registry.client import BlobStat
from tests.harness.paths import TESTDATA, schema
from tests.harness.support import validate_json

SCHEMA = schema("diff")
# Records of multistage-max (see testdata/README.md for the Dockerfile).
GOLANG_ROOTS = ("sha256:8e09be543a68", "sha256:cf3d7966cf5c")
MOD_DOWNLOAD = "sha256:40f8a79d39ca"  # stage 1 #4 RUN go mod download
COPY_ALL = "sha256:d058cebebd15"  # stage 1 #5 COPY . .
COPY_ALL_CONTEXT = "sha256:d6393f652a4c"  # its build-context checksum root
GO_BUILD = "sha256:1b1412ac153c"  # stage 1 #6 RUN go build
APP_CHECKSUM = (
    "sha256:06f878402f7a"  # checksum root of /out/app, the other alternative of stage 2's COPY --from
)
COPY_FROM = "sha256:a3e0c3388234"  # stage 2 #3 COPY --from=build


class MemorySource:
    """A cache held in memory (the CacheSource protocol); ``missing`` blobs answer HEAD with 404."""

    def __init__(self, name: str, manifest: bytes, blobs: dict[Digest, bytes], missing: Sequence[str] = ()):
        self.name = name
        self.manifest = manifest
        self.blobs = blobs
        self.missing = set(missing)

    @property
    def display(self) -> str:
        return self.name

    def fetch_manifest(self) -> ManifestDocument:
        return parse_manifest(self.manifest)

    def fetch_blob(self, descriptor: Descriptor, *, limit: int) -> bytes:
        return self.blobs[descriptor.digest]

    def stat_blobs(
        self, digests: Sequence[Digest], on_done: Callable[[int, int], None] | None = None
    ) -> list[BlobStat]:
        return [BlobStat(d, exists=d not in self.missing) for d in digests]


def layout_blob(layout: str, digest: str) -> bytes:
    return (TESTDATA / "layouts" / layout / "blobs" / "sha256" / digest.split(":", 1)[1]).read_bytes()


def tagged(layout: str, tag: str) -> tuple[bytes, dict[str, Any], bytes]:
    """The manifest bytes of a layout's tag, its parsed JSON, and its config bytes."""
    index = json.loads((TESTDATA / "layouts" / layout / "index.json").read_text())
    entry = next(
        e for e in index["manifests"] if e["annotations"]["org.opencontainers.image.ref.name"] == tag
    )
    raw = layout_blob(layout, entry["digest"])
    found = find_cache_config(parse_manifest(raw))
    assert found is not None
    return raw, json.loads(raw), layout_blob(layout, found[0].digest)


def report(
    layout: str,
    tag: str,
    *,
    edit: Callable[[dict[str, Any]], None] | None = None,
    missing: Sequence[str] = (),
    name: str | None = None,
) -> CacheReport:
    raw, manifest, config = tagged(layout, tag)
    if edit is not None:
        doc = json.loads(config)
        edit(doc)
        assert "config" in manifest, "variants are built from the image-manifest form"
        config = json.dumps(doc, separators=(",", ":")).encode()
        manifest["config"] = {**manifest["config"], "digest": sha256_digest(config), "size": len(config)}
        raw = json.dumps(manifest, separators=(",", ":")).encode()
    found = find_cache_config(parse_manifest(raw))
    assert found is not None
    blobs = {found[0].digest: config}
    source = MemorySource(name or f"{layout}:{tag}", raw, blobs, missing)
    return inspect_cache(source, check_blobs=True)


def record_index(doc: dict[str, Any], prefix: str) -> int:
    (index,) = [i for i, r in enumerate(doc["records"]) if r["digest"].startswith(prefix)]
    return index


def rename(*prefixes: str) -> Callable[[dict[str, Any]], None]:
    """An edit giving the records with these digest prefixes new digests (a different op or checksum)."""

    def edit(doc: dict[str, Any]) -> None:
        for prefix in prefixes:
            record = doc["records"][record_index(doc, prefix)]
            record["digest"] = sha256_digest("changed " + record["digest"])

    return edit


def full(prefix: str) -> str:
    _, _, config = tagged("multistage-max", "image-manifest")
    (digest,) = [r["digest"] for r in json.loads(config)["records"] if r["digest"].startswith(prefix)]
    return str(digest)


def max_report() -> CacheReport:
    return report("multistage-max", "image-manifest")


def test_identical_caches_have_an_empty_diff() -> None:
    for other in (max_report(), report("multistage-max", "oci-index")):
        result = diff_caches(max_report(), other)
        assert result.identical
        assert result.layers.added == result.layers.removed == ()
        assert len(result.layers.shared) == 10
        assert result.records is not None
        assert (result.records.only_in_a, result.records.only_in_b) == ((), ())
        assert result.records.shared == 14
        assert [(s.a.index, s.b.index, s.matching, s.first_difference) for s in result.stages] == [
            (0, 0, 5, None),
            (1, 1, 2, None),
        ]
        assert result.only_in_a == result.only_in_b == ()
        validate_json(diff_to_json(result), SCHEMA)
    assert not diff_to_json(diff_caches(max_report(), report("multistage-max", "oci-index")))["sameDocument"]


def test_max_against_min_removes_the_intermediate_layers_and_keeps_every_key() -> None:
    result = diff_caches(max_report(), report("multistage-min", "latest"))
    _, max_manifest, max_config = tagged("multistage-max", "image-manifest")
    _, min_manifest, min_config = tagged("multistage-min", "latest")
    max_layers = {d["digest"]: d["size"] for d in max_manifest["layers"]}
    min_layers = {d["digest"]: d["size"] for d in min_manifest["layers"]}
    removed = set(max_layers) - set(min_layers)
    assert len(removed) == 7 and set(min_layers) < set(max_layers)
    assert {d.digest for d in result.layers.removed} == removed
    assert result.layers.removed_size == sum(max_layers[d] for d in removed)
    assert result.layers.added == ()
    assert result.layers.shared_size == sum(min_layers.values())

    def multiset(config: bytes) -> Counter[tuple[str, bool]]:
        return Counter((r["digest"], "layers" in r) for r in json.loads(config)["records"])

    only_a, only_b = multiset(max_config) - multiset(min_config), multiset(min_config) - multiset(max_config)
    assert result.records is not None
    assert {(r.digest, r.result): r.count for r in result.records.only_in_a} == dict(only_a)
    assert {(r.digest, r.result): r.count for r in result.records.only_in_b} == dict(only_b)
    assert all(r.result for r in result.records.only_in_a) and not any(
        r.result for r in result.records.only_in_b
    )
    assert sum(only_a.values()) == 6
    # Same keys: every step matches even though min has no results for stage 1.
    assert [(s.aligned_by, s.matching, s.first_difference) for s in result.stages] == [
        ("first-step", 5, None),
        ("first-step", 2, None),
    ]
    assert not result.identical
    validate_json(diff_to_json(result), SCHEMA)


def test_one_changed_instruction_is_where_the_stage_stops_matching() -> None:
    result = diff_caches(max_report(), report("multistage-max", "image-manifest", edit=rename(MOD_DOWNLOAD)))
    build, final = result.stages
    difference = build.first_difference
    assert difference is not None
    assert (build.matching, difference.change, difference.number_a, difference.number_b) == (
        2,
        "changed",
        4,
        4,
    )
    assert difference.record_a == full(MOD_DOWNLOAD)
    assert difference.record_b == sha256_digest("changed " + full(MOD_DOWNLOAD))
    assert difference.record_changed and difference.changed_inputs == ()
    # The final stage still matches: its COPY --from has the /out/app checksum as an alternative.
    assert final.first_difference is None and final.matching == 2
    assert result.records is not None
    assert [(r.digest, r.result, r.count) for r in result.records.only_in_a] == [
        (full(MOD_DOWNLOAD), True, 1)
    ]
    assert [r.digest for r in result.records.only_in_b] == [difference.record_b]
    assert result.layers.added == result.layers.removed == ()
    assert not result.identical
    text = explain_stage(build)
    assert text.startswith("steps #2-#3 match, #4 differs (record ")
    assert f"{difference.record_a.short} vs {difference.record_b.short}" in text
    assert text.endswith("everything after it in this stage is rebuilt")
    doc = diff_to_json(result)
    validate_json(doc, SCHEMA)
    assert doc["stages"][0]["firstDifference"]["stepB"] == 4 and doc["identical"] is False


def test_a_copy_from_input_that_changed_names_the_stage_it_came_from() -> None:
    # go build's op changed, and so did the checksum of the /out/app it produces.
    changed = report("multistage-max", "image-manifest", edit=rename(GO_BUILD, APP_CHECKSUM))
    result = diff_caches(max_report(), changed)
    build, final = result.stages
    assert build.first_difference is not None and build.first_difference.number_b == 6
    difference = final.first_difference
    assert difference is not None
    assert (final.matching, difference.number_b) == (1, 3)
    assert difference.record_a == difference.record_b == full(COPY_FROM)
    assert not difference.record_changed
    assert difference.changed_inputs == (ChangedInput(1, "stage", 0, "stage 1"),)
    assert "its input 1, from stage 1, changed" in explain_stage(final)
    assert "same record" in explain_stage(final)


def test_a_changed_build_context_is_reported_as_the_cause() -> None:
    result = diff_caches(
        max_report(), report("multistage-max", "image-manifest", edit=rename(COPY_ALL_CONTEXT))
    )
    build, final = result.stages
    difference = build.first_difference
    assert difference is not None
    assert (build.matching, difference.number_b, difference.record_b) == (3, 5, full(COPY_ALL))
    assert difference.changed_inputs == (ChangedInput(1, "context"),)
    assert final.first_difference is None


def test_a_changed_base_image_aligns_by_position_and_blames_the_base() -> None:
    result = diff_caches(max_report(), report("multistage-max", "image-manifest", edit=rename(*GOLANG_ROOTS)))
    build, final = result.stages
    assert (build.aligned_by, final.aligned_by) == ("position", "first-step")
    difference = build.first_difference
    assert difference is not None
    assert (build.matching, difference.number_b, difference.record_changed) == (0, 2, False)
    assert difference.changed_inputs == (ChangedInput(0, "base"),)
    assert explain_stage(build).startswith("#2 differs (same record ")
    assert final.first_difference is None


def add_step(doc: dict[str, Any]) -> None:
    """A key-only RUN on top of go build (record index appended; configs need not be sorted)."""
    parent = record_index(doc, GO_BUILD)
    doc["records"].append({"digest": sha256_digest("RUN go vet"), "inputs": [[{"link": parent}]]})


def test_extra_steps_are_added_or_removed_not_changed() -> None:
    longer = report("multistage-max", "image-manifest", edit=add_step)
    grown = diff_caches(max_report(), longer)
    build = grown.stages[0]
    assert build.first_difference is not None
    assert (build.matching, build.first_difference.change, build.first_difference.number_b) == (5, "added", 7)
    assert build.first_difference.record_b == sha256_digest("RUN go vet")
    assert "only B's 1 extra step will be built" in explain_stage(build)
    shrunk = diff_caches(longer, max_report())
    assert shrunk.stages[0].first_difference is not None
    assert shrunk.stages[0].first_difference.change == "removed"
    assert shrunk.stages[0].first_difference.number_a == 7
    validate_json(diff_to_json(shrunk), SCHEMA)


def test_stages_present_in_one_cache_only() -> None:
    result = diff_caches(max_report(), report("three-stages", "latest"))
    assert result.stages[0].a.index == result.stages[0].b.index == 0
    first = result.stages[0].first_difference
    assert first is not None and first.number_b == 3 and first.record_changed  # COPY go.mod vs COPY . .
    assert [(s.label, s.base.startswith("FROM image")) for s in result.only_in_a] == [("stage 2", True)]
    assert [s.base for s in result.only_in_b] == ["FROM scratch"]
    doc = diff_to_json(result)
    validate_json(doc, SCHEMA)
    assert doc["onlyInB"][0]["steps"] == 2


def test_a_missing_blob_on_one_side_makes_the_caches_differ() -> None:
    gone = "sha256:ff4fb13ed7f9b7ffaf299393d0b8e7d0f9da63c721f3e25f02c5e95d0622968b"
    result = diff_caches(max_report(), report("multistage-max", "image-manifest", missing=[gone]))
    assert result.layers.missing_in_b == (gone,) and result.layers.missing_in_a == ()
    assert result.records is not None and result.records.only_in_a == ()
    assert all(s.first_difference is None for s in result.stages)
    assert not result.identical


def test_an_unreadable_config_compares_layers_only() -> None:
    result = diff_caches(max_report(), report("loop", "latest"))
    assert result.records is None and result.stages == () and not result.comparable
    assert result.b.config_error is not None and "looping" in result.b.config_error
    assert not result.identical
    validate_json(diff_to_json(result), SCHEMA)


def test_human_output_explains_the_first_difference() -> None:
    from rich.console import Console

    result = diff_caches(max_report(), report("multistage-max", "image-manifest", edit=rename(MOD_DOWNLOAD)))
    console = Console(width=300, record=True, color_system=None)
    console.print(render_diff(result))
    text = console.export_text()
    assert "stage 1: steps #2-#3 match, #4 differs (record sha256:40f8a79d39ca vs " in text
    assert "stage 2: all 2 steps match" in text
    assert "the caches differ" in text
