"""Human output of ``history``: one row per cache version, newest first, and the alternation verdict."""

from __future__ import annotations

from rich.console import Group, RenderableType
from rich.table import Table
from rich.text import Text

from inspector._sanitize import sanitize
from inspector.cache.history import CacheHistory, FirstDifference
from inspector.cli.render.cache import human_size

__all__ = ["difference_text", "render_history"]

_APIS = {
    "ghcr": "GitHub package versions",
    "google": "the tags/list manifest map",
    "ecr": "ECR DescribeImages",
}
_INPUTS = {
    "base": "base image",
    "previous-step": "previous step",
    "stage": "input stage",
    "context": "build context",
    "image": "input image",
    "unknown": "an input",
}


def difference_text(difference: FirstDifference | None) -> str:
    """Where a version stops matching the next-older one, in a few words."""
    if difference is None:
        return "(oldest shown)"
    if difference.kind == "identical":
        return "same steps as the next older"
    if difference.kind == "not-comparable":
        return "a config could not be read"
    if difference.kind == "new-stage":
        return f"new stage {difference.stage}"
    if difference.kind == "stage-gone":
        return f"stage {difference.stage} gone"
    assert difference.stage_diff is not None and difference.stage_diff.first_difference is not None
    step = difference.stage_diff.first_difference
    label = step.instruction_b or step.instruction_a
    where = f"{difference.stage} #{step.number_b or step.number_a}" + (f" {label}" if label else "")
    if step.change == "added":
        return f"{where}: new step"
    if step.change == "removed":
        return f"{where}: step dropped"
    if step.record_changed:
        return f"{where}: another op (instruction, arguments or platform)"
    causes = ", ".join(dict.fromkeys(_INPUTS[i.kind] for i in step.changed_inputs)) or "inputs"
    return f"{where}: {causes} changed"


def render_history(history: CacheHistory) -> RenderableType:
    count = len(history.entries)
    title = Text.assemble(
        ("history  ", "bold"),
        sanitize(history.reference),
        (f"  {count} cache{'s' if count != 1 else ''} from {_APIS[history.api]}, newest first", "dim"),
    )
    table = Table.grid(padding=(0, 2))
    for _ in range(5):
        table.add_column()
    table.add_row(
        *(Text(h, "bold") for h in ("pushed", "digest", "size", "platforms", "first step that differs"))
    )
    for entry in history.entries:
        pushed = entry.version.pushed_at
        table.add_row(
            pushed.strftime("%Y-%m-%d %H:%M:%SZ") if pushed else "-",
            entry.version.digest.short + ("  (tagged)" if history.tag in entry.version.tags else ""),
            human_size(entry.size),
            ", ".join(entry.coverage.platforms) or "unknown",
            Text(sanitize(difference_text(entry.difference))),
        )
    lines: list[RenderableType] = [title, table]
    skipped = (
        f"{history.not_caches} version(s) skipped: no cache, or deleted since listed"
        if history.not_caches
        else ""
    )
    more = "older versions not read (--limit)" if history.more else ""
    if skipped or more:
        lines.append(Text("; ".join(p for p in (skipped, more) if p), "dim"))
    if history.alternation is not None:
        lines.append(Text(history.alternation.sentence, "bold yellow"))
    elif history.entries and all(e.writer is None for e in history.entries):
        lines.append(Text("platforms unknown: give --base REF for each FROM image to prove them", "dim"))
    return Group(*lines)
