"""Human views (rich renderables) of the library's values: caches, repositories, gc plans and reports, probes."""

from inspector.cli.render.cache import render_report
from inspector.cli.render.explain import render_explanation
from inspector.cli.render.gc import render_gc_report, render_plan
from inspector.cli.render.history import render_history
from inspector.cli.render.probe import render_probe
from inspector.cli.render.repo import render_diff, render_usage

__all__ = [
    "render_diff",
    "render_explanation",
    "render_gc_report",
    "render_history",
    "render_plan",
    "render_probe",
    "render_report",
    "render_usage",
]
