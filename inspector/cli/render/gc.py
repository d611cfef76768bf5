"""Human output of ``gc``: plans and reports to rich renderables, and a Markdown job summary. Pure functions."""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING

from rich.console import Group, RenderableType
from rich.markup import escape
from rich.table import Table
from rich.text import Text

from inspector._sanitize import markdown_text
from inspector.cache.report import human_size
from inspector.errors import CacheInspectError
from inspector.gc.discover import SKIP_REASONS, Discovery
from inspector.gc.execute import RepositoryReport, TagOutcome
from inspector.gc.plan import RepositoryPlan, TagDecision
from inspector.gc.policy import spell_duration
from inspector.oci.reference import Repository

if TYPE_CHECKING:
    from inspector.gc.service import StreamedRun

__all__ = [
    "PLAN_TSV_HEADER",
    "discovery_markdown",
    "plan_markdown",
    "plan_tsv_rows",
    "render_discovery",
    "render_gc_report",
    "render_plan",
]

_MAX_IGNORED = 12
_MAX_UNTAGGED = 50
_ACTION_STYLE = {"delete": "red", "keep": "green", "ignore": "dim"}
_STATUS_STYLE = {
    "deleted": "green",
    "already-gone": "green",
    "moved": "yellow",
    "kept": "yellow",
    "failed": "bold red",
    "not-attempted": "red",
}


def _rules_text(plan: RepositoryPlan) -> str:
    rules = plan.rules
    parts = []
    if plan.branch_source is not None:
        pulls = f", {plan.live_pulls} pull requests" if plan.live_pulls is not None else ""
        parts.append(f"branch gone ({plan.live_branches} live branches{pulls} from {plan.branch_source})")
    if rules.max_age is not None:
        parts.append(f"older than {spell_duration(rules.max_age)}")
    if rules.keep_last is not None:
        parts.append(f"beyond the {rules.keep_last} newest per template")
    return "; ".join(parts) or "none (nothing is selected)"


def _age(decision: TagDecision) -> str:
    return decision.created_at.text[:10] if decision.created_at is not None else ""


def _widest(names: Iterable[str]) -> int:
    """Tags are never cut: their column is as wide as the longest (within reason)."""
    return min(max((len(n) for n in names), default=3), 80)


def _summary(plan: RepositoryPlan) -> str:
    deleted = sum(1 for m in plan.manifests if m.delete_manifest)
    untagged = len(plan.untagged_deletions)
    also = f" and {untagged} untagged caches" if untagged else ""
    return (
        f"{plan.count('delete')} tags{also} to delete ({deleted} manifests), {plan.count('keep')} kept, "
        f"{plan.count('ignore')} match no template; reclaimable at most {human_size(plan.reclaimable_bytes)} "
        f"in {len(plan.reclaimable)} blobs, plus {human_size(plan.manifest_bytes)} of manifests"
    )


def render_plan(plan: RepositoryPlan, *, applying: bool = False) -> RenderableType:
    header = Table.grid(padding=(0, 2))
    header.add_column(style="bold")
    header.add_column()
    header.add_row("repository", escape(str(plan.repository)))
    header.add_row("templates", escape(", ".join(t.text for t in plan.rules.templates)))
    header.add_row("protect", escape(", ".join(plan.rules.protect) or "nothing"))
    header.add_row("delete when", escape(_rules_text(plan)))
    header.add_row("plan", escape(_summary(plan)))
    parts: list[RenderableType] = [header, Text("")]
    shown = [d for d in plan.decisions if d.action != "ignore"]
    shown.sort(key=lambda d: (d.action != "delete", d.tag))
    if shown:
        table = Table(show_edge=False, pad_edge=False, box=None)
        table.add_column("tag", style="bold", no_wrap=True, min_width=_widest(d.tag for d in shown))
        table.add_column("action", no_wrap=True)
        table.add_column("rule", no_wrap=True)
        table.add_column("created", no_wrap=True)
        table.add_column("reason")
        for d in shown:
            table.add_row(
                escape(d.tag),
                Text(d.action, style=_ACTION_STYLE[d.action]),
                d.rule,
                _age(d),
                escape(d.reason),
            )
        parts.append(table)
    ignored = [d.tag for d in plan.decisions if d.action == "ignore"]
    if ignored:
        more = f", … ({len(ignored) - _MAX_IGNORED} more)" if len(ignored) > _MAX_IGNORED else ""
        parts.append(
            Text(f"match no template (never touched): {', '.join(ignored[:_MAX_IGNORED])}{more}", "dim")
        )
    untagged = plan.untagged_deletions
    if untagged:
        table = Table(show_edge=False, pad_edge=False, box=None)
        table.add_column("untagged manifest", style="bold", no_wrap=True)
        table.add_column("action", no_wrap=True)
        table.add_column("rule", no_wrap=True)
        table.add_column("reason")
        for m in untagged[:_MAX_UNTAGGED]:
            table.add_row(
                m.digest.short,
                Text("delete", style=_ACTION_STYLE["delete"]),
                m.rule,
                escape(m.reason),
            )
        parts += [Text(""), table]
        if len(untagged) > _MAX_UNTAGGED:
            parts.append(Text(f"… and {len(untagged) - _MAX_UNTAGGED} more untagged caches", "dim"))
    shared = [m for m in plan.manifests if not m.delete_manifest and m.delete_tags]
    for manifest in shared:
        parts.append(
            Text(
                f"{manifest.digest.short}: only {', '.join(manifest.delete_tags)} removed; {manifest.reason}",
                style="yellow",
            )
        )
    parts.extend(Text(f"note: {note}", style="dim") for note in plan.notes)
    if not applying:
        parts.append(Text("dry run: nothing was deleted (--apply deletes)", style="bold"))
    return Group(*parts)


def _outcome_row(outcome: TagOutcome) -> tuple[str, Text, str, str]:
    return (
        escape(outcome.tag),
        Text(outcome.status, style=_STATUS_STYLE.get(outcome.status, "")),
        outcome.method or "",
        escape(outcome.detail),
    )


PLAN_TSV_HEADER = ("repository", "tag", "digest", "action", "rule", "created", "reason", "outcome")


def plan_tsv_rows(
    plans: Sequence[RepositoryPlan], reports: Mapping[Repository, RepositoryReport]
) -> list[tuple[object, ...]]:
    """``gc -o tsv``: one row per tag (ignored ones too), then one per untagged cache the plan deletes (empty
    tag); ``created`` as written in the annotation; ``outcome`` is empty in a dry run, else the status."""
    rows: list[tuple[object, ...]] = []
    for plan in plans:
        report = reports.get(plan.repository)
        outcomes = {t.tag: t.status for t in report.tags} if report is not None else {}
        for d in plan.decisions:
            created = d.created_at.text if d.created_at is not None else ""
            outcome: str = (
                outcomes.get(d.tag, "not-attempted" if d.action == "delete" else "") if report else ""
            )
            rows.append((str(plan.repository), d.tag, d.digest, d.action, d.rule, created, d.reason, outcome))
        manifests = {m.digest: m.status for m in report.manifests} if report is not None else {}
        for m in plan.untagged_deletions:
            status: str = manifests.get(m.digest, "not-attempted") if report is not None else ""
            rows.append((str(plan.repository), "", m.digest, "delete", m.rule, "", m.reason, status))
    return rows


def render_gc_report(report: RepositoryReport) -> RenderableType:
    """What ``gc --apply`` did in one repository: each tag's and manifest's outcome."""
    parts: list[RenderableType] = [Text(""), Text(f"applied to {report.repository}:", style="bold")]
    if report.tags:
        table = Table(show_edge=False, pad_edge=False, box=None)
        table.add_column("tag", no_wrap=True, min_width=_widest(t.tag for t in report.tags))
        table.add_column("outcome", no_wrap=True)
        table.add_column("method", no_wrap=True)
        table.add_column("detail")
        for outcome in report.tags:
            table.add_row(*_outcome_row(outcome))
        parts.append(table)
    for manifest in report.manifests:
        if manifest.status != "deleted":
            parts.append(
                Text(f"manifest {manifest.digest.short} {manifest.status}: {manifest.detail}", style="yellow")
            )
    deleted = sum(1 for m in report.manifests if m.status == "deleted")
    untagged = sum(1 for m in report.manifests if m.status == "deleted" and m.rule == "untagged-cache")
    line = (
        f"{report.count('deleted')} tags deleted, {report.count('already-gone')} already gone, "
        f"{report.count('moved')} moved (left alone), {report.count('failed')} failed, "
        f"{report.count('not-attempted')} not attempted; {deleted} manifests deleted"
        f"{f' ({untagged} untagged caches)' if untagged else ''} "
        f"in {report.seconds:.1f} s"
        f" ({report.capabilities.detail if report.capabilities is not None else 'not begun'})"
    )
    if report.placeholders:
        line += f"; {len(report.placeholders)} placeholder manifests pushed and deleted"
    parts.append(Text(line, style="bold" if report.ok else "bold red"))
    if report.stopped:
        if report.capabilities is None:
            left = f"{report.deletions_left} deletion{'' if report.deletions_left == 1 else 's'} left"
            line = f"not begun: {report.stopped}; {left}; rerun to continue"
        else:
            line = f"stopped early: {report.stopped}; {report.backlog.describe()}; rerun to continue"
        parts.append(Text(line, style="bold red"))
    return Group(*parts)


_TAG = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}")


def _md(text: str) -> str:
    return markdown_text(text)


def _md_tag(tag: str) -> str:
    """A tag in a code span when it is one by the distribution grammar; else as escaped text."""
    return f"`{tag}`" if _TAG.fullmatch(tag) else markdown_text(tag)


def plan_markdown(
    plans: Sequence[RepositoryPlan],
    reports: Mapping[Repository, RepositoryReport],
    errors: Mapping[Repository, CacheInspectError],
    *,
    mode: str,
) -> str:
    """A GitHub job summary: per repository the counts, the bytes, and every deletion with its reason."""
    lines = [f"## cacheinspect gc ({mode})", ""]
    for plan in plans:
        lines += [f"### `{plan.repository}`", "", f"Delete when: {_md(_rules_text(plan))}", ""]
        lines += [_md(_summary(plan)), ""]
        report = reports.get(plan.repository)
        error = errors.get(plan.repository)
        if error is not None:
            lines += [f"**Not applied:** {_md(error.message)}", ""]
        outcomes = {t.tag: t for t in report.tags} if report is not None else {}
        deletions = plan.deletions
        if deletions:
            header = "| tag | rule | reason |" + (" outcome |" if report is not None else "")
            lines += [header, "|---|---|---|" + ("---|" if report is not None else "")]
            for d in deletions:
                row = f"| {_md_tag(d.tag)} | {d.rule} | {_md(d.reason)} |"
                if report is not None:
                    outcome = outcomes.get(d.tag)
                    row += f" {outcome.status if outcome else 'not attempted'}"
                    row += (
                        f": {_md(outcome.detail)} |"
                        if outcome and outcome.status not in ("deleted",)
                        else " |"
                    )
                lines.append(row)
            lines.append("")
        untagged = plan.untagged_deletions
        if untagged:
            manifests = {m.digest: m for m in report.manifests} if report is not None else {}
            header = "| untagged manifest | rule | reason |" + (" outcome |" if report is not None else "")
            lines += [header, "|---|---|---|" + ("---|" if report is not None else "")]
            for m in untagged:
                row = f"| `{m.digest.short}` | {m.rule} | {_md(m.reason)} |"
                if report is not None:
                    got = manifests.get(m.digest)
                    row += f" {got.status if got else 'not attempted'}"
                    row += f": {_md(got.detail)} |" if got and got.status != "deleted" else " |"
                lines.append(row)
            lines.append("")
        if report is not None:
            verdict = "all went to plan" if report.ok else "**some deletions failed**"
            gone = sum(1 for m in report.manifests if m.status == "deleted" and m.rule == "untagged-cache")
            also = f"; {gone} untagged caches deleted" if untagged else ""
            lines += [
                f"Result: {verdict} ({report.count('deleted')} deleted, {report.count('failed')} failed{also}).",
                "",
            ]
        lines += [f"- {_md(note)}" for note in plan.notes]
        if plan.notes:
            lines.append("")
    return "\n".join(lines) + "\n"


_SKIP_TEXT = {
    "excluded-by-glob": "excluded by the glob",
    "other-shard": "in another shard",
    "time-budget": "not begun: time budget reached",
    "no-matching-tag": "no tag matches a template",
    "error": "could not be read",
}


def render_discovery(discovery: Discovery) -> RenderableType:
    """How many repositories were looked at and planned, and why each other one was not."""
    shard = f" (shard {discovery.shard})" if discovery.shard is not None else ""
    lines = [
        Text(
            f"discovery{shard}: {discovery.looked_at} repositories looked at, {discovery.planned} planned, "
            f"{len(discovery.skipped)} skipped",
            style="bold",
        )
    ]
    for reason in SKIP_REASONS:
        chosen = [s for s in discovery.skipped if s.reason == reason]
        if not chosen:
            continue
        lines.append(Text(f"  {len(chosen)} {_SKIP_TEXT[reason]}"))
        if reason in ("no-matching-tag", "error"):
            lines += [Text(f"    {s.repository}: {s.detail}") for s in chosen]
    return Group(*lines)


def discovery_markdown(run: StreamedRun) -> str:
    """A job summary of a streamed run: one row per planned repository, then what was skipped and why."""
    discovery = run.discovery
    shard = f", shard {discovery.shard}" if discovery.shard is not None else ""
    lines = [
        f"## cacheinspect gc ({run.mode}{shard})",
        "",
        f"{discovery.looked_at} repositories looked at, {discovery.planned} planned, "
        f"{len(discovery.skipped)} skipped.",
        "",
    ]
    if run.outcomes:
        lines += [
            "| repository | tags to delete | manifests | reclaimable | outcome |",
            "|---|---|---|---|---|",
        ]
        for o in run.outcomes:
            outcome = (
                f"not applied: {_md(o.error.message)}"
                if o.error is not None
                else {None: "planned", True: "done", False: "partial"}[o.report_ok]
            )
            lines.append(
                f"| `{o.repository}` | {o.deletions} | {o.manifests} | {human_size(o.reclaimable_bytes)} | {outcome} |"
            )
        lines.append("")
    if discovery.skipped:
        lines += ["| skipped | why |", "|---|---|"]
        lines += [f"| `{s.repository}` | {s.reason}: {_md(s.detail)} |" for s in discovery.skipped]
        lines.append("")
    for source, error in run.errors.items():
        if source in discovery.sources:
            lines += [f"**Could not list {_md(source)}:** {_md(error.message)}", ""]
    return "\n".join(lines)
