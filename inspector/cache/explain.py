"""Why will the next build miss the cache? Each step's BuildKit key, looked up in each ``--cache-from`` cache.

How BuildKit looks a step up (moby/buildkit ``solver/edge.go``, ``solver/cachemanager.go``,
``solver/combinedcache.go``), which this module follows:

* A step's key is its op's cache-map digest ``D`` (record digest ``sha256(D + "@0")``) plus, per input, the
  keys of what feeds that input. A cache record matches when its digest is the step's and each of its
  ``inputs[i]`` holds a link to a matched key of input ``i`` (any one alternative will do).
* Keys are resolved per imported cache: a cache manager identifies a key by walking *its own* links from the
  roots (``getIDFromDeps``), so a step hits in a cache only when that cache also holds the chain below it,
  from the base image's root records (or an earlier stage's steps) up.
* Several ``--cache-from`` imports are one ``combinedCacheManager``: every cache is queried (in parallel,
  not in the given order) and the matches are merged; of several records the newest result is loaded
  (``getBestResult``, ``compareCacheRecord``: ``createdAt`` first). So the order of ``--cache-from`` never
  changes *whether* a step hits; this module reports the first ref in the given order that holds it and,
  separately, the ref whose result BuildKit would load.
* A ``COPY``/``ADD`` from the build context depends on the copied content through a content-checksum root
  (``NewCacheKey(checksum, "", -1)``, record ``sha256(checksum + "@-1")``): the op digest holds only the
  paths, so one op digest under one parent is cached once per build-context version. The checksum itself
  (``cache/contenthash``) is not recomputed here; see :mod:`inspector.cache.contextdiff`.
* Once a step misses, it runs; every later step that depends on it then misses too (an ``ExecOp``'s
  rootfs input has no content-based key), so the first miss is where the build turns cold.

Nothing here guesses: a step whose key cannot be computed (a ``RUN`` whose base image config is unknown)
is ``unknown``, and steps that depend on it cannot be shown to hit either.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

from inspector.cache.config import CacheConfig, CacheInput, CacheRecord
from inspector.cache.naming.dockerfile import BuildPlan, PlannedStage, PlannedStep
from inspector.oci import gojson
from inspector.oci.digest import Digest

__all__ = [
    "CAUSE_TEXT",
    "Cause",
    "ContentCheck",
    "Explanation",
    "ImportedCache",
    "KeyedStep",
    "RefVerdict",
    "Status",
    "StepVerdict",
    "explain_build",
    "explanation_markdown",
    "explanation_to_json",
]

Status = Literal["hit", "miss", "context", "unknown"]
#: Why a step misses, most specific last: ``instruction`` (the op digest is in no cache: the instruction or its
#: environment changed), ``parent`` (the op is cached, but on top of something else: an earlier step or the
#: base image changed), ``inputs`` (the op and its parent are cached, only the copied content differs).
Cause = Literal["instruction", "parent", "inputs"]
_CAUSE_RANK: dict[Cause, int] = {"instruction": 0, "parent": 1, "inputs": 2}

CAUSE_TEXT: dict[Cause, str] = {
    "instruction": "the instruction or its environment changed (its op is in no cache)",
    "parent": "an earlier step or the base image changed (the op is cached, but on top of another parent)",
    "inputs": "only the copied files changed (the op is cached under this parent with other content)",
}


class KeyedStep(Protocol):
    """What ``explain`` needs of a step's key (``inspector.cache.naming.keys.StepKey`` has it)."""

    @property
    def step(self) -> PlannedStep: ...

    @property
    def digest(self) -> Digest | None: ...

    @property
    def unknown(self) -> str | None: ...

    @property
    def variants(self) -> tuple[Digest, ...]: ...

    @property
    def copy_digest(self) -> Digest | None: ...  # COPY --link: the copy onto scratch that the merge joins


@dataclass(frozen=True, slots=True)
class ImportedCache:
    """One ``--cache-from`` ref as imported: its config, or why BuildKit could not import it.

    ``unread``: BuildKit would import it but this module does not read that kind (an image's inline cache):
    its steps are ``unknown`` there, not misses."""

    ref: str
    config: CacheConfig | None
    error: str | None = None
    unread: bool = False


@dataclass(frozen=True, slots=True)
class RefVerdict:
    """One step in one cache. ``records``: the matching records (indexes into that cache's config);
    ``versions``: for a build-context copy, the records of this op under this parent (one per context version)."""

    ref: str
    status: Status
    cause: Cause | None = None
    records: tuple[int, ...] = ()
    versions: tuple[int, ...] = ()
    newest: gojson.Timestamp | None = None
    has_result: bool = False
    detail: str = ""


@dataclass(frozen=True, slots=True)
class StepVerdict:
    step: PlannedStep
    digest: Digest | None
    status: Status
    cause: Cause | None
    detail: str
    hit_ref: str | None  # the first ref, in the given order, that holds the step
    load_ref: str | None  # the ref whose result BuildKit would load (the newest one)
    refs: tuple[RefVerdict, ...]
    # with --context: the files that differ from every cached version
    changed_files: tuple[str, ...] | None = None
    has_layer: bool = False  # a hit or context verdict whose result some cache can load (mode=min: often not)


@dataclass(frozen=True, slots=True)
class Explanation:
    refs: tuple[str, ...]
    target: str
    platform: str
    steps: tuple[StepVerdict, ...]
    notes: tuple[str, ...] = field(default=())

    @property
    def cold_from(self) -> StepVerdict | None:
        """The first step, in build order, that will miss: from there on the build runs."""
        return next((v for v in self.steps if v.status == "miss"), None)

    @property
    def runs_from(self) -> StepVerdict | None:
        """Where the build really starts running, or None when it runs nothing. BuildKit needs the layer of
        the step before the first miss (or of the target's last step when nothing misses), and a cache written
        with mode=min holds keys without layers for intermediate steps, so each step there whose layer no cache
        holds runs too (back to the stage's first step at most)."""
        anchor = self.cold_from
        if anchor is None:
            target = [v for v in self.steps if v.step.stage == self.target]
            if not target or target[-1].status != "hit" or target[-1].has_layer:
                return None
            anchor = target[-1]
        start = anchor
        earlier = [
            v for v in self.steps if v.step.stage == anchor.step.stage and v.step.number < anchor.step.number
        ]
        for verdict in reversed(earlier):
            if verdict.status not in ("hit", "context") or verdict.has_layer:
                break
            start = verdict
        return start

    @property
    def all_cached(self) -> bool:
        """Every step hits and the build can load the target's result: it runs nothing."""
        return all(v.status == "hit" for v in self.steps) and self.runs_from is None


# What a step's parent resolves to in one cache: record indexes, "any root" (base not resolved), or unknown.
_Parent = frozenset[int] | Literal["any-root", "unknown", "none"]

#: ContentCheck(step, cache, versions) -> (files that differ from every version, or None when it cannot tell,
#: matching version records). Lets the CLI compare a local ``--context`` with the cached layers.
ContentCheck = Callable[
    [PlannedStep, ImportedCache, tuple[int, ...]], tuple[tuple[str, ...] | None, tuple[int, ...]]
]


class _CacheWalk:
    """Match a plan's steps against one cache, stage by stage, as that cache's manager would."""

    def __init__(self, cache: ImportedCache, base_roots: Mapping[str, frozenset[Digest]]) -> None:
        self.cache = cache
        self.config = cache.config
        self.base_roots = base_roots
        self.by_digest: dict[Digest, list[int]] = defaultdict(list)
        if self.config is not None:
            for index, record in enumerate(self.config.records):
                self.by_digest[record.digest].append(index)
        self.stage_end: dict[str, _Parent] = {}
        # A stage whose chain went through an unresolved build-context copy: its later hits are conditional.
        self.stage_conditional: dict[str, bool] = {}

    def record(self, index: int) -> CacheRecord:
        assert self.config is not None
        return self.config.records[index]

    def base(self, stage: PlannedStage) -> _Parent:
        if stage.base_kind == "scratch":
            return "none"
        if stage.base_kind == "stage":
            return self.stage_end.get(stage.base_stage or "", "unknown")
        roots = self.base_roots.get(stage.base_ref or "")
        if roots is None:
            return "any-root"
        return frozenset(
            i for digest in roots for i in self.by_digest.get(digest, ()) if self.record(i).is_root
        )

    def links_to(self, slot: int, record: CacheRecord, parent: _Parent) -> bool | None:
        """Does ``record.inputs[slot]`` link to ``parent``? None when that cannot be known."""
        if parent == "unknown":
            return None
        if parent == "none":
            return True
        if slot >= len(record.inputs):
            return False
        links = [item.link for item in record.inputs[slot]]
        if parent == "any-root":
            return any(self.record(link).is_root for link in links)
        return any(link in parent for link in links)

    def step(self, key: KeyedStep, parent: _Parent) -> tuple[RefVerdict, _Parent]:
        """The step in this cache on top of ``parent``, and what the next step's parent is then."""
        ref = self.cache.ref
        if self.config is None and self.cache.unread:
            return RefVerdict(ref, "unknown", detail=f"not read: {self.cache.error}"), "unknown"
        if self.config is None:
            return RefVerdict(ref, "miss", detail=f"not imported: {self.cache.error}"), frozenset()
        if key.digest is None:
            return RefVerdict(ref, "unknown", detail=key.unknown or "key not computable"), "unknown"
        digests = (key.digest, *key.variants)
        candidates = [i for d in dict.fromkeys(digests) for i in self.by_digest.get(d, ())]
        if not candidates or (key.copy_digest is not None and key.copy_digest not in self.by_digest):
            return RefVerdict(ref, "miss", "instruction"), frozenset()
        step = key.step
        copy_digest = key.copy_digest
        # Input 0 is the parent (RUN: rootfs; COPY/ADD/WORKDIR: the destination); on scratch a copy has no
        # destination input and its source is input 0 (spec §2.4).
        on_scratch = parent == "none"
        source_slot = 0 if on_scratch else 1
        linked: list[int] = []
        by_checksum: list[int] = []  # records that would match through the source's content checksum
        undecided = False
        for index in candidates:
            record = self.record(index)
            ok = self.links_to(0, record, parent) if not on_scratch else True
            if ok and step.from_stage is not None:
                source = self.stage_end.get(step.from_stage, "unknown")
                slots = range(source_slot, len(record.inputs)) if step.kind == "RUN" else [source_slot]
                found = [self.links_to(s, record, source) for s in slots]
                ok = True if any(found) else (None if None in found else False)
            if ok and copy_digest is not None:
                # COPY --link: every merge has one digest (the MergeOp's CacheMap holds no paths); the merge's
                # input 1 is this build's copy onto scratch, which the copy's own digest names.
                ok = any(self.record(item.link).digest == copy_digest for item in _slot(record, 1))
            if ok is None:
                undecided = True
            elif ok:
                linked.append(index)
            elif step.from_stage is not None and self._checksum_alternative(
                record, source_slot, parent, on_scratch
            ):
                by_checksum.append(index)
        if not linked and by_checksum:
            # edge.go: when the source stage's key does not match, BuildKit checksums the copied paths of its
            # (rebuilt) result and matches them against the record's content-checksum root.
            detail = (
                f"hits only if the files taken from stage {step.from_stage} are unchanged (content checksum)"
            )
            layered = self._layered(by_checksum)
            return RefVerdict(
                ref, "context", versions=tuple(by_checksum), has_result=layered, detail=detail
            ), frozenset(by_checksum)
        if not linked:
            if undecided:
                return RefVerdict(ref, "unknown", detail="an earlier step's key is not known"), "unknown"
            where = "the source stage" if step.from_stage is not None else "the previous step or base image"
            detail = f"cached {len(candidates)}x, never on top of {where} of this build"
            return RefVerdict(ref, "miss", "parent", records=(), detail=detail), frozenset()
        if step.context_input:  # COPY/ADD from the build context, or RUN with the context bind-mounted
            versions = tuple(linked)
            plural = "s" if len(versions) != 1 else ""
            detail = f"hits only if the copied files equal one of {len(versions)} cached build-context version{plural}"
            verdict = RefVerdict(
                ref, "context", versions=versions, has_result=self._layered(linked), detail=detail
            )
            return verdict, frozenset(linked)
        return self._hit(ref, tuple(linked)), frozenset(linked)

    def _checksum_alternative(
        self, record: CacheRecord, slot: int, parent: _Parent, on_scratch: bool
    ) -> bool:
        """The record is on this build's parent and its source input has a selector-less link to a root: the
        ``@-1`` content-checksum alternative (spec §3.4)."""
        if not on_scratch and not self.links_to(0, record, parent):
            return False
        return any(not item.selector and self.record(item.link).is_root for item in _slot(record, slot))

    def _layered(self, records: list[int]) -> bool:
        """Some version carries a layer: if that one matches, its result can be loaded (so the steps before
        it need not run); none does: whichever matches, it cannot."""
        return any(self.record(i).has_result for i in records)

    def _hit(self, ref: str, records: tuple[int, ...], detail: str = "") -> RefVerdict:
        results = [r for i in records for r in self.record(i).results]
        newest = max((r.created_at for r in results), key=lambda t: t.epoch_ns, default=None)
        if not results and not detail:
            detail = "key only (no layer: mode=min)"
        return RefVerdict(ref, "hit", records=records, newest=newest, has_result=bool(results), detail=detail)

    def resolve_context(
        self, key: KeyedStep, verdict: RefVerdict, check: ContentCheck | None
    ) -> tuple[RefVerdict, tuple[str, ...] | None, _Parent]:
        """A build-context copy with ``--context``: hit when one cached version holds the same files."""
        if check is None:
            return verdict, None, frozenset(verdict.versions)
        changed, same = check(key.step, self.cache, verdict.versions)
        if same:
            return self._hit(verdict.ref, same, "the same files as a cached version"), None, frozenset(same)
        if changed is None:
            return verdict, None, frozenset(verdict.versions)
        plural = "s" if len(verdict.versions) != 1 else ""
        detail = f"the copied files differ from all {len(verdict.versions)} cached version{plural}"
        miss = RefVerdict(verdict.ref, "miss", "inputs", versions=verdict.versions, detail=detail)
        return miss, changed, frozenset()


def _slot(record: CacheRecord, index: int) -> tuple[CacheInput, ...]:
    return record.inputs[index] if index < len(record.inputs) else ()


def _combine(key: KeyedStep, per_ref: Sequence[RefVerdict], changed: tuple[str, ...] | None) -> StepVerdict:
    hits = [v for v in per_ref if v.status == "hit"]
    if hits:
        with_results = [v for v in hits if v.newest is not None]
        # compareCacheRecord: newest createdAt first; the given order only breaks ties here.
        load = max(with_results, key=lambda v: v.newest.epoch_ns if v.newest else 0) if with_results else None
        return StepVerdict(
            key.step,
            key.digest,
            "hit",
            None,
            hits[0].detail,
            hits[0].ref,
            load.ref if load else None,
            tuple(per_ref),
            has_layer=bool(with_results),
        )
    for status in ("context", "unknown"):
        found = [v for v in per_ref if v.status == status]
        if found:
            layered = any(v.has_result for v in found)
            return StepVerdict(
                key.step,
                key.digest,
                found[0].status,
                None,
                found[0].detail,
                None,
                None,
                tuple(per_ref),
                None,
                layered,
            )
    misses = [v for v in per_ref if v.cause is not None]
    if not misses:  # no cache could be imported
        detail = per_ref[0].detail if per_ref else "no cache given"
        return StepVerdict(key.step, key.digest, "miss", None, detail, None, None, tuple(per_ref))
    worst = max(misses, key=lambda v: _CAUSE_RANK[v.cause or "instruction"])
    detail = f"{worst.detail} in {worst.ref}" if worst.detail else ""
    return StepVerdict(key.step, key.digest, "miss", worst.cause, detail, None, None, tuple(per_ref), changed)


def explain_build(
    plan: BuildPlan,
    keys: Sequence[KeyedStep],
    caches: Sequence[ImportedCache],
    *,
    platform: str = "linux/amd64",
    base_roots: Mapping[str, frozenset[Digest]] | None = None,
    content_check: ContentCheck | None = None,
    notes: Sequence[str] = (),
) -> Explanation:
    """Each step of ``plan`` (in build order) against every cache, and the combined verdict.

    ``keys`` hold one key per planned step; ``base_roots`` the root record digests of each resolved
    ``FROM`` reference (without them a base is taken on trust: any root record will do, and the notes say so);
    ``content_check`` compares a local build context with a cached copy's versions (``--context``).
    """
    by_step = {(k.step.stage, k.step.number): k for k in keys}
    roots = dict(base_roots or {})
    walks = [_CacheWalk(cache, roots) for cache in caches]
    verdicts: list[StepVerdict] = []
    unresolved: list[str] = []
    for stage in plan.stages:
        if stage.base_kind == "image" and stage.base_ref not in roots and stage.base_ref not in unresolved:
            unresolved.append(stage.base_ref or "")
        parents: list[_Parent] = [walk.base(stage) for walk in walks]
        conditional = [walk.stage_conditional.get(stage.base_stage or "", False) for walk in walks]
        for step in stage.steps:
            key = by_step.get((step.stage, step.number))
            if key is None:
                raise ValueError(f"no key for step {step.label()}")
            per_ref: list[RefVerdict] = []
            changed: tuple[str, ...] | None = None
            for position, walk in enumerate(walks):
                verdict, after = walk.step(key, parents[position])
                if (
                    verdict.status == "context"
                    and key.step.kind in ("COPY", "ADD")
                    and key.step.context_input
                ):
                    verdict, files, after = walk.resolve_context(key, verdict, content_check)
                    if files is not None and changed is None:
                        changed = files
                source_conditional = walk.stage_conditional.get(step.from_stage or "", False)
                if (conditional[position] or source_conditional) and verdict.status == "hit":
                    detail = "hits if the earlier build-context copy does"
                    verdict = RefVerdict(
                        verdict.ref,
                        "context",
                        versions=verdict.records,
                        has_result=verdict.has_result,
                        detail=detail,
                    )
                conditional[position] = conditional[position] or verdict.status == "context"
                per_ref.append(verdict)
                parents[position] = after
            verdicts.append(_combine(key, per_ref, changed))
        for position, walk in enumerate(walks):
            walk.stage_end[stage.name] = parents[position]
            walk.stage_conditional[stage.name] = conditional[position]
    all_notes = list(notes)
    if unresolved:
        all_notes.append(
            "base image(s) not resolved ("
            + ", ".join(unresolved)
            + "): their root records are taken on trust; "
            "give --resolve-bases to check that the cache was built on the same base"
        )
    return Explanation(tuple(c.ref for c in caches), plan.target, platform, tuple(verdicts), tuple(all_notes))


def _step_json(verdict: StepVerdict, platform: str) -> dict[str, Any]:
    step = verdict.step
    return {
        "stage": step.stage,
        "number": step.number,
        "total": step.total,
        "kind": step.kind,
        "line": step.line,
        "label": step.label(),
        "digest": verdict.digest,
        "status": verdict.status,
        "cause": verdict.cause,
        "detail": verdict.detail,
        "hitRef": verdict.hit_ref,
        "loadRef": verdict.load_ref,
        "changedFiles": list(verdict.changed_files) if verdict.changed_files is not None else None,
        "hasLayer": verdict.has_layer,
        "refs": [
            {
                "ref": v.ref,
                "status": v.status,
                "cause": v.cause,
                "records": [int(i) for i in v.records],
                "versions": [int(i) for i in v.versions],
                "newestResult": v.newest.text if v.newest is not None else None,
                "detail": v.detail,
            }
            for v in verdict.refs
        ],
    }


def explanation_to_json(explanation: Explanation) -> dict[str, Any]:
    """The ``explain --json`` document (``inspector/schemas/explain.schema.json``)."""
    cold, runs = explanation.cold_from, explanation.runs_from
    return {
        "schemaVersion": 1,
        "refs": list(explanation.refs),
        "target": explanation.target,
        "platform": explanation.platform,
        "allCached": explanation.all_cached,
        "coldFrom": _step_json(cold, explanation.platform) if cold is not None else None,
        "runsFrom": _step_json(runs, explanation.platform) if runs is not None else None,
        "steps": [_step_json(v, explanation.platform) for v in explanation.steps],
        "notes": list(explanation.notes),
    }


_MARKDOWN_MARKS = {
    "hit": "✓ hit",
    "miss": "✗ miss",
    "context": "~ depends on content",
    "unknown": "? unknown",
}


def explanation_markdown(explanation: Explanation) -> str:
    """The CI job summary: where the build turns cold, then one table row per step."""
    from inspector._sanitize import markdown_text

    cold = explanation.cold_from
    runs = explanation.runs_from
    if cold is not None:
        headline = f"cacheinspect explain: this build will be cold from {markdown_text(cold.step.label())}"
    elif runs is not None:
        headline = f"cacheinspect explain: every key hits, but no cache holds the layers: it runs from {markdown_text(runs.step.label())}"
    elif explanation.all_cached:
        headline = "cacheinspect explain: every step is cached"
    else:
        headline = "cacheinspect explain: no step is certain to miss; some cannot be shown to hit"
    lines = [f"### {headline}", ""]
    if cold is not None and runs is not None and runs is not cold:
        lines += [
            f"No cache holds a layer for the steps before it (mode=min): it runs from {markdown_text(runs.step.label())}.",
            "",
        ]
    lines += ["| step | verdict | detail |", "|---|---|---|"]
    for verdict in explanation.steps:
        if verdict.status == "hit":
            detail = f"from {verdict.hit_ref}"
        elif verdict.status == "miss" and verdict.cause is not None:
            detail = CAUSE_TEXT[verdict.cause]
        else:
            detail = verdict.detail
        if verdict.changed_files:
            detail += (
                "; " + ", ".join(verdict.changed_files[:5]) + (" …" if len(verdict.changed_files) > 5 else "")
            )
        row = (markdown_text(verdict.step.label()), _MARKDOWN_MARKS[verdict.status], markdown_text(detail))
        lines.append("| " + " | ".join(row) + " |")
    lines += [""] + [f"- {markdown_text(note)}" for note in explanation.notes]
    return "\n".join(lines) + "\n"
