"""``python -m bench``: run the benchmark suite and print a Markdown table.

The suite needs Debian's ``docker-registry`` (as the tests do) and installs
Debian's ``skopeo`` with apt-get when it is missing (and says so). Seeded
registry storage is cached under ``$TMPDIR/cacheinspect-bench``.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

from inspector.registry.client import ClientOptions

from .h2proxy import DEFAULT_STREAMS
from .h2workloads import run_h2
from .org import run_gc_org
from .report import render, update_readme
from .workloads import (
    ROOT,
    Config,
    Section,
    Tools,
    cacheinspect_command,
    child_env,
    ensure_skopeo,
    run_du,
    run_gc_apply,
    run_show,
    run_startup,
    run_tags,
)

WORKLOADS = ("show", "tags", "du", "startup", "gc-apply", "gc-org", "h2")


def _log(message: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def _gc_planning_available() -> tuple[bool, str]:
    """Is there a gc planner (``inspector.gc`` with collect_inventory + plan_repository) and a gc command?"""
    if importlib.util.find_spec("inspector.gc") is None:
        return False, "no `inspector/gc/`: gc planning is not measured"
    import inspector.gc as gc

    if not (hasattr(gc, "collect_inventory") and hasattr(gc, "plan_repository")):
        return False, "`inspector.gc` has no planning entry point: gc planning is not measured"
    return True, (
        "gc planning: `inspector.gc` exposes `collect_inventory` (gc/inventory.py) + `plan_repository` "
        "(gc/plan.py); measured through `cacheinspect gc` (dry run is its default)"
    )


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sizes, one run each (smoke test)")
    parser.add_argument("--latency-ms", type=float, default=20.0, help="delay per request (default 20)")
    parser.add_argument(
        "--connect-latency-ms",
        type=float,
        default=0.0,
        help="delay per new TCP connection, for handshake round trips (default 0: per-request delay only)",
    )
    parser.add_argument("--no-auth", action="store_true", help="no token-auth emulation in the proxy")
    parser.add_argument(
        "--h2-streams",
        type=int,
        default=DEFAULT_STREAMS,
        help=f"SETTINGS_MAX_CONCURRENT_STREAMS of the HTTP/2 proxy (default {DEFAULT_STREAMS})",
    )
    parser.add_argument("--repeat", type=int, default=None, help="runs per measurement (default 3; quick 1)")
    parser.add_argument(
        "--only", default=",".join(WORKLOADS), help=f"comma-separated subset of {', '.join(WORKLOADS)}"
    )
    parser.add_argument("--output", type=Path, help="also write the Markdown to this file")
    parser.add_argument("--readme", action="store_true", help="write the tables into docs/performance.md")
    args = parser.parse_args(argv)
    unknown = set(args.only.split(",")) - set(WORKLOADS)
    if unknown:
        parser.error(f"--only: unknown workload(s) {', '.join(sorted(unknown))}")
    if args.latency_ms < 0 or args.connect_latency_ms < 0 or (args.repeat is not None and args.repeat < 1):
        parser.error("--latency-ms and --connect-latency-ms must be >= 0 and --repeat >= 1")
    if args.h2_streams < 1:
        parser.error("--h2-streams must be >= 1")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    repeat = args.repeat or (1 if args.quick else 3)
    config = Config(
        latency=args.latency_ms / 1000,
        concurrency=ClientOptions().concurrency,
        layers=100 if args.quick else 1000,
        tags=1000 if args.quick else 10_000,
        manifests=200 if args.quick else 2000,
        repeat=repeat,
        slow_repeat=repeat,
        startup_repeat=max(repeat, 5 if args.quick else 20),
        auth=not args.no_auth,
        extra_concurrency=(16,) if args.quick else (12, 16),
        gc_keep_last=50 if args.quick else 500,
        connect_latency=args.connect_latency_ms / 1000,
        h2_streams=args.h2_streams,
    )
    only = set(args.only.split(","))
    notes = [
        "**floor** = ⌈requests ÷ c⌉ × latency, with the least requests the work needs (column *least needed*) "
        "and the row's concurrency *c*; it ignores that some requests depend on earlier ones (the manifest "
        "before the blob checks), so it is a slightly optimistic bound. *× floor* = median time ÷ floor of the "
        "row; *× cacheinspect* = median time ÷ the reference cacheinspect row of the workload.",
        "Every time is the wall time of a fresh process (interpreter start-up included), median of the runs "
        "shown; *CPU s* is that process's user + system time, then what the registry and the proxy spent "
        "meanwhile (all three share this machine's cores); *max RSS* is that process's own peak resident "
        "memory, the largest over its runs (from `wait4` in a minimal `python -S` launcher, so values under "
        "~8 MB read as ~8 MB).",
        "*requests* are counted by the proxy (✓ = exactly the least needed); every answer, including 401 "
        "challenges and token responses, waits the full latency. The registry is the real Debian "
        "`docker-registry` 2.8.2 (error-level logging: at info it writes a line per request), with "
        "`storage.cache.blobdescriptor: inmemory`; the proxy runs in the suite's process on the same "
        "127.0.0.1. *TCP conns* = connections the tool opened to the proxy (keep-alive reuses one).",
    ]
    with tempfile.TemporaryDirectory(prefix="cacheinspect-bench-home-") as home:
        skopeo: str | None = None
        if only & {"show", "tags", "h2"}:
            skopeo, skopeo_note = ensure_skopeo(_log)
            notes.append(skopeo_note + ".")
            if skopeo and only & {"show", "tags"}:
                notes.append(
                    "skopeo is asked with `--tls-verify=false`, so it first tries HTTPS on the plain-HTTP proxy "
                    "and falls back to HTTP (what it does against any plain-HTTP registry); it also pings "
                    "`/v2/` before its real request."
                )
        tools = Tools(cacheinspect_command(), sys.executable, skopeo, child_env(Path(home)))
        sections: list[Section] = []
        started = time.monotonic()
        load_before = os.getloadavg()[0]
        if "show" in only:
            _log("workload 1: show")
            sections.append(run_show(config, tools, _log))
        if "tags" in only:
            _log("workload 2: tags")
            sections.append(run_tags(config, tools, _log))
        if "du" in only:
            with_gc, gc_note = _gc_planning_available()
            notes.append(gc_note + ".")
            _log("workload 3: du / gc planning")
            sections.append(run_du(config, tools, _log, with_gc=with_gc))
        if "gc-apply" in only:
            _log("workload 5: gc --apply (a fresh storage copy per run)")
            sections.append(run_gc_apply(config, tools, _log))
        if "gc-org" in only:
            _log("workload 6: gc discovery and planning over an organisation")
            sections.append(
                run_gc_org(
                    config,
                    tools,
                    _log,
                    repositories=20 if args.quick else 100,
                    tags=50 if args.quick else 200,
                )
            )
        if "startup" in only:
            _log("workload 4: start-up")
            sections.append(run_startup(config, tools, _log))
        if "h2" in only:
            _log("workloads 7-10: HTTP/2 over TLS")
            sections += run_h2(config, tools, _log)
            notes.append(
                "HTTP/2 rows (7–10): the same registry serves the same storage over TLS (a test CA made by "
                "`trustme` for the run) behind `bench/h2proxy.py`, an asyncio proxy on the `h2` package that "
                "speaks HTTP/2 (or HTTP/1.1, by ALPN) over TLS and charges the latency per stream; it forwards "
                "over a keep-alive HTTP/1.1 pool to the registry. Its CPU is the *proxy* column: `h2` is pure "
                "Python. skopeo trusts the CA with `--cert-dir`, cacheinspect with `--ca-file`, oras-py "
                "through `REQUESTS_CA_BUNDLE`. Which protocol each tool negotiated is in its row."
            )
        elapsed = time.monotonic() - started
        _log(f"done in {elapsed:.0f} s")
        notes.append(
            f"The suite ran for {elapsed:.0f} s; 1-minute load average {load_before:.2f} at its start and "
            f"{os.getloadavg()[0]:.2f} at its end (on {os.cpu_count()} CPUs: other work on the machine "
            "competes for the same cores)."
        )
    markdown = render(
        sections, config, notes, datetime.now(UTC), " ".join(["python -m bench", *sys.argv[1:]])
    )
    print(markdown)
    if args.output is not None:
        args.output.write_text(markdown)
    if args.readme:
        update_readme(ROOT / "docs" / "performance.md", markdown)
        _log("docs/performance.md: tables updated")
    failed = [
        f"{s.title}: {r.tool}"
        for s in sections
        for r in s.rows
        if r.measured is not None and not r.measured.ok
    ]
    for item in failed:
        _log(f"FAILED: {item}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
