"""Human output of ``du`` and ``diff``: results to rich renderables. Pure functions; the CLI prints them."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from rich.console import Group, RenderableType
from rich.markup import escape
from rich.table import Table
from rich.text import Text

from inspector._sanitize import sanitize
from inspector.cache.diff import CacheDiff, CacheSide, ChangedInput, StageDiff, StageRef, StepDifference
from inspector.cache.du import RepositoryUsage
from inspector.cli.render.cache import human_size
from inspector.gc.policy import spell_duration
from inspector.oci import gojson
from inspector.oci.models import Descriptor

__all__ = ["age_text", "explain_stage", "render_diff", "render_usage"]

_MAX_LISTED = 12


def _names(names: tuple[str, ...] | list[str]) -> str:
    shown = ", ".join(names[:_MAX_LISTED])
    return shown + (f", … ({len(names) - _MAX_LISTED} more)" if len(names) > _MAX_LISTED else "")


def age_text(stamp: gojson.Timestamp | None, now: datetime) -> str:
    """``3 days ago``: the largest whole unit only, for a table column (``-`` when unknown)."""
    if stamp is None:
        return "-"
    seconds = int((now - stamp.datetime).total_seconds())
    if seconds < 0:
        return "in the future"
    if seconds < 60:
        return "just now"
    for size in (86400, 3600, 60):
        if seconds >= size:
            return f"{spell_duration(timedelta(seconds=seconds // size * size))} ago"
    raise AssertionError("unreachable")  # pragma: no cover


def render_usage(usage: RepositoryUsage, now: datetime | None = None) -> RenderableType:
    now = now or datetime.now(UTC)
    header = Table.grid(padding=(0, 2))
    header.add_column(style="bold")
    header.add_column()
    header.add_row("repository", escape(usage.repository))
    matched = f", {usage.tags_matched} match {usage.tag_pattern}" if usage.tag_pattern is not None else ""
    header.add_row(
        "tags",
        escape(f"{usage.tags_listed} listed{matched}: ")
        + f"{usage.cache_tags} cache tags on {len(usage.entries)} "
        f"manifests, {len(usage.non_cache_tags)} not caches (skipped), {len(usage.skipped_tags)} unreadable",
    )
    header.add_row(
        "total",
        f"{human_size(usage.total_size)} in {len(usage.blobs)} distinct blobs (layers and cache configs, "
        f"each once), {human_size(usage.unique_size)} used by no other cache; the {len(usage.entries)} "
        f"manifests themselves {human_size(usage.manifest_size)}",
    )
    if usage.non_cache_tags:
        header.add_row("not caches", escape(sanitize(_names(usage.non_cache_tags))))
    for skipped in usage.skipped_tags[:_MAX_LISTED]:
        header.add_row("unreadable", escape(sanitize(f"{skipped.tag}: {skipped.reason}")))
    parts: list[RenderableType] = [header, Text("")]
    if not usage.entries:
        parts.append(Text("no cache tags", style="yellow"))
        return Group(*parts)
    table = Table(show_edge=False, pad_edge=False, box=None, expand=False, collapse_padding=True)
    table.add_column("tags", style="bold", overflow="fold", min_width=12)
    table.add_column("manifest", no_wrap=True)
    table.add_column("form", overflow="fold")  # at 80 columns it folds, so no tag is squeezed out
    for name in ("layers", "size", "unique", "shared"):
        table.add_column(name, justify="right", no_wrap=True)
    table.add_column("age", no_wrap=True)
    for entry in usage.entries:
        table.add_row(
            escape(_names(entry.tags)),
            entry.digest.hex[:12],
            entry.form,
            str(len(entry.layers)),
            human_size(entry.size),
            human_size(entry.unique_size),
            human_size(entry.shared_size),
            age_text(entry.created_at, now),
        )
    parts.append(table)
    parts.append(
        Text(
            "tags on one row share one manifest; size = the cache's distinct layer blobs plus its cache config "
            "blob; unique = blobs no other cache manifest of the repository references, whether its tags match "
            "the pattern or not (freed by deleting all the row's tags, then a registry garbage collection); "
            "age = since the newest buildkit/createdat of its layers",
            style="dim",
        )
    )
    return Group(*parts)


def _side(name: str, side: CacheSide) -> Text:
    mode = f"mode={side.mode}" if side.mode else "mode unknown"
    text = Text.assemble(
        (f"{name}  ", "bold"),
        sanitize(side.source),
        (
            f"  {side.digest.short}, {side.form}, {mode}, {side.layers} layers, {human_size(side.size)}",
            "dim",
        ),
    )
    if side.config_error:
        text.append(f"\n   config unreadable: {sanitize(side.config_error)}", style="yellow")
    return text


def _layer_lines(sign: str, style: str, descriptors: tuple[Descriptor, ...]) -> list[RenderableType]:
    lines: list[RenderableType] = [
        Text(f"  {sign} {d.digest.short}  {human_size(d.size)}", style=style)
        for d in descriptors[:_MAX_LISTED]
    ]
    if len(descriptors) > _MAX_LISTED:
        lines.append(Text(f"    … {len(descriptors) - _MAX_LISTED} more", style="dim"))
    return lines


def _cause(item: ChangedInput) -> str:
    if item.kind == "base":
        return "its base image changed"
    if item.kind == "previous-step":
        return "the state it builds on changed"
    if item.kind == "stage":
        return f"its input {item.slot}, from {item.stage_label}, changed: the change came from that stage"
    if item.kind == "context":
        return f"the build-context files it reads (input {item.slot}) changed"
    if item.kind == "image":
        return f"the image it reads from (input {item.slot}) changed"
    return f"its input {item.slot} changed"


def _plural(count: int, noun: str) -> str:
    return f"{count} {noun}{'s' if count != 1 else ''}"


def _named(number: int | None, instruction: str | None) -> str:
    """``#4`` or, with diff --dockerfile, ``#4 [build 4/6] RUN go mod download``."""
    return f"#{number}" + (f" {instruction}" if instruction else "")


def _differs(difference: StepDifference) -> str:
    assert difference.record_a is not None and difference.record_b is not None
    a, b = difference.instruction_a, difference.instruction_b
    step = _named(difference.number_b, b or a)
    if difference.number_a != difference.number_b:
        step = f"{_named(difference.number_a, a or b)} (#{difference.number_b} in B)"
    if a and b and a != b:
        step += f" (in A: {a})"
    causes = [_cause(item) for item in difference.changed_inputs]
    if difference.record_changed:
        detail = f"record {difference.record_a.short} vs {difference.record_b.short}: the instruction changed"
        if causes:
            detail += "; also " + "; ".join(causes)
    else:
        detail = f"same record {difference.record_b.short}, but " + (
            "; ".join(causes) or "its inputs changed"
        )
    return f"{step} differs ({detail})"


def explain_stage(stage: StageDiff) -> str:
    """One sentence: how far B's stage matches A's, and what that means for a build using B's cache."""
    a, b = stage.a, stage.b
    difference = stage.first_difference
    if difference is None:
        return f"all {_plural(a.steps, 'step')} match — nothing in this stage is rebuilt"
    if difference.change == "added":
        assert difference.record_b is not None
        return (
            f"all {_plural(a.steps, 'step')} of A match; B goes on with "
            f"{_named(difference.number_b, difference.instruction_b)} "
            f"(record {difference.record_b.short}) — only B's {_plural(b.steps - a.steps, 'extra step')} "
            "will be built"
        )
    if difference.change == "removed":
        assert difference.record_a is not None
        return (
            f"all {_plural(b.steps, 'step')} of B match; A had {a.steps - b.steps} more from "
            f"{_named(difference.number_a, difference.instruction_a)} "
            f"(record {difference.record_a.short}) — nothing in this stage is rebuilt"
        )
    matched = ""
    if difference.position > 0 and difference.number_a is not None:
        high = difference.number_a - 1
        low = high - difference.position + 1
        matched = f"step #{low} matches, " if low == high else f"steps #{low}-#{high} match, "
    return matched + _differs(difference) + " — everything after it in this stage is rebuilt"


def _stage_name(stage: StageDiff) -> str:
    if stage.a.label == stage.b.label:
        return stage.a.label
    return f"{stage.a.label} (B: {stage.b.label})"


def _only(side: str, refs: tuple[StageRef, ...]) -> list[RenderableType]:
    return [
        Text.assemble(
            (f"only in {side}  ", "bold"),
            (sanitize(ref.label), "cyan"),
            f"  {sanitize(ref.base)}, {_plural(ref.steps, 'step')}",
        )
        for ref in refs
    ]


def render_diff(diff: CacheDiff) -> RenderableType:
    parts: list[RenderableType] = [_side("A", diff.a), _side("B", diff.b)]
    if diff.a.digest == diff.b.digest:
        parts.append(Text("   the same cache document", style="dim"))
    elif diff.a.config == diff.b.config:
        parts.append(Text("   different documents wrapping the same cache config", style="dim"))
    parts.append(Text(""))
    layers = diff.layers
    parts.append(
        Text.assemble(
            ("layers   ", "bold"),
            (f"{len(layers.added)} added (+{human_size(layers.added_size)})", "green"),
            ", ",
            (f"{len(layers.removed)} removed (-{human_size(layers.removed_size)})", "red"),
            f", {len(layers.shared)} shared ({human_size(layers.shared_size)})",
        )
    )
    parts.extend(_layer_lines("+", "green", layers.added))
    parts.extend(_layer_lines("-", "red", layers.removed))
    for side, missing in (("A", layers.missing_in_a), ("B", layers.missing_in_b)):
        for digest in missing:
            parts.append(Text(f"  ! {digest} is missing from the registry of {side}", style="yellow"))
    records = diff.records
    if records is None:
        parts.append(
            Text("records and stages not compared: a cache config could not be read", style="yellow")
        )
    else:
        only_a = sum(r.count for r in records.only_in_a)
        only_b = sum(r.count for r in records.only_in_b)
        parts.append(
            Text.assemble(
                ("records  ", "bold"),
                f"{records.a} in A, {records.b} in B: {records.shared} alike, {only_a} only in A, "
                f"{only_b} only in B",
                ("  (alike = same digest, and both with or both without a result)", "dim"),
            )
        )
        parts.append(Text(""))
        for stage in diff.stages:
            style = "green" if stage.first_difference is None else "yellow"
            parts.append(
                Text.assemble(
                    (sanitize(_stage_name(stage)), f"bold {style}"), ": ", sanitize(explain_stage(stage))
                )
            )
        parts.extend(_only("A", diff.only_in_a))
        parts.extend(_only("B", diff.only_in_b))
    parts.append(Text(""))
    verdict = ("identical", "bold green") if diff.identical else ("the caches differ", "bold yellow")
    parts.append(Text.assemble(("verdict  ", "bold"), verdict))
    return Group(*parts)
