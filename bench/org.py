"""Workload 6 (``--only gc-org``): ``gc`` discovery and planning over an organisation of repositories.

The data set is ``repositories`` repositories ``org/svc-NNN-cache`` of ``tags`` cache tags each
(``branch-NNNN-buildcache``), every tag on its own small cache manifest (one layer, one cache config, the
layer's ``buildkit/createdat`` a per-tag hour, so planning reads no config). It is pushed through the
registry's HTTP API and its storage cached like the other data sets (``bench/seed.py``), under
``$TMPDIR/cacheinspect-bench/org-<repositories>x<tags>-v<SEED_VERSION>``.

Rows, all dry runs with ``--keep-last tags/4`` (so each plan deletes three quarters of its tags):

* discovery through ``/v2/_catalog`` of the whole organisation, and of a tenth of it (``--match``):
  a streamed run keeps one repository's inventory and plan at a time, so its peak RSS should not grow
  with the number of repositories;
* the same repositories listed in a ``--policy`` file (the run that plans every repository before it
  deletes anything, holding every plan): the comparison the streamed run is for.

Then issue 16's "done when" at this size (``budget_rounds``), on a fresh copy of the seeded storage
(it deletes): four ``--shard K/4`` processes at the same time with ``--apply --time-budget T``, ``T``
too short for them to finish, then a second round of four without a budget that finishes the backlog.
Each round reports its wall time, exit codes, deletions done and left, requests and every process's
peak RSS, and the two rounds are checked against the unsharded dry-run plan and the registry's tags.
"""

from __future__ import annotations

import json
import math
import shutil
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from functools import partial
from pathlib import Path

import httpx

from inspector.oci.digest import sha256_digest
from inspector.oci.mediatypes import ANNOTATION_CREATED, OCI_MANIFEST

from .measure import Measured, Run, floor_seconds, measure, run_once
from .proxy import LatencyProxy
from .seed import CACHE_ROOT, PUSH_CONCURRENCY, SEED_VERSION, _start
from .workloads import Config, Log, Row, Section, Tools

__all__ = ["OrgSeeded", "budget_rounds", "open_org", "org_repositories", "run_gc_org"]

_CACHE_CONFIG = "application/vnd.buildkit.cacheconfig.v0"
_LAYER = "application/vnd.oci.image.layer.v1.tar+gzip"


def org_repositories(count: int) -> list[str]:
    return [f"org/svc-{i:03d}-cache" for i in range(count)]


def _blobs(repository: str) -> tuple[bytes, bytes]:
    layer = f"layer of {repository}".encode()
    config = json.dumps(
        {"layers": [{"blob": str(sha256_digest(layer))}], "records": [{"digest": "sha256:" + "0" * 64}]},
        separators=(",", ":"),
    ).encode()
    return layer, config


def _manifest(repository: str, index: int) -> bytes:
    layer, config = _blobs(repository)
    created = f"2025-01-{1 + index // 24 % 28:02d}T{index % 24:02d}:00:00Z"
    document = {
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": {"mediaType": _CACHE_CONFIG, "digest": str(sha256_digest(config)), "size": len(config)},
        "layers": [
            {
                "mediaType": _LAYER,
                "digest": str(sha256_digest(layer)),
                "size": len(layer),
                "annotations": {ANNOTATION_CREATED: created, "index": str(index)},
            }
        ],
    }
    return json.dumps(document, separators=(",", ":")).encode()


def _tag(index: int) -> str:
    return f"branch-{index:04d}-buildcache"


def _push_repository(client: httpx.Client, base: str, repository: str, tags: int) -> None:
    for data in _blobs(repository):
        digest = str(sha256_digest(data))
        started = client.post(f"{base}/v2/{repository}/blobs/uploads/")
        started.raise_for_status()
        location = httpx.URL(base).join(started.headers["Location"]).copy_add_param("digest", digest)
        client.put(
            location, content=data, headers={"Content-Type": "application/octet-stream"}
        ).raise_for_status()
    for index in range(tags):
        client.put(
            f"{base}/v2/{repository}/manifests/{_tag(index)}",
            content=_manifest(repository, index),
            headers={"Content-Type": OCI_MANIFEST},
        ).raise_for_status()


def _serves(base: str, repositories: int, tags: int) -> bool:
    with httpx.Client(timeout=60, trust_env=False) as client:
        listed: list[str] = []
        url: str | None = f"{base}/v2/_catalog?n=1000"
        while url:
            answer = client.get(url)
            if answer.status_code != 200:
                return False
            listed += answer.json().get("repositories") or []
            following = answer.links.get("next", {}).get("url")
            url = f"{base}{following}" if following else None
        if listed != org_repositories(repositories):
            return False
        for repository in (listed[0], listed[-1]):
            answer = client.get(f"{base}/v2/{repository}/tags/list")
            if answer.status_code != 200 or len(answer.json().get("tags") or []) != tags:
                return False
    return True


@dataclass
class OrgSeeded:
    registry_host: str
    reused: bool
    _stop: Callable[[], None]
    workdir: Path

    def stop(self) -> None:
        self._stop()
        shutil.rmtree(self.workdir, ignore_errors=True)


def _org_home(repositories: int, tags: int) -> Path:
    return CACHE_ROOT / f"org-{repositories}x{tags}-v{SEED_VERSION}"


def fresh_org_copy(repositories: int, tags: int, *, log: Log) -> OrgSeeded:
    """A registry on a private copy of the organisation's cached storage, for runs that delete from it."""
    open_org(repositories, tags, log=log).stop()  # seeded (and checked) first if needed
    workdir = Path(tempfile.mkdtemp(prefix="cacheinspect-bench-"))
    shutil.copytree(_org_home(repositories, tags) / "data", workdir / "data")
    registry = _start(workdir / "data", workdir / "run")
    return OrgSeeded(registry.host, True, registry.stop, workdir)


def open_org(repositories: int, tags: int, *, log: Log) -> OrgSeeded:
    """A registry serving the organisation: from cached storage if it checks out, else pushed now."""
    home = _org_home(repositories, tags)
    storage, marker = home / "data", home / "seeded.json"
    expected = {"version": SEED_VERSION, "repositories": repositories, "tags": tags}
    workdir = Path(tempfile.mkdtemp(prefix="cacheinspect-bench-"))
    if marker.is_file() and json.loads(marker.read_text()) == expected:
        registry = _start(storage, workdir)
        if _serves(registry.url, repositories, tags):
            return OrgSeeded(registry.host, True, registry.stop, workdir)
        registry.stop()
        log(f"org {repositories}x{tags}: cached storage does not match; seeding again")
    shutil.rmtree(home, ignore_errors=True)
    storage.mkdir(parents=True)
    registry = _start(storage, workdir)
    try:
        limits = httpx.Limits(max_connections=PUSH_CONCURRENCY, max_keepalive_connections=PUSH_CONCURRENCY)
        with (
            httpx.Client(timeout=60, limits=limits, trust_env=False) as client,
            ThreadPoolExecutor(max_workers=PUSH_CONCURRENCY) as pool,
        ):
            jobs = [
                pool.submit(partial(_push_repository, client, registry.url, name, tags))
                for name in org_repositories(repositories)
            ]
            for job in jobs:
                job.result()
        if not _serves(registry.url, repositories, tags):
            raise RuntimeError("org: the registry does not serve what was pushed")
    except BaseException:
        registry.stop()
        shutil.rmtree(workdir, ignore_errors=True)
        raise
    marker.write_text(json.dumps(expected, indent=2))
    return OrgSeeded(registry.host, False, registry.stop, workdir)


def run_gc_org(config: Config, tools: Tools, log: Log, *, repositories: int, tags: int) -> Section:
    keep = max(1, tags // 4)
    lat, c = config.latency, config.concurrency
    seeded = open_org(repositories, tags, log=log)
    log(
        f"org {repositories}x{tags}: {'reused cached registry storage' if seeded.reused else 'seeded over HTTP'}"
    )
    proxy = LatencyProxy(
        seeded.registry_host, latency=lat, auth=config.auth, connect_latency=config.connect_latency
    )
    rules = ["--tag-template", "{branch}-buildcache", "--keep-last", str(keep), "--json"]
    tenth = max(1, repositories // 10)
    policy = seeded.workdir / "org.toml"
    policy.write_text(
        "[defaults]\n"
        + "".join(
            f'[[repository]]\nname = "{proxy.host}/{name}"\n' for name in org_repositories(repositories)
        )
    )

    def check(expected: int) -> Callable[[Run], str | None]:
        def verify(run: Run) -> str | None:
            document = json.loads(run.stdout)
            plans = document["repositories"]
            if len(plans) != expected:
                return f"{len(plans)} repositories planned, expected {expected}"
            wrong = [p["repository"] for p in plans if p["summary"]["delete"] != tags - keep]
            return f"{wrong[0]} does not delete {tags - keep}" if wrong else None

        return verify

    rows: list[Row] = []
    try:
        for label, argv, count in (
            (
                f"cacheinspect gc --discover (all {repositories})",
                ["gc", "--discover", f"{proxy.host}/org", *rules],
                repositories,
            ),
            (
                f"cacheinspect gc --discover --match (a tenth: {tenth})",
                ["gc", "--discover", f"{proxy.host}/org", "--match", _tenth_glob(tenth), *rules],
                tenth,
            ),
            (
                f"cacheinspect gc --policy ({repositories} listed, all plans held)",
                ["gc", "--policy", str(policy), *rules],
                repositories,
            ),
        ):
            # The catalog (discovery), a tag list and a GET per tag per repository; with token auth the
            # first request is answered 401 and sent again, and each scope (the catalog's, each
            # repository's) costs one token request.
            catalog = 1 if "--discover" in argv else 0
            least = catalog + count * (1 + tags) + ((1 + catalog + count) if config.auth else 0)
            log(f"  {label} ×{config.slow_repeat}")
            row = Row(label, c, least, floor_seconds(least, c, lat), reference=not rows)
            row.measured = measure(
                [*tools.cacheinspect, *argv],
                env=tools.env,
                repeat=config.slow_repeat,
                proxy=proxy,
                check=check(count),
                timeout=1800,
            )
            if not row.measured.ok:
                log(f"    problem: {row.measured.problems[0]}")
            rows.append(row)
    finally:
        proxy.close()
        seeded.stop()
    log(f"  org {repositories}x{tags}: four shards within a time budget, then a second round (a fresh copy)")
    rounds, notes = budget_rounds(config, tools, log, repositories=repositories, tags=tags)
    rows += rounds
    return Section(
        f"6. `gc` discovery and planning over {repositories} repositories × {tags} tags",
        f"An organisation of {repositories} repositories of {tags} cache tags (each its own small manifest), "
        f"planned with `--keep-last {keep}` (dry run). Discovery lists the catalog (one page) and reads each "
        "repository's tag list once and each tag's manifest once; *least needed* counts exactly that, plus a "
        "token per scope (the catalog's, each repository's) and the first request sent again after its 401. The "
        "streamed run (discovery) keeps one repository's plan at a time; the `--policy` run holds every plan "
        "until it has rendered them all. The last two rows are one round each of four `--shard K/4` "
        "processes at the same time (`--apply`, a fresh copy of the storage): the first within a time "
        "budget too short to finish, the second without one; *time* is the median shard, the notes give "
        "each round's wall time.",
        rows,
        notes,
    )


def _tenth_glob(tenth: int) -> str:
    """A glob for the first ``tenth`` names (``svc-000-cache`` ..): exact for 10 and 2, else a prefix range."""
    if tenth == 10:
        return "svc-00[0-9]-cache"
    if tenth < 10:
        return f"svc-00[0-{tenth - 1}]-cache"
    return f"svc-0[0-{tenth // 10 - 1}][0-9]-cache"


def budget_rounds(
    config: Config, tools: Tools, log: Log, *, repositories: int, tags: int
) -> tuple[list[Row], list[str]]:
    """Four shards with ``--apply --time-budget T`` at the same time, then four without a budget.

    Expected by hand from the seeding rules (``_manifest``): tag ``branch-NNNN-buildcache`` is the
    ``NNNN``-th hour from 2025-01-01T00:00Z (``1 + i // 24`` is the day, ``i % 24`` the hour; strictly
    increasing in ``i`` below 28 days = 672 tags), each on its own manifest. ``--keep-last K`` keeps the
    ``K`` newest, so each repository's plan deletes indexes ``0 .. tags-K-1``: ``doomed`` manifests, one
    DELETE each (no tag shares a manifest, so no placeholder), ``repositories × doomed`` in all (100 × 10
    = 1,000 at full size, 20 × 2 = 40 with ``--quick``), and keeps the other ``K`` tags.
    """
    doomed = max(2, tags // 20)
    keep = tags - doomed
    names = org_repositories(repositories)
    expected_deleted = {_tag(i) for i in range(doomed)}
    expected_kept = {_tag(i) for i in range(doomed, tags)}
    seeded = fresh_org_copy(repositories, tags, log=log)
    proxy = LatencyProxy(
        seeded.registry_host, latency=config.latency, auth=config.auth, connect_latency=config.connect_latency
    )
    base = [
        *tools.cacheinspect, "gc", "--discover", f"{proxy.host}/org", "--tag-template", "{branch}-buildcache",
        "--keep-last", str(keep), "--json",
    ]  # fmt: skip
    expected = {f"{proxy.host}/{name}": expected_deleted for name in names}
    problems: list[str] = []
    rows: list[Row] = []
    notes: list[str] = []
    try:
        plan_run = run_once(base, env=tools.env, timeout=1800)
        planned = {
            r["repository"]: {t["tag"] for t in r["tags"] if t["action"] == "delete"}
            for r in json.loads(plan_run.stdout)["repositories"]
        }
        if plan_run.returncode != 0 or planned != expected:
            problems.append(
                f"the unsharded dry run (exit {plan_run.returncode}) is not the hand-derived plan"
            )
        # The budget: half of one shard's share of the unsharded plan's time (whole seconds, at least 1).
        # A shard plans about a quarter of the repositories, four at a time on this machine's cores, and
        # deletes on top of that, so it cannot be done by then; planning counts in the budget (docs/gc.md
        # "Time budget").
        budget = max(1, math.floor(plan_run.seconds / 8))
        log(f"    unsharded dry run {plan_run.seconds:.1f} s: budget {budget}s for the first round")
        deleted: dict[str, set[str]] = {}
        for label, extra, want in (
            (
                f"round 1: 4 × gc --apply --shard K/4 --time-budget {budget}s",
                ["--time-budget", f"{budget}s"],
                7,
            ),
            ("round 2: 4 × gc --apply --shard K/4 (no budget)", [], 0),
        ):
            proxy.reset()
            started = time.monotonic()
            argvs = [[*base, "--apply", "--shard", f"{k}/4", *extra] for k in range(4)]
            with ThreadPoolExecutor(max_workers=4) as pool:
                runs = list(pool.map(partial(run_once, env=tools.env, timeout=3600), argvs))
            wall = time.monotonic() - started
            stats = proxy.stats()
            done = left = not_begun = 0
            for k, run in enumerate(runs):
                if run.returncode != want:
                    tail = run.stderr.decode(errors="replace").strip().splitlines()[-1:] or [""]
                    problems.append(
                        f"{label}: shard {k}/4 exit {run.returncode}, expected {want}: {tail[0][:200]}"
                    )
                if not run.stdout.strip():
                    continue
                document = json.loads(run.stdout)
                left += (document.get("budget") or {}).get("deletionsLeft", 0)
                not_begun += sum(1 for x in document["discovery"]["skipped"] if x["reason"] == "time-budget")
                for repository in document["repositories"]:
                    gone = {
                        t["tag"]
                        for t in (repository["report"] or {}).get("tags", [])
                        if t["status"] == "deleted"
                    }
                    twice = gone & deleted.get(repository["repository"], set())
                    if twice:
                        problems.append(
                            f"{label}: {repository['repository']} deleted {sorted(twice)[0]} again"
                        )
                    deleted.setdefault(repository["repository"], set()).update(gone)
                    done += len(gone)
            # The first round: what it deleted and what it left are the whole plan between them.
            if want == 7 and done + left + not_begun * doomed != repositories * doomed:
                problems.append(f"{label}: done + left is not the plan's {repositories * doomed:,} deletions")
            rss = ", ".join(f"{r.max_rss_kib * 1024 / 1e6:.0f}" for r in runs)
            codes = " ".join(str(r.returncode) for r in runs)
            notes.append(
                f"{label}: wall {wall:.1f} s, exit codes {codes}, {done:,} deletions done, {left:,} left in "
                f"the repositories begun and {not_begun} repositories not begun ({not_begun * doomed:,} "
                f"deletions), {stats.requests:,} requests, peak RSS per process {rss} MB."
            )
            log(f"    {notes[-1]}")
            rows.append(
                Row(
                    label,
                    config.concurrency,
                    None,
                    None,
                    Measured(tuple(replace(r, stats=stats) for r in runs), tuple(problems[:1])),
                    note=f"{done:,} deleted, {left + not_begun * doomed:,} left; wall {wall:.1f} s; exit {codes}",
                )
            )
        if deleted != expected:
            problems.append("the two rounds' deletions are not the unsharded plan")
        with httpx.Client(timeout=60, trust_env=False) as client:
            for name in names:
                kept = set(
                    client.get(f"http://{seeded.registry_host}/v2/{name}/tags/list?n=1000").json()["tags"]
                )
                if kept != expected_kept:
                    problems.append(f"{name}: {len(kept)} tags left, expected the {keep} newest")
                    break
        total = repositories * doomed
        verdict = (
            "; ".join(problems)
            if problems
            else (
                f"the union of both rounds' deletions is the unsharded dry-run plan ({total:,} = {repositories} "
                f"repositories × {doomed}), nothing was deleted twice, and every repository still holds its "
                f"{keep} newest tags"
            )
        )
        notes.append(f"Check: {verdict}.")
        if problems and rows and rows[-1].measured is not None:
            rows[-1].measured = Measured(rows[-1].measured.runs, tuple(problems[:1]))
    finally:
        proxy.close()
        seeded.stop()
    return rows, notes
