"""``gc`` planning: decide per tag, purely, with a reason for each decision.

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

from collections.abc import Iterator, Mapping, Sequence, Set
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from types import MappingProxyType
from typing import Literal

from inspector.errors import UsageError
from inspector.gc.branches import LiveRefs
from inspector.gc.inventory import CacheInfo, Inventory, TagInfo
from inspector.gc.policy import Rules, SlugRule, TagTemplate, spell_duration
from inspector.oci import gojson
from inspector.oci.digest import Digest
from inspector.oci.reference import Repository

__all__ = [
    "MANIFEST_RULES",
    "Action",
    "ManifestPlan",
    "ManifestRule",
    "PlanRefused",
    "RepositoryPlan",
    "TagDecision",
    "TemplateReading",
    "check_max_deletes",
    "drop_unselected",
    "plan_repository",
    "template_reading",
]

Action = Literal["delete", "keep", "ignore"]
#: Why a manifest is in the plan: its tags are deleted, an interrupted run untagged it, or it is an
#: untagged cache a vendor API listed.
ManifestRule = Literal["tags", "interrupted-run", "untagged-cache"]
MANIFEST_RULES: tuple[ManifestRule, ...] = ("tags", "interrupted-run", "untagged-cache")


class PlanRefused(UsageError):
    """The plan deletes more tags than ``--max-deletes`` allows (exit 2: nothing was done)."""


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
    repository: Repository
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
