"""The Markdown report: one table per workload, the targets, the machine."""

from __future__ import annotations

import importlib.metadata
import os
import platform
import re
import shutil
import subprocess
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path

from .measure import Measured
from .workloads import Config, Row, Section, Target

__all__ = ["README_BEGIN", "README_END", "machine", "render", "targets", "update_readme"]

README_BEGIN = "<!-- bench:begin (python -m bench --readme rewrites this part) -->"
README_END = "<!-- bench:end -->"


def _seconds(value: float) -> str:
    if value < 1:
        return f"{value * 1000:.0f} ms"
    if value < 10:
        return f"{value:.2f} s"
    return f"{value:.1f} s"


def _mb(measured: Measured) -> str:
    return f"{max(r.max_rss_kib for r in measured.runs) * 1024 / 1e6:.0f} MB"


def rss_mb(measured: Measured) -> float:
    return max(r.max_rss_kib for r in measured.runs) * 1024 / 1e6


def _ratio(value: float) -> str:
    return f"{value:.2f}×" if value < 10 else f"{value:.1f}×"


def _requests(row: Row) -> str:
    assert row.measured is not None
    low, high = row.measured.requests
    text = f"{low:,}" if low == high else f"{low:,}–{high:,}"
    if row.min_requests is None:
        return text
    if low == high == row.min_requests:
        return f"{text} ✓"
    return f"{text} (+{high - row.min_requests:,})"


def _cells(row: Row, reference: Row | None) -> list[str]:
    cells = _bare_cells(row, reference)
    if row.note:
        cells[0] = f"{cells[0]} (*{row.note}*)"
    return cells


def _bare_cells(row: Row, reference: Row | None) -> list[str]:
    conc = str(row.concurrency) if row.concurrency is not None else "—"
    least = f"{row.min_requests:,}" if row.min_requests is not None else "—"
    floor = _seconds(row.floor) if row.floor is not None else "—"
    if row.measured is None:
        time = f"*{row.unavailable}*" if row.unavailable else "—"
        return [
            row.tool,
            conc,
            "—",
            least,
            "—",
            "—",
            time,
            floor,
            "1.00×" if not row.unavailable else "—",
            "—",
            "—",
            "—",
        ]
    m = row.measured
    if not m.ok:
        return [
            row.tool,
            conc,
            "—",
            least,
            "—",
            "—",
            f"**failed**: {m.problems[0]}",
            floor,
            "—",
            "—",
            "—",
            "—",
        ]
    times = f"{_seconds(m.median)}" + (f" (n={len(m.runs)})" if len(m.runs) > 1 else "")
    vs_floor = _ratio(m.median / row.floor) if row.floor else "—"
    vs_ref = "—"
    if reference is not None and reference.measured is not None:
        vs_ref = "1.00× (reference)" if row is reference else _ratio(m.median / reference.measured.median)
    server = f"{m.server_cpu[0]:.2f} / {m.server_cpu[1]:.2f}" if m.server_cpu is not None else "— / —"
    cpu = f"{m.cpu:.2f} / {server}"
    conns = f"{m.stats.connections:,}" if m.stats is not None else "—"
    return [
        row.tool,
        conc,
        _requests(row),
        least,
        str(m.peak),
        conns,
        times,
        floor,
        vs_floor,
        vs_ref,
        cpu,
        _mb(m),
    ]


_HEADER = [
    "tool",
    "c",
    "requests",
    "least needed",
    "peak in flight",
    "TCP conns",
    "time (median)",
    "floor",
    "× floor",
    "× cacheinspect",
    "CPU s: tool / registry / proxy",
    "max RSS",
]


def _table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    out = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    out += ["| " + " | ".join(cell.replace("|", "\\|") for cell in row) + " |" for row in rows]
    return out


def _section(section: Section) -> list[str]:
    out = [f"### {section.title}", "", section.intro, ""]
    reference = section.reference
    if section.title.startswith("4."):
        base = reference.measured.median if reference is not None and reference.measured else None
        rows = []
        for row in section.rows:
            m = row.measured
            assert m is not None
            ratio = _ratio(m.median / base) if base else "—"
            rows.append(
                [row.tool, _seconds(m.median), _seconds(m.fastest), ratio, f"{m.cpu * 1000:.0f} ms", _mb(m)]
            )
        out += _table(["command", "median", "fastest", "× `python -c pass`", "CPU", "max RSS"], rows)
    else:
        out += _table(_HEADER, [_cells(row, reference) for row in section.rows])
        seen = [
            f"{row.tool}: {row.measured.stats.describe()}"
            for row in section.rows
            if row.measured is not None and row.measured.ok and row.measured.stats is not None
        ]
        if seen:
            out += ["", "<details><summary>Requests seen by the proxy (last run of each)</summary>", ""]
            out += [f"- {line}" for line in seen]
            out += ["", "</details>"]
    if section.notes:
        out += [""] + [f"- {note}" for note in section.notes]
    out.append("")
    return out


def _find(sections: Sequence[Section], prefix: str) -> Section | None:
    return next((s for s in sections if s.title.startswith(prefix)), None)


def _row(section: Section | None, tool_prefix: str) -> Row | None:
    if section is None:
        return None
    return next(
        (
            r
            for r in section.rows
            if r.tool.startswith(tool_prefix) and r.measured is not None and r.measured.ok
        ),
        None,
    )


def _cpu_bound(row: Row) -> str:
    """What the CPU time of the run alone allows on this machine's cores."""
    m = row.measured
    if m is None or m.server_cpu is None:
        return ""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    total = m.cpu + sum(m.server_cpu)
    return f"; CPU alone (tool + registry + proxy ÷ {cores} cores) needs ≥ {_seconds(total / cores)}"


def _h2_targets(sections: Sequence[Section]) -> list[Target]:
    """Issue 17's targets on the HTTP/2 rows (sections 6 and 7)."""
    out: list[Target] = []
    show = _find(sections, "7.")
    ref, oras, control = _row(show, "cacheinspect show"), _row(show, "oras-py"), _row(show, "control")
    if ref is not None and ref.measured is not None and ref.floor:
        ratio = ref.measured.median / ref.floor
        text = f"{_ratio(ratio)} ({_seconds(ref.measured.median)} vs {_seconds(ref.floor)}; {ref.note})"
        if control is not None and control.measured is not None:
            text += f"; the bare-httpx HTTP/2 control: {_ratio(control.measured.median / ref.floor)}"
        http1 = next((r for r in show.rows if r.tool.startswith("floor (HTTP/1.1")), None) if show else None
        stats = ref.measured.stats
        if http1 is not None and http1.floor and stats is not None and set(stats.protocols) == {"http/1.1"}:
            text += f"; on HTTP/1.1 it is {_ratio(ref.measured.median / http1.floor)} of the c={http1.concurrency} floor"
        out.append(
            Target(
                "7: `show` over HTTP/2 within 1.5× of the HTTP/2 floor", text + _cpu_bound(ref), ratio <= 1.5
            )
        )
        if oras is not None and oras.measured is not None:
            speedup = oras.measured.median / ref.measured.median
            text = f"{_ratio(speedup)} ({_seconds(ref.measured.median)} vs {_seconds(oras.measured.median)})"
            if oras.floor:
                text += f"; the floors alone allow {_ratio(oras.floor / ref.floor)}"
            out.append(Target("7: `show` over HTTP/2 at least 25× faster than oras-py", text, speedup >= 25))
    tags = _find(sections, "8.")
    mine, skopeo = _row(tags, "cacheinspect tags"), _row(tags, "skopeo")
    if mine is not None and mine.measured is not None and skopeo is not None and skopeo.measured is not None:
        ratio = mine.measured.median / skopeo.measured.median
        text = f"{_ratio(ratio)} ({_seconds(mine.measured.median)} vs {_seconds(skopeo.measured.median)})"
        out.append(Target("8: `tags` over TLS within 1.5× of `skopeo list-tags`", text, ratio <= 1.5))
    return out


def targets(sections: Sequence[Section], config: Config) -> list[Target]:
    out: list[Target] = []
    show = _find(sections, "1.")
    ref = _row(show, "cacheinspect show --json")
    if ref is not None and ref.measured is not None and ref.floor:
        ratio = ref.measured.median / ref.floor
        out.append(
            Target(
                f"1: `show` within 1.5× of the floor at the default concurrency ({config.concurrency})",
                f"{_ratio(ratio)} ({_seconds(ref.measured.median)} vs {_seconds(ref.floor)}){_cpu_bound(ref)}",
                ratio <= 1.5,
            )
        )
        oras = _row(show, "oras-py")
        if oras is not None and oras.measured is not None and oras.floor:
            speedup = oras.measured.median / ref.measured.median
            text = (
                f"{_ratio(speedup)} ({_seconds(ref.measured.median)} vs {_seconds(oras.measured.median)}); "
                f"the floors alone allow at most {_ratio(oras.floor / ref.floor)} at c={config.concurrency}"
            )
            fastest = (
                min(
                    (
                        r
                        for r in show.rows
                        if r.tool.startswith("cacheinspect show --json") and r.measured and r.measured.ok
                    ),
                    key=lambda r: r.measured.median if r.measured else 0.0,
                )
                if show is not None
                else None
            )
            if fastest is not None and fastest is not ref and fastest.measured is not None:
                text += (
                    f"; with -j {fastest.concurrency}: "
                    f"{_ratio(oras.measured.median / fastest.measured.median)}"
                )
            out.append(Target("1: `show` at least 10× faster than oras-py", text, speedup >= 10))
    tags = _find(sections, "2.")
    mine, skopeo = _row(tags, "cacheinspect tags"), _row(tags, "skopeo")
    if mine is not None and mine.measured is not None:
        if skopeo is not None and skopeo.measured is not None:
            ratio = mine.measured.median / skopeo.measured.median
            text = (
                f"{_ratio(ratio)} of skopeo's time ({_seconds(mine.measured.median)} vs "
                f"{_seconds(skopeo.measured.median)})"
            )
            python = _row(_find(sections, "4."), "`python -c pass`")
            if python is not None and python.measured is not None and mine.floor is not None:
                bound = python.measured.median + mine.floor
                text += f"; `python -c pass` + the floor is already {_seconds(bound)}"
            out.append(Target("2: `tags` no slower than `skopeo list-tags`", text, ratio <= 1.0))
        else:
            out.append(Target("2: `tags` no slower than `skopeo list-tags`", "skopeo not measured", None))
    du = _find(sections, "3.")
    for prefix in ("cacheinspect du --json", "cacheinspect gc"):
        row = _row(du, prefix)
        if row is None or row.measured is None or not row.floor:
            continue
        ratio = row.measured.median / row.floor
        name = "du" if "du" in prefix else "gc planning"
        out.append(
            Target(
                f"3: {name} within 2× of its floor (least work)",
                f"{_ratio(ratio)} ({_seconds(row.measured.median)} vs {_seconds(row.floor)}){_cpu_bound(row)}",
                ratio <= 2.0,
            )
        )
        out.append(
            Target(
                f"3: {name} peak memory under 150 MB",
                f"{rss_mb(row.measured):.0f} MB",
                rss_mb(row.measured) < 150,
            )
        )
    start = _find(sections, "4.")
    for prefix, limit in (("`cacheinspect --version`", 0.150), ("`cacheinspect show --help`", 0.300)):
        row = _row(start, prefix)
        if row is None or row.measured is None:
            continue
        out.append(
            Target(
                f"4: {prefix} under {limit * 1000:.0f} ms",
                f"{_seconds(row.measured.median)} median",
                row.measured.median < limit,
            )
        )
    out += _h2_targets(sections)
    exact: list[str] = []
    extra: list[str] = []
    for section in sections:
        if section.title.startswith("5."):  # gc --apply: its least is a no-check reference, never the aim
            continue
        for row in section.rows:
            if not row.tool.startswith("cacheinspect") or row.measured is None or row.min_requests is None:
                continue
            low, high = row.measured.requests
            (exact if low == high == row.min_requests else extra).append(
                f"{row.tool} {high:,} vs {row.min_requests:,}"
            )
    if exact or extra:
        out.append(
            Target(
                "request counts equal the least the work needs",
                "; ".join(extra) if extra else f"all {len(exact)} cacheinspect rows exact",
                not extra,
            )
        )
    return out


def _version(argv: Sequence[str]) -> str:
    try:
        done = subprocess.run(list(argv), capture_output=True, text=True, timeout=10, check=False)
    except OSError:
        return "?"
    text = (done.stdout or done.stderr).strip().splitlines()
    return text[0] if text else "?"


def machine() -> str:
    model = "?"
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        found = re.search(r"^model name\s*:\s*(.+)$", cpuinfo.read_text(), re.M)
        model = found.group(1).strip() if found else "?"
    memory = "?"
    meminfo = Path("/proc/meminfo")
    if meminfo.exists():
        found = re.search(r"^MemTotal:\s*(\d+) kB", meminfo.read_text(), re.M)
        memory = f"{int(found.group(1)) / 1024 / 1024:.1f} GiB" if found else "?"
    nproc = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    registry = shutil.which("docker-registry")
    skopeo = shutil.which("skopeo")
    parts = [
        f"`nproc` {nproc}, CPU {model}, {memory} RAM",
        f"Linux {platform.release()}, Python {platform.python_version()}",
        f"docker-registry {_version([registry, '--version']).split()[-1] if registry else '?'}",
        f"skopeo {_version([skopeo, '--version']).split()[-1] if skopeo else 'not installed'}",
        f"oras-py {importlib.metadata.version('oras')}",
        f"httpx {importlib.metadata.version('httpx')}",
    ]
    return "; ".join(parts)


def render(
    sections: Sequence[Section],
    config: Config,
    notes: Sequence[str],
    when: datetime,
    command: str = "python -m bench",
) -> str:
    auth = "token auth emulated (401 challenge + anonymous Bearer token)" if config.auth else "no auth"
    connect = (
        f"{config.connect_latency * 1000:.0f} ms per new TCP connection"
        if config.connect_latency
        else "no delay per new TCP connection"
    )
    out = [
        f"Latest run: {when.astimezone(UTC):%Y-%m-%d %H:%M} UTC, `{command}` — latency "
        f"{config.latency * 1000:.0f} ms per request, {connect}, {auth}, cacheinspect's default concurrency "
        f"adaptive from {config.concurrency}.",
        "",
        f"Machine: {machine()}.",
        "",
    ]
    for section in sections:
        out += _section(section)
    goals = targets(sections, config)
    if goals:
        out += ["### Targets", ""]
        rows = [
            [t.text, t.measured, "met" if t.met else "**not met**" if t.met is False else "—"] for t in goals
        ]
        out += _table(["target", "measured", ""], rows)
        out.append("")
    out += ["### How to read this", ""]
    out += [f"- {note}" for note in notes]
    out.append("")
    return "\n".join(out)


def update_readme(readme: Path, body: str) -> None:
    """Put ``body`` between the bench markers of the README's Performance section (appended if absent)."""
    text = readme.read_text()
    block = f"{README_BEGIN}\n{body.rstrip()}\n{README_END}\n"
    if README_BEGIN in text and README_END in text:
        before, _, rest = text.partition(README_BEGIN)
        _, _, after = rest.partition(README_END)
        text = before + block.rstrip("\n") + after
    else:
        intro = (
            "## Performance\n\n"
            "`python -m bench` runs the benchmark suite in `bench/` and prints the Markdown below; "
            "`python -m bench --readme` also rewrites it here, `python -m bench --quick` runs small sizes in "
            "well under a minute (smoke test). It needs Debian's `docker-registry` (as the tests do) and installs "
            "Debian's `skopeo` with apt-get when it is missing, saying so.\n\n"
            "- **Setup**: the real `docker-registry` 2.8.2 on 127.0.0.1, seeded through its HTTP API (storage "
            "cached between runs under `$TMPDIR/cacheinspect-bench`, checked over HTTP before reuse), behind a "
            "threaded HTTP/1.1 latency proxy (`bench/proxy.py`: keep-alive, `TCP_NODELAY`) that waits a fixed "
            "delay (`--latency-ms`, default 20) before every answer, plays a token server (401 challenge, "
            "anonymous scoped Bearer tokens; `--no-auth` to turn off), and counts requests, TCP connections and "
            "peak requests in flight. `--connect-latency-ms` also charges each new TCP connection; the default "
            "table charges requests only, plus two `show` rows with one round trip per new connection.\n"
            "- **Workloads**: (1) `show` with blob checks on a mode=max cache of 1,000 layers generated "
            "byte-exactly like BuildKit, beside oras-py, a naive sequential httpx loop, `skopeo inspect --raw` "
            "and a bare-httpx thread-pool control; (2) `tags` on 10,000 tags beside `skopeo list-tags` and "
            "oras-py; (3) `du` and `gc` planning over 2,000 distinct cache manifests; (4) start-up against "
            "`python -c pass`.\n"
            "- **Honesty rules**: each tool is a fresh process, timed by a small launcher; every run's output is "
            "checked (layer counts, tag counts, plan summary) before its time counts; the floor is "
            "⌈requests ÷ concurrency⌉ × latency with the least requests the work needs; ratios are given, not "
            "only seconds; the machine is shared, so its load average is printed with the results.\n\n"
        )
        text = text.rstrip("\n") + "\n\n" + intro + block
    readme.write_text(text)
