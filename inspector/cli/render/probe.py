"""Human output of ``probe``: a report to rich renderables. Pure functions; the CLI prints them."""

from __future__ import annotations

from rich.console import Group, RenderableType
from rich.markup import escape
from rich.table import Table
from rich.text import Text

from inspector.probe.model import ProbeReport

__all__ = ["render_probe"]

_STYLES = {
    "supported": "green",
    "unsupported": "red",
    "denied": "red",
    "config-error": "yellow",
    "inconclusive": "yellow",
    "skipped": "dim",
}
_VERDICT_STYLES = {
    "works": "bold green",
    "will-not-work": "bold red",
    "unknown": "yellow",
    "inconclusive": "yellow",
    "denied": "bold red",
    "config-error": "bold yellow",
}
_MAX_LEFTOVERS = 20


def _sources(ids: tuple[str, ...]) -> str:
    return "".join(f"[{s}]" for s in ids)


def render_probe(report: ProbeReport, *, verbose: bool = False) -> RenderableType:
    header = Table.grid(padding=(0, 2))
    header.add_column(style="bold")
    header.add_column(overflow="fold")
    header.add_row("target", escape(report.target))
    family = report.family
    header.add_row(
        "registry", escape(f"{family.family.name} (family {family.family.id}, from {family.basis})")
    )
    mode = report.mode + (f", run {report.run_id}" if report.run_id else "")
    if report.mode != "offline":
        mode += f", {report.requests} requests in {report.duration_ms / 1000:.1f} s"
    header.add_row("mode", escape(mode))
    parts: list[RenderableType] = [header, Text("")]

    table = Table(show_edge=False, pad_edge=False, box=None, expand=False)
    table.add_column("check", style="bold", no_wrap=True)
    table.add_column("status", no_wrap=True)
    table.add_column("result", overflow="fold")
    for check in report.checks:
        lines = [escape(check.summary)]
        if check.basis == "documented":
            lines[0] += " " + escape("".join(_sources(f.sources) for f in check.documented))
            lines += [f"[dim]{escape(f.note)}[/dim]" for f in check.documented if f.note]
        if check.hint:
            lines.append(f"[cyan]hint:[/cyan] {escape(check.hint)}")
        if check.basis != "documented" and (check.status != "supported" or verbose):
            for fact in check.documented:
                lines.append(
                    f"[dim]documented ({fact.verdict}): {escape(fact.text)} {escape(_sources(fact.sources))}[/dim]"
                )
                if fact.note:
                    lines.append(f"[dim]  {escape(fact.note)}[/dim]")
        table.add_row(check.id, f"[{_STYLES[check.status]}]{check.status}[/]", "\n".join(lines))
    parts += [table, Text("")]

    verdict = report.cache_to
    if verdict is not None:
        block = Table.grid(padding=(0, 2))
        block.add_column(style="bold")
        block.add_column(overflow="fold")
        block.add_row("--cache-to", escape(verdict.input))
        block.add_row(
            "verdict",
            f"[{_VERDICT_STYLES[verdict.verdict]}]{verdict.verdict}[/] ({verdict.basis}, "
            f"exit {verdict.exit_code}): {escape(verdict.reason)}",
        )
        for problem in verdict.problems:
            style = {"error": "red", "warning": "yellow", "info": "dim"}[problem.severity]
            block.add_row(
                "",
                f"[{style}]{problem.severity}[/]: {escape(problem.message)} {escape(_sources(problem.sources))}",
            )
        parts += [block, Text("")]

    rec = report.recommendation
    block = Table.grid(padding=(0, 2))
    block.add_column(style="bold")
    block.add_column(overflow="fold")
    if rec.cache_to:
        block.add_row("use", f"--cache-to '{escape(rec.cache_to)}'")
    block.add_row("because", escape(rec.reason + (" " + _sources(rec.sources) if rec.sources else "")))
    for note in rec.notes:
        block.add_row("note", escape(note))
    block.add_row(
        "cleanup",
        escape(f"{rec.cleanup.text} ({rec.cleanup.basis}) {_sources(rec.cleanup.sources)}".rstrip()),
    )
    parts.append(block)

    kept = [item for item in report.leftovers if item.kind != "blob"]
    blobs = len(report.leftovers) - len(kept)
    if kept or blobs:
        parts.append(Text(""))
        title = f"left in the registry: {len(kept)} tags/manifests"
        if blobs:
            title += f", {blobs} blobs (for the registry's garbage collection)"
        parts.append(Text(title, style="bold yellow" if kept else "dim"))
        for item in kept[:_MAX_LEFTOVERS]:
            parts.append(Text(f"  {item.kind} {item.reference} — {item.reason}"))
        if len(kept) > _MAX_LEFTOVERS:
            parts.append(Text(f"  … {len(kept) - _MAX_LEFTOVERS} more (--json lists all)"))
    return Group(*parts)
