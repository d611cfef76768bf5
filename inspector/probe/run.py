"""``cacheinspect probe``: can this registry hold a BuildKit registry cache, and how is it cleaned up?

The probe works inside the repository the cache will use (registries.md §5): it never creates
repositories, writes only tags it owns (``cacheinspect-probe-<runid>-…``) and content carrying
its run id, reads with HEAD where it can, and at the end deletes what it created (``--keep`` leaves it; ``--delete`` adds the deletion checks) (only what it
created in this run). Each check ends as one of ``STATUSES``; failures are judged by
``inspector.probe.classify``. The documented behaviour of the registry's family (``kb``) is attached
to each check, and a recommendation (the ``--cache-to`` attributes that work, and how cleanup
must be done) is derived from the live results, falling back to the documentation where
nothing could be probed. A user's ``--cache-to`` string is planned as BuildKit would export it
(``cacheto``) and checked against the results.

The checks themselves are functions of a ``ProbeSession`` (``session``: the client, the repository and the
facts observed so far) in ``inspector.probe.checks``, where ``SEQUENCE`` lists them in order with what each
requires; this module runs them, records each result with its hint and documentation, and judges the run.

Checks, in order, and the requests they make (``<p>`` = ``cacheinspect-probe-<runid>-``)::

    discovery               GET /v2/ without credentials (challenge, API version header)
    auth                    GET /v2/ with credentials
    repository              GET tags/list (all pages): exists? (404 NAME_UNKNOWN = config error)
    existing-cache          HEAD + GET the --cache-to ref (HEAD only on Docker Hub); read-only: + HEAD blobs
    blob-upload             HEAD blob, POST uploads/ + PUT <Location>&digest=, HEAD blob
    blob-upload-single-post POST uploads/?digest= with the body (202 = unsupported, finished by PUT)
    blob-upload-chunked     POST, PATCH × 2 (Content-Range), PUT <Location>&digest=
    blob-mount              upload to --mount-from, POST uploads/?mount=&from= (202 = unsupported)
    manifest-image          PUT <p>oman, HEAD <p>oman, GET by digest (not on Docker Hub)
    manifest-index          PUT <p>oidx, HEAD, GET
    manifest-list           PUT <p>dlist, HEAD, GET
    manifest-migration      PUT index then image manifest to <p>migrate, HEAD
    manifest-near-limit     PUT a 1,048,576-byte image manifest to <p>large, HEAD, GET
    tags-list               GET tags/list following Link: the probe's tags are listed
    tags-n                  GET tags/list?n=1
    tags-link               follow Link (up to 3 pages)
    catalog                 GET /v2/_catalog?n=1
    referrers               GET referrers/<digest> (validated by Content-Type and body)
    delete-tag              PUT <p>deltag, DELETE by tag, HEAD tag and digest          (--delete)
    delete-digest-tagged    PUT <p>deldigest, DELETE by digest, HEAD digest and tag    (--delete)
    delete-digest-untagged  PUT by digest, DELETE by digest, HEAD                      (--delete)
    token-scopes            (no request) actions granted by the Bearer tokens' JWT claims
    cleanup                 DELETE what the probe created (unless --keep), HEAD to list leftovers
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from types import MappingProxyType

from inspector.errors import CacheInspectError
from inspector.oci.reference import Repository, parse_reference
from inspector.probe.cacheto import parse_buildkit_version, parse_cache_to, plan_cache_to
from inspector.probe.checks import SEQUENCE, ProbeCheck
from inspector.probe.classify import STATUSES, Status, classify
from inspector.probe.kb import detect_family
from inspector.probe.model import (
    CHECKS,
    FORM_CHECKS,
    SPECS,
    CacheToVerdict,
    Check,
    CheckSpec,
    CleanupAdvice,
    Leftover,
    ProbeOptions,
    ProbeReport,
    Recommendation,
)
from inspector.probe.session import ProbeSession, Result, Stop, summarize
from inspector.probe.verdict import evaluate_cache_to, hint_for, judge_exit, recommend
from inspector.registry.client import RegistryClient

__all__ = [
    "CHECKS",
    "FORM_CHECKS",
    "STATUSES",
    "CacheToVerdict",
    "Check",
    "CheckSpec",
    "CleanupAdvice",
    "Leftover",
    "ProbeOptions",
    "ProbeReport",
    "Recommendation",
    "evaluate_cache_to",
    "offline_report",
    "run_probe",
]


def _record(
    s: ProbeSession, check_id: str, result: Result, *, blocked_by: str | None = None, ms: int = 0
) -> Check:
    spec = SPECS[check_id]
    family = s.family.family
    check = Check(
        id=spec.id,
        group=spec.group,
        title=spec.title,
        status=result.status,
        summary=result.summary,
        basis=result.basis,
        answer=result.answer,
        hint=result.hint or hint_for(check_id, result.status, result.answer, family, s.results),
        documented=family.facts_about(spec.topic) if spec.topic else (),
        blocked_by=blocked_by,
        retries=s.retries,
        observed=result.observed,
        duration_ms=ms,
    )
    s.results[check_id] = check
    return check


def _run_check(s: ProbeSession, check: ProbeCheck) -> None:
    """Record ``check``'s result: decided without a request, skipped for a requirement, or run and judged."""
    s.retries = 0
    decided = check.decide(s) if check.decide is not None else None
    if decided is not None:
        _record(s, check.id, decided)
    else:
        _run_or_block(s, check)
    if check.after is not None:
        check.after(s)


def _run_or_block(s: ProbeSession, check: ProbeCheck) -> None:
    for dep in check.requires:
        found = s.results.get(dep)
        if found is None or found.status != "supported":
            status = found.status if found is not None else "missing"
            # The explanation fits a dependency that failed; one that was itself skipped is named as such.
            explained = check.why.get(dep) if status not in ("skipped", "missing") else None
            _record(
                s, check.id, Result("skipped", explained or f"not run: {dep} is {status}"), blocked_by=dep
            )
            return
    started = time.monotonic()
    try:
        result = check.run(s)
    except Stop as stop:
        result = stop.result
    except CacheInspectError as exc:
        outcome = classify(exc, check.op)
        result = Result(outcome.status, summarize(outcome.reason, exc, outcome.answer), outcome.answer)
    _record(s, check.id, result, ms=int((time.monotonic() - started) * 1000))


def _run_all(s: ProbeSession) -> list[Check]:
    for check in SEQUENCE:
        _run_check(s, check)
    return [s.results[c.id] for c in CHECKS if c.id in s.results]


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def run_probe(
    client: RegistryClient,
    options: ProbeOptions,
    *,
    sleep: Callable[[float], None] = time.sleep,
    now: Callable[[], datetime] = lambda: datetime.now(UTC),
) -> ProbeReport:
    """Probe ``options.repository`` and judge the results (and ``options.cache_to``)."""
    started = now()
    clock = time.monotonic()
    before = client.request_count
    session = ProbeSession(client, options, sleep=sleep, now=now)
    with client.on_retry(session.count_wait):  # the client's own retries count into the current check
        checks = _run_all(session)
    results = {c.id: c for c in checks}
    family = session.family.family
    recommendation = recommend(family, results, session.plan, options.repository)
    verdict = evaluate_cache_to(session.plan, family, results, options.repository) if session.plan else None
    exit_code, failed_by = judge_exit(verdict, recommendation, results)
    return ProbeReport(
        target=str(options.repository),
        mode="read-only" if options.read_only else "write",
        run_id=session.run_id,
        family=session.family,
        checks=tuple(checks),
        recommendation=recommendation,
        cache_to=verdict,
        leftovers=tuple(session.leftovers),
        exit_code=exit_code,
        started_at=_iso(started),
        duration_ms=int((time.monotonic() - clock) * 1000),
        requests=client.request_count - before,
        failed_by=failed_by,
    )


_VERDICT_STATUS: Mapping[str, Status] = MappingProxyType(
    {
        "yes": "supported",
        "likely": "supported",
        "partial": "skipped",
        "no": "unsupported",
        "unknown": "skipped",
    }
)


def offline_report(
    target: str,
    *,
    family: str | None = None,
    cache_to: str | None = None,
    buildkit_version: str = "latest",
    now: Callable[[], datetime] = lambda: datetime.now(UTC),
) -> ProbeReport:
    """What the knowledge base says about ``target`` (a host or repository), without any request."""
    flagged = detect_family(target, override=family) if family is not None else None  # UnknownFamily first
    host = target.strip().lower()
    repo: Repository | None = None
    if "/" in target:
        repo = parse_reference(target).repository
        host = repo.registry
    match = flagged or detect_family(host)
    fam = match.family
    checks: list[Check] = []
    for spec in CHECKS:
        if spec.topic is None:
            continue
        facts = fam.facts_about(spec.topic)
        if not facts or any(c.documented == facts for c in checks):
            continue
        fact = facts[0]
        checks.append(
            Check(
                id=spec.id,
                group=spec.group,
                title=spec.title,
                status=_VERDICT_STATUS[fact.verdict],
                summary=f"documented ({fact.verdict}): {fact.text}",
                basis="documented",
                documented=facts,
            )
        )
    results = {c.id: c for c in checks}
    plan = (
        plan_cache_to(parse_cache_to(cache_to), parse_buildkit_version(buildkit_version))
        if cache_to is not None
        else None
    )
    recommendation = recommend(fam, results, plan, repo)
    verdict = evaluate_cache_to(plan, fam, results, repo) if plan is not None else None
    exit_code, failed_by = judge_exit(verdict, recommendation, results)
    return ProbeReport(
        target=str(repo) if repo is not None else host,
        mode="offline",
        run_id=None,
        family=match,
        checks=tuple(checks),
        recommendation=recommendation,
        cache_to=verdict,
        leftovers=(),
        exit_code=exit_code,
        started_at=_iso(now()),
        duration_ms=0,
        failed_by=failed_by,
    )
