"""Judging probe results: hints for failed checks, the recommendation, the ``--cache-to`` verdict.

Pure functions over ``Check`` results and the family's documented facts; no I/O.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import Literal

from inspector.cache.fetch import Form
from inspector.errors import ExitCode
from inspector.oci.reference import Repository
from inspector.probe.cacheto import (
    FORM_ATTRIBUTES,
    CacheToPlan,
    CacheToSpec,
    Problem,
    buildkit_label,
    format_cache_to,
    plan_cache_to,
)
from inspector.probe.classify import Answer, Status
from inspector.probe.kb import Fact, Family
from inspector.probe.model import (
    FORM_CHECKS,
    FORM_NAMES,
    FORM_ORDER,
    VERDICT_EXIT,
    CacheToVerdict,
    Check,
    CleanupAdvice,
    Recommendation,
    Verdict,
)

__all__ = [
    "FORM_ATTRIBUTE_TOPICS",
    "cleanup_advice",
    "evaluate_cache_to",
    "hint_for",
    "judge_exit",
    "judge_forms",
    "recommend",
    "root_status",
]

FORM_ATTRIBUTE_TOPICS: Mapping[Form, str] = MappingProxyType(
    {"image-manifest": "image-manifest", "oci-index": "oci-index", "docker-manifest-list": "manifest-list"}
)


def hint_for(
    check_id: str, status: Status, answer: Answer | None, family: Family, results: Mapping[str, Check]
) -> str | None:
    """A next step for a failed check, from the answer and the family."""
    code = answer.code if answer else ""
    http = answer.status if answer else None
    if status == "supported" or status == "skipped":
        return None
    if check_id in ("manifest-index", "manifest-list") and status == "unsupported":
        image = results.get("manifest-image")
        if http == 404:
            return "a 404 on PUT although the blobs exist: the registry wants index children to be artifacts (Harbor) — use image-manifest=true"
        if code == "MANIFEST_BLOB_UNKNOWN":
            return "the registry wants index entries to be manifests (distribution v3 default validation) — use image-manifest=true"
        if image is None or image.status == "supported":
            return "export the image-manifest form instead: image-manifest=true,oci-mediatypes=true (BuildKit >= 0.12)"
        return None
    if check_id == "manifest-image" and status == "unsupported":
        index = results.get("manifest-index")
        if index is not None and index.status == "supported":
            return "this registry takes the index form: image-manifest=false,oci-mediatypes=true"
        return None
    if check_id == "manifest-migration" and status == "unsupported":
        return "an existing index cache tag cannot become an image manifest here (zot < 2.1.3): write the new form to a new tag, or delete the old tag first"
    if check_id == "manifest-near-limit" and status == "unsupported":
        return "large mode=max caches fail to export here; keep them smaller (mode=min, or one cache ref per target)"
    if check_id in ("repository", "blob-upload") and status == "config-error":
        if family.id == "ecr":
            return "create the repository first (aws ecr create-repository), or add a create-on-push repository creation template [E14][E15]"
        return "the probe never creates repositories: create it (or push a first cache there) and probe again"
    if status == "denied":
        if family.id == "ecr":
            return "ECR passwords from aws ecr get-login-password expire after 12 h [E16]"
        if family.id == "ghcr":
            return "GITHUB_TOKEN needs job permissions packages: write (and admin on the package to delete) [G9][G4]"
        if check_id in ("blob-upload", "manifest-image", "manifest-index", "manifest-list"):
            return "the credentials may pull but not push: check the token's push scope / the account's write rights"
        if check_id.startswith("delete"):
            return "deleting needs the delete action in the token scope (Docker Hub: pull,push,delete) [D1]"
        return "check the credentials (--username/--password-stdin, CACHEINSPECT_USERNAME, docker login)"
    if check_id.startswith("delete") and status == "unsupported":
        if code == "GOOGLE_MANIFEST_DANGLING_TAG":
            return (
                "the manifest is still tagged: untag first (DELETE the tag), then delete the digest [C2][C4]"
            )
        if family.id == "ghcr" and http == 405:
            return "GHCR has no /v2 DELETE: delete package versions with the GitHub REST API [G4]"
        if http == 405 and code == "DENIED":
            return "zot refuses to delete a manifest an index still references: delete the index first [Z1]"
        if http == 405 and family.id in ("generic", "distribution"):
            return "distribution answers 405 UNSUPPORTED when storage.delete.enabled is false [R7]"
        if code == "DIGEST_INVALID" and check_id == "delete-tag":
            return "distribution 2.x deletes manifests by digest only, never by tag [R7]"
        if check_id == "delete-digest-untagged" and http == 404:
            return (
                "a tag-centric registry (Quay) does not address untagged manifests: delete while tagged [Q1]"
            )
        if family.id == "docker-hub" and check_id == "delete-tag":
            return "remove tags with the Hub API or UI, then delete the untagged manifest by digest [D1]"
    if status == "inconclusive":
        return "transient failures (rate limit, 5xx, network) outlasted the retries: run the probe again"
    return None


def _status(results: Mapping[str, Check], check_id: str) -> Status | None:
    """The status of a check that was probed live (None when absent or only documented)."""
    found = results.get(check_id)
    return found.status if found is not None and found.basis == "probed" else None


def cleanup_advice(family: Family, results: Mapping[str, Check]) -> CleanupAdvice:
    tag = results.get("delete-tag")
    tag = tag if tag is not None and tag.basis == "probed" else None
    tagged = _status(results, "delete-digest-tagged")
    untagged = _status(results, "delete-digest-untagged")
    probed = [s for s in (tag.status if tag else None, tagged, untagged) if s not in (None, "skipped")]
    documented = CleanupAdvice(family.cleanup.id, family.cleanup.text, "documented", family.cleanup.sources)
    if not probed:
        if family.id == "generic":
            return CleanupAdvice(
                "unknown",
                "unknown for this registry: run the probe with --delete to find out",
                "documented",
            )
        return documented
    tag_ok = tag is not None and tag.status == "supported"
    untag = tag is not None and tag.observed.get("semantics") == "untag"
    tag_text = (
        f"; a single tag can be removed with DELETE …/manifests/<tag> ({'untag' if untag else 'deletes the manifest'})"
        if tag_ok
        else "; single tags cannot be deleted through /v2"
    )
    if tagged == "supported":
        return CleanupAdvice(
            "oci-digest-delete",
            "DELETE …/manifests/<digest> removes the manifest and every tag on it" + tag_text,
            "probed",
        )
    if untagged == "supported" and tag_ok:
        return CleanupAdvice(
            "untag-then-delete",
            "untag with DELETE …/manifests/<tag>, then DELETE …/manifests/<digest> (refused while tagged)",
            "probed",
            family.cleanup.sources if family.cleanup.id == "untag-then-delete" else (),
        )
    if untagged == "supported":
        via = family.cleanup.text if family.id != "generic" else "the registry's own API"
        return CleanupAdvice(
            family.cleanup.id if family.id != "generic" else "untagged-digest-delete",
            f"only untagged manifests can be deleted by digest through /v2; otherwise: {via}",
            "probed",
            family.cleanup.sources,
        )
    if tag_ok:
        return CleanupAdvice(
            "tag-delete",
            "DELETE …/manifests/<tag> removes tags; manifests are left to the registry's garbage collection",
            "probed",
        )
    if family.id == "generic":
        text = "no deletion through /v2: use the registry's own API or retention policies"
        answers = [c.answer for c in (results.get("delete-digest-tagged"), tag) if c is not None and c.answer]
        if any(a.status == 405 and a.code == "UNSUPPORTED" for a in answers):
            text += " (distribution: set storage.delete.enabled: true and run registry garbage-collect)"
        return CleanupAdvice("none", text, "probed")
    return CleanupAdvice(family.cleanup.id, family.cleanup.text, "probed", family.cleanup.sources)


def _form_evidence(results: Mapping[str, Check], form: Form) -> Check | None:
    return results.get(FORM_CHECKS[form])


_CARRIED = ("compression", "compression-level", "force-compression", "registry.insecure")


def _valid(key: str, value: str) -> bool:
    """Whether BuildKit accepts ``key=value`` (so the recommendation can carry it over)."""
    spec = CacheToSpec(f"{key}={value}", "registry", MappingProxyType({"ref": "r.invalid/x:y", key: value}))
    return not plan_cache_to(spec).errors


def recommend(
    family: Family, results: Mapping[str, Check], plan: CacheToPlan | None, repo: Repository | None
) -> Recommendation:
    cleanup = cleanup_advice(family, results)
    chosen: Form | None = None
    basis: Literal["probed", "existing-cache", "documented", "none"] = "none"
    sources: tuple[str, ...] = ()
    notes: list[str] = []
    for form in FORM_ORDER:
        check = _form_evidence(results, form)
        facts = family.facts_about(FORM_ATTRIBUTE_TOPICS[form])
        if check is not None and check.status == "supported":
            chosen, basis = form, check.basis
            sources = tuple(s for f in facts for s in f.sources)
            if basis == "documented" and facts and facts[0].verdict == "likely":
                notes.append(f"documented as likely, not verified: {facts[0].text}")
            break
        decided = root_status(results, FORM_CHECKS[form])
        if decided is not None and decided.status != "skipped":
            continue  # refused here, or blocked by a live failure: live results outrank the documentation
        if facts and facts[0].verdict in ("yes", "likely"):
            chosen, basis = form, "documented"
            sources = facts[0].sources
            if facts[0].verdict == "likely":
                notes.append(f"documented as likely, not verified: {facts[0].text}")
            if facts[0].note:
                notes.append(facts[0].note)
            break
    if chosen is None:
        return Recommendation(
            None,
            (),
            None,
            "none",
            _no_form_reason(results),
            cleanup,
            (),
        )
    if chosen != "image-manifest":
        image = _form_evidence(results, "image-manifest")
        if image is None or image.status == "skipped":
            notes.append("image-manifest=true was not tried; it is BuildKit's default since 0.21")
    attrs = list(FORM_ATTRIBUTES[chosen])
    kept: list[tuple[str, str]] = []
    ref_text = f"{repo}:buildcache" if repo is not None else "REGISTRY/REPO:buildcache"
    mode = "max"
    if plan is not None:
        ref_text = plan.spec.attrs.get("ref") or ref_text
        if plan.spec.attrs.get("mode") in ("min", "max"):
            mode = plan.spec.attrs["mode"]
        kept = [(k, v) for k, v in plan.spec.attrs.items() if k in _CARRIED and _valid(k, v)]
        if plan.ignore_error:
            notes.append("ignore-error=true left out: a refused cache export should fail the build")
    near = results.get("manifest-near-limit")
    if near is not None and near.status == "unsupported":
        notes.append("this registry refused a 1 MiB manifest: big mode=max caches will fail to export")
    value = format_cache_to("registry", [("ref", ref_text), ("mode", mode), *attrs, *kept])
    reason = {
        "image-manifest": "the OCI image manifest form (BuildKit >= 0.12; the default since 0.21)",
        "oci-index": "the OCI index form (BuildKit 0.8–0.20 default)",
        "docker-manifest-list": "the Docker manifest list form (the legacy form)",
    }[chosen]
    how = {
        "probed": "accepted by this registry",
        "existing-cache": "stored by this registry already",
        "documented": "documented for this registry",
    }[basis]
    return Recommendation(
        chosen, tuple(attrs), value, basis, f"{reason}: {how}", cleanup, tuple(notes), sources
    )


def _no_form_reason(results: Mapping[str, Check]) -> str:
    code, deciding = judge_forms(results)
    if code == ExitCode.WILL_NOT_WORK:
        return "the registry refused every cache form: use another cache backend (type=gha, s3, local) or registry"
    if deciding:
        first = results[deciding[0]]
        return f"no cache form could be confirmed: {first.id} is {first.status} ({first.summary})"
    return "no cache form could be confirmed (see the checks)"


def root_status(results: Mapping[str, Check], check_id: str) -> Check | None:
    """The check that decided ``check_id``: itself, or the first non-skipped check it was blocked by."""
    seen: set[str] = set()
    current = results.get(check_id)
    while (
        current is not None and current.status == "skipped" and current.blocked_by and current.id not in seen
    ):
        seen.add(current.id)
        current = results.get(current.blocked_by)
    return current


def _form_name(form: str) -> str:
    return next((name for key, name in FORM_NAMES.items() if key == form), form)


def _add_history(problems: list[Problem], fact: Fact) -> None:
    """A documented verdict carries what used to hold as an info note, never as the verdict."""
    if fact.note:
        problems.append(Problem("info", "documented-history", fact.note))  # the note cites its own source


def evaluate_cache_to(
    plan: CacheToPlan, family: Family, results: Mapping[str, Check], repo: Repository | None
) -> CacheToVerdict:
    """Will ``plan`` work given the checks (live or documented)?"""
    problems = list(plan.problems)
    label = buildkit_label(plan.buildkit)

    def verdict(
        v: Verdict,
        basis: Literal["probed", "existing-cache", "documented", "configuration", "none"],
        reason: str,
        decided_by: str | None = None,
    ) -> CacheToVerdict:
        if v not in ("works", "unknown") and plan.ignore_error:
            problems.append(
                Problem(
                    "error",
                    "ignore-error-hides",
                    "with ignore-error=true this failure would not fail the build: builds pass without a cache",
                )
            )
        return CacheToVerdict(
            plan.spec.raw,
            plan.spec.attrs,
            label,
            plan.form,
            v,
            basis,
            reason,
            tuple(problems),
            int(VERDICT_EXIT[v]),
            (decided_by,) if decided_by is not None and v not in ("works", "unknown") else (),
        )

    if repo is not None and plan.ref is not None and plan.ref.repository != repo:
        problems.append(
            Problem(
                "warning",
                "other-repository",
                f"the cache goes to {plan.ref.repository}, the probe checked {repo}: the results may not apply",
            )
        )
    errors = [p for p in problems if p.severity == "error"]
    if plan.form is None or errors:
        return verdict(
            "will-not-work",
            "configuration",
            errors[0].message if errors else "BuildKit refuses the attributes",
        )
    form = plan.form
    name = FORM_NAMES[form]
    check = results.get(FORM_CHECKS[form])
    decided = root_status(results, FORM_CHECKS[form])
    existing_check = results.get("existing-cache")
    existing_form = existing_check.observed.get("form") if existing_check is not None else None
    if isinstance(existing_form, str) and existing_form != form:
        problems.append(
            Problem(
                "info",
                "form-change",
                f"{plan.ref} now holds the {_form_name(existing_form)} form; this export "
                f"rewrites the tag as the {name} form (zot < 2.1.3 refused such a change)",
                ("Z4",),
            )
        )
    if check is not None and check.status != "skipped":
        basis: Literal["probed", "existing-cache", "documented"] = check.basis
        if check.status == "supported":
            migration = results.get("manifest-migration")
            existing = results.get("existing-cache")
            old_form = existing.observed.get("form") if existing is not None else None
            if (
                old_form is not None
                and old_form != form
                and migration is not None
                and migration.status == "unsupported"
            ):
                return verdict(
                    "will-not-work",
                    "probed",
                    f"{plan.ref} holds a {old_form} cache and this registry refuses to change a tag's form",
                    "manifest-migration",
                )
            if plan.mode == "max":
                near = results.get("manifest-near-limit")
                if near is not None and near.status == "unsupported":
                    problems.append(
                        Problem(
                            "warning",
                            "large-manifest",
                            "this registry refused a 1 MiB manifest: big mode=max caches may fail",
                        )
                    )
            where = "accepted by this registry" if basis == "probed" else "already stored by this registry"
            if basis == "documented":
                where = "documented for this registry"
                for fact in check.documented[:1]:
                    _add_history(problems, fact)
            return verdict("works", basis, f"{label} writes the {name} form, {where}")
        mapping: Mapping[str, Verdict] = {
            "unsupported": "will-not-work",
            "denied": "denied",
            "config-error": "config-error",
            "inconclusive": "inconclusive",
        }
        return verdict(
            mapping[check.status], basis, f"{label} writes the {name} form: {check.summary}", check.id
        )
    if decided is not None and decided.status not in ("skipped", "supported"):
        mapping2: Mapping[str, Verdict] = {
            "unsupported": "will-not-work",
            "denied": "denied",
            "config-error": "config-error",
            "inconclusive": "inconclusive",
        }
        return verdict(mapping2[decided.status], "probed", f"{decided.id}: {decided.summary}", decided.id)
    facts = family.facts_about(FORM_ATTRIBUTE_TOPICS[form])
    if facts:
        fact = facts[0]
        _add_history(problems, fact)
        if fact.verdict in ("yes", "likely"):
            if fact.verdict == "likely":
                problems.append(
                    Problem(
                        "warning", "not-verified", f"documented as likely only: {fact.text}", fact.sources
                    )
                )
            return verdict("works", "documented", f"{label} writes the {name} form; documented: {fact.text}")
        if fact.verdict == "no":
            problems.append(
                Problem("error", "documented-rejection", f"documented: {fact.text}", fact.sources)
            )
            return CacheToVerdict(
                plan.spec.raw,
                plan.spec.attrs,
                label,
                form,
                "will-not-work",
                "documented",
                f"{label} writes the {name} form, which this registry is documented to reject",
                tuple(problems),
                int(ExitCode.WILL_NOT_WORK),
            )
    return verdict(
        "unknown", "none", f"{label} writes the {name} form; nothing probed or documented about it here"
    )


#: Exit codes of a failed check that decides a run, most telling first: a wrong address or missing
#: repository, refused credentials, transient failures, then a registry that refuses the form.
_FAILED_EXIT: Mapping[Status, ExitCode] = MappingProxyType(
    {
        "config-error": ExitCode.NOT_FOUND,
        "denied": ExitCode.AUTH,
        "inconclusive": ExitCode.NETWORK,
        "unsupported": ExitCode.WILL_NOT_WORK,
    }
)


def judge_forms(results: Mapping[str, Check]) -> tuple[int, tuple[str, ...]]:
    """Exit code and deciding checks when no form was confirmed: the failed checks behind the form checks.

    No confirmed form is never a pass when something failed: a registry that refuses every form
    exits 9, an address without a registry API 3, refused credentials 4, transient failures 6.
    """
    roots = [root_status(results, FORM_CHECKS[form]) for form in FORM_ORDER]
    failed = [r for r in roots if r is not None and r.status in _FAILED_EXIT]
    for status, code in _FAILED_EXIT.items():
        ids = tuple(dict.fromkeys(r.id for r in failed if r.status == status))
        if ids:
            return int(code), ids
    return int(ExitCode.OK), ()


def judge_exit(
    cache_to: CacheToVerdict | None, recommendation: Recommendation, results: Mapping[str, Check]
) -> tuple[int, tuple[str, ...]]:
    """The run's exit code and the checks whose failure decided it (none when it passes)."""
    if cache_to is not None:
        return cache_to.exit_code, cache_to.decided_by
    if recommendation.form is not None:
        return int(ExitCode.OK), ()
    return judge_forms(results)
