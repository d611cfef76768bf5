"""Reconstruct Dockerfile stages from a cache config (pure, no I/O).

Nothing in a cache names a stage (spec ``buildkit-cache.md`` §3). What can be
derived exactly is the record graph and the layer chains; stages follow from it:

* **Bases.** An image ``FROM`` leaves two root records: a ChainID key and a
  manifest key (§3.3). The ChainID key is recomputed from the layers' diffIDs,
  so a root that matches is *verified* to be an image whose rootfs is exactly
  that layer prefix; its twin in the same input slot is the manifest key.
* **Stages.** Input 0 of RUN/COPY/ADD/WORKDIR is the state the instruction
  builds on, so following input-0 links from a base gives one stage's steps.
  Where two records build on the same record, the chain branches: each branch
  starts a stage whose base is the stage it grew from (``FROM other-stage``).
* **Variants.** A record digest names an *op* (``solver/exporter.go`` rootKey);
  the cache key is the digest *and* its input links (``cache/remotecache/v1/chains.go``
  item ids). So the same step is recorded once per version of a non-stage
  input (one ``COPY . .`` per build-context version). Records with the same
  digest, the same previous state and the same stage inputs, differing only
  in inputs that are roots (context, images), are one step with variants; the
  same op on another state, or copying from another stage, is another step.
* **Edges.** Inputs 1+ that link to another stage's record (with a path
  selector) are ``COPY --from`` / ``RUN --mount=from`` edges; inputs that link
  only to content-checksum roots come from the build context.
* **Layers.** A step's own layers are its result chain minus the chain of the
  nearest ancestor that has a result (or the base image's layers).

The model carries ``name`` fields left empty here, for naming from a
Dockerfile or provenance later.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Literal

from inspector.cache.config import CacheConfig, CacheInput, CacheRecord
from inspector.oci.digest import Digest, sha256_digest

__all__ = [
    "BaseImage",
    "Basis",
    "CacheGraph",
    "Stage",
    "StageBase",
    "Step",
    "StepInput",
    "analyze",
    "chain_id",
    "image_manifest_key",
    "source_record_key",
]

BaseKind = Literal["image", "stage", "scratch", "unknown"]
# How sure a name is: "exact" (provenance, image history, or a recomputed root key), "matched"
# (aligned with a Dockerfile), "structural" (from the cache alone, no outside information).
Basis = Literal["exact", "matched", "structural"]
InputKind = Literal["stage", "context", "image", "unknown"]


def chain_id(diff_ids: list[Digest]) -> Digest:
    """OCI ChainID of a layer stack: C1 = diffID1, Cn = sha256(C(n-1) + " " + diffIDn)."""
    if not diff_ids:
        raise ValueError("ChainID of an empty layer stack")
    current = diff_ids[0]
    for diff in diff_ids[1:]:
        current = sha256_digest(f"{current} {diff}")
    return current


def source_record_key(cache_key: str) -> Digest:
    """Record digest of an image source op's cache key (``solver/cachemanager.go`` rootKey, output 0)."""
    op_digest = sha256_digest("buildkit.source.v0:" + cache_key)
    return sha256_digest(f"{op_digest}@0")


def image_manifest_key(
    digest: Digest,
    os: str,
    arch: str,
    variant: str = "",
    os_version: str = "",
    os_features: tuple[str, ...] = (),
) -> Digest:
    """The manifest-key cache key of an image source (``source/containerimage/pull.go`` mainManifestKey).

    Go marshals the struct in field order; ``Variant``, ``OSVersion`` and ``OSFeatures`` are omitempty
    (the last two since BuildKit v0.13, so a Windows base's key carries its OS version).
    """
    text = f'{{"Digest":"{digest}","OS":"{os}","Arch":"{arch}"'
    if variant:
        text += f',"Variant":"{variant}"'
    if os_version:
        text += f',"OSVersion":"{os_version}"'
    if os_features:
        text += ',"OSFeatures":[' + ",".join(f'"{feature}"' for feature in os_features) + "]"
    return sha256_digest(text + "}")


@dataclass(frozen=True, slots=True)
class BaseImage:
    """An external image a stage starts ``FROM``."""

    roots: tuple[int, ...]
    layers: tuple[int, ...] = ()
    chain_id: Digest | None = None
    verified: bool = False
    name: str | None = None
    basis: Basis = "structural"
    platform: str | None = None


@dataclass(frozen=True, slots=True)
class StageBase:
    kind: BaseKind
    image: BaseImage | None = None
    stage: int | None = None


@dataclass(frozen=True, slots=True)
class StepInput:
    """Input ``slot`` of a step that is not its own stage's previous state."""

    slot: int
    kind: InputKind
    stage: int | None = None
    record: int | None = None
    selector: str = ""


@dataclass(frozen=True, slots=True)
class Step:
    """One instruction. ``variants``: the other records of the same step (other non-stage input versions)."""

    record: int
    number: int
    layers: tuple[int, ...] = ()
    variants: tuple[int, ...] = ()
    variant_layers: tuple[int, ...] = ()
    inputs: tuple[StepInput, ...] = ()
    inferred_layers: bool = False
    instruction: str | None = None
    basis: Basis = "structural"
    line: int | None = None


@dataclass(frozen=True, slots=True)
class Stage:
    index: int
    base: StageBase
    steps: tuple[Step, ...]
    name: str | None = None
    basis: Basis = "structural"

    @property
    def layers(self) -> tuple[int, ...]:
        """Base image layers (for image bases) then each step's own layers (and its other versions')."""
        own = tuple(layer for step in self.steps for layer in (*step.layers, *step.variant_layers))
        if self.base.image is not None:
            return self.base.image.layers + own
        return own


@dataclass(frozen=True, slots=True)
class CacheGraph:
    config: CacheConfig
    stages: tuple[Stage, ...]
    bases: tuple[BaseImage, ...]
    context_roots: tuple[int, ...]
    unattributed_layers: tuple[int, ...] = field(default=())
    notes: tuple[str, ...] = ()
    warnings: tuple[str, ...] = ()  # notes serious enough for a line on stderr (also among the notes)


def _diff_id(
    config: CacheConfig, descriptors: Mapping[Digest, Mapping[str, str]], layer: int
) -> Digest | None:
    entry = config.layers[layer]
    if entry.annotations is not None and entry.annotations.diff_id is not None:
        return entry.annotations.diff_id
    value = descriptors.get(entry.blob, {}).get("containerd.io/uncompressed")
    if value is None:
        return None
    try:
        return Digest(value)
    except ValueError:
        return None


def _verified_roots(
    config: CacheConfig, annotations: Mapping[Digest, Mapping[str, str]]
) -> dict[Digest, int]:
    """Map the ChainID record key of every layer prefix in the cache to that prefix's top layer."""
    chain_ids: dict[int, Digest | None] = {}
    keys: dict[Digest, int] = {}
    for member in config.parents_first:
        diff = _diff_id(config, annotations, member)
        parent = config.layers[member].parent
        parent_id = chain_ids.get(parent) if parent != -1 else None
        if diff is None or (parent != -1 and parent_id is None):
            chain_ids[member] = None
            continue
        current = diff if parent_id is None else sha256_digest(f"{parent_id} {diff}")
        chain_ids[member] = current
        keys.setdefault(source_record_key(current), member)
    return keys


def _best_chain(config: CacheConfig, record: CacheRecord) -> tuple[int, ...] | None:
    """The newest result's chain (current exporters write at most one)."""
    if record.results:
        newest = max(record.results, key=lambda r: r.created_at)
        return config.chain(newest.layer)
    if record.chains:
        return max(record.chains, key=lambda c: c.created_at).layers
    return None


def analyze(config: CacheConfig, annotations: Mapping[Digest, Mapping[str, str]]) -> CacheGraph:
    """Group records into stages. ``annotations`` maps blob digest -> its wrapper descriptor's annotations."""
    records = config.records
    is_root = [r.is_root for r in records]
    root_key_layer = _verified_roots(config, annotations)

    # Bases: group root alternatives found together in an input-0 slot; a verified ChainID root names the layers.
    bases: dict[frozenset[int], BaseImage] = {}

    def base_for(group: frozenset[int]) -> BaseImage:
        if group not in bases:
            top = next(
                (
                    root_key_layer[records[i].digest]
                    for i in sorted(group)
                    if records[i].digest in root_key_layer
                ),
                None,
            )
            if top is None:
                bases[group] = BaseImage(roots=tuple(sorted(group)))
            else:
                layers = config.chain(top)
                diffs = [_diff_id(config, annotations, i) for i in layers]
                cid = chain_id([d for d in diffs if d is not None])
                bases[group] = BaseImage(
                    roots=tuple(sorted(group)), layers=layers, chain_id=cid, verified=True
                )
        return bases[group]

    canonical, variants = _variants(config, is_root)
    parent: dict[int, int] = {}
    starts: dict[int, StageBase] = {}
    for index, record in enumerate(records):
        if is_root[index] or canonical[index] != index:
            continue
        slot0 = record.inputs[0]
        previous = [i for i in slot0 if not is_root[i.link]]
        if previous:
            if _continues(config, record, previous[0]):
                parent[index] = canonical[previous[0].link]
            else:  # input 0 is the source of a copy onto an empty state: FROM scratch + COPY
                starts[index] = StageBase("scratch")
            continue
        group = frozenset(i.link for i in slot0)
        verified = any(records[i].digest in root_key_layer for i in group)
        if verified or len(group) >= 2:
            starts[index] = StageBase("image", image=base_for(group))
        else:
            starts[index] = StageBase("unknown", image=base_for(group))

    children: dict[int, list[int]] = {}
    for child, par in parent.items():
        children.setdefault(par, []).append(child)

    # Walk input-0 chains into stage segments; a branch starts new stages based on the segment it leaves.
    segments: list[tuple[StageBase, list[int]]] = []
    segment_of: dict[int, int] = {}
    pending: deque[tuple[int, StageBase]] = deque(sorted(starts.items()))
    while pending:
        node, stage_base = pending.popleft()
        members = [node]
        while len(children.get(members[-1], ())) == 1:
            members.append(children[members[-1]][0])
        seg = len(segments)
        segments.append((stage_base, members))
        for member in members:
            segment_of[member] = seg
            for variant in variants.get(member, ()):
                segment_of[variant] = seg
        branches = children.get(members[-1], [])
        if len(branches) > 1:
            pending.extend((child, StageBase("stage", stage=seg)) for child in branches)

    order = _stage_order(segments, segment_of, records, parent)
    renumber = {old: new for new, old in enumerate(order)}

    planned: list[tuple[StageBase, list[int], list[Step], tuple[int, ...] | None]] = []
    for old in order:
        stage_base, members = segments[old]
        if stage_base.kind == "stage" and stage_base.stage is not None:
            stage_base = StageBase("stage", stage=renumber[stage_base.stage])
        steps = _steps(
            config, members, stage_base, parent, is_root, segment_of, renumber, root_key_layer, variants
        )
        first_chain = _best_chain(config, records[steps[0].record]) if steps else None
        base_image = stage_base.image
        if (
            base_image is not None
            and not base_image.verified
            and stage_base.kind == "unknown"
            and first_chain is not None
            and len(first_chain) == 1
        ):
            # One root and a one-layer chain: a copy from the build context onto an empty state.
            context = StepInput(0, "context", record=base_image.roots[0])
            stage_base = StageBase("scratch")
            steps[0] = replace(steps[0], number=1, layers=first_chain, inputs=(context, *steps[0].inputs))
            steps[1:] = [replace(step, number=step.number - 1) for step in steps[1:]]
        planned.append((stage_base, members, steps, first_chain))

    inferred = _inferred_images(planned)
    attributed: set[int] = set()
    stages: list[Stage] = []
    for stage_base, members, steps, _first_chain in planned:
        base_image = stage_base.image
        if base_image is not None and base_image.roots in inferred:
            # One image for every stage on the same root keys; each step's own layers are counted above it.
            stage_base = replace(stage_base, image=inferred[base_image.roots])
            steps = _steps(
                config, members, stage_base, parent, is_root, segment_of, renumber, root_key_layer, variants
            )
        stage = Stage(index=len(stages), base=stage_base, steps=tuple(steps))
        attributed.update(stage.layers)
        stages.append(stage)

    referenced = config.referenced_layers()
    images = tuple(dict.fromkeys(stage.base.image for stage in stages if stage.base.image is not None))
    image_roots = {root for image in images for root in image.roots}
    context_roots = tuple(i for i in range(len(records)) if is_root[i] and i not in image_roots)
    return CacheGraph(
        config=config,
        stages=tuple(stages),
        bases=images,
        context_roots=context_roots,
        unattributed_layers=tuple(sorted(referenced - attributed)),
    )


def _inferred_images(
    planned: list[tuple[StageBase, list[int], list[Step], tuple[int, ...] | None]],
) -> dict[tuple[int, ...], BaseImage]:
    """Layers of each unverified image base, one answer per image (its root keys).

    Nothing names an unverified image's layers, so the first step on it is assumed to add one layer: the
    image is its first chain minus the top. Two stages on the same root keys start from the same image
    (the roots are the image's cache keys), so the image is what all their first chains share; a stage
    whose first step has no result proves nothing and changes nothing (drone-buildkit: stage 1 has no
    result, stage 4's first chain is L0 + L2, so both start from an image of L0, not one of 0 and one of 1).
    """
    candidates: dict[tuple[int, ...], list[tuple[int, ...]]] = {}
    for stage_base, _members, _planned_steps, first_chain in planned:
        image = stage_base.image
        if image is None or image.verified or stage_base.kind not in ("image", "unknown"):
            continue
        found = candidates.setdefault(image.roots, [])
        if first_chain:
            found.append(first_chain[:-1])
    out: dict[tuple[int, ...], BaseImage] = {}
    for roots, chains in candidates.items():
        shared = chains[0] if chains else ()
        for chain in chains[1:]:
            shared = shared[: _common_prefix(shared, chain)]
        out[roots] = BaseImage(roots, layers=shared)
    return out


def _variants(config: CacheConfig, is_root: list[bool]) -> tuple[list[int], dict[int, tuple[int, ...]]]:
    """Each record's representative, and each representative's other records (see the module docstring).

    Records are visited inputs first, so a step's variants are known before the steps built on them:
    a RUN on every version of ``COPY . .`` then folds into one step too. The representative is the
    variant with the newest result (else the first), the version the latest build wrote.
    """
    records = config.records
    canonical = list(range(len(records)))
    groups: dict[tuple[object, ...], list[int]] = {}
    for index in _inputs_first(records):
        if is_root[index]:
            continue
        record = records[index]
        slot0 = frozenset(canonical[i.link] for i in record.inputs[0])
        others = tuple(
            frozenset(canonical[i.link] for i in slot if not is_root[i.link]) for slot in record.inputs[1:]
        )
        key = (record.digest, slot0, others)
        members = groups.setdefault(key, [])
        members.append(index)
        canonical[index] = members[0]
    out: dict[int, tuple[int, ...]] = {}
    for members in groups.values():
        if len(members) < 2:
            continue
        newest = max(members, key=lambda i: (_newest_time(records[i]), -i))
        for member in members:
            canonical[member] = newest
        out[newest] = tuple(m for m in members if m != newest)
    return canonical, out


def _newest_time(record: CacheRecord) -> int:
    times = [r.created_at.epoch_ns for r in record.results] + [c.created_at.epoch_ns for c in record.chains]
    return max(times, default=-(2**63))


def _inputs_first(records: tuple[CacheRecord, ...]) -> list[int]:
    """Record indexes, each after every record its inputs link to (records are acyclic once parsed)."""
    waiting = [len({i.link for slot in r.inputs for i in slot}) for r in records]
    users: dict[int, list[int]] = {}
    for index, record in enumerate(records):
        for link in {i.link for slot in record.inputs for i in slot}:
            users.setdefault(link, []).append(index)
    ready = [i for i, count in enumerate(waiting) if count == 0]
    order: list[int] = []
    while ready:
        index = ready.pop()
        order.append(index)
        for user in users.get(index, ()):
            waiting[user] -= 1
            if not waiting[user]:
                ready.append(user)
    return order


# Every ExecOp mount yields a path selector; the rootfs mount's is sha256("/") (ops/exec.go getMountDeps).
ROOT_SELECTOR = sha256_digest("/")


def _continues(config: CacheConfig, record: CacheRecord, link: CacheInput) -> bool:
    """Does ``record`` build on the state ``link`` points to (rather than copy out of it onto scratch)?

    Layer chains decide when both records have results: a continuation extends
    the previous chain. Otherwise the selector does: none (COPY/WORKDIR
    destination) or the rootfs mount's ``/`` (RUN) continue; any other path is
    a copy source.
    """
    mine = _best_chain(config, record)
    theirs = _best_chain(config, config.records[link.link])
    if mine is not None and theirs is not None:
        return mine[: len(theirs)] == theirs
    return link.selector in ("", ROOT_SELECTOR)


def _stage_order(
    segments: list[tuple[StageBase, list[int]]],
    segment_of: dict[int, int],
    records: tuple[CacheRecord, ...],
    parent: dict[int, int],
) -> list[int]:
    """Topological order (a stage after the stages it grows from or copies from), then by first record."""
    deps: dict[int, set[int]] = {i: set() for i in range(len(segments))}
    for seg, (stage_base, members) in enumerate(segments):
        if stage_base.stage is not None:
            deps[seg].add(stage_base.stage)
        for member in members:
            for slot in records[member].inputs:
                for link in slot:
                    source = segment_of.get(link.link)
                    if source is not None and source != seg and parent.get(member) != link.link:
                        deps[seg].add(source)
    order: list[int] = []
    placed: set[int] = set()
    while len(order) < len(segments):
        ready = [s for s in range(len(segments)) if s not in placed and deps[s] <= placed]
        if (
            not ready
        ):  # dependency cycle between segments (records themselves are acyclic): fall back to index order
            ready = [min(s for s in range(len(segments)) if s not in placed)]
        chosen = min(ready, key=lambda s: segments[s][1][0])
        order.append(chosen)
        placed.add(chosen)
    return order


def _steps(
    config: CacheConfig,
    members: list[int],
    stage_base: StageBase,
    parent: dict[int, int],
    is_root: list[bool],
    segment_of: dict[int, int],
    renumber: dict[int, int],
    root_key_layer: dict[Digest, int],
    variants: Mapping[int, tuple[int, ...]],
) -> list[Step]:
    records = config.records
    first_number = 2 if stage_base.kind in ("image", "unknown") else 1
    steps: list[Step] = []
    for position, member in enumerate(members):
        record = records[member]
        inputs: list[StepInput] = []
        for slot, alternatives in enumerate(record.inputs):
            if slot == 0 and (member in parent or stage_base.kind in ("image", "unknown")):
                continue
            inputs.append(
                _classify_input(slot, alternatives, is_root, segment_of, renumber, records, root_key_layer)
            )
        steps.append(
            Step(
                record=member,
                number=first_number + position,
                inputs=tuple(inputs),
                variants=variants.get(member, ()),
            )
        )

    # Own layers: each result chain minus the nearest earlier chain it extends. Chains are built one
    # at a time (a deep cache's chains together hold depth² entries).
    base_layers = stage_base.image.layers if stage_base.image is not None else ()
    reference: tuple[int, ...] = _ancestor_chain(config, members[0], parent) or base_layers
    pending: list[int] = []  # positions of steps without results since the last chain
    for position, step in enumerate(steps):
        extra: dict[int, None] = {}
        for variant in step.variants:  # each version's own layers, relative to the state it was built on
            other = _best_chain(config, records[variant])
            if other is not None:
                extra.update(dict.fromkeys(other[_common_prefix(reference, other) :]))
        if extra:
            steps[position] = step = replace(step, variant_layers=tuple(extra))
        chain = _best_chain(config, records[step.record])
        if chain is None:
            pending.append(position)
            continue
        common = _common_prefix(reference, chain)
        own = chain[common:]
        between = [*pending, position]
        if len(between) > 1 and len(own) == len(between):
            for offset, pos in enumerate(between):
                steps[pos] = replace(steps[pos], layers=own[offset : offset + 1], inferred_layers=True)
        else:
            steps[position] = replace(step, layers=own)
        pending = []
        reference = chain
    return steps


def _classify_input(
    slot: int,
    alternatives: tuple[CacheInput, ...],
    is_root: list[bool],
    segment_of: dict[int, int],
    renumber: dict[int, int],
    records: tuple[CacheRecord, ...],
    root_key_layer: dict[Digest, int],
) -> StepInput:
    links = list(alternatives)
    for link in links:
        if not is_root[link.link] and link.link in segment_of:
            return StepInput(slot, "stage", renumber[segment_of[link.link]], link.link, link.selector)
    if any(records[link.link].digest in root_key_layer for link in links) or (
        len(links) >= 2 and all(is_root[link.link] for link in links)
    ):
        return StepInput(slot, "image", record=links[0].link)
    if links and all(is_root[link.link] for link in links):
        return StepInput(slot, "context", record=links[0].link)
    return StepInput(slot, "unknown")


def _ancestor_chain(config: CacheConfig, record: int, parent: dict[int, int]) -> tuple[int, ...] | None:
    """Result chain of the nearest input-0 ancestor that has one."""
    current = parent.get(record)
    while current is not None:
        chain = _best_chain(config, config.records[current])
        if chain is not None:
            return chain
        current = parent.get(current)
    return None


def _common_prefix(a: tuple[int, ...], b: tuple[int, ...]) -> int:
    if len(a) <= len(b) and b[: len(a)] == a:  # the usual case, compared in C
        return len(a)
    n = 0
    for x, y in zip(a, b, strict=False):
        if x != y:
            break
        n += 1
    return n
