"""Human view of ``explain``: one line per step (hit from which ref, or why it misses), then where the build
turns cold. Labels come from a Dockerfile and refs from the command line: both are ``sanitize``d."""

from __future__ import annotations

from rich.console import Group, RenderableType
from rich.text import Text

from inspector._sanitize import sanitize
from inspector.cache.explain import CAUSE_TEXT, Explanation, StepVerdict

__all__ = ["render_explanation"]

_MARKS = {"hit": ("✓", "green"), "miss": ("✗", "red"), "context": ("~", "yellow"), "unknown": ("?", "yellow")}
_CHANGED_SHOWN = 10


def _verdict(verdict: StepVerdict) -> str:
    if verdict.status == "hit":
        text = f"hit from {verdict.hit_ref}"
        if verdict.load_ref is not None and verdict.load_ref != verdict.hit_ref:
            text += f" (BuildKit loads the newer result from {verdict.load_ref})"
        return text + (f"; {verdict.detail}" if verdict.detail else "")
    if verdict.status == "miss":
        cause = CAUSE_TEXT[verdict.cause] if verdict.cause is not None else "no cache could be imported"
        return f"miss: {cause}" + (f"; {verdict.detail}" if verdict.detail else "")
    if verdict.status == "context":
        return f"depends on the build context: {verdict.detail}"
    return f"unknown: {verdict.detail}"


def render_explanation(explanation: Explanation) -> RenderableType:
    lines: list[RenderableType] = [
        Text(f"cache-from (in order): {sanitize(', '.join(explanation.refs))}", style="bold"),
        Text(f"target {sanitize(explanation.target)}, platform {sanitize(explanation.platform)}"),
    ]
    for verdict in explanation.steps:
        mark, style = _MARKS[verdict.status]
        line = Text.assemble(
            (f"{mark} ", style), sanitize(verdict.step.label()), "  ", (sanitize(_verdict(verdict)), style)
        )
        lines.append(line)
        changed = verdict.changed_files or ()
        for item in changed[:_CHANGED_SHOWN]:
            lines.append(Text(f"      {sanitize(item)}", style="dim"))
        if len(changed) > _CHANGED_SHOWN:
            lines.append(Text(f"      … and {len(changed) - _CHANGED_SHOWN} more", style="dim"))
    cold = explanation.cold_from
    if cold is not None:
        before = explanation.steps[: explanation.steps.index(cold)]
        unsure = sum(1 for v in before if v.status in ("context", "unknown"))
        also = (
            f" (or earlier: {unsure} step{'s' if unsure != 1 else ''} before it could not be checked)"
            if unsure
            else ""
        )
        lines.append(
            Text(f"this build will be cold from {sanitize(cold.step.label())}{also}", style="bold red")
        )
        runs = explanation.runs_from
        if runs is not None and runs is not cold:
            text = (
                f"no cache holds a layer for the steps before it (mode=min): it runs from {runs.step.label()}"
            )
            lines.append(Text(sanitize(text), style="red"))
    elif explanation.runs_from is not None:
        text = f"every key hits, but no cache holds the layers (mode=min): the build runs from {explanation.runs_from.step.label()}"
        lines.append(Text(sanitize(text), style="bold red"))
    elif explanation.all_cached:
        lines.append(Text("every step is cached", style="bold green"))
    else:
        lines.append(
            Text("no step is certain to miss; some cannot be shown to hit (see above)", style="bold yellow")
        )
    for note in explanation.notes:
        lines.append(Text(f"note: {sanitize(note)}", style="dim"))
    return Group(*lines)
