"""The HTTP/2 rows: `show`, `tags` and `du`/gc planning over TLS through the HTTP/2 latency proxy.

The data sets are those of sections 1–3 (same cached storage), served by the real registry over
TLS (bench/tls.py) behind ``H2LatencyProxy`` (bench/h2proxy.py). Every client trusts the run's
test CA: cacheinspect through ``--ca-file``, skopeo through ``--cert-dir``, oras-py (requests)
through ``REQUESTS_CA_BUNDLE``, the bare-httpx controls through ``BENCH_CA_FILE``.

The floor here is the one of HTTP/2 (issue 17): the round trips that depend on each other
(the 401 challenge, the token, then the manifest and the config, or the tag list), then the
independent requests in ⌈requests ÷ streams⌉ waves at the proxy's advertised stream limit.
"""

from __future__ import annotations

import math
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path

from .h2proxy import H2LatencyProxy
from .measure import floor_seconds
from .seed import (
    DataSet,
    Seeded,
    du_dataset,
    open_dataset,
    registry_config,
    show_dataset,
    storage_of,
    tags_dataset,
)
from .tls import TlsFiles, make_tls, start_tls_registry
from .workloads import (
    GC_TEMPLATE,
    Config,
    Row,
    Section,
    Tools,
    _auth_requests,
    _Bench,
    _json_check,
    du_checks,
    oras_show_row,
    show_checks,
    tags_checks,
)

__all__ = ["h2_floor", "run_h2"]

Log = Callable[[str], None]


def h2_floor(dependent: int, independent: int, streams: int, latency: float) -> float:
    """``dependent`` round trips one after another, then ``independent`` ones in waves of ``streams``."""
    return (dependent + math.ceil(independent / streams)) * latency


def _protocols_note(row: Row) -> None:
    """Say in the row which protocol(s) the tool negotiated with the proxy (ALPN)."""
    stats = row.measured.stats if row.measured is not None else None
    if stats is None or not stats.protocols:
        return
    used = " + ".join(
        f"{n}× {'HTTP/2' if p == 'h2' else 'HTTP/1.1'}" for p, n in sorted(stats.protocols.items())
    )
    row.note = f"{row.note}; {used}" if row.note else used


@contextmanager
def _tls_setup(
    dataset: DataSet, config: Config, tls: TlsFiles, log: Log
) -> Iterator[tuple[Seeded, H2LatencyProxy]]:
    """The cached storage of ``dataset`` (seeded over plain HTTP when needed) served over TLS, behind the proxy."""
    open_dataset(
        dataset, log=log
    ).stop()  # seeds or checks the cached storage; the TLS registry then serves it
    workdir = Path(tempfile.mkdtemp(prefix="cacheinspect-bench-"))
    storage = storage_of(dataset)
    seeded = Seeded(
        dataset, start_tls_registry(storage, workdir, tls, extra=registry_config(storage)), True, workdir
    )
    try:
        proxy = H2LatencyProxy(
            seeded.registry.host,
            tls,
            latency=config.latency,
            auth=config.auth,
            max_streams=config.h2_streams,
            connect_latency=config.connect_latency,
        )
        try:
            yield seeded, proxy
        finally:
            proxy.close()
    finally:
        seeded.stop()


def run_h2(config: Config, tools: Tools, log: Log) -> list[Section]:
    with tempfile.TemporaryDirectory(prefix="cacheinspect-bench-tls-") as scratch:
        tls = make_tls(Path(scratch))
        env = {**tools.env, "BENCH_CA_FILE": str(tls.ca), "REQUESTS_CA_BUNDLE": str(tls.ca)}
        tls_tools = replace(tools, env=env)
        return [
            _show(config, tls_tools, tls, log),
            _tags(config, tls_tools, tls, log),
            _du(config, tls_tools, tls, log),
            _show(config, tls_tools, tls, log, far=True),
        ]


def _intro(config: Config) -> str:
    return (
        f"TLS to the HTTP/2 proxy (ALPN `h2`, else `http/1.1`; `SETTINGS_MAX_CONCURRENT_STREAMS` "
        f"{config.h2_streams}), the real registry behind it over TLS. "
    )


FAR = 0.100  # seconds: a registry on another continent (section 10)


def _show(config: Config, tools: Tools, tls: TlsFiles, log: Log, *, far: bool = False) -> Section:
    """Section 7: ``show`` over TLS beside its peers. ``far``: section 10, the same at ``FAR`` (100 ms),
    HTTP/2 beside HTTP/1.1 only, where the round trips, not this machine's CPU, bound the time (at 20 ms, with
    the registry and the proxy on the same two cores, they do not)."""
    near = config.latency
    if far:
        config = replace(config, latency=FAR)
    dataset = show_dataset(config.layers)
    n = dataset.facts["layers"]
    auth = _auth_requests(config)
    needed = n + 2 + auth
    s, c, lat = config.h2_streams, config.concurrency, config.latency
    floor = h2_floor(auth + 2, n, s, lat)  # challenge, token, manifest, config; then the blob HEADs
    show_ok, peer_ok, raw_ok = show_checks(n, dataset.manifests[0].digest)
    ca = ["--ca-file", str(tls.ca)]
    http1 = 16 if far else c  # far: the adaptive limit's ceiling on HTTP/1.1, which it reaches there
    rows = [
        Row(
            f"**floor** (HTTP/2, {s} streams)",
            s,
            needed,
            floor,
            note=f"{auth + 2} dependent + ⌈{n:,} ÷ {s}⌉ waves",
        ),
        Row(f"floor (HTTP/1.1, c={http1})", http1, needed, floor_seconds(needed, http1, lat)),
    ]
    with _tls_setup(dataset, config, tls, log) as (seeded, proxy):
        log(f"workload {10 if far else 7}: show over TLS at {lat * 1000:.0f} ms ({dataset.name})")
        bench = _Bench(tools, proxy, lat, log, seeded)
        ref = f"{proxy.host}/{dataset.repository}:cache"
        measured = [
            bench.row(
                "cacheinspect show --json --ca-file",
                [*tools.cacheinspect, "show", ref, "--json", *ca],
                repeat=config.repeat,
                concurrency=c,
                min_requests=needed,
                check=_json_check(show_ok),
                reference=True,
            ),
            bench.row(
                "cacheinspect show --json --ca-file --http1",
                [*tools.cacheinspect, "show", ref, "--json", *ca, "--http1"],
                repeat=config.repeat,
                concurrency=c,
                min_requests=needed,
                check=_json_check(show_ok),
                note="HTTP/1.1 asked for: a TCP connection per request in flight",
            ),
            bench.row(
                "control: bare httpx, HTTP/2, one connection",
                tools.peer("h2-show", proxy.host, dataset.repository, "cache"),
                repeat=config.repeat,
                concurrency=s,
                min_requests=needed,
                check=_json_check(peer_ok),
                note="asyncio, every HEAD at once; no parsing, no analysis",
            ),
        ]
        if not far:
            measured.insert(2, oras_show_row(bench, tools, proxy.host, dataset, config, needed, peer_ok))
            measured.append(
                bench.row(
                    "skopeo inspect --raw (manifest only)",
                    [tools.skopeo, "inspect", "--raw", "--cert-dir", str(tls.cert_dir()), f"docker://{ref}"]
                    if tools.skopeo
                    else None,
                    repeat=config.repeat,
                    concurrency=1,
                    min_requests=1 + auth,
                    check=raw_ok,
                    note="does 1 of the workload's requests: no config, no blob checks",
                    unavailable="" if tools.skopeo else "skopeo not available",
                )
            )
    for row in measured:
        if row.tool.startswith(("cacheinspect", "control")):
            row.floor = floor  # the HTTP/2 floor is the aim whatever the tool negotiated
        _protocols_note(row)
    waves = f"⌈{n:,} ÷ {s}⌉ = {_waves(n, s)} of blob HEADs = {_ms(floor)}"
    if far:
        return Section(
            f"10. HTTP/2 against HTTP/1.1 at {lat * 1000:.0f} ms: `show`, {n:,} layers, over TLS",
            _intro(config) + f"The data set of section 7, {lat * 1000:.0f} ms per request instead of "
            f"{near * 1000:.0f}: a registry far away, where round trips bound the time more than this machine's "
            f"CPU. Floor: {auth + 2} dependent round trips, then {waves}.",
            rows + measured,
        )
    facts = dataset.facts
    return Section(
        f"7. HTTP/2: `show` with blob checks, {n:,} layers, over TLS",
        _intro(config) + f"The data set of section 1 (manifest {facts['manifest_bytes']:,} B, config "
        f"{facts['config_bytes']:,} B). Floor: {auth + 2} dependent round trips, then {waves}; oras-py and "
        "skopeo keep their own floor.",
        rows + measured,
    )


def _tags(config: Config, tools: Tools, tls: TlsFiles, log: Log) -> Section:
    dataset = tags_dataset(config.tags)
    t = config.tags
    needed = 1 + _auth_requests(config)
    lat = config.latency
    lines_ok, json_tags, peer_ok = tags_checks(t)
    rows = [Row("**floor**", 1, needed, floor_seconds(needed, 1, lat))]
    with _tls_setup(dataset, config, tls, log) as (seeded, proxy):
        log(f"workload 8: tags over TLS ({dataset.name})")
        bench = _Bench(tools, proxy, lat, log, seeded)
        repo = f"{proxy.host}/{dataset.repository}"
        measured = [
            bench.row(
                "cacheinspect tags --ca-file",
                [*tools.cacheinspect, "tags", repo, "--ca-file", str(tls.ca)],
                repeat=config.repeat,
                concurrency=1,
                min_requests=needed,
                check=lines_ok,
                reference=True,
            ),
            bench.row(
                "skopeo list-tags",
                [tools.skopeo, "list-tags", "--cert-dir", str(tls.cert_dir()), f"docker://{repo}"]
                if tools.skopeo
                else None,
                repeat=config.repeat,
                concurrency=1,
                min_requests=needed,
                check=_json_check(json_tags("Tags")),
                unavailable="" if tools.skopeo else "skopeo not available",
            ),
            bench.row(
                "oras-py get_tags",
                tools.peer("oras-tags", proxy.host, dataset.repository),
                repeat=config.repeat,
                concurrency=1,
                min_requests=needed,
                check=_json_check(peer_ok),
            ),
        ]
    for row in measured:
        _protocols_note(row)
    return Section(
        f"8. HTTP/2: `tags` on {t:,} tags, over TLS",
        _intro(config) + "The data set of section 2; one request for every client (+ 401 challenge + token), "
        "and a new TLS connection for each fresh process.",
        rows + measured,
    )


def _du(config: Config, tools: Tools, tls: TlsFiles, log: Log) -> Section:
    dataset = du_dataset(config.manifests)
    m = config.manifests
    auth = _auth_requests(config)
    needed = 1 + m + auth
    s, c, lat = config.h2_streams, config.concurrency, config.latency
    floor = h2_floor(auth + 1, m, s, lat)  # challenge, token, tag list; then the manifest GETs
    keep = min(config.gc_keep_last, m)
    du_ok, gc_ok = du_checks(m, keep)

    def control_ok(document: object) -> str | None:
        ok = isinstance(document, dict) and document.get("tags") == m and document.get("manifests") == m
        return None if ok else f"control saw {document}"

    rows = [
        Row(
            f"**floor** (HTTP/2, {s} streams)",
            s,
            needed,
            floor,
            note=f"{auth + 1} dependent + ⌈{m:,} ÷ {s}⌉ waves",
        ),
        Row(f"floor (HTTP/1.1, c={c})", c, needed, floor_seconds(needed, c, lat)),
    ]
    with _tls_setup(dataset, config, tls, log) as (seeded, proxy):
        log(f"workload 9: du / gc planning over TLS ({dataset.name})")
        bench = _Bench(tools, proxy, lat, log, seeded)
        repo = f"{proxy.host}/{dataset.repository}"
        ca = ["--ca-file", str(tls.ca)]
        measured = [
            bench.row(
                "cacheinspect du --json --ca-file",
                [*tools.cacheinspect, "du", repo, "--json", *ca],
                repeat=config.repeat,
                concurrency=c,
                min_requests=needed,
                check=_json_check(du_ok),
                reference=True,
            ),
            bench.row(
                "cacheinspect du --json --ca-file --http1",
                [*tools.cacheinspect, "du", repo, "--json", *ca, "--http1"],
                repeat=config.repeat,
                concurrency=c,
                min_requests=needed,
                check=_json_check(du_ok),
                note="HTTP/1.1 asked for",
            ),
            bench.row(
                "cacheinspect gc (dry-run plan) --json --ca-file",
                [
                    *tools.cacheinspect,
                    "gc",
                    repo,
                    "--tag-template",
                    GC_TEMPLATE,
                    "--keep-last",
                    str(keep),
                    "--json",
                    *ca,
                ],
                repeat=config.repeat,
                concurrency=c,
                min_requests=needed,
                check=_json_check(gc_ok),
                note=f"`--keep-last {keep}`",
            ),
            bench.row(
                "control: bare httpx, HTTP/2, one connection",
                tools.peer("h2-du", proxy.host, dataset.repository),
                repeat=config.repeat,
                concurrency=s,
                min_requests=needed,
                check=_json_check(control_ok),
                note="tag list, then every manifest GET at once; no parsing",
            ),
        ]
    for row in measured:
        row.floor = floor
        _protocols_note(row)
    return Section(
        f"9. HTTP/2: `du` / `gc` planning over {m:,} cache tags, over TLS",
        _intro(config) + f"The data set of section 3. Floor: {auth + 1} dependent round trips, then "
        f"⌈{m:,} ÷ {s}⌉ = {_waves(m, s)} of manifest GETs = {_ms(floor)}.",
        rows + measured,
    )


def _waves(requests: int, streams: int) -> str:
    waves = math.ceil(requests / streams)
    return f"{waves} wave{'s' if waves != 1 else ''}"


def _ms(seconds: float) -> str:
    return f"{seconds * 1000:.0f} ms"
