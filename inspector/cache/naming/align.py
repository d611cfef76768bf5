"""Put Dockerfile names on reconstructed stages and steps (basis ``matched``).

The cache and the Dockerfile are both trees of steps hanging off their bases:
in the cache, records linked through input 0 (``analysis``); in the Dockerfile,
each stage's steps after its ``FROM`` (a stage ``FROM`` another continues that
stage's branch). Alignment walks both trees together from the bases down. At
each node the Dockerfile's next steps are matched to the cache's child records
by what each record's inputs allow (a RUN links its rootfs with the ``/``
selector, a COPY from the context has a checksum-root input, ``COPY --from``
links another stage's record with a path selector, ``COPY --link`` is a merge
of a separate copy chain, WORKDIR has a single input without selector) and by
how much of the subtree below each pairing also matches. Steps with identical
text under one node are one record in the cache (BuildKit dedupes them), so
they are matched as one group. When two pairings explain the cache equally
well, nothing below that point is named and a note says so.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, replace
from itertools import permutations
from typing import TYPE_CHECKING

from inspector.cache.analysis import ROOT_SELECTOR, BaseImage, CacheGraph, Stage, StageBase, Step, StepInput
from inspector.cache.config import CacheInput
from inspector.cache.naming.dockerfile import (
    BaseConfig,
    BuildPlan,
    PlannedStage,
    PlannedStep,
    plan_dockerfile,
)
from inspector.errors import CacheInspectError

if TYPE_CHECKING:
    from inspector.cache.report import CacheReport
    from inspector.oci.reference import Reference
    from inspector.registry.client import RegistryClient

__all__ = ["DockerfileSource", "label_report", "name_from_dockerfile"]

Group = tuple[PlannedStep, ...]
_EXHAUSTIVE_LIMIT = 7  # children per node matched exhaustively; larger fan-outs are matched greedily


@dataclass(frozen=True, slots=True)
class _Assignment:
    score: int
    mapping: dict[int, Group]
    ambiguous: tuple[str, ...]


_NONE = _Assignment(0, {}, ())


class _Aligner:
    def __init__(self, graph: CacheGraph, plan: BuildPlan) -> None:
        self.graph = graph
        self.plan = plan
        self.records = graph.config.records
        self.is_root = [r.is_root for r in self.records]
        self.children: dict[int, list[int]] = {}
        self.link_diffs: dict[int, int] = {}
        first_of_stage: dict[int, int] = {}
        for stage in graph.stages:
            if not stage.steps:
                continue
            first_of_stage[stage.steps[0].record] = stage.index
            for before, after in zip(stage.steps, stage.steps[1:], strict=False):
                self.children.setdefault(before.record, []).append(after.record)
            if stage.base.kind == "stage" and stage.base.stage is not None:
                branch = graph.stages[stage.base.stage].steps[-1].record
                self.children.setdefault(branch, []).append(stage.steps[0].record)
        # COPY --link: a merge record's input 1 is the first record of a separate copy chain.
        for stage in graph.stages:
            for step in stage.steps:
                record = self.records[step.record]
                if len(record.inputs) == 2 and len(record.inputs[1]) == 1:
                    link = record.inputs[1][0]
                    if not link.selector and link.link in first_of_stage:
                        source_stage = graph.stages[first_of_stage[link.link]]
                        if source_stage.base.kind == "scratch":
                            self.link_diffs[step.record] = link.link
        self.memo: dict[tuple[tuple[tuple[str, int], ...], int], _Assignment | None] = {}
        # BuildKit >= 0.13 links every RUN's rootfs with the "/" selector: then a bare link means WORKDIR.
        self.rootfs_selectors = any(
            link.selector == ROOT_SELECTOR for r in self.records if r.inputs for link in r.inputs[0]
        )

    # -- the Dockerfile side

    def _dependents(self, stage: PlannedStage) -> Iterator[PlannedStep]:
        """First steps of the stages built ``FROM stage`` (through stages without steps)."""
        for other in self.plan.stages:
            if other.base_stage == stage.name:
                if other.steps:
                    yield other.steps[0]
                else:
                    yield from self._dependents(other)

    def d_children(self, group: Group) -> list[Group]:
        found: list[PlannedStep] = []
        for step in group:
            stage = self.plan.stage(step.stage)
            position = stage.steps.index(step)
            if position + 1 < len(stage.steps):
                found.append(stage.steps[position + 1])
            else:
                found.extend(self._dependents(stage))
        return _group_by_text(found)

    # -- compatibility of one planned step with one record

    def compatible(self, step: PlannedStep, index: int, on_scratch: bool) -> bool:
        record = self.records[index]
        if on_scratch:  # first op of a FROM scratch stage: input 0 is what it copies
            return step.kind in ("COPY", "ADD") and not step.link
        slot0 = record.inputs[0] if record.inputs else ()
        extra = record.inputs[1:]
        selectors = {link.selector for link in slot0 if not self.is_root[link.link]}
        if step.link:
            return index in self.link_diffs
        if index in self.link_diffs:
            return False
        if step.kind == "WORKDIR":
            return not extra and selectors <= {""}
        if step.kind == "RUN":
            if not selectors <= ({ROOT_SELECTOR} if self.rootfs_selectors else {"", ROOT_SELECTOR}):
                return False
            if step.from_stage is not None:
                return any(self._links_stage(slot) for slot in extra)
            return all(self.roots_only(slot) or self._links_stage(slot) for slot in extra)
        # COPY / ADD onto a state
        if len(extra) != 1 or ROOT_SELECTOR in selectors:
            return False
        if step.from_stage is not None and self.bare_image(step.from_stage) is None:
            return self._links_stage(extra[0])
        return self.roots_only(extra[0])  # the build context, an image, or a stage that is only an image

    def bare_image(self, name: str) -> PlannedStage | None:
        """The stage ``FROM image AS name`` with no steps that ``name`` stands for, if it is one.

        Such a stage makes no record: ``COPY --from=name`` links the image's root key, as ``--from=image``
        does (margo-sandbox's docker-source). A step-less stage ``FROM other-stage`` stands for that stage.
        """
        stage = next((s for s in self.plan.stages if s.name == name), None)
        while stage is not None and not stage.steps:
            if stage.base_kind == "image":
                return stage
            stage = next((s for s in self.plan.stages if s.name == stage.base_stage), None)
        return None

    def _links_stage(self, slot: Sequence[CacheInput]) -> bool:
        return any(not self.is_root[link.link] and link.selector for link in slot)

    def roots_only(self, slot: Sequence[CacheInput]) -> bool:
        return all(self.is_root[link.link] for link in slot)

    # -- matching

    def best(self, group: Group, record: int, on_scratch: bool = False) -> _Assignment | None:
        """How well ``group`` (and what follows it) explains ``record`` and its subtree; None if it cannot."""
        key = (tuple((s.stage, s.number) for s in group), record)
        if key in self.memo:
            return self.memo[key]
        self.memo[key] = None  # guards against re-entry; the record tree is acyclic
        result: _Assignment | None = None
        if all(self.compatible(step, record, on_scratch) for step in group):
            below = self.assign(self.d_children(group), self.children.get(record, []))
            result = _Assignment(below.score + 1, {record: group, **below.mapping}, below.ambiguous)
        self.memo[key] = result
        return result

    def assign(self, groups: list[Group], records: list[int], on_scratch: bool = False) -> _Assignment:
        """Best injective pairing of sibling groups to sibling records; ties leave the pair unnamed."""
        if not groups or not records:
            return _NONE
        pairs = {
            (g, r): self.best(groups[g], records[r], on_scratch)
            for g in range(len(groups))
            for r in range(len(records))
        }
        if len(groups) > _EXHAUSTIVE_LIMIT or len(records) > _EXHAUSTIVE_LIMIT:
            return self._greedy(groups, records, pairs)
        best_score = -1
        winners: list[dict[int, int]] = []
        slots = list(range(len(records))) + [-1] * len(groups)
        seen: set[tuple[int, ...]] = set()
        for choice in permutations(slots, len(groups)):
            if choice in seen:
                continue
            seen.add(choice)
            score = 0
            for g, r in enumerate(choice):
                if r == -1:
                    continue
                found = pairs[(g, r)]
                if found is None:
                    score = -1
                    break
                score += found.score
            if score < 0:
                continue
            pairing = {g: r for g, r in enumerate(choice) if r != -1}
            if score > best_score:
                best_score, winners = score, [pairing]
            elif score == best_score and pairing not in winners:
                winners.append(pairing)
        if best_score <= 0:
            return _NONE
        chosen = winners[0]
        notes: list[str] = []
        if len(winners) > 1:
            contested = {g for w in winners for g in w if any(w.get(g) != other.get(g) for other in winners)}
            names = ", ".join(groups[g][0].label() for g in sorted(contested))
            notes.append(
                f"ambiguous: the cache fits {names} in more than one way; those steps are left unnamed"
            )
            chosen = {g: r for g, r in chosen.items() if g not in contested}
        return self._combine(chosen, pairs, notes)

    def _greedy(
        self, groups: list[Group], records: list[int], pairs: dict[tuple[int, int], _Assignment | None]
    ) -> _Assignment:
        ranked = sorted(((a.score, g, r) for (g, r), a in pairs.items() if a is not None), reverse=True)
        used_g: set[int] = set()
        used_r: set[int] = set()
        chosen: dict[int, int] = {}
        for _score, g, r in ranked:
            if g not in used_g and r not in used_r:
                chosen[g] = r
                used_g.add(g)
                used_r.add(r)
        return self._combine(chosen, pairs, [])

    @staticmethod
    def _combine(
        chosen: dict[int, int], pairs: dict[tuple[int, int], _Assignment | None], notes: list[str]
    ) -> _Assignment:
        score = 0
        mapping: dict[int, Group] = {}
        ambiguous = list(notes)
        for g, r in chosen.items():
            found = pairs[(g, r)]
            assert found is not None
            score += found.score
            mapping.update(found.mapping)
            ambiguous.extend(found.ambiguous)
        return _Assignment(score, mapping, tuple(ambiguous))


def _group_by_text(steps: list[PlannedStep]) -> list[Group]:
    groups: dict[str, list[PlannedStep]] = {}
    for step in steps:
        groups.setdefault(step.text, []).append(step)
    return [tuple(g) for g in groups.values()]


def _first_steps(plan: BuildPlan, predicate: str) -> list[PlannedStep]:
    out: list[PlannedStep] = []
    for stage in plan.stages:
        if stage.base_kind == "image" and stage.base_ref == predicate and stage.steps:
            out.append(stage.steps[0])
    return out


def _assign_bases(
    roots: list[tuple[int, ...]],
    refs: list[str],
    results: dict[tuple[tuple[int, ...], str], _Assignment],
    base_layers: dict[tuple[int, ...], int],
    notes: list[str],
) -> list[tuple[tuple[int, ...], str]]:
    """Pair each cache base with the FROM reference that explains most of its subtree.

    A reference may take several bases only when they are twins — the same
    image for different platforms of one build: they fit equally well and have
    as many layers. A base that fits two references equally is left unnamed.
    """

    def score(root: tuple[int, ...], ref: str) -> int:
        found = results.get((root, ref))
        return found.score if found is not None else 0

    chosen: dict[str, list[tuple[int, ...]]] = {}
    for root in roots:
        ranked = sorted(((score(root, ref), ref) for ref in refs), reverse=True)
        if not ranked or ranked[0][0] <= 0:
            continue
        if len(ranked) > 1 and ranked[1][0] == ranked[0][0]:
            notes.append(f"ambiguous: a base image fits both {ranked[0][1]} and {ranked[1][1]}; left unnamed")
            continue
        chosen.setdefault(ranked[0][1], []).append(root)
    pairs: list[tuple[tuple[int, ...], str]] = []
    for ref, candidates in chosen.items():
        best = max(candidates, key=lambda root: score(root, ref))
        for root in candidates:
            twin = score(root, ref) == score(best, ref) and base_layers.get(root) == base_layers.get(best)
            if twin:
                pairs.append((root, ref))
    return pairs


def name_from_dockerfile(
    graph: CacheGraph,
    plan: BuildPlan,
    platform_plans: Mapping[str, BuildPlan] | None = None,
    base_configs: Mapping[str, BaseConfig] | None = None,
) -> CacheGraph:
    """A copy of ``graph`` with stage, step and base names taken from the Dockerfile ``plan``.

    Steps whose recomputed BuildKit key is a record under the right parent are pinned first (basis
    ``exact``, ``keys.py``); the alignment names the rest (``matched``) and never moves a pinned step.
    When bases carry platforms (resolved exactly) and there are several, labels are
    written per platform as BuildKit prints them (``[linux/arm64 build 2/4] …``),
    from ``platform_plans`` (the same Dockerfile planned for each platform).
    """
    pins = _exact_pins(graph, plan, base_configs)
    aligner = _Aligner(graph, plan)
    mapping: dict[int, Group] = {}
    notes: list[str] = []
    base_names: dict[tuple[int, ...], str] = {}

    refs = sorted({s.base_ref for s in plan.stages if s.base_kind == "image" and s.base_ref})
    image_roots: dict[tuple[int, ...], list[int]] = {}
    base_layers: dict[tuple[int, ...], int] = {}
    exact: dict[tuple[int, ...], str] = {}
    for stage in graph.stages:
        image = stage.base.image
        if stage.base.kind in ("image", "unknown") and image is not None and stage.steps:
            image_roots.setdefault(image.roots, []).append(stage.steps[0].record)
            base_layers[image.roots] = len(image.layers)
            if image.basis == "exact" and image.name in refs:
                exact[image.roots] = image.name
    results = {
        (roots, ref): aligner.assign(_group_by_text(_first_steps(plan, ref)), firsts)
        for roots, firsts in image_roots.items()
        for ref in ([exact[roots]] if roots in exact else refs)
    }
    for roots, ref in _assign_bases(list(image_roots), refs, results, base_layers, notes):
        base_names[roots] = ref
        mapping.update(results[(roots, ref)].mapping)
        notes.extend(results[(roots, ref)].ambiguous)

    scratch_plans = [s for s in plan.stages if s.base_kind == "scratch" and s.steps]
    link_sources = set(aligner.link_diffs.values())
    for stage in graph.stages:
        if stage.base.kind != "scratch" or not stage.steps or stage.steps[0].record in link_sources:
            continue
        result = aligner.assign(
            _group_by_text([s.steps[0] for s in scratch_plans]), [stage.steps[0].record], on_scratch=True
        )
        mapping.update(result.mapping)
        notes.extend(result.ambiguous)
    pinned_steps = {(step.stage, step.number) for group in pins.values() for step in group}
    for record, group in list(mapping.items()):  # an aligned guess that contradicts a pinned step yields
        if record not in pins and any((s.stage, s.number) in pinned_steps for s in group):
            del mapping[record]
    mapping.update(pins)
    for merge, diff in aligner.link_diffs.items():
        if merge in mapping and diff not in mapping:
            mapping[diff] = mapping[merge]

    cache_steps = sum(len(stage.steps) for stage in graph.stages)
    planned_steps = {(s.stage, s.number) for stage in plan.stages for s in stage.steps}
    found = {(s.stage, s.number) for group in mapping.values() for s in group}
    missing = len(planned_steps - found)
    if missing:
        notes.append(f"{missing} of the Dockerfile's {len(planned_steps)} steps have no record in this cache")
    explained = len(set(mapping) & {step.record for stage in graph.stages for step in stage.steps})
    if cache_steps and explained * 2 < cache_steps:
        # The fit: the share of the cache's steps the alignment pairs with a Dockerfile step. Under half,
        # the pairings are as likely chance as truth (a WORKDIR, a COPY and a RUN fit any build), so no name
        # is given and the stages stay as the record graph shows them.
        warning = (
            f"the Dockerfile does not fit this cache: it explains only {explained} of its {cache_steps} steps "
            "(under half), so no step is named from it; was the cache built from this Dockerfile "
            "(and --target, --build-arg)?"
        )
        return replace(
            graph,
            notes=tuple(dict.fromkeys((*graph.notes, *notes, warning))),
            warnings=(*graph.warnings, warning),
        )
    named = _apply(graph, mapping, base_names, notes, aligner.link_diffs, platform_plans or {}, set(pins))
    return _add_bare_stages(named, mapping, aligner)


def _exact_pins(
    graph: CacheGraph, plan: BuildPlan, base_configs: Mapping[str, BaseConfig] | None
) -> dict[int, tuple[PlannedStep, ...]]:
    """Records named by their recomputed key, for each platform of the resolved bases (else linux/amd64).

    A RUN's key holds its platform, so a multi-platform cache has one chain per platform.
    """
    from inspector.cache.naming.keys import exact_records, step_keys

    base_roots: dict[str, set[int]] = {}
    for image in graph.bases:  # bases named by their recomputed root keys say which roots are which FROM
        if image.basis == "exact" and image.name is not None:
            base_roots.setdefault(image.name, set()).update(image.roots)
    pins: dict[int, tuple[PlannedStep, ...]] = {}
    for platform in sorted({image.platform for image in graph.bases if image.platform}) or ["linux/amd64"]:
        keys = step_keys(plan, platform=platform, base_configs=base_configs)
        pins.update(exact_records(graph.config.records, plan, keys, base_roots))
    return pins


def _stage_platforms(graph: CacheGraph) -> dict[int, str | None]:
    """The platform of each stage's base image (known once bases are resolved), inherited along FROM stage."""
    out: dict[int, str | None] = {}
    for stage in graph.stages:  # stages come after the stages they grow from
        if stage.base.kind == "stage" and stage.base.stage is not None:
            out[stage.index] = out.get(stage.base.stage)
        else:
            out[stage.index] = stage.base.image.platform if stage.base.image is not None else None
    return out


def _label(step: PlannedStep, platform: str | None, plan: BuildPlan | None, merge: bool) -> str:
    """BuildKit's label; the MergeOp of a ``COPY --link`` is ``LINK COPY …`` (convert_copy.go)."""
    if plan is not None:
        twin = next(
            (s for st in plan.stages for s in st.steps if (s.stage, s.number) == (step.stage, step.number)),
            None,
        )
        if twin is not None:
            step = twin
    return replace(step, text="LINK " + step.text).label(platform) if merge else step.label(platform)


def _apply(
    graph: CacheGraph,
    mapping: dict[int, Group],
    base_names: dict[tuple[int, ...], str],
    notes: list[str],
    link_diffs: Mapping[int, int],
    platform_plans: Mapping[str, BuildPlan],
    exact: set[int] | None = None,
) -> CacheGraph:
    link_copies = set(link_diffs.values())
    platforms = _stage_platforms(graph)
    multi = len(set(platforms.values()) - {None}) > 1
    stages: list[Stage] = []
    for stage in graph.stages:
        platform = platforms.get(stage.index) if multi else None
        relabel = platform_plans.get(platform) if platform else None
        steps: list[Step] = []
        stage_names: list[str] = []
        for step in stage.steps:
            group = mapping.get(step.record)
            if group is None or step.basis == "exact":  # an exact name (provenance, history) stays
                steps.append(step)
                continue
            for planned in group:
                if planned.stage not in stage_names:
                    stage_names.append(planned.stage)
            steps.append(
                replace(
                    step,
                    instruction=" | ".join(
                        dict.fromkeys(_label(p, platform, relabel, step.record in link_diffs) for p in group)
                    ),
                    basis="exact" if step.record in (exact or set()) else "matched",
                    line=group[0].line,
                )
            )
        base = stage.base
        image = base.image
        if image is not None and image.roots in base_names and image.basis != "exact":
            base = replace(base, image=replace(image, name=base_names[image.roots], basis="matched"))
        named = replace(stage, steps=tuple(steps), base=base)
        if stage_names and stage.basis != "exact":
            name = " + ".join(stage_names)
            if stage.steps[0].record in link_copies:
                name += " (COPY --link layer)"
            named = replace(named, name=name, basis="matched")
        stages.append(named)
    images = tuple(dict.fromkeys(s.base.image for s in stages if s.base.image is not None))
    return replace(
        graph, stages=tuple(stages), bases=images, notes=tuple(dict.fromkeys((*graph.notes, *notes)))
    )


def _add_bare_stages(graph: CacheGraph, mapping: Mapping[int, Group], aligner: _Aligner) -> CacheGraph:
    """List each ``FROM image AS name`` stage without steps that a matched ``COPY --from=name`` copies from.

    Such a stage has no record, so the cache alone shows the copy as "from an image"; once the Dockerfile
    names it, the stage is listed (no steps, its base the image whose root keys the copy links with a path
    selector) before the first stage that copies from it, and the copy's input points at it.
    """
    roots: dict[str, set[int]] = {}  # each bare stage's image root keys (the links with a path selector)
    first_user: dict[str, int] = {}  # the first stage that copies from it
    uses: dict[tuple[int, int], tuple[str, CacheInput]] = {}  # (record, slot) -> bare stage, image root link
    for stage in graph.stages:
        for step in stage.steps:
            group = mapping.get(step.record, ())
            sources = {p.from_stage for p in group if p.from_stage and aligner.bare_image(p.from_stage)}
            if len(sources) != 1:
                continue
            name = sources.pop()
            for item in step.inputs:
                slot = aligner.records[step.record].inputs[item.slot]
                image_links = [link for link in slot if link.selector]
                if item.slot > 0 and item.kind != "stage" and image_links and aligner.roots_only(slot):
                    roots.setdefault(name, set()).update(link.link for link in image_links)
                    first_user.setdefault(name, stage.index)
                    uses[(step.record, item.slot)] = (name, image_links[0])
    if not uses:
        return graph
    order: list[Stage | str] = []  # a bare stage's name, before the first stage that copies from it
    for position, existing in enumerate(graph.stages):
        order.extend(name for name in roots if first_user[name] == position)
        order.append(existing)
    renumber = {entry.index: i for i, entry in enumerate(order) if isinstance(entry, Stage)}
    index_of = {entry: i for i, entry in enumerate(order) if isinstance(entry, str)}

    def moved(step: Step) -> Step:
        inputs: list[StepInput] = []
        for i in step.inputs:
            if (step.record, i.slot) in uses:
                name, link = uses[(step.record, i.slot)]
                inputs.append(StepInput(i.slot, "stage", index_of[name], link.link, link.selector))
            else:
                inputs.append(replace(i, stage=renumber[i.stage]) if i.stage is not None else i)
        return replace(step, inputs=tuple(inputs))

    stages: list[Stage] = []
    for position, entry in enumerate(order):
        if isinstance(entry, str):
            planned = aligner.bare_image(entry)
            assert planned is not None
            image = BaseImage(roots=tuple(sorted(roots[entry])), name=planned.base_ref, basis="matched")
            stages.append(Stage(position, StageBase("image", image=image), (), name=entry, basis="matched"))
            continue
        base = entry.base
        if base.stage is not None:
            base = replace(base, stage=renumber[base.stage])
        stages.append(replace(entry, index=position, base=base, steps=tuple(moved(s) for s in entry.steps)))
    images = tuple(dict.fromkeys(s.base.image for s in stages if s.base.image is not None))
    return replace(graph, stages=tuple(stages), bases=images)


def label_report(
    report: CacheReport,
    *,
    client: Callable[[], RegistryClient] | None = None,
    dockerfile: DockerfileSource | None = None,
    image: Reference | None = None,
    bases: Mapping[str, Reference] | None = None,
    resolve_bases: bool = False,
) -> CacheReport:
    """Name what can be named, most certain first: provenance/history and resolved bases (exact), then the Dockerfile.

    ``client`` opens a registry client lazily (only ``image`` and base resolution need one).
    ``bases``: each ``--base`` as given and its parsed reference. With ``resolve_bases`` the Dockerfile's
    external FROM references join them.
    Failing to resolve one base reference is a note, not an error.
    """
    from inspector.cache.naming.bases import name_bases, resolve_base
    from inspector.cache.naming.provenance import name_from_image, read_image_facts
    from inspector.oci.reference import parse_reference

    graph = report.graph
    if graph is None:
        return report
    notes: list[str] = []
    plan = dockerfile.plan() if dockerfile is not None else None
    base_configs: dict[str, BaseConfig] = {}
    if image is not None:
        assert client is not None
        facts = read_image_facts(client(), image)
        diff_ids = {layer.digest: layer.diff_id for layer in report.layers if layer.diff_id}
        graph = name_from_image(graph, facts, diff_ids)
        if not facts.predicate_types:
            notes.append(f"{image} carries no provenance attestation; only its final-stage history was used")
    refs: dict[str, Reference | None] = dict(bases or {})
    if resolve_bases and plan is not None:
        from_lines = [s.base_ref for s in plan.stages if s.base_kind == "image" and s.base_ref]
        from_lines += [step.from_image for s in plan.stages for step in s.steps if step.from_image]
        for text in from_lines:
            refs.setdefault(text, None)
    if refs:
        assert client is not None
        resolved = []
        for ref, parsed in refs.items():
            try:
                target = parsed if parsed is not None else parse_reference(ref)
                resolved.extend(resolve_base(client(), target, display=ref))
            except CacheInspectError as exc:
                notes.append(f"could not resolve base {ref}: {exc.message}")
        graph = name_bases(graph, resolved)
        # Labels expand the base images' Env and start from their WorkingDir (the first platform's config).
        base_configs = {base.ref: base.config for base in reversed(resolved)}
        if plan is not None and dockerfile is not None and base_configs:
            plan = dockerfile.plan(base_configs=base_configs)
    if plan is not None and dockerfile is not None:
        platforms = {image.platform for image in graph.bases if image.platform}
        per_platform = {p: dockerfile.plan(p, base_configs) for p in platforms} if len(platforms) > 1 else {}
        graph = name_from_dockerfile(graph, plan, per_platform, base_configs)
    return replace(report, graph=replace(graph, notes=tuple(dict.fromkeys((*graph.notes, *notes)))))


@dataclass(frozen=True, slots=True)
class DockerfileSource:
    """A Dockerfile's text and the build options that shape its plan (planned per platform on demand)."""

    text: str
    target: str | None = None
    build_args: Mapping[str, str] | None = None
    path: str = "Dockerfile"

    def plan(
        self, platform: str | None = None, base_configs: Mapping[str, BaseConfig] | None = None
    ) -> BuildPlan:
        return plan_dockerfile(
            self.text,
            target=self.target,
            build_args=self.build_args,
            platform=platform,
            name=self.path,
            base_configs=base_configs,
        )
