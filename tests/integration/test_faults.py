"""Every command through a seeded fault-injection proxy in front of the real registry (tests/harness/faultproxy.py).

At a 10% fault rate, over several seeds, each command either gives exactly the answer of a fault-free run
or exits with its documented code and a one-line message: never a traceback, never a hang (each run has a
wall-clock bound). Faults a correct client gets past (reset, 5xx, 429, slow, trickle, truncate, a flipped
byte, redirect, on requests it may repeat) must be got past; the others (an oversized body, a Link loop)
must end in exit 8, or, where a command reads each tag on its own (du, gc), in that tag being reported as
unreadable and never deleted. The proxy wants Basic credentials, and its cross-host redirect target
records whether ``Authorization`` ever reached it: it must not. ``gc --apply`` under faults may stop early
or report failed tags (exit 7), but never loses a kept tag, and a rerun without faults reaches the
planned state. Targeted tests then take one fault kind at a time.

Speed: most of a faulted run is waiting (timeouts, backoff), so the runs of the seeded matrix and of the
slow targeted batches are real processes (``python -m inspector``, killed at their bound), each with a
proxy of its own, started side by side in the background when the module starts (``jobs``); their tests,
at the end of the file, judge what came back. The other targeted tests run the CLI in-process
(``cli.run``, on a thread with a bound) meanwhile. Timeouts are the CLI's minimum (``--timeout 1``),
``Retry-After`` is 0 (1 where it is the point).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from inspector.cli import run
from inspector.errors import DigestMismatch, ServerError
from inspector.oci import mediatypes
from inspector.oci.digest import sha256_digest
from inspector.oci.models import Descriptor
from inspector.oci.reference import parse_repository
from inspector.registry._http import read_capped
from inspector.registry.client import ClientOptions, RegistryClient
from tests.harness.faultproxy import (
    ALL_FAULTS,
    BODY_FAULTS,
    RECOVERABLE_FAULTS,
    FaultProxy,
    Injected,
    Seen,
    _applies,
)
from tests.harness.registry import LocalRegistry, load_samples, seed_sample
from tests.integration.test_gc import BRANCHES, DELETED, KEPT, RULES, Seeder, seed_scenario

USER, PASSWORD = "fault-user", "fault-secret"
RATE = 0.1
SEEDS = range(8)
BOUND = 60.0  # seconds any one CLI run may take before it counts as a hang
WORKERS = 6  # background jobs at a time
FAST = ("--timeout", "1")
ERROR_PREFIX = "cacheinspect: error: "
HINT_PREFIX = "cacheinspect: hint: "
SAMPLES = ("multistage-max", "multistage-min", "three-stages")
Samples = dict[str, dict[str, str]]


@dataclass(frozen=True)
class Outcome:
    args: tuple[str, ...]
    code: int
    out: str
    err: str
    seconds: float

    def json(self) -> Any:
        return json.loads(self.out)


@dataclass(frozen=True)
class Record:
    """A run and what its proxy saw (kept after the proxy is closed)."""

    outcome: Outcome
    host: str
    injected: list[Injected]
    seen: list[Seen]
    leaked: list[Seen] = field(default_factory=list)  # requests that brought Authorization to the other host

    @property
    def context(self) -> str:
        return f"{' '.join(self.outcome.args)}\ninjected: {self.injected}\nstderr: {self.outcome.err}"

    def document(self) -> Any:
        return normalise(json.loads(self.outcome.out.replace(self.host, "PROXY")))


def spawn(*args: str, bound: float = BOUND) -> Outcome:
    """``python -m inspector ARGS`` with the proxy's credentials in the environment; killed at ``bound``."""
    env = {**os.environ, "CACHEINSPECT_USERNAME": USER, "CACHEINSPECT_PASSWORD": PASSWORD, "NO_COLOR": "1"}
    env.pop("GITHUB_STEP_SUMMARY", None)
    started = time.monotonic()
    try:
        done = subprocess.run(
            [sys.executable, "-m", "inspector", *args],
            capture_output=True,
            text=True,
            timeout=bound,
            env=env,
            stdin=subprocess.DEVNULL,
        )
    except subprocess.TimeoutExpired:
        pytest.fail(f"cacheinspect {' '.join(args)} was still running after {bound:.0f} s: a hang")
    return Outcome(tuple(args), done.returncode, done.stdout, done.stderr, time.monotonic() - started)


@contextmanager
def fault_proxy(registry: LocalRegistry, **options: Any) -> Iterator[FaultProxy]:
    instance = FaultProxy(registry.url, basic_auth=(USER, PASSWORD), retry_after="0", **options)
    try:
        yield instance
    finally:
        instance.close()


def record(proxy: FaultProxy, outcome: Outcome) -> Record:
    return Record(outcome, proxy.host, list(proxy.injected), list(proxy.seen), proxy.other.authorized)


# -- judging a run --------------------------------------------------------------------------------------


def assert_clean_failure(outcome: Outcome, codes: set[int]) -> None:
    """A documented exit code, one error line (plus at most a hint line), no traceback."""
    assert outcome.code in codes, f"exit {outcome.code}, expected one of {sorted(codes)}:\n{outcome.err}"
    assert "Traceback" not in outcome.err and "internal error" not in outcome.err, outcome.err
    lines = outcome.err.splitlines()
    assert lines and lines[0].startswith(ERROR_PREFIX), outcome.err
    assert len(lines) <= 2 and all(line.startswith(HINT_PREFIX) for line in lines[1:]), outcome.err


def unrecoverable(injected: list[Injected]) -> set[str]:
    return {i.fault for i in injected} - RECOVERABLE_FAULTS


def retried(fault: Injected) -> bool:
    """Whether the client repeats the request after this fault: reads, manifest PUTs and DELETEs; a blob
    upload only after a 429 (the registry did not act on it)."""
    upload = fault.method in ("POST", "PATCH") or (fault.method == "PUT" and "/blobs/uploads/" in fault.path)
    return not upload or fault.fault == "ratelimit"


def exhausted(injected: list[Injected]) -> bool:
    """Whether some request met a fault on each of its 5 attempts (the client retries 4 times)."""
    return max(Counter((i.method, i.path) for i in injected).values(), default=0) >= 5


def counts(seen: list[Seen]) -> Counter[tuple[str, str]]:
    return Counter((s.method, s.path) for s in seen)


def assert_sane(rec: Record, baseline: Counter[tuple[str, str]] | None = None) -> None:
    """No traceback, no credentials at the other host, and (given the fault-free run's requests) no
    request sent more than 1 + 4 retries times per time the fault-free run sent it (+1: a 401)."""
    assert "Traceback" not in rec.outcome.err and "internal error" not in rec.outcome.err, rec.context
    assert not rec.leaked, f"Authorization reached the other host: {rec.leaked}\n{rec.context}"
    if baseline is None:
        return
    for key, count in counts(rec.seen).items():
        assert count <= 5 * max(baseline[key], 1) + 1, f"{key} sent {count} times\n{rec.context}"


def normalise(document: Any) -> Any:
    """Drop what differs between two fault-free runs (times, counts of requests and retries)."""
    if isinstance(document, dict):
        # rulesDigest hashes the repository, whose host is the proxy's (its port differs per run).
        volatile = {"createdAt", "plannedAt", "startedAt", "durationMs", "requests", "retries", "runId"}
        volatile.add("rulesDigest")
        return {k: normalise(v) for k, v in document.items() if k not in volatile}
    if isinstance(document, list):
        return [normalise(v) for v in document]
    return document


def judge_read(rec: Record, command: str, expected: Any, baseline: Counter[tuple[str, str]]) -> str:
    """A read-only command under faults: the fault-free answer, or exit 8 for a fault nobody can get past
    (du and gc read each tag on their own: there, a spoiled tag may instead be reported, see judge_partial)."""
    assert_sane(rec, baseline)
    if unrecoverable(rec.injected) and rec.outcome.code != 0:
        assert_clean_failure(rec.outcome, {8})
        return "exit 8"
    if rec.outcome.code == 6 and exhausted(rec.injected):
        assert_clean_failure(rec.outcome, {6})
        return "exit 6"
    assert rec.outcome.code == 0, rec.context
    if unrecoverable(rec.injected):
        judge_partial(rec, command, expected)
        return "tag reported unreadable"
    assert rec.document() == expected, rec.context
    return "correct"


def judge_partial(rec: Record, command: str, expected: Any) -> None:
    """Exit 0 after an answer was spoiled beyond use: only du and gc may, by reporting the spoiled tag
    (du: skipped; gc: kept as "unreadable"), and the plan never deletes a tag the fault-free plan keeps."""
    got = rec.document()
    if command == "du":
        skipped = got["tags"]["skipped"]
        assert skipped and all("limit" in s["reason"] for s in skipped), rec.context
        assert {m["digest"] for m in got["manifests"]} <= {m["digest"] for m in expected["manifests"]}
    elif command == "gc-plan":
        (planned,), (clean,) = got["repositories"], expected["repositories"]
        unreadable = [t for t in planned["tags"] if t["rule"] == "unreadable"]
        assert unreadable and all(t["action"] == "keep" for t in unreadable), rec.context
        deleted = {t["tag"] for t in planned["tags"] if t["action"] == "delete"}
        assert deleted <= {t["tag"] for t in clean["tags"] if t["action"] == "delete"}, rec.context
    else:
        raise AssertionError(f"exit 0 though an answer was spoiled beyond use\n{rec.context}")


# -- the background jobs --------------------------------------------------------------------------------

# The seeded read matrix: name -> the command's arguments, given the proxy host. "-j 1": one request at a
# time, so the N-th request of a kind is the same one in every run, and a seed reproduces its faults
# exactly. "show-concurrent": blob HEADs 8 at a time, faults keyed on the path (the samples' content is
# fixed), so reproducible too.
READS: dict[str, Callable[[str, Samples, Path], tuple[str, ...]]] = {
    "show": lambda host, samples, branches: (
        "show",
        f"{host}/faults/multistage-max:oci-index",
        "--json",
        "-j",
        "1",
    ),
    "show-by-digest": lambda host, samples, branches: (
        "show",
        f"{host}/faults/three-stages@{samples['three-stages']['latest']}",
        "--json",
        "-j",
        "1",
    ),
    "show-concurrent": lambda host, samples, branches: (
        "show",
        f"{host}/faults/multistage-max:docker-manifest-list",
        "--json",
        "-j",
        "8",
    ),
    "tags": lambda host, samples, branches: ("tags", f"{host}/faults/read", "--json", "-n", "1"),
    "du": lambda host, samples, branches: ("du", f"{host}/faults/read", "--json", "-n", "4", "-j", "1"),
    "diff": lambda host, samples, branches: (
        "diff",
        f"{host}/faults/multistage-max:image-manifest",
        f"{host}/faults/multistage-min:latest",
        "--json",
        "-j",
        "1",
    ),
    "gc-plan": lambda host, samples, branches: (
        "gc",
        f"{host}/faults/read",
        *RULES,
        "--branches-file",
        str(branches),
        "--json",
        "-n",
        "4",
        "-j",
        "1",
    ),
}


@dataclass(frozen=True)
class Env:
    registry: LocalRegistry
    samples: Samples
    branches: Path


def read_job(env: Env, which: tuple[str, int | None]) -> Record:
    """One run of a read command: fault-free (seed None) or at RATE."""
    command, seed = which
    key = "path" if command == "show-concurrent" else "order"
    rate = 0.0 if seed is None else RATE
    with fault_proxy(env.registry, seed=f"{command}:{seed}", rate=rate, key=key) as proxy:
        return record(proxy, spawn(*READS[command](proxy.host, env.samples, env.branches), *FAST))


def gc_apply_args(host: str, name: str, branches: Path) -> tuple[str, ...]:
    return ("gc", f"{host}/{name}", *RULES, "--branches-file", str(branches), "--apply", "-j", "1", *FAST)


def assert_kept_and_rerun_finishes(
    rerun: Callable[[], Outcome], seeder: Seeder, before: dict[str, str], context: str
) -> None:
    """No kept tag lost or moved by whatever happened; a fault-free rerun then reaches the planned state."""
    kept = {t: before[t] for t in KEPT}
    state = seeder.state()
    assert {t: state.get(t) for t in KEPT} == kept, context
    again = rerun()
    assert again.code == 0, f"{context}\nrerun: {again.err}"
    assert seeder.state() == kept, context
    for tag in set(DELETED) - {"shared-stale-buildcache", "stale2-buildcache"}:  # those share a kept manifest
        assert seeder.manifest(before[tag]).status_code == 404, f"{context}\n{tag}'s manifest is left"


def gc_apply_job(env: Env, seed: int) -> Record:
    """``gc --apply`` at RATE on a fresh copy of the scenario, judged here."""
    name = f"faults/apply-{seed}"
    seeder = seed_scenario(Seeder(env.registry.host, name))
    try:
        before = seeder.state()
        with fault_proxy(env.registry, seed=f"gc-apply:{seed}", rate=RATE) as proxy:
            args = gc_apply_args(proxy.host, name, env.branches)
            rec = record(proxy, spawn(*args, "--json"))
            assert_sane(rec)
            outcome, context = rec.outcome, f"seed {seed}: {rec.context}"
            unexplained = not unrecoverable(rec.injected) and all(retried(i) for i in rec.injected)
            if outcome.code == 0:
                (applied,) = outcome.json()["repositories"]
                assert applied["report"]["ok"], context
                # A tag whose manifest answer was spoiled beyond use is kept as "unreadable", never deleted.
                unreadable = {t["tag"] for t in applied["tags"] if t["rule"] == "unreadable"}
                assert not unreadable or unrecoverable(rec.injected), context
                assert KEPT <= set(seeder.state()) <= KEPT | unreadable, context
            elif outcome.code == 7:  # failures reported per tag, the run went on
                report = outcome.json()["repositories"][0]["report"]
                assert [t for t in report["tags"] if t["status"] == "failed"], context
                assert not unexplained, (
                    f"exit 7 though every fault was on a request that is retried\n{context}"
                )
            else:
                assert_clean_failure(outcome, {6, 8})
                assert not unexplained or exhausted(rec.injected), context
            proxy.configure(rate=0.0)
            assert_kept_and_rerun_finishes(lambda: spawn(*args), seeder, before, context)
            return rec
    finally:
        seeder.http.close()


def probe_summary(document: dict[str, Any], repository: str) -> dict[str, Any]:
    """What a probe found: each check's status, the exit code, the recommendation and the --cache-to verdict."""
    summary = {
        "checks": {c["id"]: c["status"] for c in document["checks"]},
        "exitCode": document["exitCode"],
        "recommendation": document["recommendation"]["cacheTo"],
        "cacheTo": document["cacheTo"],
    }
    parsed: dict[str, Any] = json.loads(json.dumps(summary).replace(repository, "REPO"))
    return parsed


def first_attempts(pattern: str) -> Callable[[str, str], bool]:
    """A ``force`` matcher: the first request of each (method, path) whose path contains ``pattern``."""
    seen: set[tuple[str, str]] = set()

    def match(method: str, path: str) -> bool:
        if pattern not in path or (method, path) in seen:
            return False
        seen.add((method, path))
        return True

    return match


def probe_job(env: Env, which: int | str | None) -> tuple[Record, dict[str, Any] | None]:
    """``probe --delete --cache-to …`` on a repository holding one cache: fault-free (None), at RATE (a
    seed), or ("lost-delete") with the answer to the first attempt of each DELETE by digest held back
    beyond the timeout (the registry carries it out; the client sends it again and gets 404)."""
    name = f"faults/probe-{'clean' if which is None else which}"
    seeder = Seeder(env.registry.host, name)
    try:
        existing = seeder.cache("buildcache", layers=[name.encode()], age=timedelta(days=1))
        rate = RATE if isinstance(which, int) else 0.0
        with fault_proxy(env.registry, seed=f"probe:{which}", rate=rate) as proxy:
            if which == "lost-delete":
                proxy.force("slow", method="DELETE", match=first_attempts("/manifests/sha256:"))
            repo = f"{proxy.host}/{name}"
            cache_to = f"type=registry,ref={repo}:buildcache,mode=max,image-manifest=true,oci-mediatypes=true"
            args = ("probe", repo, "--cache-to", cache_to, "--delete", "--no-near-limit", "--json", *FAST)
            rec = record(proxy, spawn(*args))
        assert_sane(rec)
        assert seeder.state() == {"buildcache": existing}, rec.context  # the rest is cleaned up
        return rec, probe_summary(rec.outcome.json(), repo) if rec.outcome.code == 0 else None
    finally:
        seeder.http.close()


def recoverable_job(env: Env, fault: str | None) -> Record:
    """``show REPO@DIGEST`` with ``fault`` on the manifest GET, the config GET and a blob HEAD, once each."""
    digest = env.samples["multistage-max"]["image-manifest"]
    with fault_proxy(env.registry) as proxy:
        if fault is not None:
            for kind in ("manifest", "blob"):
                proxy.force(fault, method="GET", kind=kind, limit=1)
            proxy.force(fault, method="HEAD", kind="blob", every=3, limit=1)
        return record(proxy, spawn("show", f"{proxy.host}/faults/multistage-max@{digest}", "--json", *FAST))


def exhausting_job(env: Env, fault: str) -> Record:
    """``show`` with ``fault`` on every attempt of its manifest GET."""
    with fault_proxy(env.registry) as proxy:
        proxy.force(fault, method="GET", kind="manifest")
        return record(proxy, spawn("show", f"{proxy.host}/faults/multistage-min:latest", *FAST, bound=30))


RETRIED_WRITES = [
    ("reset", "DELETE", "manifest"),  # the registry carried it out, the answer is lost
    ("slow", "DELETE", "manifest"),  # the retry of that one: carried out, the answer too late
    ("reset", "PUT", "manifest"),  # a placeholder manifest
    ("http503", "PUT", "manifest"),
    ("reset", "HEAD", "manifest"),
    ("ratelimit", "POST", "upload"),  # not acted on: waited out and sent again, though an upload
    ("ratelimit", "PUT", "upload"),
]


def gc_write_job(env: Env, faults: list[tuple[str, str, str]]) -> Record:
    """``gc --apply`` with each (fault, method, kind) forced once, on a fresh copy of the scenario; then
    checked here: no kept tag lost, and a fault-free rerun reaches the plan."""
    name = "faults/write-" + "-".join(f"{f}-{m}" for f, m, _ in faults).lower()
    seeder = seed_scenario(Seeder(env.registry.host, name))
    try:
        before = seeder.state()
        with fault_proxy(env.registry) as proxy:
            for fault, method, kind in faults:
                proxy.force(fault, method=method, kind=kind, limit=1)
            args = gc_apply_args(proxy.host, name, env.branches)
            rec = record(proxy, spawn(*args, "--json"))
            assert_sane(rec)
            proxy.clear()
            assert_kept_and_rerun_finishes(lambda: spawn(*args), seeder, before, rec.context)
        return rec
    finally:
        seeder.http.close()


# test name -> the jobs it judges (key, function, argument); only those of selected tests are started.
JOBS: dict[str, Callable[[pytest.Function], list[tuple[Any, Callable[[Env, Any], Any], Any]]]] = {
    "test_read_command_under_faults": lambda item: [
        (("read", item.callspec.params["command"], seed), read_job, (item.callspec.params["command"], seed))
        for seed in [None, *SEEDS]
    ],
    "test_gc_apply_under_faults": lambda item: [(("gc-apply", seed), gc_apply_job, seed) for seed in SEEDS],
    "test_probe_under_faults": lambda item: [(("probe", seed), probe_job, seed) for seed in [None, *SEEDS]],
    "test_probe_a_delete_whose_answer_was_lost_is_not_a_refusal": lambda item: [
        (("probe", which), probe_job, which) for which in (None, "lost-delete")
    ],
    "test_each_recoverable_fault_is_got_past_on_each_kind_of_read": lambda item: [
        (("recoverable", fault), recoverable_job, fault) for fault in [None, *sorted(RECOVERABLE_FAULTS)]
    ],
    "test_retries_are_bounded_and_end_in_exit_6": lambda item: [
        (("exhausting", fault), exhausting_job, fault) for fault in ("http503", "reset", "truncate", "slow")
    ],
    "test_gc_apply_with_faults_on_retried_writes_reaches_the_plan": lambda item: [
        (("gc-write", "retried"), gc_write_job, RETRIED_WRITES)
    ],
    "test_gc_apply_with_a_fault_on_a_blob_upload_exits_7_and_a_rerun_finishes": lambda item: [
        (
            ("gc-write", item.callspec.params["fault"]),
            gc_write_job,
            [(item.callspec.params["fault"], item.callspec.params["method"], "upload")],
        )
    ],
}


class Jobs:
    """Futures of the background jobs, by key."""

    def __init__(self, futures: dict[Any, Future[Any]]) -> None:
        self.futures = futures

    def __call__(self, key: Any) -> Any:
        return self.futures[key].result(timeout=5 * BOUND)


@pytest.fixture(scope="module")
def jobs(
    request: pytest.FixtureRequest,
    registry: LocalRegistry,
    samples: Samples,
    scenario: dict[str, str],
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Jobs]:
    """Start the jobs of every selected test of this module at once, in the background (the first test
    that needs a registry asks for it, through ``proxy``, so the in-process tests run meanwhile)."""
    branches = tmp_path_factory.mktemp("faults") / "branches.txt"
    branches.write_text(BRANCHES)
    env = Env(registry, samples, branches)
    wanted = [
        job
        for item in request.session.items
        if isinstance(item, pytest.Function)
        and item.module is not None
        and item.module.__name__ == __name__
        and item.originalname in JOBS
        for job in JOBS[item.originalname](item)
    ]
    unique = {key: (fn, arg) for key, fn, arg in wanted}  # two tests may judge the same job
    with ThreadPoolExecutor(WORKERS, thread_name_prefix="faults-job") as pool:
        futures = {key: pool.submit(fn, env, arg) for key, (fn, arg) in unique.items()}
        yield Jobs(futures)
        for future in futures.values():
            future.cancel()


# -- fixtures of the in-process tests --------------------------------------------------------------------

Cli = Callable[..., Outcome]


@pytest.fixture
def cli(capsys: pytest.CaptureFixture[str]) -> Cli:
    """Run the CLI in-process on a thread with a wall-clock bound; a run still going at the bound fails."""

    def invoke(*args: str, bound: float = BOUND) -> Outcome:
        result: dict[str, Any] = {}

        def target() -> None:
            try:
                result["code"] = run(list(args))
            except BaseException as exc:  # reported below, in the test's thread
                result["exception"] = exc

        capsys.readouterr()
        started = time.monotonic()
        thread = threading.Thread(target=target, name="cacheinspect-under-test", daemon=True)
        thread.start()
        thread.join(bound)
        seconds = time.monotonic() - started
        if thread.is_alive():
            pytest.fail(f"cacheinspect {' '.join(args)} was still running after {bound:.0f} s: a hang")
        captured = capsys.readouterr()
        if "exception" in result:
            raise AssertionError(f"run() raised: {result['exception']!r}\n{captured.err}")
        return Outcome(tuple(args), result["code"], captured.out, captured.err, seconds)

    return invoke


@pytest.fixture
def proxy(registry: LocalRegistry, jobs: Jobs, monkeypatch: pytest.MonkeyPatch) -> Iterator[FaultProxy]:
    """A fault proxy (faults off until told) that wants Basic credentials, which in-process runs get from env.
    (``jobs``: the background jobs are under way meanwhile.)"""
    monkeypatch.setenv("CACHEINSPECT_USERNAME", USER)
    monkeypatch.setenv("CACHEINSPECT_PASSWORD", PASSWORD)
    monkeypatch.delenv("GITHUB_STEP_SUMMARY", raising=False)
    with fault_proxy(registry) as instance:
        yield instance


@pytest.fixture
def branches(tmp_path: Path) -> Path:
    path = tmp_path / "branches.txt"
    path.write_text(BRANCHES)
    return path


@pytest.fixture(scope="module")
def samples(registry: LocalRegistry) -> Samples:
    """Three testdata samples pushed (by oras-py) to ``faults/<name>``: name -> tag -> digest."""
    by_name = {s["name"]: s for s in load_samples()}
    with ThreadPoolExecutor(len(SAMPLES)) as pool:
        pushed = list(pool.map(lambda n: seed_sample(registry.host, f"faults/{n}", by_name[n]), SAMPLES))
    return dict(zip(SAMPLES, pushed, strict=True))


@pytest.fixture(scope="module")
def scenario(registry: LocalRegistry) -> dict[str, str]:
    """The gc scenario (15 tags) in ``faults/read``, only ever read from: tag -> digest."""
    seeder = seed_scenario(Seeder(registry.host, "faults/read"))
    try:
        return seeder.state()
    finally:
        seeder.http.close()


# -- one fault kind at a time, in-process -----------------------------------------------------------------


def test_retry_after_is_honoured(cli: Cli, proxy: FaultProxy, scenario: dict[str, str]) -> None:
    proxy.retry_after = "1"
    proxy.force("ratelimit", method="GET", kind="tags", limit=2)
    outcome = cli("tags", f"{proxy.host}/faults/read", "--json", *FAST)
    assert outcome.code == 0, outcome.err
    assert sorted(outcome.json()["tags"]) == sorted(scenario)
    assert outcome.seconds >= 2  # two waits of Retry-After: 1 (the backoff alone would be < 0.75 s)


def test_a_retry_after_beyond_the_cap_stops_at_once(
    cli: Cli, proxy: FaultProxy, scenario: dict[str, str]
) -> None:
    proxy.retry_after = "3600"
    proxy.force("ratelimit", method="GET", kind="tags")
    outcome = cli("tags", f"{proxy.host}/faults/read", *FAST)
    assert_clean_failure(outcome, {6})
    assert "429" in outcome.err and outcome.seconds < 5
    assert proxy.injected_kinds() == {"ratelimit": 1}


def test_a_body_trickling_in_slower_than_the_timeout_is_abandoned_and_retried(
    cli: Cli, proxy: FaultProxy, samples: Samples
) -> None:
    """Each byte comes within the timeout, the whole body does not: the client must not wait for ever.

    Regression: httpx's read timeout bounds each read, so a body sent a byte every 0.3 s kept the client
    waiting for as long as the server liked (here 40 s; minutes for a real manifest).
    """
    args = ("show", f"{proxy.host}/faults/multistage-min:latest", "--json", *FAST)
    expected = normalise(cli(*args).json())
    proxy.clear()
    proxy.trickle_interval, proxy.trickle_seconds = 0.3, 40
    proxy.force("trickle", method="GET", kind="manifest", limit=1)
    outcome = cli(*args)
    assert outcome.code == 0, outcome.err
    assert normalise(outcome.json()) == expected
    assert proxy.injected_kinds() == {"trickle": 1}
    assert outcome.seconds < 8


def test_a_body_deadline_bounds_the_whole_read() -> None:
    """``read_capped(deadline=…)``, which the registry and GHCR clients use, without a network."""

    class Trickle(httpx.SyncByteStream):
        def __iter__(self) -> Iterator[bytes]:
            for _ in range(50):
                time.sleep(0.02)
                yield b"x"

    response = httpx.Response(200, stream=Trickle(), request=httpx.Request("GET", "http://127.0.0.1/"))
    started = time.monotonic()
    with pytest.raises(httpx.ReadTimeout):
        read_capped(response, 1024, "trickle", deadline=time.monotonic() + 0.1)
    assert time.monotonic() - started < 0.5
    quick = httpx.Response(200, content=b"x" * 50, request=httpx.Request("GET", "http://127.0.0.1/"))
    assert read_capped(quick, 1024, "quick", deadline=time.monotonic() + 5) == b"x" * 50


def mock_client(handler: Callable[[httpx.Request], httpx.Response], sleeps: list[float]) -> RegistryClient:
    return RegistryClient(ClientOptions(), transport=httpx.MockTransport(handler), sleep=sleeps.append)


def test_a_rate_limited_blob_upload_is_sent_again_after_retry_after() -> None:
    """Regression: a 429 on an upload's POST or PUT (not retried, as no upload request is) stopped gc with
    exit 7 even for ``Retry-After: 0``; a rate-limited request was not acted on, so it is sent again."""
    data = b"{}"
    answers = iter(
        [
            httpx.Response(429, headers={"Retry-After": "2"}),
            httpx.Response(202, headers={"Location": "/v2/team/app/blobs/uploads/u1"}),
            httpx.Response(429, headers={"Retry-After": "3"}),
            httpx.Response(201, headers={"Docker-Content-Digest": sha256_digest(data)}),
        ]
    )
    seen: list[str] = []
    sleeps: list[float] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request.method)
        return next(answers)

    with mock_client(handler, sleeps) as client:
        assert client.push_blob(parse_repository("r.test/team/app"), data) == sha256_digest(data)
    assert seen == ["POST", "POST", "PUT", "PUT"] and sleeps == [2.0, 3.0]


def test_an_upload_failing_with_a_5xx_is_still_not_sent_again() -> None:
    seen: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request.method)
        return httpx.Response(503)

    with mock_client(handler, []) as client, pytest.raises(ServerError):
        client.push_blob(parse_repository("r.test/team/app"), b"{}")
    assert seen == ["POST"]  # the registry may have acted on it


@pytest.mark.parametrize("what", ["manifest", "blob"])
def test_content_that_does_not_hash_to_its_digest_is_fetched_again(what: str) -> None:
    """Regression: one flipped byte on the way (a proxy, a cache) was final (exit 8); now it is fetched
    again like any transient failure, and refused only when every attempt is wrong."""
    good = b'{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":' + (
        b'{"mediaType":"application/vnd.buildkit.cacheconfig.v0","digest":"sha256:'
        + b"0" * 64
        + b'","size":2},"layers":[]}'
    )
    bad = good.replace(b"schemaVersion", b"schemaVersioN")
    digest = sha256_digest(good)
    bodies = [bad, bad, good]
    sleeps: list[float] = []

    def handler(request: httpx.Request) -> httpx.Response:
        body = bodies.pop(0) if bodies else bad
        return httpx.Response(200, content=body, headers={"Content-Type": mediatypes.OCI_MANIFEST})

    repo = parse_repository("r.test/team/app")
    with mock_client(handler, sleeps) as client:
        if what == "manifest":
            assert client.get_manifest(repo.at(digest)).raw == good
        else:
            descriptor = Descriptor(mediatypes.BUILDKIT_CACHE_CONFIG, digest, len(good))
            assert client.get_blob(repo, descriptor, limit=1 << 20) == good
        assert len(sleeps) == 2
        with pytest.raises(DigestMismatch):  # wrong every time: 1 + 4 retries, then refused
            if what == "manifest":
                client.get_manifest(repo.at(digest))
            else:
                client.get_blob(
                    repo, Descriptor(mediatypes.BUILDKIT_CACHE_CONFIG, digest, len(good)), limit=1 << 20
                )
        assert len(sleeps) == 2 + 4


@pytest.mark.parametrize("what", ["manifest", "config"])
def test_a_flipped_byte_on_every_attempt_is_exit_8(
    cli: Cli, proxy: FaultProxy, samples: Samples, what: str
) -> None:
    """Fetched again (a byte flipped on the way is gone the next time), 5 times in all, then refused."""
    digest = samples["multistage-min"]["latest"]
    proxy.force("corrupt", method="GET", kind="manifest" if what == "manifest" else "blob")
    outcome = cli("show", f"{proxy.host}/faults/multistage-min@{digest}", "--json", *FAST)
    assert_clean_failure(outcome, {8})
    assert "hash" in outcome.err
    assert json.loads(outcome.out)["error"]["exitCode"] == 8
    assert proxy.injected_kinds() == {"corrupt": 5}


@pytest.mark.parametrize("mode", ["declared", "chunked"])
@pytest.mark.parametrize("kind", ["manifest", "tags"])
def test_an_oversized_body_is_exit_8(
    cli: Cli, proxy: FaultProxy, scenario: dict[str, str], mode: str, kind: str
) -> None:
    proxy.oversize_mode = mode
    proxy.force("oversize", method="GET", kind=kind)
    if kind == "manifest":
        outcome = cli("show", f"{proxy.host}/faults/read:main-buildcache", *FAST)
    else:
        outcome = cli("tags", f"{proxy.host}/faults/read", *FAST)
    assert_clean_failure(outcome, {8})
    assert "limit" in outcome.err
    assert outcome.seconds < 5


def test_a_redirect_to_another_host_never_carries_authorization(
    cli: Cli, proxy: FaultProxy, scenario: dict[str, str], branches: Path
) -> None:
    proxy.force("redirect")
    for args in (
        ("show", f"{proxy.host}/faults/read:main-buildcache", "--json"),
        ("du", f"{proxy.host}/faults/read", "--json"),
        ("gc", f"{proxy.host}/faults/read", *RULES, "--branches-file", str(branches), "--json"),
    ):
        outcome = cli(*args, *FAST)
        assert outcome.code == 0, outcome.err
    # Every answer came from the other host, each redirected from a request that carried credentials.
    assert len(proxy.other.seen) == len(proxy.injected) > 20
    assert not proxy.other.authorized
    assert sum(s.authorization for s in proxy.seen) >= len(proxy.injected)  # the proxy faults only those


def test_a_challenge_from_the_redirect_target_is_not_answered(
    cli: Cli, proxy: FaultProxy, scenario: dict[str, str]
) -> None:
    proxy.other.challenge = True
    proxy.force("redirect", method="GET", kind="manifest")
    outcome = cli("show", f"{proxy.host}/faults/read:main-buildcache", *FAST)
    assert_clean_failure(outcome, {4})
    assert proxy.other.seen and not proxy.other.authorized


@pytest.mark.parametrize("page", [1, 3])
def test_a_tags_pagination_loop_is_detected(
    cli: Cli, proxy: FaultProxy, scenario: dict[str, str], branches: Path, page: int
) -> None:
    """The ``page``-th page links back to the first one (to itself, for page 1)."""
    for args in (
        ("tags", f"{proxy.host}/faults/read", "-n", "2"),
        ("du", f"{proxy.host}/faults/read", "-n", "4"),
        ("gc", f"{proxy.host}/faults/read", *RULES, "--branches-file", str(branches), "-n", "4"),
    ):
        proxy.clear()
        proxy.force("linkloop", method="GET", kind="tags", every=page, limit=1)
        outcome = cli(*args, *FAST)
        assert_clean_failure(outcome, {8})
        assert "loops back" in outcome.err
        assert len([s for s in proxy.seen if s.kind == "tags" and s.authorization]) == page


def test_every_fault_kind_applies_somewhere() -> None:
    """A guard against a kind that the random draw could never pick."""
    for fault in ALL_FAULTS:
        assert any(
            _applies(fault, method, kind, by_digest)
            for method in ("GET", "HEAD", "PUT", "POST", "DELETE")
            for kind in ("manifest", "blob", "tags", "upload")
            for by_digest in (False, True)
        ), fault


# -- judging the background jobs: targeted batches ---------------------------------------------------------


def test_each_recoverable_fault_is_got_past_on_each_kind_of_read(jobs: Jobs) -> None:
    clean = jobs(("recoverable", None))
    assert clean.outcome.code == 0, clean.context
    for fault in sorted(RECOVERABLE_FAULTS):
        rec = jobs(("recoverable", fault))
        assert_sane(rec, counts(clean.seen))
        assert rec.outcome.code == 0, rec.context
        assert rec.document() == clean.document(), rec.context
        injected = Counter(i.fault for i in rec.injected)
        assert injected == {fault: 2 if fault in BODY_FAULTS else 3}, rec.context


def test_retries_are_bounded_and_end_in_exit_6(jobs: Jobs) -> None:
    """A fault on every attempt: 5 attempts (4 retries), then exit 6 with one line, in bounded time."""
    words = {"http503": "503", "reset": "reset", "truncate": "closed the connection", "slow": "timed out"}
    for fault, word in words.items():
        rec = jobs(("exhausting", fault))
        assert_clean_failure(rec.outcome, {6})
        assert word in rec.outcome.err, rec.context
        assert Counter(i.fault for i in rec.injected) == {fault: 5}, rec.context
        assert rec.outcome.seconds < 20, rec.context  # 5 attempts (timeouts of 1 s) and capped backoff


def test_gc_apply_with_faults_on_retried_writes_reaches_the_plan(jobs: Jobs) -> None:
    """DELETE and manifest PUT are retried: a repeat of a DELETE the registry carried out answers 404,
    read as "already gone"; a repeated PUT of the same bytes changes nothing. A 429 is waited out even on
    a blob upload (regression: it stopped the run, exit 7, after a Retry-After of 0). (The rerun is
    checked in the job.)"""
    rec = jobs(("gc-write", "retried"))
    assert Counter(i.fault for i in rec.injected) == Counter(f for f, _, _ in RETRIED_WRITES), rec.context
    assert rec.outcome.code == 0, rec.context
    report = rec.outcome.json()["repositories"][0]["report"]
    assert report["ok"] and report["summary"]["deleted"] == len(DELETED), rec.context


@pytest.mark.parametrize(("fault", "method"), [("reset", "POST"), ("slow", "PUT")])
def test_gc_apply_with_a_fault_on_a_blob_upload_exits_7_and_a_rerun_finishes(
    jobs: Jobs, fault: str, method: str
) -> None:
    """A blob upload is not retried (a second POST opens a second session; a finished session refuses a
    second PUT): the placeholder's tag is reported failed, nothing kept is touched, a rerun finishes."""
    rec = jobs(("gc-write", fault))
    assert Counter(i.fault for i in rec.injected) == {fault: 1}, rec.context
    assert rec.outcome.code == 7, rec.context
    report = rec.outcome.json()["repositories"][0]["report"]
    failed = [t for t in report["tags"] if t["status"] == "failed"]
    assert len(failed) == 1 and "upload" in failed[0]["detail"], rec.context


# -- judging the background jobs: every command at 10% over several seeds --------------------------------


@pytest.mark.parametrize("command", sorted(READS))
def test_read_command_under_faults(jobs: Jobs, command: str) -> None:
    clean = jobs(("read", command, None))
    assert clean.outcome.code == 0, clean.context
    expected, baseline = clean.document(), counts(clean.seen)
    runs = [jobs(("read", command, seed)) for seed in SEEDS]
    endings = Counter(judge_read(rec, command, expected, baseline) for rec in runs)
    faults = Counter(i.fault for rec in runs for i in rec.injected)
    assert faults.total() >= 3, (endings, faults)  # the proxy did inject
    assert endings["correct"] >= 1, (endings, faults)


def test_gc_apply_under_faults(jobs: Jobs) -> None:
    runs: list[Record] = [jobs(("gc-apply", seed)) for seed in SEEDS]  # each judged in its job
    endings = Counter(rec.outcome.code for rec in runs)
    faults = Counter(i.fault for rec in runs for i in rec.injected)
    assert faults.total() >= len(SEEDS), (endings, faults)
    assert endings[0] >= 1, (endings, faults)


def test_probe_under_faults(jobs: Jobs) -> None:
    clean, expected = jobs(("probe", None))
    assert clean.outcome.code == 0 and expected is not None, clean.context
    endings: Counter[str] = Counter()
    for seed in SEEDS:
        rec, found = jobs(("probe", seed))
        if unrecoverable(rec.injected):
            # An answer spoiled beyond use (an oversized body, a Link loop): the probe calls
            # a malformed answer "unsupported" (probe_classify), so a form can come out "will not work".
            assert rec.outcome.code in (0, 6, 9), rec.context + rec.outcome.out
            if rec.outcome.code == 9:
                assert "malformed answer" in rec.outcome.out, rec.context + rec.outcome.out
            endings[f"exit {rec.outcome.code}"] += 1
            continue
        assert rec.outcome.code == 0, rec.context + rec.outcome.out
        assert found == expected, rec.context
        endings["correct"] += 1
    assert endings["correct"] >= 1, endings


def test_probe_a_delete_whose_answer_was_lost_is_not_a_refusal(jobs: Jobs) -> None:
    """Regression: a DELETE the registry carried out but whose answer came too late was sent again, got 404,
    and the probe reported "delete-digest-untagged: unsupported (404 MANIFEST_UNKNOWN)", with a Quay hint."""
    clean, expected = jobs(("probe", None))
    rec, found = jobs(("probe", "lost-delete"))
    assert clean.outcome.code == 0 and expected is not None, clean.context
    assert Counter(i.fault for i in rec.injected)["slow"] >= 2, rec.context  # tagged and untagged digests
    assert rec.outcome.code == 0, rec.context
    assert found == expected, rec.context
