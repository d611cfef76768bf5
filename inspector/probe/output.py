"""Probe reports as JSON (``probe.schema.json``), JUnit XML and GitHub step-summary Markdown.

JUnit follows the usual schema CI systems read (Jenkins, GitLab, GitHub test reporters):
``testsuites`` > ``testsuite`` (tests, failures, errors, skipped, time) > ``testcase``
(classname, name, time). CI turns red on any ``failure`` or ``error``, so only what makes the
run fail is one: the checks that decided a non-zero exit (``ProbeReport.failed_by``) are a
``failure`` (``error`` when inconclusive), and the ``--cache-to`` verdict is a test case of its
own, failing exactly when it does not work. Every other check is a fact about the registry: it
passes (its status and answer in ``system-out``), or is ``skipped`` when it was not run or could
not conclude. Failures and errors therefore appear exactly when the exit code is not 0.
"""

from __future__ import annotations

import socket
import xml.etree.ElementTree as ET
from collections import Counter
from typing import Any

from inspector._sanitize import markdown_text, sanitize
from inspector._version import __version__
from inspector.probe.classify import STATUSES
from inspector.probe.kb import SOURCES, Fact
from inspector.probe.model import Check, ProbeReport

__all__ = ["CHECKS_TSV_HEADER", "checks_tsv_rows", "junit_xml", "markdown_summary", "probe_report_to_json"]

_ICONS = {
    "supported": "✅",
    "unsupported": "❌",
    "denied": "🔒",
    "config-error": "⚠️",
    "inconclusive": "❔",
    "skipped": "➖",
}
_VERDICT_ICONS = {
    "works": "✅",
    "will-not-work": "❌",
    "unknown": "❔",
    "inconclusive": "❔",
    "denied": "🔒",
    "config-error": "⚠️",
}


def _fact(fact: Fact) -> dict[str, Any]:
    return {
        "topic": fact.topic,
        "verdict": fact.verdict,
        "text": fact.text,
        "sources": list(fact.sources),
        "note": fact.note or None,
    }


CHECKS_TSV_HEADER = ("id", "group", "status", "basis", "summary", "hint")


def checks_tsv_rows(report: ProbeReport) -> list[tuple[object, ...]]:
    """``probe -o tsv``: one row per check (the verdict and the recommendation are in the table and JSON)."""
    return [(c.id, c.group, c.status, c.basis, c.summary, c.hint) for c in report.checks]


def _check(check: Check) -> dict[str, Any]:
    answer = check.answer
    return {
        "id": check.id,
        "group": check.group,
        "title": check.title,
        "status": check.status,
        "summary": check.summary,
        "basis": check.basis,
        "answer": None
        if answer is None
        else {
            "method": answer.method,
            "path": answer.path,
            "status": answer.status,
            "code": answer.code or None,
            "message": answer.message or None,
        },
        "hint": check.hint,
        "blockedBy": check.blocked_by,
        "retries": check.retries,
        "durationMs": check.duration_ms,
        "observed": dict(check.observed),
        "documented": [_fact(f) for f in check.documented],
    }


def probe_report_to_json(report: ProbeReport) -> dict[str, Any]:
    """The ``probe --json`` document (schemas/probe.schema.json)."""
    rec = report.recommendation
    verdict = report.cache_to
    counts = Counter(c.status for c in report.checks)
    return {
        "tool": "cacheinspect",
        "version": __version__,
        "target": report.target,
        "mode": report.mode,
        "runId": report.run_id,
        "family": {
            "id": report.family.family.id,
            "name": report.family.family.name,
            "basis": report.family.basis,
        },
        "startedAt": report.started_at,
        "durationMs": report.duration_ms,
        "requests": report.requests,
        "exitCode": report.exit_code,
        "counts": {status: counts.get(status, 0) for status in STATUSES},
        "checks": [_check(c) for c in report.checks],
        "recommendation": {
            "form": rec.form,
            "attributes": dict(rec.attributes),
            "cacheTo": rec.cache_to,
            "basis": rec.basis,
            "reason": rec.reason,
            "notes": list(rec.notes),
            "sources": list(rec.sources),
            "cleanup": {
                "method": rec.cleanup.method,
                "text": rec.cleanup.text,
                "basis": rec.cleanup.basis,
                "sources": list(rec.cleanup.sources),
            },
        },
        "cacheTo": None
        if verdict is None
        else {
            "input": verdict.input,
            "attributes": dict(verdict.attributes),
            "buildkit": verdict.buildkit,
            "form": verdict.form,
            "verdict": verdict.verdict,
            "basis": verdict.basis,
            "reason": verdict.reason,
            "exitCode": verdict.exit_code,
            "problems": [
                {"severity": p.severity, "code": p.code, "message": p.message, "sources": list(p.sources)}
                for p in verdict.problems
            ],
        },
        "leftovers": [
            {"kind": i.kind, "reference": i.reference, "reason": i.reason} for i in report.leftovers
        ],
        "knowledge": [_fact(f) for f in report.family.family.facts],
        "sources": {sid: SOURCES[sid] for sid in report.sources if sid in SOURCES},
    }


# --------------------------------------------------------------------------- JUnit


def _details(check: Check) -> str:
    lines = [f"status: {check.status}", check.summary]
    if check.answer is not None and check.answer.status is not None:
        a = check.answer
        lines.append(
            f"{a.method} {a.path} -> {a.status} {a.code}".rstrip() + (f": {a.message}" if a.message else "")
        )
    if check.hint:
        lines.append(f"hint: {check.hint}")
    if check.blocked_by:
        lines.append(f"blocked by: {check.blocked_by}")
    for fact in check.documented:
        lines.append(f"documented ({fact.verdict}): {fact.text} [{']['.join(fact.sources)}]")
        if fact.note:
            lines.append(f"  {fact.note}")
    return "\n".join(lines)


def junit_xml(report: ProbeReport) -> str:
    """The report as a JUnit XML document: one test case per check (plus one for ``--cache-to``)."""
    suite_name = f"cacheinspect probe {report.target}"
    root = ET.Element("testsuites", name="cacheinspect probe")
    suite = ET.SubElement(
        root, "testsuite", name=suite_name, timestamp=report.started_at, hostname=socket.gethostname()
    )
    properties = ET.SubElement(suite, "properties")
    props = {
        "family": report.family.family.id,
        "familyBasis": report.family.basis,
        "mode": report.mode,
        "runId": report.run_id or "",
        "exitCode": str(report.exit_code),
        "recommendedCacheTo": report.recommendation.cache_to or "",
        "cleanup": report.recommendation.cleanup.text,
    }
    for name, value in props.items():
        ET.SubElement(properties, "property", name=name, value=value)
    counts = Counter[str]()
    total_ms = 0
    deciding = frozenset(report.failed_by)
    for check in report.checks:
        case = ET.SubElement(
            suite,
            "testcase",
            classname=f"cacheinspect.probe.{check.group}",
            name=check.id,
            time=f"{check.duration_ms / 1000:.3f}",
        )
        total_ms += check.duration_ms
        counts["tests"] += 1
        if check.id in deciding:
            kind = "error" if check.status == "inconclusive" else "failure"
            counts["errors" if kind == "error" else "failures"] += 1
            node = ET.SubElement(case, kind, message=check.summary, type=check.status)
            node.text = _details(check)
        elif check.status in ("skipped", "inconclusive"):
            counts["skipped"] += 1
            ET.SubElement(case, "skipped", message=f"{check.status}: {check.summary}")
        out = ET.SubElement(case, "system-out")
        out.text = f"{check.title}\n{_details(check)}"
    verdict = report.cache_to
    if verdict is not None:
        case = ET.SubElement(
            suite, "testcase", classname="cacheinspect.probe.cache-to", name="cache-to", time="0.000"
        )
        counts["tests"] += 1
        problems = "\n".join(f"{p.severity}: {p.message}" for p in verdict.problems)
        text = f"--cache-to {verdict.input}\n{verdict.buildkit}: {verdict.reason}\n{problems}".rstrip()
        if verdict.verdict in ("will-not-work", "denied", "config-error"):
            counts["failures"] += 1
            node = ET.SubElement(case, "failure", message=verdict.reason, type=verdict.verdict)
            node.text = text
        elif verdict.verdict == "inconclusive":
            counts["errors"] += 1
            node = ET.SubElement(case, "error", message=verdict.reason, type=verdict.verdict)
            node.text = text
        out = ET.SubElement(case, "system-out")
        out.text = text
    seconds = f"{max(report.duration_ms, total_ms) / 1000:.3f}"
    for element in (root, suite):
        element.set("tests", str(counts["tests"]))
        element.set("failures", str(counts["failures"]))
        element.set("errors", str(counts["errors"]))
        element.set("skipped", str(counts["skipped"]))
        element.set("time", seconds)
    for element in root.iter():  # registry text in messages and output: XML 1.0 characters only
        element.text = sanitize(element.text, keep_newlines=True) if element.text else element.text
        for key, value in element.attrib.items():
            element.set(key, sanitize(value))
    ET.indent(root)
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(root, encoding="unicode") + "\n"


# --------------------------------------------------------------------------- Markdown


def _cell(text: str) -> str:
    return markdown_text(text)


def markdown_summary(report: ProbeReport) -> str:
    """GitHub step-summary Markdown: verdict first, then the recommendation, checks and leftovers."""
    rec = report.recommendation
    lines = [f"## cacheinspect probe `{report.target}`", ""]
    run = f" · run `{report.run_id}`" if report.run_id else ""
    lines.append(
        f"Registry: **{report.family.family.name}** ({report.family.basis}) · mode: {report.mode}{run} · "
        f"exit {report.exit_code}"
    )
    lines.append("")
    verdict = report.cache_to
    if verdict is not None:
        icon = _VERDICT_ICONS[verdict.verdict]
        lines.append(f"{icon} `--cache-to {verdict.input}`: **{verdict.verdict}** — {verdict.reason}")
        for problem in verdict.problems:
            if problem.severity != "info":
                lines.append(f"- {problem.severity}: {problem.message}")
        lines.append("")
    if rec.cache_to:
        lines.append(f"Recommended: `--cache-to '{rec.cache_to}'` — {rec.reason}")
    else:
        lines.append(f"Recommended: none — {rec.reason}")
    lines.append(f"Cleanup ({rec.cleanup.basis}): {rec.cleanup.text}")
    lines += ["", "| check | status | result |", "|---|---|---|"]
    for check in report.checks:
        lines.append(f"| `{check.id}` | {_ICONS[check.status]} {check.status} | {_cell(check.summary)} |")
    kept = [item for item in report.leftovers if item.kind != "blob"]
    if kept:
        lines += ["", f"Left in the registry ({len(kept)}):", ""]
        lines += [f"- {i.kind} `{i.reference}` — {i.reason}" for i in kept]
    return "\n".join(lines) + "\n"
