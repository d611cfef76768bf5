"""Tag listing streams its pages and stops at a cap: a registry that pages without end cannot exhaust memory.

README (Transport, Limits): a tag listing holds at most 1,000,000 names; past that it is exit 8. ``tags``
prints each page as it arrives and keeps none; ``du`` and ``gc`` keep the parsed names, never a page's body.
Each test runs the real CLI in a subprocess against ``tests/harness/evilserver.py`` and reads the child's own peak
resident memory from ``wait4``.
"""

from __future__ import annotations

import json
import os
import select
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from inspector.registry.client import MAX_TAGS
from tests.harness.evilserver import EvilServer, Reply, Request, json_reply

PAGE = 20_000  # names per page
SERVED_PAGES = 60  # then the server stops: a client without the cap ends (1,200,000 names), not never


def _endless_pages(request: Request) -> Reply:
    """Every page holds PAGE new names and links to the next (until SERVED_PAGES, which a capped client never
    reaches): ``Link: </v2/app/tags/list?page=N+1>; rel="next"``, the form distribution itself sends."""
    page = int(request.query.removeprefix("page=") or 0) if request.query.startswith("page=") else 0
    names = [f"p{page:03d}-{i:05d}" for i in range(PAGE)]
    headers = {}
    if page + 1 < SERVED_PAGES:
        headers["Link"] = f'</v2/app/tags/list?page={page + 1}>; rel="next"'
    return json_reply(200, json.dumps({"name": "app", "tags": names}), **headers)


@dataclass(frozen=True)
class Finished:
    returncode: int
    stdout_lines: int
    stderr: str
    max_rss_mib: float


# The CLI, then its own peak RSS (VmHWM of /proc/self/status) written to $PEAK_FILE at exit. wait4's
# ru_maxrss is not used: Linux starts it at the forking parent's peak, and pytest's process can be large.
_MEASURED_MAIN = """
import atexit, os, runpy, sys
def _peak():
    with open("/proc/self/status") as status:
        kib = next(int(line.split()[1]) for line in status if line.startswith("VmHWM:"))
    with open(os.environ["PEAK_FILE"], "w") as out:
        out.write(str(kib))
atexit.register(_peak)
sys.argv[0] = "cacheinspect"
runpy.run_module("inspector", run_name="__main__", alter_sys=True)
"""


def _run_measured(*args: str, timeout: float = 120) -> Finished:
    """``python -m inspector ARGS``, killed after ``timeout``; stdout counted as it streams (never held here)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CACHEINSPECT_", "DOCKER_"))}
    env["DOCKER_CONFIG"] = "/nonexistent-docker-config"
    peak_file = tempfile.NamedTemporaryFile(delete=False)  # noqa: SIM115 (read after the child exits)
    peak_file.close()
    env["PEAK_FILE"] = peak_file.name
    with subprocess.Popen(
        [sys.executable, "-c", _MEASURED_MAIN, *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        stdin=subprocess.DEVNULL,
        env=env,
    ) as process:
        stdout, stderr = process.stdout, process.stderr
        assert stdout is not None and stderr is not None
        lines = 0
        errors: list[bytes] = []
        drain = threading.Thread(target=lambda: errors.append(stderr.read()), daemon=True)
        drain.start()
        watchdog = threading.Timer(timeout, process.kill)  # a client without the cap reads on and on
        watchdog.start()
        for _ in stdout:
            lines += 1
        process.wait()
        watchdog.cancel()
        drain.join(timeout=10)
    peak = Path(peak_file.name).read_text()
    os.unlink(peak_file.name)
    max_rss_mib = int(peak) / 1024 if peak else float("inf")  # killed by the watchdog: no peak written
    return Finished(process.returncode, lines, b"".join(errors).decode(errors="replace"), max_rss_mib)


def _error_line(stderr: str) -> str:
    assert "Traceback" not in stderr, stderr
    lines = [line for line in stderr.splitlines() if line.startswith("cacheinspect: error:")]
    assert len(lines) == 1, stderr
    return lines[0]


def test_cap_is_the_documented_million() -> None:
    assert MAX_TAGS == 1_000_000  # README, Transport: "a tag listing at most 1,000,000 names"


def test_tags_against_endless_pages_prints_up_to_the_cap_then_exit_8_in_bounded_memory() -> None:
    # By hand: 1,000,000 / 20,000 = 50 pages fit the cap exactly; the 51st is fetched, pushes the count to
    # 1,020,000 > 1,000,000 and is refused before any of its names is printed. So: 50 pages printed
    # (1,000,000 lines), 51 GETs of the tag list, exit 8 (invalid content).
    with EvilServer(_endless_pages) as evil:
        done = _run_measured("tags", f"{evil.host}/app", "--timeout", "60")
        gets = [r for r in evil.requests("GET") if r.path == "/v2/app/tags/list"]
    assert done.returncode == 8, done.stderr
    assert "more than 1,000,000 tags" in _error_line(done.stderr)
    assert done.stdout_lines == 1_000_000
    assert len(gets) == 51
    # Held, 1,000,000 names are ~60 MB of str objects (+ the list); streamed, the process holds one page
    # (~0.5 MB of JSON, 20,000 names). A `python -m inspector tags` of one small page peaks at ~40 MB here.
    assert done.max_rss_mib < 80, f"peak RSS {done.max_rss_mib:.0f} MiB"


def test_du_against_endless_pages_stops_at_the_cap_in_bounded_memory() -> None:
    # du keeps the names (it reads every tag's manifest afterwards), never the pages: at the cap it holds
    # 1,000,000 short names (~58 B per 9-character str + 8 B in the list and ~40 B in the dict that drops
    # repeats: ~110 MB, measured 129 MB peak with the interpreter); the pages' bodies (~12 MB of JSON in all)
    # are dropped as they are parsed. Without the cap it reads on (and then GETs a manifest per name).
    with EvilServer(_endless_pages) as evil:
        done = _run_measured("du", f"{evil.host}/app", "--json", "--timeout", "60")
        gets = [r for r in evil.requests("GET") if r.path == "/v2/app/tags/list"]
    assert done.returncode == 8, done.stderr
    assert "more than 1,000,000 tags" in _error_line(done.stderr)
    assert len(gets) == 51  # as above: the 51st page crosses the cap; no manifest is read
    assert not [r for r in evil.seen if "/manifests/" in r.path]
    assert done.max_rss_mib < 200, f"peak RSS {done.max_rss_mib:.0f} MiB"


def test_tags_prints_the_first_page_before_the_second_arrives() -> None:
    # The server holds the second page back until the test has read the first page's last name from the
    # CLI's stdout (a pipe, so the CLI must flush per page): a client that collects every page first
    # never prints, the test times out waiting and the server is released only then.
    first_page_seen = threading.Event()

    def script(request: Request) -> Reply:
        if request.query.startswith("page=1"):
            first_page_seen.wait(timeout=30)
            return json_reply(200, json.dumps({"name": "app", "tags": ["second-page"]}))
        return json_reply(
            200,
            json.dumps({"name": "app", "tags": ["a", "b"]}),
            Link='</v2/app/tags/list?page=1>; rel="next"',
        )

    env = {k: v for k, v in os.environ.items() if not k.startswith(("CACHEINSPECT_", "DOCKER_"))}
    with (
        EvilServer(script) as evil,
        subprocess.Popen(
            [sys.executable, "-m", "inspector", "tags", f"{evil.host}/app"],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            stdin=subprocess.DEVNULL,
            env={**env, "DOCKER_CONFIG": "/nonexistent-docker-config"},
        ) as process,
    ):
        assert process.stdout is not None
        received = b""
        deadline = time.monotonic() + 20
        while b"b\n" not in received and time.monotonic() < deadline:
            ready, _, _ = select.select([process.stdout], [], [], 0.2)
            if ready:
                chunk = os.read(process.stdout.fileno(), 4096)
                if not chunk:
                    break
                received += chunk
        streamed = received
        first_page_seen.set()
        out, err = process.communicate(timeout=60)
    assert streamed == b"a\nb\n", (streamed, err)
    assert process.returncode == 0, err
    assert streamed + out == b"a\nb\nsecond-page\n"


def test_tags_json_holds_names_and_is_one_document(tmp_path: Path) -> None:
    # --json prints one document, so it keeps the names (capped like everything else) until the last page.
    def script(request: Request) -> Reply:
        if request.query.startswith("page=1"):
            return json_reply(200, json.dumps({"name": "app", "tags": ["c"]}))
        return json_reply(
            200,
            json.dumps({"name": "app", "tags": ["a", "b"]}),
            Link='</v2/app/tags/list?page=1>; rel="next"',
        )

    with EvilServer(script) as evil:
        done = subprocess.run(
            [sys.executable, "-m", "inspector", "tags", f"{evil.host}/app", "--json"],
            capture_output=True,
            text=True,
            env={**os.environ, "DOCKER_CONFIG": str(tmp_path)},
            timeout=60,
            check=False,
        )
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == {"repository": f"{evil.host}/app", "tags": ["a", "b", "c"]}
