"""``gc`` planning: read a repository once, then decide per tag, purely, with a reason for each decision.

Reading (``collect_inventory``) reuses ``du``: the tag list and one manifest GET
per tag (on Docker Hub a HEAD per tag and a GET per distinct digest, since GETs
count as pulls there); whether a tag is a cache and which blobs
it holds come from the manifest alone. On top of that, gc reads

* the cache config of a cache whose manifest carries no ``buildkit/createdat``
  annotation (its results' ``createdAt`` give the age), one GET each;
* each non-cache tag's manifest by tag, one GET each (``du`` keeps no
  non-cache document; gc needs its digest and blobs, and recognises the
  placeholders an interrupted gc run left behind);
* the manifest a placeholder replaced, by digest, one GET each.

Planning (``plan_repository``) is a pure function of (inventory, rules, live
branches, now). Rules apply per tag in this order; the first that decides wins:

1. the tag matches no template -> **ignore** (never touched, whatever else holds);
2. its manifest could not be read -> keep;
3. a ``--protect`` glob matches -> keep (protection wins over every rule below);
4. it points at a placeholder this tool pushed for it -> delete (finish an interrupted run);
5. it is not a cache (config type is not ``application/vnd.buildkit.cacheconfig.v0``) -> keep;
6. branch gone: a branch source was given and no live branch (or pull request)
   maps to the tag -> delete;
7. max age: its newest ``buildkit/createdat`` is older than ``--max-age`` -> delete;
8. keep last: among the template's caches still kept and not protected, all but
   the ``--keep-last`` newest -> delete; a cache of unknown age (its config could
   not be read, or holds no time) cannot be ranked and is kept: one bad answer
   must not turn a keep into a delete;
9. otherwise keep.

Untagged caches a vendor API can list (GHCR's untagged package versions, ``gc --untagged``, read
by ``gc_ghcr``) enter the inventory through ``add_untagged``; each is planned as a manifest
deletion with the rule ``untagged-cache`` unless a tag resolves to it.

A tag matching several templates is read with the most specific one (longest
literal text; ties: the order given) for keep-last, and is "gone" only when
every reading says so. Then per manifest digest: the manifest is deleted only
when no kept tag (of any kind, template or not) resolves to it; otherwise only
its stale tags are removed. **Reclaimable bytes** are the blobs (layers and
cache configs) of deleted cache manifests that no kept cache and no kept
non-cache manifest in the repository references: an upper bound, since the
registry frees them only in its own garbage collection and untagged manifests
the API cannot list may still hold them.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterator, Mapping, Sequence, Set
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from types import MappingProxyType
from typing import Any, Literal

from inspector.cache.config import parse_cache_config
from inspector.cache.du import disk_usage, newest_created_at
from inspector.cache.fetch import find_cache_config, form_of
from inspector.errors import InvalidContent, InvalidReference, NotFound, UsageError
from inspector.gc.branches import LiveRefs
from inspector.gc.policy import (
    Rules,
    SlugRule,
    TagTemplate,
    format_duration,
    parse_duration,
    parse_template,
    spell_duration,
)
from inspector.oci import gojson
from inspector.oci.digest import Digest
from inspector.oci.models import Descriptor, ManifestDocument
from inspector.oci.reference import Repository
from inspector.registry.client import MANIFEST_LIMIT, RegistryClient

__all__ = [
    "PLACEHOLDER_ANNOTATION",
    "PLACEHOLDER_ARTIFACT_TYPE",
    "PLAN_KIND",
    "REPLACES_ANNOTATION",
    "CacheInfo",
    "Inventory",
    "ManifestPlan",
    "ManifestRule",
    "Mode",
    "PlaceholderInfo",
    "PlanMismatch",
    "PlanRefused",
    "RepositoryPlan",
    "TagDecision",
    "TagInfo",
    "TemplateReading",
    "UntaggedCache",
    "add_untagged",
    "check_max_deletes",
    "check_plan_policy",
    "collect_inventory",
    "drop_unselected",
    "parse_placeholder",
    "plan_from_json",
    "plan_repository",
    "plan_to_json",
    "rules_digest",
    "template_reading",
]

Progress = Callable[[int, int], None]
TagKind = Literal["cache", "other", "placeholder", "unreadable"]
Action = Literal["delete", "keep", "ignore"]
Mode = Literal["dry-run", "apply", "apply-plan"]
#: Why a manifest is in the plan: its tags are deleted, an interrupted run untagged it, or it is an
#: untagged cache a vendor API listed.
ManifestRule = Literal["tags", "interrupted-run", "untagged-cache"]
_MANIFEST_RULES: tuple[ManifestRule, ...] = ("tags", "interrupted-run", "untagged-cache")

PLAN_KIND = "cacheinspect-gc-plan"
PLAN_SCHEMA_VERSION = 1
PLACEHOLDER_ARTIFACT_TYPE = "application/vnd.cacheinspect.gc.placeholder.v1"
PLACEHOLDER_ANNOTATION = "cacheinspect.gc.placeholder-for"
REPLACES_ANNOTATION = "cacheinspect.gc.replaces"


class PlanRefused(UsageError):
    """The plan deletes more tags than ``--max-deletes`` allows (exit 2: nothing was done)."""


class PlanMismatch(UsageError):
    """``--apply-plan``: the plan was not made under the policy it is run with (exit 2: nothing was done)."""


# --------------------------------------------------------------------------- inventory


@dataclass(frozen=True, slots=True)
class TagInfo:
    """One listed tag; ``digest`` is None when it could not be read (``note`` says why)."""

    tag: str
    digest: Digest | None
    kind: TagKind
    note: str = ""


@dataclass(frozen=True, slots=True)
class CacheInfo:
    """A cache manifest: its blobs (config and distinct layers, with sizes) and its age."""

    digest: Digest
    manifest_size: int
    form: str
    blobs: Mapping[Digest, int]
    created_at: gojson.Timestamp | None
    age_source: Literal["annotation", "config", "pushed", "unknown"]  # pushed: a vendor API's push time
    age_note: str = ""
    last_pulled: gojson.Timestamp | None = None  # a vendor API's last recorded pull (ECR)


@dataclass(frozen=True, slots=True)
class PlaceholderInfo:
    """A tiny manifest gc pushes to a tag to remove only that tag (regclient's method)."""

    digest: Digest
    size: int
    tag: str
    replaces: Digest | None


@dataclass(frozen=True, slots=True)
class UntaggedCache:
    """An untagged cache manifest a vendor API listed (its ``CacheInfo`` is in ``Inventory.caches``)."""

    digest: Digest
    detail: str


@dataclass(frozen=True, slots=True)
class Inventory:
    """What the registry said about one repository, read once; the planner's only input from it."""

    repository: str
    tags: tuple[TagInfo, ...]
    caches: Mapping[Digest, CacheInfo]
    other_blobs: frozenset[Digest] = frozenset()
    placeholders: Mapping[Digest, PlaceholderInfo] = field(default_factory=lambda: MappingProxyType({}))
    untagged: tuple[UntaggedCache, ...] = ()
    notes: tuple[str, ...] = ()

    def resolutions(self) -> dict[str, Digest | None]:
        """Tag -> digest as read (None: unknown, to be resolved again before any deletion)."""
        return {info.tag: info.digest for info in self.tags}


def parse_placeholder(document: ManifestDocument) -> PlaceholderInfo | None:
    """The placeholder a gc run pushed, recognised by its artifact type and annotation; else None."""
    if document.kind != "manifest" or document.size > 64 * 1024:
        return None
    try:
        doc = gojson.load(document.raw, "placeholder")
        f = gojson.fields(doc, ("artifactType", "annotations"), "placeholder")
        if gojson.as_str(f.get("artifactType"), "artifactType") != PLACEHOLDER_ARTIFACT_TYPE:
            return None
        annotations = gojson.as_str_map(f.get("annotations"), "annotations")
    except InvalidContent:
        return None
    tag = annotations.get(PLACEHOLDER_ANNOTATION)
    if not tag:
        return None
    replaces = annotations.get(REPLACES_ANNOTATION)
    try:
        replaced = Digest(replaces) if replaces else None
    except InvalidReference:
        replaced = None
    return PlaceholderInfo(document.digest, document.size, tag, replaced)


def _config_age(raw: bytes) -> gojson.Timestamp | None:
    config = parse_cache_config(raw)
    times: list[gojson.Timestamp] = [r.created_at for rec in config.records for r in rec.results]
    times += [c.created_at for rec in config.records for c in rec.chains]
    times += [
        layer.annotations.created_at
        for layer in config.layers
        if layer.annotations is not None and layer.annotations.created_at is not None
    ]
    return max((t for t in times if t.epoch_ns > 0), default=None)


def _read_cache(
    client: RegistryClient,
    repository: Repository,
    document: tuple[Digest, int, str],
    config: Descriptor,
    layers: Sequence[Descriptor],
    sizes: Mapping[Digest, int],
) -> CacheInfo:
    """Blobs and age of one cache; the config is fetched only when no layer carries ``buildkit/createdat``."""
    digest, manifest_size, form = document
    blobs = MappingProxyType({d.digest: sizes.get(d.digest, d.size) for d in (config, *layers)})

    def info(
        created: gojson.Timestamp | None, source: Literal["annotation", "config", "unknown"], note: str = ""
    ) -> CacheInfo:
        return CacheInfo(digest, manifest_size, form, blobs, created, source, note)

    created = newest_created_at(layers)
    if created is not None:
        return info(created, "annotation")
    if config.size > MANIFEST_LIMIT:
        return info(None, "unknown", f"cache config is {config.size} bytes")
    try:
        created = _config_age(client.get_blob(repository, config, limit=MANIFEST_LIMIT))
    except (NotFound, InvalidContent) as exc:
        return info(None, "unknown", f"cache config unreadable: {exc.message}")
    if created is None:
        return info(None, "unknown", "no creation time in the manifest or its config")
    return info(created, "config")


def _referenced(document: ManifestDocument) -> frozenset[Digest]:
    """Every digest a non-cache document names (config, layers, or index entries)."""
    named = [*document.layers, *document.manifests]
    if document.config is not None:
        named.append(document.config)
    return frozenset(d.digest for d in named)


def _describe_other(document: ManifestDocument) -> str:
    if document.kind == "index":
        return f"not a cache: an index ({document.media_type}) of {len(document.manifests)} entries"
    config = document.config.media_type if document.config is not None else "no config"
    return f"not a cache: config {config}"


def collect_inventory(
    client: RegistryClient,
    repository: Repository,
    *,
    page_size: int | None = None,
    on_progress: Progress | None = None,
) -> Inventory:
    """Read one repository for planning (request budget in the module docstring)."""
    usage = disk_usage(client, repository, page_size=page_size, on_progress=on_progress)
    sizes = usage.blob_sizes

    def read_tag(tag: str) -> ManifestDocument | str:
        try:
            return client.get_manifest(repository.tag(tag))
        except (NotFound, InvalidContent, InvalidReference) as exc:
            return exc.message

    caches = {
        info.digest: info
        for info in client.map_bounded(
            lambda e: _read_cache(
                client, repository, (e.digest, e.manifest_size, e.form), e.config, e.layers, sizes
            ),
            list(usage.entries),
        )
    }
    tags: list[TagInfo] = [
        TagInfo(tag, entry.digest, "cache") for entry in usage.entries for tag in entry.tags
    ]
    tags += [TagInfo(s.tag, None, "unreadable", s.reason) for s in usage.skipped_tags]

    other_blobs: set[Digest] = set()
    placeholders: dict[Digest, PlaceholderInfo] = {}
    others = client.map_bounded(read_tag, list(usage.non_cache_tags))
    for tag, document in zip(usage.non_cache_tags, others, strict=True):
        if isinstance(document, str):
            tags.append(TagInfo(tag, None, "unreadable", document))
            continue
        if find_cache_config(document) is not None:
            tags.append(TagInfo(tag, None, "unreadable", "changed from a non-cache to a cache while reading"))
            continue
        placeholder = parse_placeholder(document)
        if placeholder is not None:
            placeholders[document.digest] = placeholder
            tags.append(TagInfo(tag, document.digest, "placeholder", f"gc placeholder for {placeholder.tag}"))
        else:
            other_blobs |= _referenced(document)
            tags.append(TagInfo(tag, document.digest, "other", _describe_other(document)))

    # Manifests that placeholders replaced: untagged, so only reachable through the placeholder.
    replaced = sorted({p.replaces for p in placeholders.values() if p.replaces and p.replaces not in caches})

    def read_replaced(digest: Digest) -> CacheInfo | None:
        try:
            document = client.get_manifest(repository.at(digest))
        except (NotFound, InvalidContent):
            return None
        found = find_cache_config(document)
        if found is None:
            return None
        identity = (document.digest, document.size, form_of(document))
        return _read_cache(client, repository, identity, found[0], found[1], sizes)

    for info_or_none in client.map_bounded(read_replaced, replaced):
        if info_or_none is not None:
            caches[info_or_none.digest] = info_or_none
    return Inventory(
        repository=str(repository),
        tags=tuple(sorted(tags, key=lambda t: t.tag)),
        caches=MappingProxyType(caches),
        other_blobs=frozenset(other_blobs),
        placeholders=MappingProxyType(placeholders),
    )


def drop_unselected(
    plan: RepositoryPlan, selected: Set[Digest], reasons: Mapping[Digest, str], missing: str
) -> RepositoryPlan:
    """``plan`` without the untagged caches a fresh selection no longer picks (before ``--apply-plan``).

    A reviewed plan may be old, or edited: an untagged entry is deleted only if, now, the backend's
    selection (``selected``; ``reasons`` for what it excluded, ``missing`` where it saw no such
    manifest) still picks it. Each one dropped gets a note.
    """
    dropped = [m for m in plan.untagged_deletions if m.digest not in selected]
    if not dropped:
        return plan
    notes = [
        f"{m.digest.short}: no longer an untagged cache ({reasons.get(m.digest, missing)}): not deleted"
        for m in dropped
    ]
    return replace(
        plan, manifests=tuple(m for m in plan.manifests if m not in dropped), notes=(*plan.notes, *notes)
    )


def add_untagged(
    inventory: Inventory, found: Sequence[tuple[ManifestDocument, str]], notes: Sequence[str] = ()
) -> Inventory:
    """``inventory`` plus untagged caches (each manifest with a detail for its reason); pure.

    Their blobs and sizes come from the manifests' descriptors and their age from
    ``buildkit/createdat`` (no config is read: no rule ages an untagged cache). A document that is
    not a cache is left out.
    """
    caches = dict(inventory.caches)
    untagged = list(inventory.untagged)
    for document, detail in found:
        config_and_layers = find_cache_config(document)
        if config_and_layers is None or any(u.digest == document.digest for u in untagged):
            continue
        config, layers = config_and_layers
        if document.digest not in caches:
            created = newest_created_at(layers)
            caches[document.digest] = CacheInfo(
                document.digest,
                document.size,
                form_of(document),
                MappingProxyType({d.digest: d.size for d in (config, *layers)}),
                created,
                "annotation" if created is not None else "unknown",
            )
        untagged.append(UntaggedCache(document.digest, detail))
    return replace(
        inventory,
        caches=MappingProxyType(caches),
        untagged=tuple(untagged),
        notes=(*inventory.notes, *notes),
    )


# --------------------------------------------------------------------------- plan


@dataclass(frozen=True, slots=True)
class TagDecision:
    """What happens to one tag, and why. ``captured`` is the branch slug or PR number the template read."""

    tag: str
    digest: Digest | None
    action: Action
    rule: str
    reason: str
    template: str | None = None
    captured: str | None = None
    created_at: gojson.Timestamp | None = None


@dataclass(frozen=True, slots=True)
class ManifestPlan:
    """One manifest digest that loses tags: its stale tags, the kept tags on it, and whether it goes too."""

    digest: Digest
    delete_tags: tuple[str, ...]
    kept_tags: tuple[str, ...]
    delete_manifest: bool
    manifest_size: int
    reason: str
    rule: ManifestRule = "tags"


@dataclass(frozen=True, slots=True)
class RepositoryPlan:
    repository: str
    planned_at: datetime
    rules: Rules
    branch_source: str | None
    live_branches: int | None
    live_pulls: int | None
    max_deletes: int | None
    decisions: tuple[TagDecision, ...]
    manifests: tuple[ManifestPlan, ...]
    reclaimable: Mapping[Digest, int]
    manifest_bytes: int
    notes: tuple[str, ...] = ()

    @property
    def reclaimable_bytes(self) -> int:
        """At most this many blob bytes are freed once the registry garbage-collects."""
        return sum(self.reclaimable.values())

    @property
    def deletions(self) -> tuple[TagDecision, ...]:
        return tuple(d for d in self.decisions if d.action == "delete")

    @property
    def untagged_deletions(self) -> tuple[ManifestPlan, ...]:
        """Untagged caches the plan deletes (``gc --untagged``)."""
        return tuple(m for m in self.manifests if m.rule == "untagged-cache")

    def count(self, action: Action) -> int:
        return sum(1 for d in self.decisions if d.action == action)


def _ago(now: datetime, stamp: gojson.Timestamp) -> str:
    delta = now - stamp.datetime
    if delta < timedelta(0):
        return "in the future"
    minutes = int(delta.total_seconds()) // 60
    return "less than a minute ago" if minutes == 0 else f"{spell_duration(timedelta(minutes=minutes))} ago"


def _ordinal(n: int) -> str:
    suffix = "th" if 10 <= n % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(n % 10, "th")
    return f"{n}{suffix}"


@dataclass(frozen=True, slots=True)
class TemplateReading:
    """A tag as the templates read it: every (template, captured) pair, and the primary one."""

    primary: TagTemplate
    captured: str
    readings: tuple[tuple[TagTemplate, str], ...]


def template_reading(tag: str, templates: Sequence[TagTemplate]) -> TemplateReading | None:
    readings = [(t, c) for t in templates if (c := t.match(tag)) is not None]
    if not readings:
        return None
    order = {t: i for i, t in enumerate(templates)}
    primary, captured = max(readings, key=lambda r: (r[0].specificity, -order[r[0]]))
    return TemplateReading(primary, captured, tuple(readings))


class _Liveness:
    def __init__(self, live: LiveRefs | None, slug: SlugRule) -> None:
        self.live = live
        self.by_slug: dict[str, list[str]] = {}
        if live is not None:
            for branch in sorted(live.branches):
                self.by_slug.setdefault(slug.slug(branch), []).append(branch)

    def branches_for(self, template: TagTemplate, captured: str) -> list[str]:
        if template.kind == "branch":
            return self.by_slug.get(captured, [])
        return [f"refs/pull/{int(captured)}/head"] if self.alive(template, captured) else []

    def alive(self, template: TagTemplate, captured: str) -> bool | None:
        """True/False, or None when the source says nothing about this kind of ref."""
        if self.live is None:
            return None
        if template.kind == "branch":
            return captured in self.by_slug
        if self.live.pulls is None:
            return None
        return int(captured) in self.live.pulls


def _first_rule(
    info: TagInfo,
    reading: TemplateReading,
    cache: CacheInfo | None,
    inventory: Inventory,
    rules: Rules,
    liveness: _Liveness,
    now: datetime,
) -> tuple[Action, str, str] | None:
    """Rules 2-7 for a tag a template matches; None when only keep-last can still decide."""
    if info.kind == "unreadable":
        return "keep", "unreadable", f"manifest unreadable: {info.note}"
    branches = [b for t, c in reading.readings for b in liveness.branches_for(t, c)]
    glob = rules.protection(info.tag, reading.captured, branches)
    if glob is not None:
        return "keep", "protected", f"protected by {glob!r}"
    placeholder = inventory.placeholders.get(info.digest) if info.digest is not None else None
    if info.kind == "placeholder" and placeholder is not None and placeholder.tag == info.tag:
        was = f", was {placeholder.replaces.short}" if placeholder.replaces else ""
        return "delete", "placeholder", f"placeholder left by an interrupted gc run{was}"
    if cache is None:
        return "keep", "not-cache", info.note or "not a cache"
    live = liveness.live
    if live is not None and all(liveness.alive(t, c) is False for t, c in reading.readings):
        what = " or ".join(
            f"branch slug {c!r}" if t.kind == "branch" else f"pull request #{int(c)}"
            for t, c in reading.readings
        )
        return "delete", "branch-gone", f"no live {what} in {live.source}"
    created = cache.created_at
    if rules.max_age is not None and created is not None and now - created.datetime > rules.max_age:
        limit = spell_duration(rules.max_age)
        what = "pushed" if cache.age_source == "pushed" else "newest layer created"
        return "delete", "max-age", f"{what} {_ago(now, created)}, older than {limit}"
    if rules.unpulled_for is not None and cache.age_source == "pushed":
        used = cache.last_pulled or created  # never pulled: unused since its push
        if used is not None and now - used.datetime > rules.unpulled_for:
            when = "last pulled" if cache.last_pulled is not None else "never pulled; pushed"
            limit = spell_duration(rules.unpulled_for)
            return "delete", "unpulled", f"{when} {_ago(now, used)}, longer ago than {limit}"
    return None


def _keep_last(
    template: TagTemplate,
    entries: Sequence[tuple[TagInfo, TemplateReading, CacheInfo]],
    rules: Rules,
    liveness: _Liveness,
    now: datetime,
) -> Iterator[TagDecision]:
    """Rule 8 over one template's remaining caches, newest first; caches of unknown age are not ranked (kept)."""

    def newest_first(entry: tuple[TagInfo, TemplateReading, CacheInfo]) -> tuple[bool, int, str]:
        created = entry[2].created_at
        return created is None, -(created.epoch_ns if created is not None else 0), entry[0].tag

    rank = 0
    for info, reading, cache in sorted(entries, key=newest_first):
        created = cache.created_at
        if created is not None:
            rank += 1
            age = f"{'pushed' if cache.age_source == 'pushed' else 'created'} {_ago(now, created)}"
            position = f"{_ordinal(rank)} newest of {template.text}"
        else:
            age = f"creation time unknown ({cache.age_note})" if cache.age_note else "creation time unknown"
            position = "not ranked by keep-last"
        if created is not None and rules.keep_last is not None and rank > rules.keep_last:
            reason = f"{position}; only the {rules.keep_last} newest are kept ({age})"
            yield TagDecision(
                info.tag, info.digest, "delete", "keep-last", reason, template.text, reading.captured, created
            )
            continue
        alive = [t for t, c in reading.readings if liveness.alive(t, c)]
        if liveness.live is None:
            state = "no branch source"
        elif alive:
            state = "branch alive" if alive[0].kind == "branch" else "pull request open"
        else:
            state = "liveness unknown"
        reason = f"{state}; {age}; {position}"
        yield TagDecision(
            info.tag, info.digest, "keep", "kept", reason, template.text, reading.captured, created
        )


def plan_repository(
    inventory: Inventory,
    rules: Rules,
    live: LiveRefs | None,
    now: datetime,
    *,
    max_deletes: int | None = None,
) -> RepositoryPlan:
    """Decide every tag (rule order in the module docstring); pure and deterministic."""
    if live is not None and rules.uses_branches and not live.branches:
        raise UsageError(
            f"{live.source}: no branches found; refusing to treat every branch as gone",
            hint="check the remote or the file (it must list the live branches)",
        )
    liveness = _Liveness(live, rules.slug)
    decisions: dict[str, TagDecision] = {}
    candidates: dict[TagTemplate, list[tuple[TagInfo, TemplateReading, CacheInfo]]] = {}
    notes: list[str] = []

    for info in inventory.tags:
        reading = template_reading(info.tag, rules.templates)
        if reading is None:
            decisions[info.tag] = TagDecision(
                info.tag, info.digest, "ignore", "no-template", "matches no template"
            )
            continue
        cache = inventory.caches.get(info.digest) if info.digest is not None else None
        created = cache.created_at if cache is not None else None
        decided = _first_rule(info, reading, cache, inventory, rules, liveness, now)
        if decided is None:
            assert cache is not None  # rule 5 decided every tag that is not a cache
            candidates.setdefault(reading.primary, []).append((info, reading, cache))
        else:
            action, rule, reason = decided
            decisions[info.tag] = TagDecision(
                info.tag, info.digest, action, rule, reason, reading.primary.text, reading.captured, created
            )

    for template, entries in candidates.items():
        for decision in _keep_last(template, entries, rules, liveness, now):
            decisions[decision.tag] = decision

    ordered = tuple(decisions[t.tag] for t in inventory.tags)
    manifests = _manifest_plans(inventory, ordered)
    reclaimable, manifest_bytes = _reclaimable(inventory, manifests)

    if live is None:
        notes.append(
            "no branch source (--branches-from-git / --branches-file): the branch-gone rule was not applied"
        )
    elif live.pulls is None and any(t.kind == "number" for t in rules.templates):
        notes.append(
            f"{live.source} names no pull/merge request refs: PR caches are judged by age and keep-last only"
        )
    unknown_age = sorted(
        d.tag
        for d in ordered
        if d.digest is not None
        and d.digest in inventory.caches
        and inventory.caches[d.digest].created_at is None
    )
    if unknown_age:
        notes.append(
            f"no creation time for {', '.join(unknown_age[:5])}{' …' if len(unknown_age) > 5 else ''}: "
            "max-age and keep-last do not apply to them (kept unless their branch is gone)"
        )
    notes.extend(inventory.notes)
    notes.extend(_untagged_notes(inventory, manifests, ordered))
    deletes = sum(1 for d in ordered if d.action == "delete")
    deletes += sum(1 for m in manifests if m.rule == "untagged-cache")
    if max_deletes is not None and deletes > max_deletes:
        notes.append(f"{deletes} deletions exceed --max-deletes {max_deletes}: applying this plan is refused")
    return RepositoryPlan(
        repository=inventory.repository,
        planned_at=now,
        rules=rules,
        branch_source=live.source if live is not None else None,
        live_branches=len(live.branches) if live is not None else None,
        live_pulls=len(live.pulls) if live is not None and live.pulls is not None else None,
        max_deletes=max_deletes,
        decisions=ordered,
        manifests=manifests,
        reclaimable=MappingProxyType(reclaimable),
        manifest_bytes=manifest_bytes,
        notes=tuple(notes),
    )


def _manifest_plans(inventory: Inventory, decisions: Sequence[TagDecision]) -> tuple[ManifestPlan, ...]:
    """Group deletions by digest; a manifest goes only when no kept tag of any kind resolves to it."""
    stale: dict[Digest, list[str]] = {}
    kept: dict[Digest, list[str]] = {}
    for decision in decisions:
        if decision.digest is None:
            continue
        (stale if decision.action == "delete" else kept).setdefault(decision.digest, []).append(decision.tag)
    plans: list[ManifestPlan] = []
    for digest in sorted(stale):
        holders = kept.get(digest, [])
        child = digest in inventory.other_blobs  # listed by an image index or manifest list gc keeps
        size = _manifest_size(inventory, digest)
        if holders:
            reason = f"kept: {', '.join(holders)} also resolve{'s' if len(holders) == 1 else ''} to it"
        elif child:
            reason = "kept: an image index or manifest list that gc keeps lists it"
        else:
            reason = "every tag on it is deleted"
        plans.append(
            ManifestPlan(
                digest, tuple(stale[digest]), tuple(holders), not holders and not child, size, reason
            )
        )
    # Manifests an interrupted run untagged (placeholders say which): deleted unless a kept tag needs them.
    for decision in decisions:
        if decision.rule != "placeholder" or decision.digest is None:
            continue
        placeholder = inventory.placeholders[decision.digest]
        replaced = placeholder.replaces
        if replaced is None or replaced not in inventory.caches or replaced in stale or replaced in kept:
            continue
        plans.append(
            ManifestPlan(
                replaced,
                (),
                (),
                True,
                inventory.caches[replaced].manifest_size,
                f"untagged by an interrupted gc run (was {placeholder.tag})",
                "interrupted-run",
            )
        )
    # Untagged caches a vendor API listed: deleted unless a tag resolves to them after all.
    planned = {p.digest for p in plans}
    for entry in inventory.untagged:
        if entry.digest in planned or entry.digest in stale or entry.digest in kept:
            continue
        planned.add(entry.digest)
        plans.append(
            ManifestPlan(
                entry.digest,
                (),
                (),
                True,
                _manifest_size(inventory, entry.digest),
                f"untagged BuildKit cache: {entry.detail}",
                "untagged-cache",
            )
        )
    return tuple(plans)


def _untagged_notes(
    inventory: Inventory, manifests: Sequence[ManifestPlan], decisions: Sequence[TagDecision]
) -> list[str]:
    """Untagged caches left alone because a tag resolves to them now."""
    planned = {m.digest for m in manifests}
    holders: dict[Digest, list[str]] = {}
    for decision in decisions:
        if decision.digest is not None and decision.action != "delete":
            holders.setdefault(decision.digest, []).append(decision.tag)
    notes = []
    for entry in inventory.untagged:
        tags = holders.get(entry.digest, [])
        if entry.digest not in planned and tags:
            verb = "resolves" if len(tags) == 1 else "resolve"
            notes.append(
                f"{entry.digest.short}: listed as untagged, but {', '.join(tags)} {verb} to it: kept"
            )
    return notes


def _manifest_size(inventory: Inventory, digest: Digest) -> int:
    if digest in inventory.caches:
        return inventory.caches[digest].manifest_size
    if digest in inventory.placeholders:
        return inventory.placeholders[digest].size
    return 0


def _reclaimable(inventory: Inventory, manifests: Sequence[ManifestPlan]) -> tuple[dict[Digest, int], int]:
    """Blobs only deleted caches reference (digest -> size), and the deleted manifests' own bytes."""
    gone = {m.digest for m in manifests if m.delete_manifest}
    referrers: dict[Digest, set[Digest]] = {}
    sizes: dict[Digest, int] = {}
    for digest, cache in inventory.caches.items():
        for blob, size in cache.blobs.items():
            referrers.setdefault(blob, set()).add(digest)
            sizes.setdefault(blob, size)
    freed = {
        blob: sizes[blob]
        for blob, users in sorted(referrers.items())
        if users <= gone and blob not in inventory.other_blobs
    }
    return freed, sum(m.manifest_size for m in manifests if m.delete_manifest)


def check_max_deletes(plan: RepositoryPlan, limit: int | None) -> None:
    """Refuse (exit 2) before any request that changes anything when the plan is too large.

    Counted: the tags the plan deletes plus the untagged caches it deletes.
    """
    untagged = len(plan.untagged_deletions)
    count = len(plan.deletions) + untagged
    if limit is not None and count > limit:
        what = f"{len(plan.deletions)} tags and {untagged} untagged caches" if untagged else f"{count} tags"
        raise PlanRefused(
            f"{plan.repository}: the plan deletes {what}, more than --max-deletes {limit}; nothing was done",
            hint="review the plan (--plan-out FILE), then raise --max-deletes or narrow the rules",
        )


# --------------------------------------------------------------------------- JSON


def _stamp(value: gojson.Timestamp | None) -> str | None:
    return value.text if value is not None else None


def _iso(value: datetime) -> str:
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def rules_to_json(rules: Rules) -> dict[str, Any]:
    return {
        "tagTemplates": [t.text for t in rules.templates],
        "protect": list(rules.protect),
        "maxAge": format_duration(rules.max_age) if rules.max_age is not None else None,
        "keepLast": rules.keep_last,
        "slug": rules.slug.describe(),
        # Only where given (ECR), so plans of every other backend keep their shape and rules digest.
        **({"unpulledFor": format_duration(rules.unpulled_for)} if rules.unpulled_for is not None else {}),
    }


def rules_digest(repository: str, rules: Rules) -> str:
    """What a plan was reviewed under (repository and rules), as a digest ``--apply-plan`` compares.

    Not a signature: anyone can recompute it. It catches a plan whose rules were edited without
    its digest, and lets ``--apply-plan`` compare the plan with the policy it is run with in one value.
    """
    canonical = json.dumps(
        {"repository": repository, "rules": rules_to_json(rules)}, sort_keys=True, separators=(",", ":")
    )
    return "sha256:" + hashlib.sha256(canonical.encode()).hexdigest()


def check_plan_policy(plan: RepositoryPlan, rules: Rules) -> None:
    """Refuse (exit 2) a plan that was not made under ``rules`` (the policy ``--apply-plan`` runs with).

    Every deletion is also checked against those rules: a template must cover the tag and no
    protect glob may match it (the tag, its slug or number, the glob slugged).
    """
    if rules_digest(plan.repository, rules) != rules_digest(plan.repository, plan.rules):
        theirs, ours = rules_to_json(plan.rules), rules_to_json(rules)
        differ = ", ".join(k for k in ours if ours[k] != theirs.get(k))
        raise PlanMismatch(
            f"{plan.repository}: the plan's rules differ from the policy given ({differ}); nothing was deleted",
            hint="plan again under this policy, or apply with the policy the plan was reviewed under",
        )
    for decision in plan.deletions:
        reading = template_reading(decision.tag, rules.templates)
        if reading is None:
            raise PlanMismatch(
                f"{plan.repository}: the plan deletes {decision.tag!r}, which no template of the policy "
                "covers; nothing was deleted"
            )
        glob = rules.protection(decision.tag, reading.captured, [])
        if glob is not None:
            raise PlanMismatch(
                f"{plan.repository}: the plan deletes {decision.tag!r}, which the policy protects "
                f"({glob!r}); nothing was deleted"
            )


def repository_plan_to_json(plan: RepositoryPlan) -> dict[str, Any]:
    return {
        "repository": plan.repository,
        "plannedAt": _iso(plan.planned_at),
        "rules": rules_to_json(plan.rules),
        "rulesDigest": rules_digest(plan.repository, plan.rules),
        "branches": {"source": plan.branch_source, "branches": plan.live_branches, "pulls": plan.live_pulls},
        "maxDeletes": plan.max_deletes,
        "summary": {
            "tags": len(plan.decisions),
            "delete": plan.count("delete"),
            "keep": plan.count("keep"),
            "ignore": plan.count("ignore"),
            "manifestsDeleted": sum(1 for m in plan.manifests if m.delete_manifest),
            "untaggedCaches": len(plan.untagged_deletions),
        },
        "reclaimable": {
            "bytes": plan.reclaimable_bytes,
            "blobs": [{"digest": d, "size": n} for d, n in plan.reclaimable.items()],
            "manifestBytes": plan.manifest_bytes,
            "atMost": True,
        },
        "tags": [
            {
                "tag": d.tag,
                "digest": d.digest,
                "action": d.action,
                "rule": d.rule,
                "reason": d.reason,
                "template": d.template,
                "captured": d.captured,
                "createdAt": _stamp(d.created_at),
            }
            for d in plan.decisions
        ],
        "manifests": [
            {
                "digest": m.digest,
                "deleteTags": list(m.delete_tags),
                "keptTags": list(m.kept_tags),
                "deleteManifest": m.delete_manifest,
                "manifestSize": m.manifest_size,
                "reason": m.reason,
                "rule": m.rule,
            }
            for m in plan.manifests
        ],
        "notes": list(plan.notes),
    }


def plan_to_json(
    plans: Sequence[RepositoryPlan],
    *,
    created_at: datetime,
    mode: Mode,
    reports: Mapping[str, dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """The ``--plan-out`` / ``--json`` document (``inspector/schemas/gc-plan.schema.json``)."""
    return {
        "schemaVersion": PLAN_SCHEMA_VERSION,
        "kind": PLAN_KIND,
        "createdAt": _iso(created_at),
        "mode": mode,
        "repositories": [
            {**repository_plan_to_json(p), "report": (reports or {}).get(p.repository)} for p in plans
        ],
    }


def _get(obj: Mapping[str, Any], key: str, kind: type | tuple[type, ...], where: str) -> Any:
    value = obj.get(key)
    if not isinstance(value, kind) or (isinstance(value, bool) and kind is int):
        raise InvalidContent(f"{where}.{key}: missing or of the wrong type")
    return value


def _opt(obj: Mapping[str, Any], key: str, kind: type, where: str) -> Any:
    return None if obj.get(key) is None else _get(obj, key, kind, where)


def _digest(value: Any, where: str) -> Digest:
    try:
        return Digest(value)
    except InvalidReference:
        raise InvalidContent(f"{where}: invalid digest {str(value)[:80]!r}") from None


def plan_from_json(raw: bytes, source: str) -> tuple[RepositoryPlan, ...]:
    """Read a ``--plan-out`` file back; anything malformed is ``InvalidContent`` (exit 8).

    Every tag the plan deletes must match one of the plan's own templates: a
    hand-edited plan cannot reach a tag that no template covers.
    """
    try:
        doc = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        raise InvalidContent(f"{source}: not a JSON plan ({exc})") from None
    if not isinstance(doc, dict) or doc.get("kind") != PLAN_KIND:
        raise InvalidContent(f"{source}: not a cacheinspect gc plan (kind is not {PLAN_KIND!r})")
    if doc.get("schemaVersion") != PLAN_SCHEMA_VERSION:
        raise InvalidContent(f"{source}: plan schemaVersion {doc.get('schemaVersion')!r} is not supported")
    plans = []
    for i, entry in enumerate(_get(doc, "repositories", list, source)):
        where = f"{source}: repositories[{i}]"
        if not isinstance(entry, dict):
            raise InvalidContent(f"{where}: expected an object")
        plans.append(_repository_plan_from_json(entry, where))
    return tuple(plans)


def _repository_plan_from_json(entry: Mapping[str, Any], where: str) -> RepositoryPlan:
    try:
        r = _get(entry, "rules", dict, where)
        slug = _get(r, "slug", dict, f"{where}.rules")
        max_age = _opt(r, "maxAge", str, f"{where}.rules")
        unpulled_for = _opt(r, "unpulledFor", str, f"{where}.rules")
        rules = Rules(
            templates=tuple(
                parse_template(_str(t, where)) for t in _get(r, "tagTemplates", list, f"{where}.rules")
            ),
            protect=tuple(_str(g, where) for g in _get(r, "protect", list, f"{where}.rules")),
            max_age=parse_duration(max_age) if max_age is not None else None,
            keep_last=_opt(r, "keepLast", int, f"{where}.rules"),
            unpulled_for=parse_duration(unpulled_for) if unpulled_for is not None else None,
            slug=SlugRule(
                lowercase=bool(slug.get("lowercase", False)),
                allowed=_get(slug, "allowed", str, f"{where}.rules.slug"),
                max_length=_get(slug, "maxLength", int, f"{where}.rules.slug"),
                trim=_get(slug, "trim", str, f"{where}.rules.slug"),
            ),
        )
        planned_at = datetime.strptime(_get(entry, "plannedAt", str, where), "%Y-%m-%dT%H:%M:%SZ")
    except UsageError as exc:
        raise InvalidContent(f"{where}: {exc.message}") from None
    except ValueError:
        raise InvalidContent(f"{where}.plannedAt: expected YYYY-MM-DDTHH:MM:SSZ") from None
    decisions = []
    for j, t in enumerate(_get(entry, "tags", list, where)):
        w = f"{where}.tags[{j}]"
        if not isinstance(t, dict):
            raise InvalidContent(f"{w}: expected an object")
        action = _get(t, "action", str, w)
        if action not in ("delete", "keep", "ignore"):
            raise InvalidContent(f"{w}.action: {action!r} is not delete, keep or ignore")
        tag = _get(t, "tag", str, w)
        digest = _digest(t["digest"], f"{w}.digest") if t.get("digest") is not None else None
        if action == "delete" and (digest is None or template_reading(tag, rules.templates) is None):
            raise InvalidContent(
                f"{w}: deleting {tag!r} needs a digest and a tag that matches the plan's templates"
            )
        created = _opt(t, "createdAt", str, w)
        decisions.append(
            TagDecision(
                tag,
                digest,
                action,
                _get(t, "rule", str, w),
                _get(t, "reason", str, w),
                _opt(t, "template", str, w),
                _opt(t, "captured", str, w),
                gojson.parse_go_time(created, f"{w}.createdAt") if created is not None else None,
            )
        )
    by_tag = {d.tag: d for d in decisions}
    manifests = []
    for j, m in enumerate(_get(entry, "manifests", list, where)):
        w = f"{where}.manifests[{j}]"
        if not isinstance(m, dict):
            raise InvalidContent(f"{w}: expected an object")
        digest = _digest(m.get("digest"), f"{w}.digest")
        delete_tags = tuple(_str(x, w) for x in _get(m, "deleteTags", list, w))
        for tag in delete_tags:
            decision = by_tag.get(tag)
            if decision is None or decision.action != "delete" or decision.digest != digest:
                raise InvalidContent(f"{w}: {tag!r} is not a deletion of this digest in the plan's tags")
        rule = m.get("rule", "tags")  # absent in plans written before the rule was recorded
        if rule not in _MANIFEST_RULES:
            raise InvalidContent(f"{w}.rule: {rule!r} is not one of {', '.join(_MANIFEST_RULES)}")
        plan_entry = ManifestPlan(
            digest,
            delete_tags,
            tuple(_str(x, w) for x in _get(m, "keptTags", list, w)),
            _get(m, "deleteManifest", bool, w),
            _get(m, "manifestSize", int, w),
            _get(m, "reason", str, w),
            rule,
        )
        if rule == "untagged-cache" and (plan_entry.delete_tags or plan_entry.kept_tags):
            raise InvalidContent(f"{w}: an untagged-cache entry names tags")
        manifests.append(plan_entry)
    grouped = {t for m in manifests for t in m.delete_tags}
    missing = [d.tag for d in decisions if d.action == "delete" and d.tag not in grouped]
    if missing:
        raise InvalidContent(f"{where}: deletion of {missing[0]!r} belongs to no manifest entry")
    branches = _get(entry, "branches", dict, where)
    reclaimable = _get(entry, "reclaimable", dict, where)
    repository = _get(entry, "repository", str, where)
    recorded = entry.get("rulesDigest")
    if recorded is None:
        raise InvalidContent(f"{where}: no rulesDigest (a plan written before plans were bound): plan again")
    if recorded != rules_digest(repository, rules):
        raise InvalidContent(
            f"{where}: rulesDigest does not match the plan's repository and rules: the file was edited"
        )
    return RepositoryPlan(
        repository=repository,
        planned_at=planned_at.replace(tzinfo=UTC),
        rules=rules,
        branch_source=_opt(branches, "source", str, where),
        live_branches=_opt(branches, "branches", int, where),
        live_pulls=_opt(branches, "pulls", int, where),
        max_deletes=_opt(entry, "maxDeletes", int, where),
        decisions=tuple(decisions),
        manifests=tuple(manifests),
        reclaimable=MappingProxyType(_blob_sizes(_get(reclaimable, "blobs", list, where), where)),
        manifest_bytes=_get(reclaimable, "manifestBytes", int, where),
        notes=tuple(_str(n, where) for n in _get(entry, "notes", list, where)),
    )


def _blob_sizes(items: list[Any], where: str) -> dict[Digest, int]:
    out: dict[Digest, int] = {}
    for i, item in enumerate(items):
        w = f"{where}.reclaimable.blobs[{i}]"
        if not isinstance(item, dict):
            raise InvalidContent(f"{w}: expected an object")
        out[_digest(item.get("digest"), f"{w}.digest")] = _get(item, "size", int, w)
    return out


def _str(value: Any, where: str) -> str:
    if not isinstance(value, str):
        raise InvalidContent(f"{where}: expected a string, found {type(value).__name__}")
    return value
