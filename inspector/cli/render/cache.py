"""Human output: reports to rich renderables. Pure functions; the CLI prints them.

Text that came from outside (step labels from an image's history or a Dockerfile, base names, health
messages) goes through ``sanitize`` before it becomes a rich ``Text``: rich drops BEL, BS, VT, FF and CR
from a ``Text`` when it is made, so the console's own ``sanitize`` would never see them and the screen
would show less than ``-o tsv``, the graph or the JSON say.
"""

from __future__ import annotations

from rich.console import Group, RenderableType
from rich.markup import escape
from rich.table import Table
from rich.text import Text

from inspector._sanitize import sanitize
from inspector.cache.analysis import Stage
from inspector.cache.coverage import PlatformCoverage, platform_coverage
from inspector.cache.fetch import FORM_WRITERS
from inspector.cache.report import CacheReport, base_label, human_size, stage_label
from inspector.cache.top import TopLayer
from inspector.oci import gojson

__all__ = ["coverage_line", "human_size", "render_report"]

_FORM_NAMES = {
    "image-manifest": "OCI image manifest",
    "oci-index": "OCI image index",
    "docker-manifest-list": "Docker manifest list",
    "docker-manifest": "Docker image manifest",
}


def _when(ts: gojson.Timestamp | None) -> str:
    if ts is None:
        return "-"
    return ts.datetime.strftime("%Y-%m-%d %H:%M:%SZ")


def _header(report: CacheReport) -> Table:
    docs = report.documents
    table = Table.grid(padding=(0, 2))
    table.add_column(style="bold")
    table.add_column()
    table.add_row("cache", escape(report.source))
    table.add_row("digest", f"{docs.manifest.digest} ({docs.manifest.size} bytes, {_FORM_NAMES[docs.form]})")
    table.add_row("form", f"{docs.form} - written by {FORM_WRITERS[docs.form]}")
    config = docs.config
    if config is not None:
        with_results = sum(1 for s in report.record_status if s not in ("root", "key-only"))
        roots = sum(1 for s in report.record_status if s == "root")
        table.add_row(
            "mode",
            f"{report.mode or 'unknown'} ({len(config.records)} records: {with_results} with results, "
            f"{roots} roots, {len(config.records) - with_results - roots} key-only)",
        )
    table.add_row("config", f"{docs.config_descriptor.digest} ({docs.config_descriptor.size} bytes)")
    mix = ", ".join(f"{name} {count}" for name, count in sorted(report.compression.items())) or "none"
    listed = sum(d.size for d in docs.layer_descriptors)
    extra = ""
    if len(docs.layer_descriptors) != len(report.layers):
        extra = f"; listed {len(docs.layer_descriptors)} times, {human_size(listed)} counting repeats"
    table.add_row(
        "layers", f"{len(report.layers)} blobs, {human_size(report.total_size)} unique ({mix}){extra}"
    )
    created = report.created_range
    if created is not None:
        table.add_row("created", f"{_when(created[0])} .. {_when(created[1])}")
    if report.graph is not None:
        table.add_row("os/arch", coverage_line(platform_coverage(report.graph)))
    return table


def coverage_line(coverage: PlatformCoverage) -> str:
    """One line: the proven platforms, and how many stages nothing proves."""
    unknown = len(coverage.unknown_stages)
    if coverage.state == "unknown":
        return "unknown (nothing in a cache names its platform: resolve its bases with --resolve-bases or --base)"
    covered = ", ".join(coverage.platforms)
    if coverage.state == "known":
        return f"{covered} (from resolved bases)"
    return f"{covered} (from resolved bases); {unknown} of {len(coverage.stages)} stages unknown"


def _stage_table(report: CacheReport, stage: Stage, platform: str | None = None) -> RenderableType:
    graph = report.graph
    config = report.documents.config
    assert graph is not None and config is not None
    steps = len(stage.steps)
    size = sum(
        layer.descriptor.size
        for i in dict.fromkeys(stage.layers)
        if (layer := report.layer(config.layers[i].blob)) is not None
    )
    basis = f" ({stage.basis})" if stage.name else ""
    title = Text.assemble(
        (sanitize(stage_label(stage)), "bold cyan"),
        (basis, "dim"),
        f"  {sanitize(base_label(stage, graph))}  ",
        (f"{steps} step{'s' if steps != 1 else ''}, {human_size(size)}", "dim"),
        (f"  [{platform}]" if platform else "", "magenta"),
    )
    # Fixed-width lines rather than a table: instructions get the full width and wrap on their own lines.
    lines: list[RenderableType] = [title]

    def add_layer(step: str, index: int, notes: str) -> None:
        blob = config.layers[index].blob
        info = report.layer(blob)
        missing = info is not None and info.present is False
        size_text = human_size(info.descriptor.size) if info else "?"
        created = _when(info.created_at) if info else "-"
        flags = ("MISSING " if missing else "") + ("not listed " if info is None else "")
        lines.append(
            Text.assemble(
                (f"{step:>6}  ", "bold"),
                (blob.short, "red" if missing or info is None else ""),
                f"  {size_text:>8}  {created:<20}  ",
                (flags, "red"),
                (notes, "dim"),
            )
        )

    image = stage.base.image
    if image is not None:
        for index in image.layers:
            add_layer("base", index, "")
    hidden = _collapsed_steps(stage)
    for position, step in enumerate(stage.steps):
        if position in hidden:
            if position - 1 not in hidden:
                run_end = position
                while run_end + 1 in hidden:
                    run_end += 1
                first, last = stage.steps[position].number, stage.steps[run_end].number
                count = run_end - position + 1
                lines.append(
                    Text(f"{'':>6}  ... {count} more steps without layers (#{first}-#{last})", style="dim")
                )
            continue
        record = config.records[step.record]
        notes = []
        for item in step.inputs:
            if item.kind == "stage" and item.stage is not None:
                notes.append(f"from {sanitize(stage_label(graph.stages[item.stage]))}")
            elif item.kind == "context":
                notes.append("from build context")
            elif item.kind == "image":
                notes.append("from an image")
        status = report.record_status[step.record]
        if status == "key-only":
            notes.append("key only (no result)")
        elif status in ("broken", "partial"):
            notes.append(f"result {status}")
        if step.inferred_layers:
            notes.append("layer placed by position")
        if step.variants:
            notes.append(f"{len(step.variants) + 1} variants (other versions of a non-stage input)")
        text = ", ".join(notes)
        label = f"#{step.number}"
        if step.instruction:  # it carries BuildKit's own [stage k/n] numbering
            lines.append(Text.assemble(f"{'':>6}  ", (sanitize(step.instruction), "bold")))
            label = ""
        if not step.layers:
            lines.append(
                Text.assemble(
                    (f"{label:>6}  ", "bold"),
                    (f"(record {record.digest.short}, no layer)", "dim"),
                    "  ",
                    (text, "dim"),
                )
            )
        for n, index in enumerate(step.layers):
            add_layer(label if n == 0 else "", index, text if n == 0 else "")
    return Group(*lines)


def _collapsed_steps(stage: Stage, keep: int = 2) -> set[int]:
    """Positions of steps to fold: inside long runs of steps that have no layers, all but ``keep`` at each end."""
    hidden: set[int] = set()
    run: list[int] = []
    for position, step in enumerate([*stage.steps, None]):
        if step is not None and not step.layers:
            run.append(position)
            continue
        if len(run) > 2 * keep + 1:
            hidden.update(run[keep:-keep])
        run = []
    return hidden


def _health(report: CacheReport) -> RenderableType:
    health = report.health
    checked = "blobs checked" if health.blobs_checked else "blobs not checked (--no-check-blobs)"
    if health.ok and not health.problems:
        return Text.assemble(("health  ", "bold"), ("OK", "bold green"), f"  ({checked})")
    verdict = ("OK", "bold green") if health.ok else ("UNHEALTHY", "bold red")
    lines: list[RenderableType] = [Text.assemble(("health  ", "bold"), verdict, f"  ({checked})")]
    for problem in health.problems:
        style = "red" if problem.severity == "error" else "yellow"
        lines.append(
            Text.assemble(
                ("  " + problem.severity.ljust(8), style),
                (problem.code, "bold"),
                "  ",
                sanitize(problem.message),
            )
        )
    return Group(*lines)


def _largest(report: CacheReport, layers: tuple[TopLayer, ...]) -> RenderableType:
    """``--top N``: size, digest, then where the layer sits (every place, one per line)."""
    total = report.total_size
    share = sum(layer.size for layer in layers)
    percent = f", {share * 100 // total} % of the cache" if total else ""
    title = Text(
        f"largest layers ({len(layers)} of {len(report.layers)}: {human_size(share)}{percent})", "bold"
    )
    table = Table.grid(padding=(0, 2))  # a long label wraps inside its own column
    table.add_column(justify="right", no_wrap=True, style="bold")
    table.add_column(no_wrap=True, style="bold")
    table.add_column()
    for layer in layers:
        where = [
            f"{p.stage} {p.step}" + (f"  {p.instruction}" if p.instruction else "") for p in layer.places
        ] or ["in no stage (no record of the cache uses it)"]
        for n, text in enumerate(where):
            first = n == 0
            table.add_row(
                human_size(layer.size) if first else "",
                layer.digest.short if first else "",
                escape(sanitize(text)),
            )
    return Group(title, table)


def render_report(report: CacheReport, largest: tuple[TopLayer, ...] | None = None) -> RenderableType:
    parts: list[RenderableType] = [_header(report), Text("")]
    if largest is not None:
        parts.extend([_largest(report, largest), Text("")])
    graph = report.graph
    if graph is None:
        parts.append(Text("stages  not available: the cache config could not be read", style="yellow"))
    else:
        coverage = platform_coverage(graph)
        # A stage's platform is shown only where stages differ; the header line says it once otherwise.
        platforms = (
            {} if coverage.uniform else {s.stage: s.platform or "platform unknown" for s in coverage.stages}
        )
        for stage in graph.stages:
            parts.extend([_stage_table(report, stage, platforms.get(stage.index)), Text("")])
        if graph.unattributed_layers:
            parts.append(
                Text(f"{len(graph.unattributed_layers)} layers belong to no reconstructed stage", style="dim")
            )
    if graph is not None:
        parts.extend(Text(f"note: {sanitize(note)}", style="yellow") for note in graph.notes)
    parts.append(_health(report))
    return Group(*parts)
