"""The gc plan as a JSON document (``--plan-out``, ``--json``, ``--apply-plan``), and the binding of a reviewed
plan to the policy it is applied under (``rulesDigest``, ``check_plan_policy``).

The schema is ``inspector/schemas/gc-plan.schema.json``. A plan file travels between jobs and is not trusted:
``plan_from_json`` refuses anything malformed or edited (``InvalidContent``, exit 8) and ``check_plan_policy``
a plan made under other rules (``PlanMismatch``, exit 2).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from types import MappingProxyType
from typing import Any, Literal

from inspector.errors import InvalidContent, InvalidReference, UsageError
from inspector.gc.plan import MANIFEST_RULES, ManifestPlan, RepositoryPlan, TagDecision, template_reading
from inspector.gc.policy import Rules, SlugRule, format_duration, parse_duration, parse_template
from inspector.oci import gojson
from inspector.oci.digest import Digest
from inspector.oci.reference import Repository, parse_repository

__all__ = [
    "PLAN_KIND",
    "PLAN_SCHEMA_VERSION",
    "Mode",
    "PlanMismatch",
    "check_plan_policy",
    "plan_from_json",
    "plan_to_json",
    "repository_plan_to_json",
    "rules_digest",
    "rules_to_json",
]

Mode = Literal["dry-run", "apply", "apply-plan"]

PLAN_KIND = "cacheinspect-gc-plan"
PLAN_SCHEMA_VERSION = 1


class PlanMismatch(UsageError):
    """``--apply-plan``: the plan was not made under the policy it is run with (exit 2: nothing was done)."""


def _stamp(value: gojson.Timestamp | None) -> str | None:
    return value.text if value is not None else None


def _iso(value: datetime) -> str:
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def rules_to_json(rules: Rules) -> dict[str, Any]:
    return {
        "tagTemplates": [t.text for t in rules.templates],
        "protect": list(rules.protect),
        "maxAge": format_duration(rules.max_age) if rules.max_age is not None else None,
        "keepLast": rules.keep_last,
        "slug": rules.slug.describe(),
        # Only where given (ECR), so plans of every other backend keep their shape and rules digest.
        **({"unpulledFor": format_duration(rules.unpulled_for)} if rules.unpulled_for is not None else {}),
    }


def rules_digest(repository: Repository, rules: Rules) -> str:
    """What a plan was reviewed under (repository and rules), as a digest ``--apply-plan`` compares.

    Not a signature: anyone can recompute it. It catches a plan whose rules were edited without
    its digest, and lets ``--apply-plan`` compare the plan with the policy it is run with in one value.
    """
    canonical = json.dumps(
        {"repository": str(repository), "rules": rules_to_json(rules)}, sort_keys=True, separators=(",", ":")
    )
    return "sha256:" + hashlib.sha256(canonical.encode()).hexdigest()


def check_plan_policy(plan: RepositoryPlan, rules: Rules) -> None:
    """Refuse (exit 2) a plan that was not made under ``rules`` (the policy ``--apply-plan`` runs with).

    Every deletion is also checked against those rules: a template must cover the tag and no
    protect glob may match it (the tag, its slug or number, the glob slugged).
    """
    if rules_digest(plan.repository, rules) != rules_digest(plan.repository, plan.rules):
        theirs, ours = rules_to_json(plan.rules), rules_to_json(rules)
        differ = ", ".join(k for k in ours if ours[k] != theirs.get(k))
        raise PlanMismatch(
            f"{plan.repository}: the plan's rules differ from the policy given ({differ}); nothing was deleted",
            hint="plan again under this policy, or apply with the policy the plan was reviewed under",
        )
    for decision in plan.deletions:
        reading = template_reading(decision.tag, rules.templates)
        if reading is None:
            raise PlanMismatch(
                f"{plan.repository}: the plan deletes {decision.tag!r}, which no template of the policy "
                "covers; nothing was deleted"
            )
        glob = rules.protection(decision.tag, reading.captured, [])
        if glob is not None:
            raise PlanMismatch(
                f"{plan.repository}: the plan deletes {decision.tag!r}, which the policy protects "
                f"({glob!r}); nothing was deleted"
            )


def repository_plan_to_json(plan: RepositoryPlan) -> dict[str, Any]:
    return {
        "repository": str(plan.repository),
        "plannedAt": _iso(plan.planned_at),
        "rules": rules_to_json(plan.rules),
        "rulesDigest": rules_digest(plan.repository, plan.rules),
        "branches": {"source": plan.branch_source, "branches": plan.live_branches, "pulls": plan.live_pulls},
        "maxDeletes": plan.max_deletes,
        "summary": {
            "tags": len(plan.decisions),
            "delete": plan.count("delete"),
            "keep": plan.count("keep"),
            "ignore": plan.count("ignore"),
            "manifestsDeleted": sum(1 for m in plan.manifests if m.delete_manifest),
            "untaggedCaches": len(plan.untagged_deletions),
        },
        "reclaimable": {
            "bytes": plan.reclaimable_bytes,
            "blobs": [{"digest": d, "size": n} for d, n in plan.reclaimable.items()],
            "manifestBytes": plan.manifest_bytes,
            "atMost": True,
        },
        "tags": [
            {
                "tag": d.tag,
                "digest": d.digest,
                "action": d.action,
                "rule": d.rule,
                "reason": d.reason,
                "template": d.template,
                "captured": d.captured,
                "createdAt": _stamp(d.created_at),
            }
            for d in plan.decisions
        ],
        "manifests": [
            {
                "digest": m.digest,
                "deleteTags": list(m.delete_tags),
                "keptTags": list(m.kept_tags),
                "deleteManifest": m.delete_manifest,
                "manifestSize": m.manifest_size,
                "reason": m.reason,
                "rule": m.rule,
            }
            for m in plan.manifests
        ],
        "notes": list(plan.notes),
    }


def plan_to_json(
    plans: Sequence[RepositoryPlan],
    *,
    created_at: datetime,
    mode: Mode,
    reports: Mapping[Repository, dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """The ``--plan-out`` / ``--json`` document (``inspector/schemas/gc-plan.schema.json``)."""
    return {
        "schemaVersion": PLAN_SCHEMA_VERSION,
        "kind": PLAN_KIND,
        "createdAt": _iso(created_at),
        "mode": mode,
        "repositories": [
            {**repository_plan_to_json(p), "report": (reports or {}).get(p.repository)} for p in plans
        ],
    }


def _get(obj: Mapping[str, Any], key: str, kind: type | tuple[type, ...], where: str) -> Any:
    value = obj.get(key)
    if not isinstance(value, kind) or (isinstance(value, bool) and kind is int):
        raise InvalidContent(f"{where}.{key}: missing or of the wrong type")
    return value


def _opt(obj: Mapping[str, Any], key: str, kind: type, where: str) -> Any:
    return None if obj.get(key) is None else _get(obj, key, kind, where)


def _digest(value: Any, where: str) -> Digest:
    try:
        return Digest(value)
    except InvalidReference:
        raise InvalidContent(f"{where}: invalid digest {str(value)[:80]!r}") from None


def plan_from_json(raw: bytes, source: str) -> tuple[RepositoryPlan, ...]:
    """Read a ``--plan-out`` file back; anything malformed is ``InvalidContent`` (exit 8).

    Every tag the plan deletes must match one of the plan's own templates: a
    hand-edited plan cannot reach a tag that no template covers.
    """
    try:
        doc = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        raise InvalidContent(f"{source}: not a JSON plan ({exc})") from None
    if not isinstance(doc, dict) or doc.get("kind") != PLAN_KIND:
        raise InvalidContent(f"{source}: not a cacheinspect gc plan (kind is not {PLAN_KIND!r})")
    if doc.get("schemaVersion") != PLAN_SCHEMA_VERSION:
        raise InvalidContent(f"{source}: plan schemaVersion {doc.get('schemaVersion')!r} is not supported")
    plans = []
    for i, entry in enumerate(_get(doc, "repositories", list, source)):
        where = f"{source}: repositories[{i}]"
        if not isinstance(entry, dict):
            raise InvalidContent(f"{where}: expected an object")
        plans.append(_repository_plan_from_json(entry, where))
    return tuple(plans)


def _repository_plan_from_json(entry: Mapping[str, Any], where: str) -> RepositoryPlan:
    try:
        r = _get(entry, "rules", dict, where)
        slug = _get(r, "slug", dict, f"{where}.rules")
        max_age = _opt(r, "maxAge", str, f"{where}.rules")
        unpulled_for = _opt(r, "unpulledFor", str, f"{where}.rules")
        rules = Rules(
            templates=tuple(
                parse_template(_str(t, where)) for t in _get(r, "tagTemplates", list, f"{where}.rules")
            ),
            protect=tuple(_str(g, where) for g in _get(r, "protect", list, f"{where}.rules")),
            max_age=parse_duration(max_age) if max_age is not None else None,
            keep_last=_opt(r, "keepLast", int, f"{where}.rules"),
            unpulled_for=parse_duration(unpulled_for) if unpulled_for is not None else None,
            slug=SlugRule(
                lowercase=bool(slug.get("lowercase", False)),
                allowed=_get(slug, "allowed", str, f"{where}.rules.slug"),
                max_length=_get(slug, "maxLength", int, f"{where}.rules.slug"),
                trim=_get(slug, "trim", str, f"{where}.rules.slug"),
            ),
        )
        planned_at = datetime.strptime(_get(entry, "plannedAt", str, where), "%Y-%m-%dT%H:%M:%SZ")
    except UsageError as exc:
        raise InvalidContent(f"{where}: {exc.message}") from None
    except ValueError:
        raise InvalidContent(f"{where}.plannedAt: expected YYYY-MM-DDTHH:MM:SSZ") from None
    decisions = []
    for j, t in enumerate(_get(entry, "tags", list, where)):
        w = f"{where}.tags[{j}]"
        if not isinstance(t, dict):
            raise InvalidContent(f"{w}: expected an object")
        action = _get(t, "action", str, w)
        if action not in ("delete", "keep", "ignore"):
            raise InvalidContent(f"{w}.action: {action!r} is not delete, keep or ignore")
        tag = _get(t, "tag", str, w)
        digest = _digest(t["digest"], f"{w}.digest") if t.get("digest") is not None else None
        if action == "delete" and (digest is None or template_reading(tag, rules.templates) is None):
            raise InvalidContent(
                f"{w}: deleting {tag!r} needs a digest and a tag that matches the plan's templates"
            )
        created = _opt(t, "createdAt", str, w)
        decisions.append(
            TagDecision(
                tag,
                digest,
                action,
                _get(t, "rule", str, w),
                _get(t, "reason", str, w),
                _opt(t, "template", str, w),
                _opt(t, "captured", str, w),
                gojson.parse_go_time(created, f"{w}.createdAt") if created is not None else None,
            )
        )
    by_tag = {d.tag: d for d in decisions}
    manifests = []
    for j, m in enumerate(_get(entry, "manifests", list, where)):
        w = f"{where}.manifests[{j}]"
        if not isinstance(m, dict):
            raise InvalidContent(f"{w}: expected an object")
        digest = _digest(m.get("digest"), f"{w}.digest")
        delete_tags = tuple(_str(x, w) for x in _get(m, "deleteTags", list, w))
        for tag in delete_tags:
            decision = by_tag.get(tag)
            if decision is None or decision.action != "delete" or decision.digest != digest:
                raise InvalidContent(f"{w}: {tag!r} is not a deletion of this digest in the plan's tags")
        rule = m.get("rule", "tags")  # absent in plans written before the rule was recorded
        if rule not in MANIFEST_RULES:
            raise InvalidContent(f"{w}.rule: {rule!r} is not one of {', '.join(MANIFEST_RULES)}")
        plan_entry = ManifestPlan(
            digest,
            delete_tags,
            tuple(_str(x, w) for x in _get(m, "keptTags", list, w)),
            _get(m, "deleteManifest", bool, w),
            _get(m, "manifestSize", int, w),
            _get(m, "reason", str, w),
            rule,
        )
        if rule == "untagged-cache" and (plan_entry.delete_tags or plan_entry.kept_tags):
            raise InvalidContent(f"{w}: an untagged-cache entry names tags")
        manifests.append(plan_entry)
    grouped = {t for m in manifests for t in m.delete_tags}
    missing = [d.tag for d in decisions if d.action == "delete" and d.tag not in grouped]
    if missing:
        raise InvalidContent(f"{where}: deletion of {missing[0]!r} belongs to no manifest entry")
    branches = _get(entry, "branches", dict, where)
    reclaimable = _get(entry, "reclaimable", dict, where)
    repository = _repository(_get(entry, "repository", str, where), f"{where}.repository")
    recorded = entry.get("rulesDigest")
    if recorded is None:
        raise InvalidContent(f"{where}: no rulesDigest (a plan written before plans were bound): plan again")
    if recorded != rules_digest(repository, rules):
        raise InvalidContent(
            f"{where}: rulesDigest does not match the plan's repository and rules: the file was edited"
        )
    return RepositoryPlan(
        repository=repository,
        planned_at=planned_at.replace(tzinfo=UTC),
        rules=rules,
        branch_source=_opt(branches, "source", str, where),
        live_branches=_opt(branches, "branches", int, where),
        live_pulls=_opt(branches, "pulls", int, where),
        max_deletes=_opt(entry, "maxDeletes", int, where),
        decisions=tuple(decisions),
        manifests=tuple(manifests),
        reclaimable=MappingProxyType(_blob_sizes(_get(reclaimable, "blobs", list, where), where)),
        manifest_bytes=_get(reclaimable, "manifestBytes", int, where),
        notes=tuple(_str(n, where) for n in _get(entry, "notes", list, where)),
    )


def _repository(text: str, where: str) -> Repository:
    """The plan's repository, as this tool writes it (canonical); any other spelling was not written here."""
    try:
        repository = parse_repository(text)
    except InvalidReference as exc:
        raise InvalidContent(f"{where}: {exc.message}") from None
    if str(repository) != text:
        raise InvalidContent(f"{where}: {text[:200]!r} is not a canonical repository name ({repository})")
    return repository


def _blob_sizes(items: list[Any], where: str) -> dict[Digest, int]:
    out: dict[Digest, int] = {}
    for i, item in enumerate(items):
        w = f"{where}.reclaimable.blobs[{i}]"
        if not isinstance(item, dict):
            raise InvalidContent(f"{w}: expected an object")
        out[_digest(item.get("digest"), f"{w}.digest")] = _get(item, "size", int, w)
    return out


def _str(value: Any, where: str) -> str:
    if not isinstance(value, str):
        raise InvalidContent(f"{where}: expected a string, found {type(value).__name__}")
    return value
