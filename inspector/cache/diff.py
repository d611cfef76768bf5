"""``diff_caches``: what changed between two caches, and where the second stops matching the first (pure).

Works on two ``inspect_cache`` reports, A (e.g. ``main``) and B (e.g. a branch,
or today's cache):

* **Layers** are compared by blob digest: added (only in B), removed (only in
  A), shared, each with its bytes; and, when blobs were checked, the layers a
  registry no longer has on either side.
* **Records** are compared as multisets of (digest, has a result), since one
  digest can occur several times in a config.
* **Steps.** A record's digest hashes its operation but not its inputs (spec
  §2.2), so a step *matches* the way BuildKit's import matches it: same record
  digest, the same number of input slots, and in every slot some alternative
  with the same selector linking to a matching record (roots match by digest).
  A step can therefore differ with an unchanged record digest: its base image,
  a stage it copies from, or the build-context files it reads changed.
* **Stage alignment** (A's stages in order, each rule over the still unpaired
  stages, first candidate of B in stage order):

  1. ``first-step``: the first steps match;
  2. ``base``: the same base: image bases sharing a root record (the manifest
     key or ChainID key of the ``FROM`` image) or a ChainID; ``FROM scratch``
     with ``FROM scratch``; ``FROM`` stages that are already paired;
  3. ``position``: the same kind of base (image, stage, scratch, unknown).

  Stages left over exist in one cache only. In each pair the steps are walked
  in order; the first step that does not match is where the cache stops
  matching: it and every later step of that stage are rebuilt.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

from inspector.cache.analysis import CacheGraph, Stage, Step
from inspector.cache.config import CacheConfig, CacheInput, CacheRecord
from inspector.cache.fetch import Form
from inspector.cache.report import CacheReport, base_label, stage_label
from inspector.oci.digest import Digest
from inspector.oci.models import Descriptor

__all__ = [
    "CacheDiff",
    "CacheSide",
    "ChangedInput",
    "LayerDiff",
    "RecordCount",
    "RecordDiff",
    "StageDiff",
    "StageRef",
    "StepDifference",
    "diff_caches",
    "diff_to_json",
    "match_records",
]

AlignedBy = Literal["first-step", "base", "position"]
StepChange = Literal["changed", "added", "removed"]
ChangedInputKind = Literal["base", "previous-step", "stage", "context", "image", "unknown"]


@dataclass(frozen=True, slots=True)
class CacheSide:
    """What one side of a diff is."""

    source: str
    digest: Digest
    form: Form
    mode: Literal["min", "max"] | None
    config: Digest
    layers: int
    size: int
    records: int | None
    config_error: str | None
    blobs_checked: bool


@dataclass(frozen=True, slots=True)
class LayerDiff:
    """Layer blobs by digest. ``missing_in_*`` are layers a registry HEAD found absent (empty if unchecked)."""

    added: tuple[Descriptor, ...]
    removed: tuple[Descriptor, ...]
    shared: tuple[Descriptor, ...]
    missing_in_a: tuple[Digest, ...]
    missing_in_b: tuple[Digest, ...]

    @property
    def added_size(self) -> int:
        return sum(d.size for d in self.added)

    @property
    def removed_size(self) -> int:
        return sum(d.size for d in self.removed)

    @property
    def shared_size(self) -> int:
        return sum(d.size for d in self.shared)


@dataclass(frozen=True, slots=True)
class RecordCount:
    digest: Digest
    result: bool
    count: int


@dataclass(frozen=True, slots=True)
class RecordDiff:
    """Records as multisets of (digest, has a result)."""

    a: int
    b: int
    shared: int
    only_in_a: tuple[RecordCount, ...]
    only_in_b: tuple[RecordCount, ...]


@dataclass(frozen=True, slots=True)
class StageRef:
    index: int
    label: str
    base: str
    steps: int


@dataclass(frozen=True, slots=True)
class ChangedInput:
    """An input slot of B's step with no alternative matching A's: where the difference came from.

    ``stage`` and ``stage_label`` name B's stage for ``kind == "stage"``.
    """

    slot: int
    kind: ChangedInputKind
    stage: int | None = None
    stage_label: str | None = None


@dataclass(frozen=True, slots=True)
class StepDifference:
    """The first step of a stage pair that does not match.

    ``changed``: both have a step at ``position`` and they differ; ``added``:
    every step of A matched and B goes on; ``removed``: every step of B matched
    and A went on.
    """

    change: StepChange
    position: int
    number_a: int | None
    number_b: int | None
    record_a: Digest | None
    record_b: Digest | None
    changed_inputs: tuple[ChangedInput, ...] = ()
    instruction_a: str | None = None  # the step's Dockerfile label, when show's naming gave one
    instruction_b: str | None = None

    @property
    def record_changed(self) -> bool:
        return self.record_a != self.record_b


@dataclass(frozen=True, slots=True)
class StageDiff:
    a: StageRef
    b: StageRef
    aligned_by: AlignedBy
    matching: int
    first_difference: StepDifference | None


@dataclass(frozen=True, slots=True)
class CacheDiff:
    a: CacheSide
    b: CacheSide
    layers: LayerDiff
    records: RecordDiff | None
    stages: tuple[StageDiff, ...]
    only_in_a: tuple[StageRef, ...]
    only_in_b: tuple[StageRef, ...]

    @property
    def comparable(self) -> bool:
        """Whether records and stages were compared (both configs were read)."""
        return self.records is not None

    @property
    def identical(self) -> bool:
        """No layer, record, stage or blob-availability difference (with unreadable configs: same config)."""
        layers = self.layers
        if layers.added or layers.removed or set(layers.missing_in_a) != set(layers.missing_in_b):
            return False
        if self.records is None:
            return self.a.config == self.b.config
        if self.records.only_in_a or self.records.only_in_b or self.only_in_a or self.only_in_b:
            return False
        return all(stage.first_difference is None for stage in self.stages)


def _side(report: CacheReport) -> CacheSide:
    docs = report.documents
    return CacheSide(
        source=report.source,
        digest=docs.manifest.digest,
        form=docs.form,
        mode=report.mode,
        config=docs.config_descriptor.digest,
        layers=len(report.layers),
        size=report.total_size,
        records=len(docs.config.records) if docs.config is not None else None,
        config_error=docs.config_error,
        blobs_checked=report.health.blobs_checked,
    )


def _layers(a: CacheReport, b: CacheReport) -> LayerDiff:
    in_a = {layer.digest for layer in a.layers}
    in_b = {layer.digest for layer in b.layers}
    return LayerDiff(
        added=tuple(layer.descriptor for layer in b.layers if layer.digest not in in_a),
        removed=tuple(layer.descriptor for layer in a.layers if layer.digest not in in_b),
        shared=tuple(layer.descriptor for layer in a.layers if layer.digest in in_b),
        missing_in_a=tuple(layer.digest for layer in a.layers if layer.present is False),
        missing_in_b=tuple(layer.digest for layer in b.layers if layer.present is False),
    )


def _records(a: CacheConfig, b: CacheConfig) -> RecordDiff:
    count_a = Counter((r.digest, r.has_result) for r in a.records)
    count_b = Counter((r.digest, r.has_result) for r in b.records)

    def listed(counter: Counter[tuple[Digest, bool]]) -> tuple[RecordCount, ...]:
        return tuple(RecordCount(d, result, n) for (d, result), n in sorted(counter.items()))

    return RecordDiff(
        a=len(a.records),
        b=len(b.records),
        shared=sum((count_a & count_b).values()),
        only_in_a=listed(count_a - count_b),
        only_in_b=listed(count_b - count_a),
    )


def _links_first(records: Sequence[CacheRecord]) -> list[int]:
    """Record indexes, each after every record it links to (iterative; the config parser rejects loops)."""
    state = [0] * len(records)
    order: list[int] = []
    for start in range(len(records)):
        if state[start]:
            continue
        state[start] = 1
        stack = [(start, iter([i.link for slot in records[start].inputs for i in slot]))]
        while stack:
            node, links = stack[-1]
            target = next(links, None)
            if target is None:
                stack.pop()
                state[node] = 2
                order.append(node)
            elif state[target] == 0:
                state[target] = 1
                stack.append((target, iter([i.link for slot in records[target].inputs for i in slot])))
    return order


def _slot_matches(
    slot_a: tuple[CacheInput, ...], slot_b: tuple[CacheInput, ...], matches: list[frozenset[int]]
) -> bool:
    return any(x.selector == y.selector and y.link in matches[x.link] for x in slot_a for y in slot_b)


def match_records(a: CacheConfig, b: CacheConfig) -> list[frozenset[int]]:
    """For each record of A, the records of B that BuildKit would consider the same cache key."""
    by_digest: dict[Digest, list[int]] = {}
    for index, record in enumerate(b.records):
        by_digest.setdefault(record.digest, []).append(index)
    matches: list[frozenset[int]] = [frozenset()] * len(a.records)
    for index in _links_first(a.records):
        record = a.records[index]
        matches[index] = frozenset(
            candidate
            for candidate in by_digest.get(record.digest, ())
            if len(b.records[candidate].inputs) == len(record.inputs)
            and all(
                _slot_matches(sa, sb, matches)
                for sa, sb in zip(record.inputs, b.records[candidate].inputs, strict=True)
            )
        )
    return matches


def _ref(stage: Stage, graph: CacheGraph) -> StageRef:
    return StageRef(stage.index, stage_label(stage), base_label(stage, graph), len(stage.steps))


def _same_base(sa: Stage, sb: Stage, a: CacheConfig, b: CacheConfig, paired: dict[int, int]) -> bool:
    base_a, base_b = sa.base, sb.base
    if base_a.kind == "scratch" or base_b.kind == "scratch":
        return base_a.kind == base_b.kind
    if base_a.kind == "stage" or base_b.kind == "stage":
        return (
            base_a.kind == base_b.kind
            and base_a.stage is not None
            and paired.get(base_a.stage) == base_b.stage
        )
    image_a, image_b = base_a.image, base_b.image
    if image_a is None or image_b is None:
        return False
    if image_a.chain_id is not None and image_a.chain_id == image_b.chain_id:
        return True
    roots_a = {a.records[r].digest for r in image_a.roots}
    return any(b.records[r].digest in roots_a for r in image_b.roots)


def _align(
    ga: CacheGraph, gb: CacheGraph, matches: list[frozenset[int]]
) -> list[tuple[Stage, Stage, AlignedBy]]:
    paired: dict[int, int] = {}
    how: dict[int, AlignedBy] = {}

    def run(rule: AlignedBy) -> None:
        for sa in ga.stages:
            if sa.index in paired:
                continue
            for sb in gb.stages:
                if sb.index in paired.values():
                    continue
                if rule == "first-step":
                    ok = bool(sa.steps and sb.steps and sb.steps[0].record in matches[sa.steps[0].record])
                elif rule == "base":
                    ok = _same_base(sa, sb, ga.config, gb.config, paired)
                else:
                    ok = sa.base.kind == sb.base.kind
                if ok:
                    paired[sa.index] = sb.index
                    how[sa.index] = rule
                    break

    rules: tuple[AlignedBy, ...] = ("first-step", "base", "position")
    for rule in rules:
        run(rule)
    return [(ga.stages[i], gb.stages[paired[i]], how[i]) for i in sorted(paired)]


def _classify(slot: int, position: int, step: Step, stage: Stage, graph: CacheGraph) -> ChangedInput:
    for item in step.inputs:
        if item.slot == slot:
            if item.kind == "stage" and item.stage is not None:
                return ChangedInput(slot, "stage", item.stage, stage_label(graph.stages[item.stage]))
            return ChangedInput(slot, item.kind)
    if slot == 0:
        if position > 0:
            return ChangedInput(0, "previous-step")
        if stage.base.kind == "stage" and stage.base.stage is not None:
            return ChangedInput(0, "stage", stage.base.stage, stage_label(graph.stages[stage.base.stage]))
        if stage.base.kind in ("image", "unknown"):
            return ChangedInput(0, "base")
    return ChangedInput(slot, "unknown")


def _compare_steps(
    sa: Stage, sb: Stage, ga: CacheGraph, gb: CacheGraph, matches: list[frozenset[int]]
) -> tuple[int, StepDifference | None]:
    a, b = ga.config, gb.config
    for position, (x, y) in enumerate(zip(sa.steps, sb.steps, strict=False)):
        if y.record in matches[x.record]:
            continue
        ra, rb = a.records[x.record], b.records[y.record]
        if len(ra.inputs) != len(rb.inputs):
            changed = tuple(_classify(slot, position, y, sb, gb) for slot in range(len(rb.inputs)))
        else:
            changed = tuple(
                _classify(slot, position, y, sb, gb)
                for slot, (slot_a, slot_b) in enumerate(zip(ra.inputs, rb.inputs, strict=True))
                if not _slot_matches(slot_a, slot_b, matches)
            )
        return position, StepDifference(
            "changed",
            position,
            x.number,
            y.number,
            ra.digest,
            rb.digest,
            changed,
            x.instruction,
            y.instruction,
        )
    common = min(len(sa.steps), len(sb.steps))
    if len(sb.steps) > common:
        step = sb.steps[common]
        digest = b.records[step.record].digest
        return common, StepDifference(
            "added", common, None, step.number, None, digest, instruction_b=step.instruction
        )
    if len(sa.steps) > common:
        step = sa.steps[common]
        return common, StepDifference(
            "removed",
            common,
            step.number,
            None,
            a.records[step.record].digest,
            None,
            instruction_a=step.instruction,
        )
    return common, None


def diff_caches(a: CacheReport, b: CacheReport) -> CacheDiff:
    """Compare cache A with cache B (B is "the new one": added means only in B)."""
    side_a, side_b = _side(a), _side(b)
    layers = _layers(a, b)
    ca, cb = a.documents.config, b.documents.config
    ga, gb = a.graph, b.graph
    if ca is None or cb is None or ga is None or gb is None:
        return CacheDiff(side_a, side_b, layers, None, (), (), ())
    matches = match_records(ca, cb)
    stages = []
    for sa, sb, how in _align(ga, gb, matches):
        matching, difference = _compare_steps(sa, sb, ga, gb, matches)
        stages.append(StageDiff(_ref(sa, ga), _ref(sb, gb), how, matching, difference))
    paired_a = {s.a.index for s in stages}
    paired_b = {s.b.index for s in stages}
    return CacheDiff(
        side_a,
        side_b,
        layers,
        _records(ca, cb),
        tuple(stages),
        tuple(_ref(s, ga) for s in ga.stages if s.index not in paired_a),
        tuple(_ref(s, gb) for s in gb.stages if s.index not in paired_b),
    )


def _side_json(side: CacheSide) -> dict[str, Any]:
    return {
        "reference": side.source,
        "digest": str(side.digest),
        "form": side.form,
        "mode": side.mode,
        "config": str(side.config),
        "layers": side.layers,
        "size": side.size,
        "records": side.records,
        "configError": side.config_error,
        "blobsChecked": side.blobs_checked,
    }


def _stage_json(ref: StageRef) -> dict[str, Any]:
    return {"index": ref.index, "label": ref.label, "base": ref.base, "steps": ref.steps}


def _descriptors_json(descriptors: tuple[Descriptor, ...]) -> list[dict[str, Any]]:
    return [{"digest": str(d.digest), "size": d.size, "mediaType": d.media_type} for d in descriptors]


def _difference_json(difference: StepDifference | None) -> dict[str, Any] | None:
    if difference is None:
        return None
    return {
        "change": difference.change,
        "position": difference.position,
        "stepA": difference.number_a,
        "stepB": difference.number_b,
        "recordA": str(difference.record_a) if difference.record_a else None,
        "recordB": str(difference.record_b) if difference.record_b else None,
        "recordChanged": difference.record_changed,
        "changedInputs": [
            {"slot": c.slot, "kind": c.kind, "stage": c.stage, "stageLabel": c.stage_label}
            for c in difference.changed_inputs
        ],
        "instructionA": difference.instruction_a,
        "instructionB": difference.instruction_b,
    }


def diff_to_json(diff: CacheDiff) -> dict[str, Any]:
    """The stable ``diff --json`` document (schema: ``inspector/schemas/diff.schema.json``)."""
    layers = diff.layers
    records = diff.records

    def counts(items: tuple[RecordCount, ...]) -> list[dict[str, Any]]:
        return [{"digest": str(r.digest), "result": r.result, "count": r.count} for r in items]

    return {
        "a": _side_json(diff.a),
        "b": _side_json(diff.b),
        "identical": diff.identical,
        "sameDocument": diff.a.digest == diff.b.digest,
        "sameConfig": diff.a.config == diff.b.config,
        "comparable": diff.comparable,
        "layers": {
            "added": _descriptors_json(layers.added),
            "removed": _descriptors_json(layers.removed),
            "shared": _descriptors_json(layers.shared),
            "addedSize": layers.added_size,
            "removedSize": layers.removed_size,
            "sharedSize": layers.shared_size,
            "missingInA": [str(d) for d in layers.missing_in_a],
            "missingInB": [str(d) for d in layers.missing_in_b],
        },
        "records": None
        if records is None
        else {
            "a": records.a,
            "b": records.b,
            "shared": records.shared,
            "onlyInA": counts(records.only_in_a),
            "onlyInB": counts(records.only_in_b),
        },
        "stages": [
            {
                "a": _stage_json(stage.a),
                "b": _stage_json(stage.b),
                "alignedBy": stage.aligned_by,
                "matchingSteps": stage.matching,
                "firstDifference": _difference_json(stage.first_difference),
            }
            for stage in diff.stages
        ],
        "onlyInA": [_stage_json(ref) for ref in diff.only_in_a],
        "onlyInB": [_stage_json(ref) for ref in diff.only_in_b],
    }
