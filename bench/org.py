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
"""

from __future__ import annotations

import json
import shutil
import tempfile
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import httpx

from inspector.oci.digest import sha256_digest
from inspector.oci.mediatypes import ANNOTATION_CREATED, OCI_MANIFEST

from .measure import Run, floor_seconds, measure
from .proxy import LatencyProxy
from .seed import CACHE_ROOT, PUSH_CONCURRENCY, SEED_VERSION, _start
from .workloads import Config, Log, Row, Section, Tools

__all__ = ["OrgSeeded", "open_org", "org_repositories", "run_gc_org"]

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


def open_org(repositories: int, tags: int, *, log: Log) -> OrgSeeded:
    """A registry serving the organisation: from cached storage if it checks out, else pushed now."""
    home = CACHE_ROOT / f"org-{repositories}x{tags}-v{SEED_VERSION}"
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
    return Section(
        f"6. `gc` discovery and planning over {repositories} repositories × {tags} tags",
        f"An organisation of {repositories} repositories of {tags} cache tags (each its own small manifest), "
        f"planned with `--keep-last {keep}` (dry run). Discovery lists the catalog (one page) and reads each "
        "repository's tag list once and each tag's manifest once; *least needed* counts exactly that, plus a "
        "token per scope (the catalog's, each repository's) and the first request sent again after its 401. The "
        "streamed run (discovery) keeps one repository's plan at a time; the `--policy` run holds every plan "
        "until it has rendered them all.",
        rows,
    )


def _tenth_glob(tenth: int) -> str:
    """A glob for the first ``tenth`` names (``svc-000-cache`` ..): exact for 10 and 2, else a prefix range."""
    if tenth == 10:
        return "svc-00[0-9]-cache"
    if tenth < 10:
        return f"svc-00[0-{tenth - 1}]-cache"
    return f"svc-0[0-{tenth // 10 - 1}][0-9]-cache"
