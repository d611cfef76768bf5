"""The four workloads, each measured side by side with its peers and its floor, in one run."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

from .measure import Measured, Run, floor_seconds, measure, process_cpu, run_once
from .proxy import LatencyProxy, ProxyCore
from .seed import DataSet, Seeded, du_dataset, fresh_copy, open_dataset, show_dataset, tags_dataset

__all__ = [
    "ROOT",
    "Config",
    "Row",
    "Section",
    "Target",
    "Tools",
    "cacheinspect_command",
    "child_env",
    "du_checks",
    "ensure_skopeo",
    "oras_show_row",
    "run_du",
    "run_gc_apply",
    "run_show",
    "run_startup",
    "run_tags",
    "show_checks",
    "tags_checks",
]

ROOT = Path(__file__).resolve().parent.parent
GC_TEMPLATE = "{branch}-buildcache"


@dataclass(frozen=True)
class Config:
    latency: float
    concurrency: int
    layers: int
    tags: int
    manifests: int
    repeat: int
    slow_repeat: int
    startup_repeat: int
    auth: bool
    extra_concurrency: tuple[int, ...]
    gc_keep_last: int
    connect_latency: float = 0.0
    h2_streams: int = 100  # SETTINGS_MAX_CONCURRENT_STREAMS of the HTTP/2 proxy


@dataclass(frozen=True)
class Tools:
    """How to start each tool; ``skopeo`` is None when it is not available."""

    cacheinspect: tuple[str, ...]
    python: str
    skopeo: str | None
    env: dict[str, str]

    def peer(self, *args: str) -> list[str]:
        return [self.python, "-m", "bench.peers", *args]


@dataclass
class Row:
    tool: str
    concurrency: int | None
    min_requests: int | None
    floor: float | None
    measured: Measured | None = None
    note: str = ""
    reference: bool = False
    unavailable: str = ""


@dataclass
class Section:
    title: str
    intro: str
    rows: list[Row]
    notes: list[str] = field(default_factory=list)

    @property
    def reference(self) -> Row | None:
        return next((r for r in self.rows if r.reference and r.measured is not None), None)


@dataclass(frozen=True)
class Target:
    text: str
    measured: str
    met: bool | None


Log = Callable[[str], None]


def _auth_requests(config: Config) -> int:
    """A client that does not know the registry yet: one 401 to learn the realm, one token request."""
    return 2 if config.auth else 0


def _json_check(predicate: Callable[[object], str | None]) -> Callable[[Run], str | None]:
    def check(run: Run) -> str | None:
        try:
            document = json.loads(run.stdout)
        except ValueError:
            return "stdout is not JSON"
        return predicate(document)

    return check


def _with_dataset(dataset: DataSet, config: Config, log: Log) -> tuple[Seeded, LatencyProxy]:
    log(f"{dataset.name}: starting registry")
    seeded = open_dataset(dataset, log=log)
    log(f"{dataset.name}: {'reused cached registry storage' if seeded.reused else 'seeded over HTTP'}")
    proxy = LatencyProxy(
        seeded.registry.host, latency=config.latency, auth=config.auth, connect_latency=config.connect_latency
    )
    return seeded, proxy


@dataclass(frozen=True)
class _Bench:
    """Measures rows of one workload against one proxy."""

    tools: Tools
    proxy: ProxyCore
    latency: float
    log: Log
    seeded: Seeded

    def server_cpu(self) -> tuple[float, float]:
        """CPU seconds of the registry process, and of this process (the proxy's threads; the rest idles)."""
        return process_cpu(self.seeded.registry.process.pid), time.process_time()

    def row(
        self,
        tool: str,
        argv: Sequence[str] | None,
        *,
        repeat: int,
        concurrency: int,
        min_requests: int,
        check: Callable[[Run], str | None] | None = None,
        note: str = "",
        reference: bool = False,
        unavailable: str = "",
    ) -> Row:
        row = Row(
            tool,
            concurrency,
            min_requests,
            floor_seconds(min_requests, concurrency, self.latency),
            note=note,
            reference=reference,
            unavailable=unavailable,
        )
        if argv is None:
            return row
        self.log(f"  {tool} ×{repeat}")
        row.measured = measure(
            argv,
            env=self.tools.env,
            repeat=repeat,
            proxy=self.proxy,
            server_cpu=self.server_cpu,
            check=check,
        )
        if not row.measured.ok:
            self.log(f"    problem: {row.measured.problems[0]}")
        return row


# -- 1. show


def show_checks(
    n: int, manifest_digest: str
) -> tuple[Callable[[object], str | None], Callable[[object], str | None], Callable[[Run], str | None]]:
    """The checks of the show workload: cacheinspect's JSON, a peer's JSON line, skopeo's raw manifest."""

    def show_ok(document: object) -> str | None:
        if not isinstance(document, dict):
            return "not an object"
        layers = document.get("layers", [])
        present = sum(1 for layer in layers if layer.get("present") is True)
        if len(layers) != n or present != n:
            return f"{len(layers)} layers, {present} present (expected {n})"
        if not document.get("health", {}).get("ok"):
            return "health not ok"
        return None

    def peer_ok(document: object) -> str | None:
        if not isinstance(document, dict) or document.get("present") != n or document.get("layers") != n:
            return f"peer saw {document}"
        return None

    def raw_ok(run: Run) -> str | None:
        digest = "sha256:" + hashlib.sha256(run.stdout).hexdigest()
        return None if digest == manifest_digest else f"skopeo printed {digest}, expected {manifest_digest}"

    return show_ok, peer_ok, raw_ok


def oras_show_row(
    bench: _Bench,
    tools: Tools,
    host: str,
    dataset: DataSet,
    config: Config,
    needed: int,
    peer_ok: Callable[[object], str | None],
) -> Row:
    """oras-py doing ``show``'s requests (manifest, config, a HEAD per blob) one after another, as it must."""
    return bench.row(
        "oras-py (manifest, config, HEADs)",
        tools.peer("oras-show", host, dataset.repository, "cache"),
        repeat=config.slow_repeat,
        concurrency=1,
        min_requests=needed,
        check=_json_check(peer_ok),
        note="sequential: oras-py has no concurrency",
    )


def run_show(config: Config, tools: Tools, log: Log) -> Section:
    dataset = show_dataset(config.layers)
    n = dataset.facts["layers"]
    seeded, proxy = _with_dataset(dataset, config, log)
    auth = _auth_requests(config)
    needed = n + 2 + auth  # manifest GET, config GET, one HEAD per layer blob
    ref = f"{proxy.host}/{dataset.repository}:cache"
    c = config.concurrency
    lat = config.latency
    manifest_digest = dataset.manifests[0].digest

    show_ok, peer_ok, raw_ok = show_checks(n, manifest_digest)

    bench = _Bench(tools, proxy, lat, log, seeded)
    rows = [Row(f"**floor** (c={c})", c, needed, floor_seconds(needed, c, lat))]
    try:
        rows.append(
            bench.row(
                "cacheinspect show --json",
                [*tools.cacheinspect, "show", ref, "--json"],
                repeat=config.repeat,
                concurrency=c,
                min_requests=needed,
                check=_json_check(show_ok),
                reference=True,
                note="default concurrency",
            )
        )
        rows.append(
            bench.row(
                "cacheinspect show (tables)",
                [*tools.cacheinspect, "show", ref],
                repeat=config.repeat,
                concurrency=c,
                min_requests=needed,
                note="human output to a pipe",
            )
        )
        for more in config.extra_concurrency:
            rows.append(
                bench.row(
                    f"cacheinspect show --json -j {more}",
                    [*tools.cacheinspect, "show", ref, "--json", "-j", str(more)],
                    repeat=config.repeat,
                    concurrency=more,
                    min_requests=needed,
                    check=_json_check(show_ok),
                )
            )
        rows.append(oras_show_row(bench, tools, proxy.host, dataset, config, needed, peer_ok))
        rows.append(
            bench.row(
                "naive sequential httpx loop",
                tools.peer("naive-show", proxy.host, dataset.repository, "cache"),
                repeat=config.slow_repeat,
                concurrency=1,
                min_requests=needed,
                check=_json_check(peer_ok),
            )
        )
        rows.append(
            bench.row(
                f"control: bare httpx, {c} threads",
                tools.peer("threads-show", proxy.host, dataset.repository, "cache", str(c)),
                repeat=config.repeat,
                concurrency=c,
                min_requests=needed,
                check=_json_check(peer_ok),
                note="no parsing, no analysis: what this machine allows",
            )
        )
        skopeo = (
            [tools.skopeo, "inspect", "--raw", "--tls-verify=false", f"docker://{ref}"]
            if tools.skopeo
            else None
        )
        rows.append(
            bench.row(
                "skopeo inspect --raw (manifest only)",
                skopeo,
                repeat=config.repeat,
                concurrency=1,
                min_requests=1 + auth,
                check=raw_ok,
                note="does 1 of the workload's requests: no config, no blob checks",
                unavailable="" if skopeo else "skopeo not available",
            )
        )
        if not config.connect_latency:
            rows += _show_with_handshakes(
                config, tools, log, seeded, dataset.repository, needed, show_ok, peer_ok
            )
    finally:
        proxy.close()
        seeded.stop()
    facts = dataset.facts
    return Section(
        f"1. `show` with blob checks: mode=max cache of {n:,} layers",
        f"Image-manifest form, {facts['records']:,} records, manifest {facts['manifest_bytes']:,} B, "
        f"config {facts['config_bytes']:,} B. Work: GET manifest, GET config, HEAD {n:,} blobs "
        f"= {n + 2:,} requests{' + 401 challenge + token' if auth else ''}.",
        rows,
    )


def _show_with_handshakes(
    config: Config,
    tools: Tools,
    log: Log,
    seeded: Seeded,
    repository: str,
    needed: int,
    show_ok: Callable[[object], str | None],
    peer_ok: Callable[[object], str | None],
) -> list[Row]:
    """The reference row and the control again, when a new connection costs one more round trip."""
    c = config.concurrency
    proxy = LatencyProxy(
        seeded.registry.host, latency=config.latency, auth=config.auth, connect_latency=config.latency
    )
    bench = _Bench(tools, proxy, config.latency, log, seeded)
    note = "+1 round trip per new TCP connection (the TCP handshake; TLS would add 1–2 more)"
    try:
        return [
            bench.row(
                "cacheinspect show --json, handshake charged",
                [*tools.cacheinspect, "show", f"{proxy.host}/{repository}:cache", "--json"],
                repeat=config.repeat,
                concurrency=c,
                min_requests=needed,
                check=_json_check(show_ok),
                note=note,
            ),
            bench.row(
                f"control: bare httpx, {c} threads, handshake charged",
                tools.peer("threads-show", proxy.host, repository, "cache", str(c)),
                repeat=config.repeat,
                concurrency=c,
                min_requests=needed,
                check=_json_check(peer_ok),
                note=note,
            ),
        ]
    finally:
        proxy.close()


# -- 2. tags


def tags_checks(
    t: int,
) -> tuple[
    Callable[[Run], str | None],
    Callable[[str], Callable[[object], str | None]],
    Callable[[object], str | None],
]:
    """The checks of the tags workload: one line per tag, a JSON list under a key, a peer's count."""

    def lines_ok(run: Run) -> str | None:
        count = len(run.stdout.splitlines())
        return None if count == t else f"{count} lines, expected {t}"

    def json_tags(key: str) -> Callable[[object], str | None]:
        def check(document: object) -> str | None:
            tags = document.get(key) if isinstance(document, dict) else None
            return None if isinstance(tags, list) and len(tags) == t else f"{key}: not {t} tags"

        return check

    def peer_ok(document: object) -> str | None:
        return None if isinstance(document, dict) and document.get("tags") == t else f"peer saw {document}"

    return lines_ok, json_tags, peer_ok


def run_tags(config: Config, tools: Tools, log: Log) -> Section:
    dataset = tags_dataset(config.tags)
    t = config.tags
    seeded, proxy = _with_dataset(dataset, config, log)
    auth = _auth_requests(config)
    needed = 1 + auth
    repo = f"{proxy.host}/{dataset.repository}"
    lat = config.latency

    lines_ok, json_tags, peer_ok = tags_checks(t)

    bench = _Bench(tools, proxy, lat, log, seeded)
    rows = [Row("**floor**", 1, needed, floor_seconds(needed, 1, lat))]
    try:
        rows.append(
            bench.row(
                "cacheinspect tags",
                [*tools.cacheinspect, "tags", repo],
                concurrency=1,
                repeat=config.repeat,
                min_requests=needed,
                check=lines_ok,
                reference=True,
            )
        )
        rows.append(
            bench.row(
                "cacheinspect tags --json",
                [*tools.cacheinspect, "tags", repo, "--json"],
                concurrency=1,
                repeat=config.repeat,
                min_requests=needed,
                check=_json_check(json_tags("tags")),
            )
        )
        skopeo = (
            [tools.skopeo, "list-tags", "--tls-verify=false", f"docker://{repo}"] if tools.skopeo else None
        )
        rows.append(
            bench.row(
                "skopeo list-tags",
                skopeo,
                concurrency=1,
                repeat=config.repeat,
                min_requests=needed,
                check=_json_check(json_tags("Tags")),
                unavailable="" if skopeo else "skopeo not available",
            )
        )
        rows.append(
            bench.row(
                "oras-py get_tags",
                tools.peer("oras-tags", proxy.host, dataset.repository),
                concurrency=1,
                repeat=config.repeat,
                min_requests=needed,
                check=_json_check(peer_ok),
            )
        )
    finally:
        proxy.close()
        seeded.stop()
    return Section(
        f"2. `tags` on a repository with {t:,} tags",
        "distribution 2.8.2 ignores `n` and `last` on `/tags/list` and sends every tag in one page without "
        "a `Link` header (checked by the suite), so this is one request for every client"
        f"{' (+ 401 challenge + token)' if auth else ''}; the floor is that round trip.",
        rows,
    )


# -- 3. du / gc planning


def du_checks(m: int, keep: int) -> tuple[Callable[[object], str | None], Callable[[object], str | None]]:
    """The checks of the du workload: ``m`` cache manifests; a gc plan keeping ``keep`` of ``m`` tags."""

    def du_ok(document: object) -> str | None:
        if not isinstance(document, dict):
            return "not an object"
        count = len(document.get("manifests", []))
        return None if count == m else f"{count} cache manifests, expected {m}"

    def gc_ok(document: object) -> str | None:
        if not isinstance(document, dict) or not document.get("repositories"):
            return "no repositories in the plan"
        summary = document["repositories"][0]["summary"]
        expected = {"tags": m, "delete": m - keep, "keep": keep}
        got = {k: summary.get(k) for k in expected}
        return None if got == expected else f"plan summary {got}, expected {expected}"

    return du_ok, gc_ok


def run_du(config: Config, tools: Tools, log: Log, *, with_gc: bool) -> Section:
    dataset = du_dataset(config.manifests)
    m = config.manifests
    seeded, proxy = _with_dataset(dataset, config, log)
    auth = _auth_requests(config)
    needed = 1 + m + auth  # tag list, one manifest GET per tag (its body gives the digest)
    design = 1 + 2 * m + auth  # du's plan: HEAD every tag, then GET every distinct digest
    c = config.concurrency
    lat = config.latency
    repo = f"{proxy.host}/{dataset.repository}"

    keep = min(config.gc_keep_last, m)
    du_ok, gc_ok = du_checks(m, keep)

    bench = _Bench(tools, proxy, lat, log, seeded)
    rows = [
        Row(f"**floor** (c={c}), least work", c, needed, floor_seconds(needed, c, lat)),
        Row(
            f"floor (c={c}) of du's request plan",
            c,
            design,
            floor_seconds(design, c, lat),
            note="HEAD per tag + GET per distinct digest",
        ),
    ]
    try:
        rows.append(
            bench.row(
                "cacheinspect du --json",
                [*tools.cacheinspect, "du", repo, "--json"],
                concurrency=c,
                repeat=config.repeat,
                min_requests=needed,
                check=_json_check(du_ok),
                reference=True,
            )
        )
        rows.append(
            bench.row(
                "cacheinspect du (tables)",
                [*tools.cacheinspect, "du", repo],
                concurrency=c,
                repeat=config.repeat,
                min_requests=needed,
                note="human output to a pipe",
            )
        )
        if with_gc:
            rows.append(
                bench.row(
                    "cacheinspect gc (dry-run plan) --json",
                    [
                        *tools.cacheinspect,
                        "gc",
                        repo,
                        "--tag-template",
                        GC_TEMPLATE,
                        "--keep-last",
                        str(keep),
                        "--json",
                    ],
                    concurrency=c,
                    repeat=config.repeat,
                    min_requests=needed,
                    check=_json_check(gc_ok),
                    note=f"`--keep-last {keep}`: {m - keep:,} deletions planned",
                )
            )
    finally:
        proxy.close()
        seeded.stop()
    facts = dataset.facts
    return Section(
        f"3. `du` / `gc` planning over {m:,} cache tags with distinct manifests",
        f"Each tag is a distinct {facts['layers']}-layer cache manifest ({facts['manifest_bytes']:,} B; the "
        "manifests differ in their `buildkit/createdat` annotations). Least work: the tag list, then one "
        f"manifest GET per tag = {1 + m:,} requests{' + 401 challenge + token' if auth else ''}. "
        "Peak RSS is the cacheinspect process's own (`wait4`).",
        rows,
    )


# -- 5. gc --apply


def run_gc_apply(config: Config, tools: Tools, log: Log) -> Section:
    """``gc --apply`` beside its own dry-run plan, each run on a fresh copy of the seeded storage (it deletes)."""
    dataset = du_dataset(config.manifests)
    m = config.manifests
    keep = min(config.gc_keep_last, m)
    doomed = m - keep
    auth = _auth_requests(config)
    c = config.concurrency
    lat = config.latency
    planning = 1 + m + auth  # the tag list, a manifest GET per tag (as du)
    applying = planning + 2 + doomed  # + the two capability probes, one DELETE per manifest: no checks at all
    argv_rules = ["--tag-template", GC_TEMPLATE, "--keep-last", str(keep), "--json"]

    def summary_ok(document: object, *, applied: bool) -> str | None:
        if not isinstance(document, dict) or not document.get("repositories"):
            return "no repositories in the document"
        repository = document["repositories"][0]
        if repository["summary"].get("delete") != doomed:
            return f"plan deletes {repository['summary'].get('delete')}, expected {doomed}"
        if applied:
            done = repository.get("report", {}).get("summary", {})
            if done.get("manifestsDeleted") != doomed or done.get("deleted") != doomed:
                return f"report {done}, expected {doomed} manifests and tags deleted"
        return None

    rows = [
        Row(f"**floor** (c={c}) of planning", c, planning, floor_seconds(planning, c, lat)),
        Row(
            "floor of applying without checks",
            c,
            applying,
            floor_seconds(planning, c, lat) + (2 + doomed) * lat,
            note="planning, then 2 probes and the DELETEs one after another",
        ),
    ]
    notes: list[str] = []
    plan_seconds: float | None = None  # the dry run's median: planning alone
    for label, applied in (
        ("cacheinspect gc (dry-run plan) --json", False),
        ("cacheinspect gc --apply --json", True),
    ):
        runs: list[Run] = []
        problems: list[str] = []
        log(f"  {label} ×{config.slow_repeat}, each on a fresh copy of the storage")
        for _ in range(config.slow_repeat):
            seeded = fresh_copy(dataset, log=log)
            proxy = LatencyProxy(
                seeded.registry.host, latency=lat, auth=config.auth, connect_latency=config.connect_latency
            )
            try:
                repo = f"{proxy.host}/{dataset.repository}"
                argv = [*tools.cacheinspect, "gc", repo, *argv_rules, *(["--apply"] if applied else [])]
                bench = _Bench(tools, proxy, lat, log, seeded)
                one = measure(
                    argv,
                    env=tools.env,
                    repeat=1,
                    proxy=proxy,
                    server_cpu=bench.server_cpu,
                    check=_json_check(partial(summary_ok, applied=applied)),
                    timeout=1800,
                )
            finally:
                proxy.close()
                seeded.stop()
            runs += one.runs
            problems += one.problems
            if problems:
                log(f"    problem: {problems[0]}")
                break
        row = Row(
            label,
            c,
            applying if applied else planning,
            floor_seconds(planning, c, lat) + ((2 + doomed) * lat if applied else 0),
            Measured(tuple(runs), tuple(problems[:1])),
            reference=not applied,
            note=f"{doomed:,} manifests deleted" if applied else f"{doomed:,} deletions planned",
        )
        if not applied and runs and not problems:
            plan_seconds = row.measured.median if row.measured is not None else None
        if applied and runs and not problems and row.measured is not None:
            row.note += f"; {deletion_rate(doomed, row.measured.median, plan_seconds)}"
        rows.append(row)
        stats = row.measured.stats if row.measured is not None else None
        if applied and stats is not None and not problems:
            checks = stats.kinds.get("GET tags", 0) - 1
            heads = stats.kinds.get("HEAD manifest", 0)
            deletes = stats.kinds.get("DELETE manifest", 0)
            notes.append(
                f"Applying sent {deletes:,} manifest DELETEs ({doomed:,} deletions + 2 probes), "
                f"{checks:,} checks (a tag list each), {heads:,} manifest HEADs (every tag per check, plus one per "
                f"stale tag when its manifest's turn comes): {heads / doomed:.1f} HEADs and "
                f"{(heads + checks) / doomed:.1f} check requests per deletion."
            )
    return Section(
        f"5. `gc --apply` over {m:,} cache tags, {doomed:,} deleted",
        f"The data set of section 3 (`--keep-last {keep}`), each run on a fresh copy of the seeded storage "
        "(applying deletes it). Planning does what section 3's gc row does; applying adds the 2 capability "
        "probes, a DELETE per doomed manifest (`concurrency` at a time after the first) and the checks "
        "(docs/gc.md: a tag list and a HEAD of every tag, one check per batch of deletions, plus one each time "
        "a check's time bound ends inside a batch, plus a HEAD of each stale tag on its turn). The second "
        "floor is planning's plus the sequential deletions without any check.",
        rows,
        notes,
    )


def deletion_rate(deletions: int, seconds: float, plan_seconds: float | None) -> str:
    """Deletions per second over the whole command and, when planning alone was measured, over the
    deleting (the command's time minus its plan's)."""
    whole = f"{deletions / seconds:.1f} deletions/s overall" if seconds > 0 else "no time measured"
    deleting = seconds - plan_seconds if plan_seconds is not None else 0.0
    if deleting <= 0:
        return whole
    return f"{whole}, {deletions / deleting:.1f}/s while deleting"


# -- 4. start-up


def run_startup(config: Config, tools: Tools, log: Log) -> Section:
    commands = [
        ("`python -c pass`", [tools.python, "-c", "pass"]),
        ("`cacheinspect --version`", [*tools.cacheinspect, "--version"]),
        ("`cacheinspect show --help`", [*tools.cacheinspect, "show", "--help"]),
    ]
    for _, argv in commands:  # warm the page cache and the bytecode cache once, unmeasured
        run_once(argv, env=tools.env)
    runs: dict[str, list[Run]] = {label: [] for label, _ in commands}
    log(f"  start-up ×{config.startup_repeat}, interleaved")
    for _ in range(config.startup_repeat):
        for label, argv in commands:
            runs[label].append(run_once(argv, env=tools.env))
    rows = []
    for label, _ in commands:
        result = runs[label]
        problems = tuple(f"exit {r.returncode}" for r in result if r.returncode != 0)
        rows.append(
            Row(
                label,
                None,
                None,
                None,
                Measured(tuple(result), problems[:1]),
                reference=label.startswith("`python"),
            )
        )
    return Section(
        "4. Start-up",
        f"Median of {config.startup_repeat} runs each, interleaved, after one unmeasured warm-up run; no network.",
        rows,
    )


# -- tools


def ensure_skopeo(log: Log) -> tuple[str | None, str]:
    """The skopeo binary, installing Debian's package with apt-get when it is missing; and what was done."""
    found = shutil.which("skopeo")
    if found:
        return found, "skopeo was already installed"
    apt = shutil.which("apt-get")
    if apt is None:
        return None, "skopeo is missing and there is no apt-get: its rows are left out"
    prefix: list[str] = []
    if os.geteuid() != 0:
        sudo = shutil.which("sudo")
        if sudo is None:
            return None, "skopeo is missing and installing it needs root: its rows are left out"
        prefix = [sudo, "-n"]
    log("skopeo is missing: installing Debian package skopeo with apt-get")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    install = [*prefix, apt, "install", "-y", "--no-install-recommends", "skopeo"]
    done = subprocess.run(install, env=env, capture_output=True, check=False)
    if done.returncode != 0:
        subprocess.run([*prefix, apt, "update"], env=env, capture_output=True, check=False)
        done = subprocess.run(install, env=env, capture_output=True, check=False)
    found = shutil.which("skopeo")
    if found is None:
        tail = done.stderr.decode(errors="replace").strip().splitlines()[-1:] or [""]
        return None, f"installing skopeo with apt-get failed ({tail[0][:120]}): its rows are left out"
    return found, "skopeo was missing: this run installed Debian's package with `apt-get install skopeo`"


def child_env(home: Path) -> dict[str, str]:
    """The environment of every measured process: no proxies, no credentials, an empty HOME."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.lower().endswith("_proxy")
        and not k.startswith(("CACHEINSPECT_", "DOCKER_", "REGISTRY_AUTH", "GH_", "GITHUB_"))
    }
    docker = home / ".docker"
    docker.mkdir(parents=True, exist_ok=True)
    (docker / "config.json").write_text('{"auths": {}}\n')
    (home / "auth.json").write_text('{"auths": {}}\n')
    env.update(
        {
            "HOME": str(home),
            "DOCKER_CONFIG": str(docker),
            "REGISTRY_AUTH_FILE": str(home / "auth.json"),
            "XDG_RUNTIME_DIR": str(home),
            "NO_COLOR": "1",
            "PYTHONPATH": str(ROOT),
        }
    )
    return env


def cacheinspect_command() -> tuple[str, ...]:
    script = Path(sys.executable).parent / "cacheinspect"
    return (str(script),) if script.exists() else (sys.executable, "-m", "inspector")
