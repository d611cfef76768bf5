"""The gc planner, a pure function: rules in order, manifests kept for kept tags, reclaimable bytes, JSON."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from types import MappingProxyType
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from inspector.errors import InvalidContent, UsageError
from inspector.gc.branches import LiveRefs
from inspector.gc.inventory import CacheInfo, Inventory, TagInfo
from inspector.gc.placeholder import PlaceholderInfo
from inspector.gc.plan import PlanRefused, RepositoryPlan, check_max_deletes, plan_repository
from inspector.gc.planfile import plan_from_json, plan_to_json
from inspector.gc.policy import Rules, SlugRule, parse_template
from inspector.oci import gojson
from inspector.oci.digest import Digest, sha256_digest
from inspector.oci.reference import parse_repository
from tests.harness.paths import schema
from tests.harness.support import validate_json

SCHEMA = schema("gc-plan")
NOW = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)
BRANCH = parse_template("{branch}-buildcache")
PR = parse_template("pr-{number}-buildcache")


def blob(name: str) -> Digest:
    return sha256_digest(f"blob {name}")


def stamp(days: float) -> gojson.Timestamp:
    return gojson.parse_go_time((NOW - timedelta(days=days)).strftime("%Y-%m-%dT%H:%M:%S.%fZ"), "test")


@dataclass
class Repo:
    """Builds an Inventory: caches by name (their digest is the name's), tags on them."""

    tags: list[TagInfo] = field(default_factory=list)
    caches: dict[Digest, CacheInfo] = field(default_factory=dict)
    other_blobs: set[Digest] = field(default_factory=set)
    placeholders: dict[Digest, PlaceholderInfo] = field(default_factory=dict)

    def cache(
        self,
        name: str,
        *tags: str,
        blobs: dict[str, int],
        days: float | None,
        size: int = 500,
        note: str = "",
    ) -> Digest:
        digest = sha256_digest(f"manifest {name}")
        created = stamp(days) if days is not None else None
        self.caches[digest] = CacheInfo(
            digest,
            size,
            "image-manifest",
            MappingProxyType({blob(b): n for b, n in blobs.items()}),
            created,
            "annotation" if created else "unknown",
            note,
        )
        self.tags += [TagInfo(tag, digest, "cache") for tag in tags]
        return digest

    def untagged_cache(self, name: str, *, blobs: dict[str, int]) -> Digest:
        return self.cache(name, blobs=blobs, days=40)

    def other(self, tag: str, *, blobs: list[str]) -> Digest:
        digest = sha256_digest(f"image {tag}")
        self.other_blobs |= {blob(b) for b in blobs}
        self.tags.append(
            TagInfo(tag, digest, "other", "not a cache: config application/vnd.oci.image.config.v1+json")
        )
        return digest

    def unreadable(self, tag: str) -> None:
        self.tags.append(TagInfo(tag, None, "unreadable", "404 MANIFEST_UNKNOWN"))

    def placeholder(self, tag: str, replaces: Digest, *, for_tag: str | None = None) -> Digest:
        digest = sha256_digest(f"placeholder {tag}")
        self.placeholders[digest] = PlaceholderInfo(digest, 300, for_tag or tag, replaces)
        self.tags.append(TagInfo(tag, digest, "placeholder", "gc placeholder"))
        return digest

    def inventory(self) -> Inventory:
        return Inventory(
            parse_repository("r.test/team/app"),
            tuple(sorted(self.tags, key=lambda t: t.tag)),
            MappingProxyType(self.caches),
            frozenset(self.other_blobs),
            MappingProxyType(self.placeholders),
        )


def rules(**changes: Any) -> Rules:
    base = Rules(templates=(BRANCH, PR))
    return replace(base, **changes)


def live(*branches: str, pulls: tuple[int, ...] | None = ()) -> LiveRefs:
    return LiveRefs("test branches", frozenset(branches), frozenset(pulls) if pulls is not None else None)


def verdicts(plan: RepositoryPlan) -> dict[str, tuple[str, str]]:
    return {d.tag: (d.action, d.rule) for d in plan.decisions}


def test_every_rule_in_its_order() -> None:
    repo = Repo()
    base = {"base": 1000}
    repo.cache("main", "main-buildcache", blobs={**base, "main": 10}, days=30)
    repo.cache("release", "release-1.0-buildcache", blobs={**base, "rel": 10}, days=60)
    repo.cache("feature-a", "feature-a-buildcache", blobs={**base, "fa": 10}, days=1)
    repo.cache("gone", "gone-buildcache", blobs={**base, "gone": 10}, days=2)
    repo.cache("old", "old-buildcache", blobs={**base, "old": 10}, days=20)
    repo.cache("b1", "b1-buildcache", blobs={"b1": 10}, days=3)
    repo.cache("b2", "b2-buildcache", blobs={"b2": 10}, days=4)
    repo.cache("b3", "b3-buildcache", blobs={"b3": 10}, days=5)
    repo.cache("pr7", "pr-7-buildcache", blobs={"pr7": 10}, days=2)
    repo.cache("pr3", "pr-3-buildcache", blobs={"pr3": 10}, days=2)
    repo.cache("latest", "latest", blobs={"latest": 10}, days=400)
    repo.other("docs-buildcache", blobs=["x"])
    repo.other("app-image", blobs=["y"])
    repo.unreadable("broken-buildcache")
    plan = plan_repository(
        repo.inventory(),
        rules(protect=("main", "release/*"), max_age=timedelta(days=14), keep_last=2),
        live("main", "feature/a", "old", "b1", "b2", "b3", pulls=(7,)),
        NOW,
    )
    assert verdicts(plan) == {
        "main-buildcache": ("keep", "protected"),  # older than max-age, but protected
        "release-1.0-buildcache": ("keep", "protected"),  # branch gone, protected through the slugged glob
        "feature-a-buildcache": ("keep", "kept"),
        "gone-buildcache": ("delete", "branch-gone"),
        "old-buildcache": ("delete", "max-age"),
        "b1-buildcache": ("keep", "kept"),  # 2nd newest of {branch}-buildcache after feature-a
        "b2-buildcache": ("delete", "keep-last"),
        "b3-buildcache": ("delete", "keep-last"),
        "pr-7-buildcache": ("keep", "kept"),
        "pr-3-buildcache": ("delete", "branch-gone"),  # no PR 3, and no branch slugged 'pr-3'
        "latest": ("ignore", "no-template"),  # an old cache, but no template covers it
        "app-image": ("ignore", "no-template"),
        "docs-buildcache": ("keep", "not-cache"),
        "broken-buildcache": ("keep", "unreadable"),
    }
    reasons = {d.tag: d.reason for d in plan.decisions}
    assert reasons["main-buildcache"] == "protected by 'main'"
    assert reasons["release-1.0-buildcache"] == "protected by 'release/*'"
    assert reasons["gone-buildcache"] == "no live branch slug 'gone' in test branches"
    # spelled out: "14d" in a plan read by people is "14 days" (and never "2m" for two months)
    assert reasons["old-buildcache"] == "newest layer created 20 days ago, older than 14 days"
    assert reasons["b3-buildcache"].startswith(
        "4th newest of {branch}-buildcache; only the 2 newest are kept"
    )
    assert reasons["pr-3-buildcache"] == "no live branch slug 'pr-3' or pull request #3 in test branches"
    assert reasons["feature-a-buildcache"].startswith("branch alive; created 1 day ago; 1st newest")
    assert reasons["pr-7-buildcache"].startswith("pull request open; created 2 days ago")
    # One manifest per deleted tag here; all their blobs go except the base that kept caches share.
    assert [m.delete_manifest for m in plan.manifests] == [True] * 5
    assert plan.reclaimable == {blob(n): 10 for n in ("gone", "old", "b2", "b3", "pr3")}
    assert plan.manifest_bytes == 5 * 500


def test_protection_wins_over_every_rule_and_matches_live_branch_names() -> None:
    repo = Repo()
    repo.cache("r", "release-2-buildcache", blobs={"r": 1}, days=100)
    repo.cache("h", "hotfix-x-buildcache", blobs={"h": 1}, days=100)
    repo.cache("n", "new-buildcache", blobs={"n": 1}, days=0)
    plan = plan_repository(
        repo.inventory(),
        rules(protect=("release/*", "hotfix/x"), max_age=timedelta(days=1), keep_last=1),
        live("hotfix/x", "new"),
        NOW,
    )
    assert verdicts(plan) == {
        "release-2-buildcache": ("keep", "protected"),  # gone, old and not among the newest
        "hotfix-x-buildcache": ("keep", "protected"),  # the live branch's name matches
        "new-buildcache": ("keep", "kept"),  # protected caches do not take keep-last places
    }


def test_a_kept_tag_keeps_the_manifest_it_shares_with_a_stale_one() -> None:
    repo = Repo()
    shared = repo.cache("shared", "stale-buildcache", "live-buildcache", blobs={"s": 100}, days=1)
    other = repo.cache("other", "gone-buildcache", "latest", blobs={"o": 200}, days=1)
    plan = plan_repository(repo.inventory(), rules(), live("live"), NOW)
    assert verdicts(plan) == {
        "stale-buildcache": ("delete", "branch-gone"),
        "live-buildcache": ("keep", "kept"),
        "gone-buildcache": ("delete", "branch-gone"),
        "latest": ("ignore", "no-template"),
    }
    by_digest = {m.digest: m for m in plan.manifests}
    assert by_digest[shared].delete_tags == ("stale-buildcache",)
    assert by_digest[shared].kept_tags == ("live-buildcache",)
    assert not by_digest[shared].delete_manifest
    assert not by_digest[other].delete_manifest and by_digest[other].kept_tags == ("latest",)
    assert by_digest[other].reason == "kept: latest also resolves to it"
    assert plan.reclaimable == {} and plan.manifest_bytes == 0


def test_reclaimable_bytes_count_only_blobs_no_kept_manifest_references() -> None:
    repo = Repo()
    repo.cache("kept", "main-buildcache", blobs={"base": 1000, "cfg-main": 5}, days=1)
    repo.cache(
        "gone1", "x-buildcache", blobs={"base": 1000, "pair": 300, "cfg1": 7, "image-layer": 50}, days=1
    )
    repo.cache("gone2", "y-buildcache", blobs={"pair": 300, "cfg2": 9}, days=1, size=700)
    repo.other("app", blobs=["image-layer"])
    plan = plan_repository(repo.inventory(), rules(), live("main"), NOW)
    # base: a kept cache needs it; image-layer: a kept image needs it; pair counted once.
    assert plan.reclaimable == {blob("pair"): 300, blob("cfg1"): 7, blob("cfg2"): 9}
    assert plan.reclaimable_bytes == 316
    assert plan.manifest_bytes == 500 + 700


def test_a_placeholder_left_by_an_interrupted_run_is_finished_with_the_manifest_it_replaced() -> None:
    repo = Repo()
    replaced = repo.untagged_cache("orphan", blobs={"orphan": 40, "cfg": 2})
    placeholder = repo.placeholder("gone-buildcache", replaced)
    repo.placeholder("keep-buildcache", sha256_digest("x"), for_tag="somebody-else")
    repo.cache("live", "live-buildcache", blobs={"l": 1}, days=1)
    plan = plan_repository(repo.inventory(), rules(), live("live", "keep"), NOW)
    assert verdicts(plan) == {
        "gone-buildcache": ("delete", "placeholder"),
        "keep-buildcache": ("keep", "not-cache"),  # a placeholder naming another tag is not ours to finish
        "live-buildcache": ("keep", "kept"),
    }
    assert [(m.digest, m.delete_tags, m.delete_manifest) for m in plan.manifests] == [
        (placeholder, ("gone-buildcache",), True),
        (replaced, (), True),
    ]
    assert plan.reclaimable == {blob("orphan"): 40, blob("cfg"): 2}
    assert plan.manifest_bytes == 300 + 500


def test_pull_requests_unknown_to_the_source_are_not_judged_gone() -> None:
    repo = Repo()
    repo.cache("pr", "pr-5-buildcache", blobs={"p": 1}, days=1)
    repo.cache("b", "gone-buildcache", blobs={"g": 1}, days=1)
    plan = plan_repository(repo.inventory(), rules(), live("main", pulls=None), NOW)
    assert verdicts(plan)["pr-5-buildcache"] == ("keep", "kept")
    assert verdicts(plan)["gone-buildcache"] == ("delete", "branch-gone")
    assert any("names no pull/merge request refs" in note for note in plan.notes)
    closed = plan_repository(repo.inventory(), rules(), live("main", pulls=(6,)), NOW)
    assert verdicts(closed)["pr-5-buildcache"] == ("delete", "branch-gone")


def test_an_empty_branch_list_is_refused_rather_than_deleting_everything() -> None:
    with pytest.raises(UsageError, match="no branches found"):
        plan_repository(Repo().inventory(), rules(), live(), NOW)


def test_without_a_branch_source_only_age_and_keep_last_apply() -> None:
    repo = Repo()
    repo.cache("a", "a-buildcache", blobs={"a": 1}, days=None, note="cache config unreadable: 404")
    repo.cache("b", "b-buildcache", blobs={"b": 1}, days=3)
    repo.cache("c", "c-buildcache", blobs={"c": 1}, days=30)
    plan = plan_repository(repo.inventory(), rules(max_age=timedelta(days=14), keep_last=1), None, NOW)
    # c is too old; of the rest, b is newest; a has no time: keep-last cannot rank it, so it stays.
    assert verdicts(plan) == {
        "a-buildcache": ("keep", "kept"),
        "b-buildcache": ("keep", "kept"),
        "c-buildcache": ("delete", "max-age"),
    }
    assert any(note.startswith("no branch source") for note in plan.notes)
    assert any(note.startswith("no creation time for a-buildcache") for note in plan.notes)
    reason = next(d.reason for d in plan.decisions if d.tag == "a-buildcache")
    assert (
        reason
        == "no branch source; creation time unknown (cache config unreadable: 404); not ranked by keep-last"
    )


def test_the_most_specific_template_ranks_a_tag_matching_several() -> None:
    repo = Repo()
    for n, days in ((1, 1), (2, 2), (3, 3)):
        repo.cache(f"pr{n}", f"pr-{n}-buildcache", blobs={f"p{n}": 1}, days=days)
    repo.cache("main", "main-buildcache", blobs={"m": 1}, days=10)
    plan = plan_repository(repo.inventory(), rules(keep_last=2), None, NOW)
    decisions = {d.tag: d for d in plan.decisions}
    assert (
        decisions["pr-3-buildcache"].action == "delete" and decisions["pr-3-buildcache"].template == PR.text
    )
    assert (
        decisions["main-buildcache"].action == "keep"
    )  # first of {branch}-buildcache: PR tags rank elsewhere


def test_plan_json_round_trips_and_matches_the_schema() -> None:
    repo = Repo()
    repo.cache("shared", "stale-buildcache", "live-buildcache", blobs={"s": 100}, days=1)
    repo.cache("gone", "gone-buildcache", blobs={"g": 100, "c": 3}, days=1)
    repo.other("latest", blobs=["q"])
    plan = plan_repository(
        repo.inventory(),
        rules(protect=("main",), max_age=timedelta(days=9), keep_last=4, slug=SlugRule(lowercase=True)),
        live("live"),
        NOW,
        max_deletes=10,
    )
    document = plan_to_json([plan], created_at=NOW, mode="dry-run")
    validate_json(document, SCHEMA)
    (back,) = plan_from_json(json.dumps(document).encode(), "plan.json")
    assert back.decisions == plan.decisions
    assert back.manifests == plan.manifests
    assert back.rules == plan.rules
    assert back.reclaimable == plan.reclaimable and back.manifest_bytes == plan.manifest_bytes
    assert (back.repository, back.planned_at, back.max_deletes) == (plan.repository, plan.planned_at, 10)
    assert plan_to_json([back], created_at=NOW, mode="dry-run") == document


def tampered(change: Any) -> bytes:
    repo = Repo()
    repo.cache("gone", "gone-buildcache", blobs={"g": 1}, days=1)
    repo.cache("latest", "latest", blobs={"l": 1}, days=1)
    document = plan_to_json(
        [plan_repository(repo.inventory(), rules(), live("main"), NOW)], created_at=NOW, mode="dry-run"
    )
    change(document["repositories"][0])
    return json.dumps(document).encode()


def _delete_latest(entry: dict[str, Any]) -> None:
    for tag in entry["tags"]:
        if tag["tag"] == "latest":
            tag["action"] = "delete"
    entry["manifests"][0]["deleteTags"].append("latest")


def _ungrouped(entry: dict[str, Any]) -> None:
    entry["manifests"] = []


def _foreign_group(entry: dict[str, Any]) -> None:
    entry["manifests"][0]["deleteTags"] = ["latest"]


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (_delete_latest, "matches the plan's templates"),
        (_ungrouped, "belongs to no manifest entry"),
        (_foreign_group, "is not a deletion of this digest"),
    ],
)
def test_a_hand_edited_plan_cannot_reach_other_tags(change: Any, message: str) -> None:
    with pytest.raises(InvalidContent, match=message):
        plan_from_json(tampered(change), "plan.json")


@pytest.mark.parametrize(
    ("name", "message"),
    [
        # parse_repository refuses upper case in a path (distribution's reference grammar is lowercase).
        ("r.test/Team/app", "must be lowercase"),
        # Valid, but not how plan_to_json writes it (str(Repository) lowercases the host): not this tool's file.
        ("R.TEST/team/app", "not a canonical repository name"),
    ],
)
def test_a_plan_names_its_repository_as_written(name: str, message: str) -> None:
    """The repository is read into a ``Repository`` once; a spelling this tool never writes is refused (exit 8).

    The rulesDigest is recomputed over the edited name, so only the repository check can catch it.
    """

    def rename(entry: dict[str, Any]) -> None:
        entry["repository"] = name
        canonical = {"repository": name, "rules": entry["rules"]}
        entry["rulesDigest"] = (
            "sha256:"
            + hashlib.sha256(
                json.dumps(canonical, sort_keys=True, separators=(",", ":")).encode()
            ).hexdigest()
        )

    with pytest.raises(InvalidContent, match=message) as caught:
        plan_from_json(tampered(rename), "plan.json")
    assert "repositories[0].repository" in caught.value.message


@pytest.mark.parametrize(
    "raw", [b"not json", b'{"kind": "something"}', b'{"kind": "cacheinspect-gc-plan", "schemaVersion": 9}']
)
def test_other_files_are_not_plans(raw: bytes) -> None:
    with pytest.raises(InvalidContent):
        plan_from_json(raw, "plan.json")


def test_max_deletes_refuses_a_larger_plan() -> None:
    repo = Repo()
    for n in range(3):
        repo.cache(f"g{n}", f"g{n}-buildcache", blobs={f"g{n}": 1}, days=1)
    plan = plan_repository(repo.inventory(), rules(), live("main"), NOW, max_deletes=2)
    assert any("exceed --max-deletes 2" in note for note in plan.notes)
    check_max_deletes(plan, 3)
    with pytest.raises(PlanRefused, match="deletes 3 tags, more than --max-deletes 2"):
        check_max_deletes(plan, 2)


# --------------------------------------------------------------------------- properties

BRANCHES = ["main", "dev", "feature/a", "feature-a", "release/1", "x"]
TAG_NAMES = [
    *(f"{SlugRule().slug(b)}-buildcache" for b in BRANCHES),
    "pr-1-buildcache",
    "pr-2-buildcache",
    "latest",
    "v1",
    "buildcache",
]


@st.composite
def scenarios(draw: st.DrawFn) -> tuple[Inventory, Rules, LiveRefs | None]:
    digests = [sha256_digest(f"m{i}") for i in range(draw(st.integers(1, 6)))]
    blob_pool = [blob(str(i)) for i in range(8)]
    caches: dict[Digest, CacheInfo] = {}
    other_blobs: set[Digest] = set()
    kinds = {}
    for digest in digests:
        kind = draw(st.sampled_from(["cache", "cache", "cache", "other"]))
        kinds[digest] = kind
        chosen = draw(st.sets(st.sampled_from(blob_pool), min_size=1, max_size=4))
        if kind == "cache":
            days = draw(st.one_of(st.none(), st.integers(0, 40)))
            caches[digest] = CacheInfo(
                digest,
                100,
                "image-manifest",
                MappingProxyType({b: int(b[-2:], 16) + 1 for b in chosen}),
                stamp(days) if days is not None else None,
                "annotation",
            )
        else:
            other_blobs |= chosen
    tags = []
    for name in draw(st.sets(st.sampled_from(TAG_NAMES), min_size=1)):
        if draw(st.integers(0, 9)) == 0:
            tags.append(TagInfo(name, None, "unreadable", "broken"))
            continue
        digest = draw(st.sampled_from(digests))
        tags.append(TagInfo(name, digest, "cache" if kinds[digest] == "cache" else "other"))
    # Untagged caches (placeholders' replaced manifests) also hold blobs.
    inventory = Inventory(
        parse_repository("r.test/a"),
        tuple(sorted(tags, key=lambda t: t.tag)),
        MappingProxyType(caches),
        frozenset(other_blobs),
    )
    protect = tuple(
        draw(st.lists(st.sampled_from(["main", "release/*", "feature*", "pr-1-buildcache"]), max_size=2))
    )
    the_rules = Rules(
        templates=(BRANCH, PR) if draw(st.booleans()) else (BRANCH,),
        protect=protect,
        max_age=draw(st.one_of(st.none(), st.integers(1, 30).map(lambda d: timedelta(days=d)))),
        keep_last=draw(st.one_of(st.none(), st.integers(1, 3))),
    )
    source = None
    if draw(st.booleans()):
        branches = draw(st.sets(st.sampled_from(BRANCHES), min_size=1))
        pulls = draw(st.one_of(st.none(), st.sets(st.sampled_from([1, 2, 3]))))
        source = LiveRefs("h", frozenset(branches), frozenset(pulls) if pulls is not None else None)
    return inventory, the_rules, source


@settings(max_examples=300, deadline=None)
@given(scenarios())
def test_the_plan_never_deletes_what_a_kept_tag_needs(
    scenario: tuple[Inventory, Rules, LiveRefs | None],
) -> None:
    inventory, the_rules, source = scenario
    plan = plan_repository(inventory, the_rules, source, NOW)
    assert plan == plan_repository(inventory, the_rules, source, NOW)  # deterministic
    kept = [d for d in plan.decisions if d.action != "delete"]
    deleted_manifests = {m.digest for m in plan.manifests if m.delete_manifest}
    # No kept tag (template or not, cache or not) resolves to a manifest that is deleted.
    assert not {d.digest for d in kept} & deleted_manifests
    for decision in plan.decisions:
        if decision.action == "delete":
            assert any(t.match(decision.tag) is not None for t in the_rules.templates)
            assert decision.rule not in ("protected", "unreadable", "not-cache", "no-template")
            assert sum(decision.tag in m.delete_tags for m in plan.manifests) == 1
        if any(
            g in ("main", "release/*") and decision.tag.startswith(g.rstrip("/*")) for g in the_rules.protect
        ):
            assert decision.action != "delete"
    # Reclaimable blobs: held only by deleted caches, never by a kept cache or a kept other manifest.
    kept_caches = set(inventory.caches) - deleted_manifests
    kept_blobs = {b for d in kept_caches for b in inventory.caches[d].blobs} | inventory.other_blobs
    deleted_blobs = {b for d in deleted_manifests if d in inventory.caches for b in inventory.caches[d].blobs}
    assert set(plan.reclaimable) <= deleted_blobs
    assert not set(plan.reclaimable) & kept_blobs
    assert set(plan.reclaimable) == deleted_blobs - kept_blobs
