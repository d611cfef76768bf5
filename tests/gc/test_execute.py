"""The gc executor against in-memory registries with each deletion model, and the planning request budget.

``FakeRegistry`` keeps tags, manifests and blobs and answers like:

* ``distribution`` (2.8): DELETE by tag -> 400 DIGEST_INVALID; DELETE by digest removes every tag on it;
* ``oci`` (distribution v3, zot): DELETE by tag untags;
* ``google`` (GCR, Artifact Registry): DELETE by tag untags; DELETE by digest while tagged -> 400
  GOOGLE_MANIFEST_DANGLING_TAG;
* ``disabled``: every DELETE -> 405 UNSUPPORTED.
"""

from __future__ import annotations

import json
import time
import uuid
from collections import Counter
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from itertools import pairwise
from typing import Any, Literal

import httpx
import pytest

from inspector.errors import CacheInspectError, InvalidContent
from inspector.gc.backends.oci import OciBackend
from inspector.gc.branches import LiveRefs
from inspector.gc.budget import TimeBudget
from inspector.gc.execute import CannotDelete, RegistryTagReader, RepositoryReport, execute_plan
from inspector.gc.inventory import collect_inventory
from inspector.gc.placeholder import EMPTY_CONFIG, PLACEHOLDER_ARTIFACT_TYPE, build_placeholder
from inspector.gc.plan import RepositoryPlan, plan_repository
from inspector.gc.policy import Rules, parse_template
from inspector.oci import mediatypes
from inspector.oci.digest import Digest, sha256_digest
from inspector.oci.reference import parse_repository
from inspector.registry.client import ClientOptions, RegistryClient

Mode = Literal["distribution", "oci", "google", "disabled"]
REPO = parse_repository("r.test/team/app")
NOW = datetime.now(UTC)
LAYER = "application/vnd.oci.image.layer.v1.tar+gzip"
Hook = Callable[[httpx.Request], httpx.Response | None]


def error(status: int, code: str) -> httpx.Response:
    return httpx.Response(status, json={"errors": [{"code": code, "message": code.lower()}]})


class FakeRegistry:
    def __init__(self, mode: Mode = "distribution") -> None:
        self.mode = mode
        self.tags: dict[str, Digest] = {}
        self.manifests: dict[Digest, tuple[bytes, str]] = {}
        self.blobs: dict[Digest, bytes] = {}
        self.requests: list[tuple[str, str]] = []
        self.hooks: list[Hook] = []

    # -- content helpers (not requests) --

    def blob(self, data: bytes) -> dict[str, Any]:
        digest = sha256_digest(data)
        self.blobs[digest] = data
        return {"mediaType": LAYER, "digest": digest, "size": len(data)}

    def cache(
        self, *tags: str, layers: list[bytes], days: float | None = 1.0, config_days: float = 1.0
    ) -> Digest:
        created = (NOW - timedelta(days=days)).strftime("%Y-%m-%dT%H:%M:%SZ") if days is not None else None
        config_time = (NOW - timedelta(days=config_days)).strftime("%Y-%m-%dT%H:%M:%SZ")
        descriptors = []
        for data in layers:
            d = self.blob(data)
            if created:
                d["annotations"] = {"buildkit/createdat": created}
            descriptors.append(d)
        config = json.dumps(
            {
                "layers": [{"blob": d["digest"], "parent": i - 1} for i, d in enumerate(descriptors)],
                "records": [
                    {"digest": sha256_digest(repr(tags)), "layers": [{"layer": 0, "createdAt": config_time}]}
                ],
            }
        ).encode()
        config_descriptor = {**self.blob(config), "mediaType": mediatypes.BUILDKIT_CACHE_CONFIG}
        raw = json.dumps(
            {
                "schemaVersion": 2,
                "mediaType": mediatypes.OCI_MANIFEST,
                "config": config_descriptor,
                "layers": descriptors,
            }
        ).encode()
        return self.put(raw, mediatypes.OCI_MANIFEST, *tags)

    def image(self, tag: str, layers: list[bytes]) -> Digest:
        config = {**self.blob(b'{"architecture":"amd64"}'), "mediaType": mediatypes.OCI_IMAGE_CONFIG}
        raw = json.dumps(
            {
                "schemaVersion": 2,
                "mediaType": mediatypes.OCI_MANIFEST,
                "config": config,
                "layers": [self.blob(x) for x in layers],
            }
        ).encode()
        return self.put(raw, mediatypes.OCI_MANIFEST, tag)

    def put(self, raw: bytes, media_type: str, *tags: str) -> Digest:
        digest = sha256_digest(raw)
        self.manifests[digest] = (raw, media_type)
        for tag in tags:
            self.tags[tag] = digest
        return digest

    # -- the API --

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append((request.method, request.url.path))
        for hook in self.hooks:
            answer = hook(request)
            if answer is not None:
                return answer
        path = request.url.path
        if path.endswith("/tags/list"):
            return httpx.Response(200, json={"name": "team/app", "tags": sorted(self.tags)})
        if "/manifests/" in path:
            return self._manifest(request, path.rsplit("/manifests/", 1)[1])
        if "/blobs/uploads/" in path:
            if request.method == "POST":
                return httpx.Response(
                    202, headers={"Location": f"/v2/team/app/blobs/uploads/{uuid.uuid4()}?_state=s"}
                )
            assert request.url.params["_state"] == "s"
            data = request.read()
            digest = Digest(request.url.params["digest"])
            assert digest.matches(data)
            self.blobs[digest] = data
            return httpx.Response(201, headers={"Docker-Content-Digest": digest})
        digest = Digest(path.rsplit("/", 1)[1])
        if digest not in self.blobs:
            return error(404, "BLOB_UNKNOWN")
        return httpx.Response(
            200,
            headers={"Content-Length": str(len(self.blobs[digest]))},
            content=self.blobs[digest] if request.method == "GET" else b"",
        )

    def _manifest(self, request: httpx.Request, ref: str) -> httpx.Response:
        by_digest = ref.startswith("sha256:")
        if request.method == "PUT":
            raw = request.read()
            doc = json.loads(raw)
            for d in [doc["config"], *doc["layers"]]:
                if d["digest"] not in self.blobs:
                    return error(400, "MANIFEST_BLOB_UNKNOWN")
            stored = self.put(raw, request.headers["Content-Type"], *([] if by_digest else [ref]))
            return httpx.Response(201, headers={"Docker-Content-Digest": stored})
        if request.method == "DELETE":
            return self._delete(ref, by_digest)
        digest = Digest(ref) if by_digest else self.tags.get(ref)
        if digest is None or digest not in self.manifests:
            return error(404, "MANIFEST_UNKNOWN")
        raw, media_type = self.manifests[digest]
        headers = {
            "Docker-Content-Digest": digest,
            "Content-Type": media_type,
            "Content-Length": str(len(raw)),
        }
        return httpx.Response(200, headers=headers, content=raw if request.method == "GET" else b"")

    def _delete(self, ref: str, by_digest: bool) -> httpx.Response:
        if self.mode == "disabled":
            return error(405, "UNSUPPORTED")
        if not by_digest:
            if self.mode == "distribution":
                return error(400, "DIGEST_INVALID")
            if ref not in self.tags:
                return error(404, "MANIFEST_UNKNOWN")
            del self.tags[ref]
            return httpx.Response(202)
        digest = Digest(ref)
        if digest not in self.manifests:
            return error(404, "MANIFEST_UNKNOWN")
        if self.mode == "google" and digest in self.tags.values():
            return error(400, "GOOGLE_MANIFEST_DANGLING_TAG")
        del self.manifests[digest]
        self.tags = {t: d for t, d in self.tags.items() if d != digest}
        return httpx.Response(202)

    def mutations(self) -> list[tuple[str, str]]:
        return [(m, p) for m, p in self.requests if m not in ("GET", "HEAD")]


def client_for(registry: FakeRegistry) -> RegistryClient:
    return RegistryClient(
        ClientOptions(concurrency=4), transport=httpx.MockTransport(registry), sleep=lambda _: None
    )


RULES = Rules(templates=(parse_template("{branch}-buildcache"),))


def plan_for(
    client: RegistryClient, live: tuple[str, ...], rules: Rules = RULES
) -> tuple[RepositoryPlan, dict[str, Digest | None]]:
    inventory = collect_inventory(client, REPO)
    plan = plan_repository(inventory, rules, LiveRefs("test", frozenset(live), None), NOW)
    return plan, inventory.resolutions()


def apply(
    client: RegistryClient,
    plan: RepositoryPlan,
    baseline: dict[str, Digest | None] | None,
    *,
    google: bool = False,
) -> RepositoryReport:
    backend = OciBackend(client, REPO, google=google)
    return execute_plan(plan, backend, RegistryTagReader(client, REPO))


def statuses(report: RepositoryReport) -> dict[str, tuple[str, str | None]]:
    return {t.tag: (t.status, t.method) for t in report.tags}


def scenario(mode: Mode) -> tuple[FakeRegistry, dict[str, Digest]]:
    registry = FakeRegistry(mode)
    base = b"base layer"
    digests = {
        "main": registry.cache("main-buildcache", layers=[base, b"main"]),
        "gone": registry.cache("gone-buildcache", layers=[base, b"gone"]),
        "shared": registry.cache("stale-buildcache", "live-buildcache", layers=[base, b"shared"]),
        "latest": registry.cache("other-buildcache", "latest", layers=[b"latest"]),
    }
    registry.image("app", [base])
    return registry, digests


@pytest.mark.parametrize(
    ("mode", "tag_delete", "removes_tags"),
    [("distribution", "placeholder", True), ("oci", "native", True), ("google", "native", False)],
)
def test_capabilities_are_probed_once_without_changing_anything(
    mode: Mode, tag_delete: str, removes_tags: bool
) -> None:
    registry, _ = scenario(mode)
    before = (dict(registry.tags), dict(registry.manifests))
    backend = OciBackend(client_for(registry), REPO, google=mode == "google")
    capabilities = backend.capabilities()
    assert backend.capabilities() is capabilities
    assert (capabilities.can_delete, capabilities.tag_delete, capabilities.digest_delete_removes_tags) == (
        True,
        tag_delete,
        removes_tags,
    )
    assert [m for m, _ in registry.requests] == ["DELETE", "DELETE"]  # a missing digest, a missing tag
    assert (dict(registry.tags), dict(registry.manifests)) == before


def test_a_registry_that_cannot_delete_stops_before_any_change() -> None:
    registry, _ = scenario("disabled")
    with client_for(registry) as client:
        plan, baseline = plan_for(client, ("main", "live", "other"))
        registry.requests.clear()
        with pytest.raises(CannotDelete, match="UNSUPPORTED") as caught:
            apply(client, plan, baseline)
    assert caught.value.exit_code == 5
    assert registry.mutations() == [("DELETE", registry.requests[0][1])]  # the probe only
    assert "gone-buildcache" in registry.tags


@pytest.mark.parametrize("mode", ["distribution", "oci", "google"])
def test_apply_deletes_exactly_the_plan_on_every_deletion_model(mode: Mode) -> None:
    registry, digests = scenario(mode)
    with client_for(registry) as client:
        plan, baseline = plan_for(client, ("main", "live", "other"))
        assert {d.tag for d in plan.deletions} == {"gone-buildcache", "stale-buildcache"}
        registry.requests.clear()
        report = apply(client, plan, baseline, google=mode == "google")
    assert report.ok
    assert set(registry.tags) == {"main-buildcache", "live-buildcache", "other-buildcache", "latest", "app"}
    assert registry.tags["live-buildcache"] == digests["shared"]
    assert digests["gone"] not in registry.manifests and digests["shared"] in registry.manifests
    methods = statuses(report)
    if mode == "distribution":
        assert methods == {
            "gone-buildcache": ("deleted", "manifest-delete"),
            "stale-buildcache": ("deleted", "placeholder"),
        }
        (placeholder,) = report.placeholders
        assert placeholder.tag == "stale-buildcache" and placeholder.replaces == digests["shared"]
        assert placeholder.digest not in registry.manifests
        assert [b.digest for b in report.pushed_blobs] == [sha256_digest(EMPTY_CONFIG)]
    elif mode == "oci":
        assert methods == {
            "gone-buildcache": ("deleted", "manifest-delete"),
            "stale-buildcache": ("deleted", "tag-delete"),
        }
        assert not report.placeholders
    else:  # untag, then the digest: never a DELETE of a digest that is still tagged
        assert methods == {
            "gone-buildcache": ("deleted", "tag-delete"),
            "stale-buildcache": ("deleted", "tag-delete"),
        }
        deletes = [p.rsplit("/", 1)[1] for m, p in registry.mutations()][2:]
        assert sorted(deletes) == sorted(["gone-buildcache", digests["gone"], "stale-buildcache"])
        assert deletes.index("gone-buildcache") < deletes.index(digests["gone"])
    assert {m.digest: m.status for m in report.manifests} == {
        digests["gone"]: "deleted",
        digests["shared"]: "kept",
    }


def test_a_rerun_is_idempotent() -> None:
    registry, _ = scenario("distribution")
    with client_for(registry) as client:
        plan, baseline = plan_for(client, ("main", "live", "other"))
        assert apply(client, plan, baseline).ok
        state = (dict(registry.tags), set(registry.manifests))
        again, baseline = plan_for(client, ("main", "live", "other"))
        assert not again.deletions and not again.manifests
        # The old plan applied again: everything is already gone, nothing fails, nothing changes.
        report = apply(client, plan, None)
    assert report.ok and {s for s, _ in statuses(report).values()} == {"already-gone"}
    assert (dict(registry.tags), set(registry.manifests)) == state


def test_a_tag_moved_since_planning_is_left_alone() -> None:
    registry, _ = scenario("distribution")
    with client_for(registry) as client:
        plan, _ = plan_for(client, ("main", "live", "other"))
        moved_to = registry.cache("gone-buildcache", layers=[b"rebuilt"])  # CI pushed the branch again
        report = apply(client, plan, None)
    assert statuses(report)["gone-buildcache"] == ("moved", None)
    assert report.tags[0].current_digest == moved_to
    assert registry.tags["gone-buildcache"] == moved_to
    assert report.ok  # skipping a moved tag is the plan working, not a failure


def test_a_tag_that_appears_on_a_stale_manifest_after_planning_keeps_it() -> None:
    registry, digests = scenario("distribution")
    with client_for(registry) as client:
        plan, baseline = plan_for(client, ("main", "live", "other"))
        registry.tags["new-branch-buildcache"] = digests["gone"]  # byte-identical export of a new branch
        report = apply(client, plan, baseline)
    assert report.ok
    assert registry.tags["new-branch-buildcache"] == digests["gone"] and digests["gone"] in registry.manifests
    assert "gone-buildcache" not in registry.tags
    assert statuses(report)["gone-buildcache"] == ("deleted", "placeholder")
    manifest = {m.digest: m for m in report.manifests}[digests["gone"]]
    assert manifest.status == "kept" and "new-branch-buildcache" in manifest.detail


def test_a_kept_tag_moved_onto_a_stale_manifest_is_seen_when_the_plan_is_applied_later() -> None:
    registry, digests = scenario("oci")
    with client_for(registry) as client:
        plan, _ = plan_for(client, ("main", "live", "other"))
        registry.tags["main-buildcache"] = digests["gone"]
        report = apply(client, plan, None)  # --apply-plan: nothing assumed, everything resolved again
    assert registry.tags["main-buildcache"] == digests["gone"] and digests["gone"] in registry.manifests
    assert statuses(report)["gone-buildcache"] == ("deleted", "tag-delete")


def test_tags_are_removed_one_at_a_time_even_when_their_manifests_go_in_a_concurrent_batch() -> None:
    # Six stale caches, each alone on its manifest: the plan deletes them whole. After planning, a kept tag
    # (keep-N, no template) lands on each, so when its turn comes in the concurrent batch each manifest is
    # kept and its stale tag is removed alone (OCI tag delete). A tag's removal is its HEAD, then its DELETE;
    # two removals must never interleave (a change seen when one tag goes is then seen by the next), however
    # many manifests are in flight. HEADs of stale tags are slowed so that interleaving would show.
    registry = FakeRegistry("oci")
    names = [f"s{i}" for i in range(6)]
    for name in names:
        registry.cache(f"{name}-buildcache", layers=[name.encode()])
    registry.cache("main-buildcache", layers=[b"m"])
    stale = {f"{name}-buildcache" for name in names}

    def slow_heads(request: httpx.Request) -> httpx.Response | None:
        if request.method == "HEAD" and request.url.path.rsplit("/", 1)[1] in stale:
            time.sleep(0.02)
        return None

    with client_for(registry) as client:
        plan, _ = plan_for(client, ("main",))
        for i, name in enumerate(names):
            registry.tags[f"keep-{i}"] = registry.tags[f"{name}-buildcache"]
        registry.requests.clear()
        registry.hooks.append(slow_heads)
        report = apply(client, plan, None)
    assert {t.tag: (t.status, t.method) for t in report.tags} == dict.fromkeys(
        stale, ("deleted", "tag-delete")
    )
    assert {m.status for m in report.manifests} == {"kept"}
    # Each removal's window: from the last HEAD of the tag before its DELETE to that DELETE (in arrival order).
    log = list(registry.requests)
    windows = []
    for tag in stale:
        end = log.index(("DELETE", f"/v2/team/app/manifests/{tag}"))
        start = max(i for i, (m, p) in enumerate(log[:end]) if m == "HEAD" and p.endswith(f"/{tag}"))
        windows.append((start, end))
    windows.sort()
    assert all(a_end < b_start for (_, a_end), (b_start, _) in pairwise(windows)), windows


def test_a_placeholder_left_by_a_killed_run_is_finished() -> None:
    registry, digests = scenario("distribution")
    with client_for(registry) as client:
        plan, baseline = plan_for(client, ("main", "live", "other"))
        # The killed run had re-pointed gone-buildcache to a placeholder and died before deleting it.
        registry.blob(EMPTY_CONFIG)
        raw = build_placeholder("gone-buildcache", digests["gone"], nonce="n", created=NOW)
        placeholder = registry.put(raw, mediatypes.OCI_MANIFEST, "gone-buildcache")
        report = apply(client, plan, None)
        assert statuses(report)["gone-buildcache"] == ("deleted", "placeholder-finished")
        assert placeholder not in registry.manifests and digests["gone"] not in registry.manifests
        # A fresh plan sees a placeholder, and the untagged manifest it replaced, for what they are.
        replaced = registry.cache("x-buildcache", layers=[b"only x has this"])
        raw = build_placeholder("x-buildcache", replaced, nonce="m", created=NOW)
        placeholder = registry.put(raw, mediatypes.OCI_MANIFEST, "x-buildcache")
        fresh, baseline = plan_for(client, ("main", "live", "other", "x"))
        assert {d.tag: d.rule for d in fresh.deletions} == {"x-buildcache": "placeholder"}
        assert [(m.digest, m.delete_tags) for m in fresh.manifests] == [
            (placeholder, ("x-buildcache",)),
            (replaced, ()),
        ]
        assert sha256_digest(b"only x has this") in fresh.reclaimable
        assert apply(client, fresh, baseline).ok
    assert placeholder not in registry.manifests and replaced not in registry.manifests
    assert "x-buildcache" not in registry.tags


def test_a_refused_placeholder_is_detected_once_and_each_tag_reported() -> None:
    registry = FakeRegistry("distribution")
    shared = registry.cache("a-buildcache", "b-buildcache", "main-buildcache", layers=[b"x"])

    def refuse_put(request: httpx.Request) -> httpx.Response | None:
        if request.method == "PUT" and "/manifests/" in request.url.path:
            return error(403, "DENIED")
        return None

    registry.hooks.append(refuse_put)
    with client_for(registry) as client:
        plan, baseline = plan_for(client, ("main",))
        report = apply(client, plan, baseline)
    assert not report.ok
    assert statuses(report) == {"a-buildcache": ("failed", None), "b-buildcache": ("failed", None)}
    assert [p for m, p in registry.mutations() if m == "PUT" and "/manifests/" in p] == [
        "/v2/team/app/manifests/a-buildcache"
    ]
    assert (
        set(registry.tags) == {"a-buildcache", "b-buildcache", "main-buildcache"}
        and shared in registry.manifests
    )


def test_a_rate_limit_stops_the_run_and_the_rest_is_not_attempted() -> None:
    registry = FakeRegistry("oci")
    for name in ("a", "b", "c"):
        registry.cache(f"{name}-buildcache", layers=[name.encode()])
    registry.cache("main-buildcache", layers=[b"m"])
    calls = Counter[str]()

    def throttle(request: httpx.Request) -> httpx.Response | None:
        if request.method == "DELETE" and "sha256:" in request.url.path:
            calls["delete"] += 1
            if calls["delete"] > 2:  # the probe, then one real deletion
                return httpx.Response(429, headers={"Retry-After": "0"})
        return None

    registry.hooks.append(throttle)
    with client_for(registry) as client:
        plan, baseline = plan_for(client, ("main",))
        report = apply(client, plan, baseline)
    assert report.stopped is not None and "429" in report.stopped
    assert sorted(s for s, _ in statuses(report).values()) == ["deleted", "not-attempted", "not-attempted"]
    # The probe and the first manifest (alone in its batch) go through; b and c form the next batch, sent
    # concurrently (-j 4): a throttled DELETE is tried 1 + 4 times, then the run stops. The other one was
    # either already in flight (tried 5 times too) or not started yet (not attempted, never sent).
    assert calls["delete"] in (2 + 5, 2 + 5 * 2)
    assert len(registry.tags) == 3


def test_a_plan_cannot_name_a_tag_outside_its_templates() -> None:
    registry, _ = scenario("oci")
    with client_for(registry) as client:
        plan, baseline = plan_for(client, ("main", "live", "other"))
        narrower = Rules(templates=(parse_template("gone-{branch}"),))
        forged = RepositoryPlan(
            **{**{f: getattr(plan, f) for f in plan.__dataclass_fields__}, "rules": narrower}
        )
        registry.requests.clear()
        with pytest.raises(InvalidContent, match="matches none of its templates"):
            apply(client, forged, baseline)
    assert registry.requests == []  # refused before the first request


def test_planning_costs_one_get_per_tag() -> None:
    registry = FakeRegistry()
    base = b"base"
    shared = registry.cache("a-buildcache", "b-buildcache", layers=[base, b"ab"])
    registry.cache("c-buildcache", layers=[base, b"c"])
    registry.cache("old-buildcache", layers=[b"old"], days=None, config_days=40)  # no createdat: config read
    registry.image("app", [base])
    with client_for(registry) as client:
        inventory = collect_inventory(client, REPO)
        assert client.request_count == len(registry.requests)
    kinds = Counter(
        (m, "tags" if p.endswith("/tags/list") else "manifest" if "/manifests/" in p else "blob")
        for m, p in registry.requests
    )
    # 5 tags read by tag; the image is read again by tag (du keeps no non-cache documents).
    assert kinds == {
        ("GET", "tags"): 1,
        ("GET", "manifest"): 5 + 1,
        ("GET", "blob"): 1,
    }
    assert inventory.resolutions()["b-buildcache"] == shared
    old = next(c for c in inventory.caches.values() if c.age_source == "config")
    assert old.created_at is not None and (NOW - old.created_at.datetime).days == 40
    plan = plan_repository(inventory, Rules(templates=RULES.templates, max_age=timedelta(days=14)), None, NOW)
    assert [d.tag for d in plan.deletions] == ["old-buildcache"]


def budget_at(now: list[float], seconds: float = 10.0) -> TimeBudget:
    """A budget of ``seconds`` on a clock that moves only when a test sets ``now[0]``."""
    return TimeBudget(seconds, f"{seconds:g}s", clock=lambda: now[0])


def test_a_budget_spent_before_the_repository_is_begun_sends_nothing_and_reports_everything() -> None:
    registry, _ = scenario("oci")
    now = [0.0]
    budget = budget_at(now)  # the clock starts with the command, before planning
    with client_for(registry) as client:
        plan, _ = plan_for(client, ("main", "live", "other"))
        registry.requests.clear()
        now[0] = 10.0  # spent exactly: ">= budget" counts as reached
        report = execute_plan(plan, OciBackend(client, REPO), RegistryTagReader(client, REPO), budget=budget)
    assert registry.requests == []  # not even the capability probes
    assert report.capabilities is None and report.stopped_by == "time-budget"
    assert report.stopped == "time budget of 10s reached"
    # Planned by hand (scenario, live main/live/other): gone-buildcache alone on its manifest (deleted
    # whole: one deletion), stale-buildcache shares its manifest with live-buildcache (one tag removal).
    assert statuses(report) == {
        "gone-buildcache": ("not-attempted", None),
        "stale-buildcache": ("not-attempted", None),
    }
    assert (report.deletions, report.deletions_left) == (0, 2)
    assert not report.ok


def test_after_the_budget_no_manifest_is_begun_and_the_one_in_flight_is_finished() -> None:
    # distribution 2.8: no tag delete, so a tag whose manifest stays is removed by a placeholder (PUT,
    # then DELETE of the placeholder). The budget runs out while the first such PUT is in flight: the
    # DELETE must still follow (a tag left on a placeholder is a half-done removal), and the next tag
    # removal (one at a time, in plan order) may not start.
    registry, digests = scenario("distribution")
    digests["late"] = registry.cache("late-buildcache", "late-live-buildcache", layers=[b"late"])
    now = [0.0]
    budget = budget_at(now)

    def spend_on_placeholder_put(request: httpx.Request) -> httpx.Response | None:
        if request.method == "PUT" and "/manifests/" in request.url.path and now[0] == 0.0:
            now[0] = 60.0
        return None

    with client_for(registry) as client:
        plan, _ = plan_for(client, ("main", "live", "other", "late-live"))
        # By hand: gone-buildcache is alone on its manifest (deleted whole, first); stale- and
        # late-buildcache share theirs with a live tag (one removal each, after the whole deletions, in
        # plan order).
        whole, first, second = sorted(plan.manifests, key=lambda m: not m.delete_manifest)
        assert whole.delete_tags == ("gone-buildcache",) and whole.delete_manifest
        assert {first.delete_tags, second.delete_tags} == {("stale-buildcache",), ("late-buildcache",)}
        registry.hooks.append(spend_on_placeholder_put)
        report = execute_plan(plan, OciBackend(client, REPO), RegistryTagReader(client, REPO), budget=budget)
    (begun,), (left,) = first.delete_tags, second.delete_tags
    assert statuses(report) == {
        "gone-buildcache": ("deleted", "manifest-delete"),
        begun: ("deleted", "placeholder"),  # begun before the budget ran out: finished
        left: ("not-attempted", None),
    }
    assert report.stopped_by == "time-budget" and report.stopped == "time budget of 10s reached"
    assert begun not in registry.tags and registry.tags[left] == second.digest
    assert not any(on_placeholder(registry, t) for t in registry.tags)  # no tag left on a placeholder
    # Deletions: gone's manifest, the placeholder removal; left: one removal.
    assert (report.deletions, report.deletions_left) == (2, 1)


def on_placeholder(registry: FakeRegistry, tag: str) -> bool:
    return PLACEHOLDER_ARTIFACT_TYPE.encode() in registry.manifests[registry.tags[tag]][0]


def stale_alone(count: int) -> tuple[FakeRegistry, dict[str, Digest]]:
    """An OCI registry with ``count`` caches of gone branches (s0..), each alone on its manifest, and main's."""
    registry = FakeRegistry("oci")
    digests = {f"s{i}": registry.cache(f"s{i}-buildcache", layers=[f"s{i}".encode()]) for i in range(count)}
    registry.cache("main-buildcache", layers=[b"m"])
    return registry, digests


def test_a_budget_stops_a_concurrent_batch_between_manifests_never_inside_one() -> None:
    # Eight stale caches, each alone: the first is deleted alone, the other seven in a concurrent batch
    # (-j 4). The budget runs out when the third DELETE by digest is answered (the probe is the first).
    # Manifests already begun finish; none begun after that. So: at least 2 deleted, every other one
    # either deleted (was in flight) or not attempted, and no DELETE is sent for a not-attempted one.
    registry, _ = stale_alone(8)
    now = [0.0]
    deletes = Counter[str]()

    def spend_on_third_delete(request: httpx.Request) -> httpx.Response | None:
        if request.method == "DELETE" and "sha256:" in request.url.path:
            deletes["n"] += 1
            if deletes["n"] == 3:
                now[0] = 60.0
        return None

    with client_for(registry) as client:
        plan, _ = plan_for(client, ("main",))
        registry.hooks.append(spend_on_third_delete)
        report = execute_plan(
            plan, OciBackend(client, REPO), RegistryTagReader(client, REPO), budget=budget_at(now)
        )
    outcome = {t.tag: t.status for t in report.tags}
    deleted = {t for t, s in outcome.items() if s == "deleted"}
    assert set(outcome.values()) == {"deleted", "not-attempted"} and len(deleted) >= 2
    assert len(deleted) <= 2 + 4  # at most the batch's workers were in flight when it ran out
    for tag, status in outcome.items():
        assert (tag in registry.tags) == (status == "not-attempted")
    assert deletes["n"] == 1 + len(deleted)  # the probe, then one DELETE per deleted manifest, none more
    assert report.deletions == len(deleted) and report.deletions_left == 8 - len(deleted)


class ChunkedOci(OciBackend):
    """The distribution API with a ``BatchDeleteBackend`` face: each chunk handed over is recorded, then
    deleted one DELETE at a time (as ECR's BatchDeleteImage would in one call)."""

    def __init__(self, client: RegistryClient, limit: int, spend: Callable[[], None] = lambda: None) -> None:
        super().__init__(client, REPO)
        self.limit = limit
        self.chunks: list[list[Digest]] = []
        self.spend = spend

    @property
    def batch_limit(self) -> int:
        return self.limit

    def delete_manifests(self, digests: Sequence[Digest]) -> dict[Digest, bool | CacheInspectError]:
        self.chunks.append(list(digests))
        self.spend()
        return {d: self.delete_manifest(d) for d in digests}


def test_a_batch_backend_gets_chunks_each_manifest_checked_and_a_held_one_keeps_its_manifest() -> None:
    # Eight stale caches, each alone: the first goes alone (delete_manifest), the other seven in chunks of
    # three. After planning, a kept tag (no template) lands on s5's manifest: it is left out of its chunk,
    # kept, and its stale tag removed alone (OCI tag delete). By hand: chunks of the seven in plan order,
    # s5's manifest missing from its chunk; a chunk left empty (s5 alone in the last one, as plan order
    # puts it in some runs) is never handed over.
    registry, digests = stale_alone(8)
    with client_for(registry) as client:
        plan, _ = plan_for(client, ("main",))
        registry.tags["keep-5"] = digests["s5"]
        backend = ChunkedOci(client, 3)
        report = execute_plan(plan, backend, RegistryTagReader(client, REPO))
    order = [m.digest for m in plan.manifests]
    rest = [d for d in order[1:] if d != digests["s5"]]
    expected = [order[1:4], order[4:7], order[7:]]
    assert backend.chunks == [kept for chunk in expected if (kept := [d for d in chunk if d in rest])]
    assert statuses(report)["s5-buildcache"] == ("deleted", "tag-delete")
    assert {m.digest: m.status for m in report.manifests} == {
        d: ("kept" if d == digests["s5"] else "deleted") for d in order
    }
    assert set(registry.tags) == {"main-buildcache", "keep-5"} and digests["s5"] in registry.manifests


def test_a_budget_spent_during_a_chunk_leaves_the_later_chunks_not_attempted() -> None:
    registry, _ = stale_alone(8)
    now = [0.0]
    budget = budget_at(now)

    def spend() -> None:
        now[0] = 60.0

    with client_for(registry) as client:
        plan, _ = plan_for(client, ("main",))
        backend = ChunkedOci(client, 3, spend)
        report = execute_plan(plan, backend, RegistryTagReader(client, REPO), budget=budget)
    # The first alone, then one chunk of three (the budget runs out while it is in flight): 4 deleted,
    # the other four never handed over.
    assert len(backend.chunks) == 1 and len(backend.chunks[0]) == 3
    assert sorted(s for s, _ in statuses(report).values()) == ["deleted"] * 4 + ["not-attempted"] * 4
    assert report.stopped_by == "time-budget" and (report.deletions, report.deletions_left) == (4, 4)
