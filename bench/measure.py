"""Running one command as a child process: wall time, its own peak RSS, what the proxy saw."""

from __future__ import annotations

import math
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from .proxy import ProxyCore, ProxyStats

__all__ = ["Measured", "Run", "floor_seconds", "measure", "process_cpu", "run_once"]


@dataclass(frozen=True)
class Run:
    seconds: float
    max_rss_kib: int
    returncode: int
    stdout: bytes
    stderr: bytes
    stats: ProxyStats | None
    cpu: float = 0.0  # the command's user + system CPU seconds
    server_cpu: tuple[float, float] | None = None  # CPU seconds of (registry, proxy) meanwhile


# Runs in a fresh ``python -S``: spawns the command, waits for it with wait4, writes what it measured.
_LAUNCHER = """
import os, sys, time
result, argv = sys.argv[1], sys.argv[2:]
started = time.perf_counter()
pid = os.posix_spawnp(argv[0], argv, os.environ)
_, status, usage = os.wait4(pid, 0)
elapsed = time.perf_counter() - started
with open(result, "w") as handle:
    handle.write(f"{elapsed} {usage.ru_maxrss} {usage.ru_utime + usage.ru_stime} {os.waitstatus_to_exitcode(status)}")
"""


def run_once(
    argv: Sequence[str],
    *,
    env: Mapping[str, str],
    proxy: ProxyCore | None = None,
    server_cpu: Callable[[], tuple[float, float]] | None = None,
    timeout: float = 300.0,
) -> Run:
    """Run ``argv`` to completion and measure its wall time, CPU time and peak RSS.

    The command is started by a minimal launcher (``python -S``, ~8 MB), not by this
    process: Linux charges a child's ``ru_maxrss`` with the memory of the process it
    was forked from, and this one holds the data sets. The launcher times the child
    itself, so its own start-up is not counted. A watchdog kills both after ``timeout``.
    """
    with tempfile.TemporaryDirectory(prefix="bench-run-") as scratch:
        result = Path(scratch) / "result"
        out_path, err_path = Path(scratch) / "stdout", Path(scratch) / "stderr"
        with out_path.open("wb") as out, err_path.open("wb") as err:
            if proxy is not None:
                proxy.reset()
            before = server_cpu() if server_cpu is not None else (0.0, 0.0)
            process = subprocess.Popen(
                [sys.executable, "-S", "-c", _LAUNCHER, str(result), *argv],
                stdout=out,
                stderr=err,
                stdin=subprocess.DEVNULL,
                env=dict(env),
                start_new_session=True,
            )
            watchdog = threading.Timer(timeout, lambda: os.killpg(process.pid, signal.SIGKILL))
            watchdog.start()
            try:
                process.wait()
            finally:
                watchdog.cancel()
            after = server_cpu() if server_cpu is not None else (0.0, 0.0)
            stats = proxy.stats() if proxy is not None else None
        if process.returncode != 0 or not result.exists():
            return Run(0.0, 0, process.returncode or -1, out_path.read_bytes(), err_path.read_bytes(), stats)
        elapsed, rss, cpu, code = result.read_text().split()
        return Run(
            float(elapsed),
            int(rss),
            int(code),
            out_path.read_bytes(),
            err_path.read_bytes(),
            stats,
            float(cpu),
            (after[0] - before[0], after[1] - before[1]) if server_cpu is not None else None,
        )


@dataclass(frozen=True)
class Measured:
    """``repeat`` runs of one command: median time, largest RSS, request counts seen."""

    runs: tuple[Run, ...]
    problems: tuple[str, ...] = field(default=())

    @property
    def median(self) -> float:
        return statistics.median(r.seconds for r in self.runs)

    @property
    def fastest(self) -> float:
        return min(r.seconds for r in self.runs)

    @property
    def max_rss_mib(self) -> float:
        return max(r.max_rss_kib for r in self.runs) / 1024

    @property
    def requests(self) -> tuple[int, int]:
        counts = [r.stats.requests for r in self.runs if r.stats is not None]
        return (min(counts), max(counts)) if counts else (0, 0)

    @property
    def peak(self) -> int:
        return max((r.stats.peak_in_flight for r in self.runs if r.stats is not None), default=0)

    @property
    def stats(self) -> ProxyStats | None:
        return self.runs[-1].stats

    @property
    def cpu(self) -> float:
        """Median CPU seconds of the measured process."""
        return statistics.median(r.cpu for r in self.runs)

    @property
    def server_cpu(self) -> tuple[float, float] | None:
        """Median CPU seconds of the registry and of the proxy during a run."""
        values = [r.server_cpu for r in self.runs if r.server_cpu is not None]
        if not values:
            return None
        return statistics.median(v[0] for v in values), statistics.median(v[1] for v in values)

    @property
    def ok(self) -> bool:
        return not self.problems


def measure(
    argv: Sequence[str],
    *,
    env: Mapping[str, str],
    repeat: int,
    proxy: ProxyCore | None = None,
    server_cpu: Callable[[], tuple[float, float]] | None = None,
    check: Callable[[Run], str | None] | None = None,
    timeout: float = 300.0,
) -> Measured:
    """Run ``repeat`` times; ``check`` returns a problem description, or None when the output is right."""
    runs = []
    problems: list[str] = []
    for _ in range(repeat):
        result = run_once(argv, env=env, proxy=proxy, server_cpu=server_cpu, timeout=timeout)
        runs.append(result)
        problem = None
        if result.returncode != 0:
            tail = result.stderr.decode(errors="replace").strip().splitlines()[-1:] or [""]
            problem = f"exit {result.returncode}: {tail[0][:200]}"
        elif check is not None:
            problem = check(result)
        if problem is not None:
            problems.append(problem)
            break
    return Measured(tuple(runs), tuple(problems))


def floor_seconds(requests: int, concurrency: int, latency: float) -> float:
    """The least time ``requests`` round trips can take with ``concurrency`` in flight."""
    return math.ceil(requests / concurrency) * latency


def process_cpu(pid: int) -> float:
    """User + system CPU seconds a running process has used (``/proc/PID/stat``)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
