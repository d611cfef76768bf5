"""``gc --emit-gar-cleanup-policy``: Artifact Registry cleanup policies for what the rules can say.

The file format is the one ``gcloud artifacts repositories set-cleanup-policies --policy=FILE`` reads
(Artifact Registry "Configure cleanup policies",
https://cloud.google.com/artifact-registry/docs/repositories/cleanup-policy; overview in registries.md
[C7]): a JSON list of policies, each ``name``, ``action.type`` Delete or Keep, and either ``condition``
(``tagState`` TAGGED/UNTAGGED/ANY, ``tagPrefixes``, ``versionNamePrefixes``, ``packageNamePrefixes``,
``olderThan``, ``newerThan``) or, for Keep, ``mostRecentVersions`` (``packageNamePrefixes``,
``keepCount``). The schema below is written from that page, not from the emitter.
"""

from __future__ import annotations

from datetime import timedelta

import jsonschema

from inspector.gc.backends.google import cleanup_policy, package_name
from inspector.gc.policy import Rules, parse_template
from inspector.oci.reference import parse_repository

_PREFIXES = {"type": "array", "items": {"type": "string"}}
DOCUMENTED = {
    "type": "array",
    "maxItems": 10,
    "items": {
        "type": "object",
        "required": ["name", "action"],
        "additionalProperties": False,
        "properties": {
            "name": {"type": "string", "pattern": "^[a-z0-9-]+$"},
            "action": {
                "type": "object",
                "required": ["type"],
                "additionalProperties": False,
                "properties": {"type": {"enum": ["Delete", "Keep"]}},
            },
            "condition": {
                "type": "object",
                "additionalProperties": False,
                "properties": {
                    "tagState": {"enum": ["TAGGED", "UNTAGGED", "ANY"]},
                    "tagPrefixes": _PREFIXES,
                    "versionNamePrefixes": _PREFIXES,
                    "packageNamePrefixes": _PREFIXES,
                    "olderThan": {"type": "string", "pattern": "^[0-9]+d$"},
                    "newerThan": {"type": "string", "pattern": "^[0-9]+d$"},
                },
            },
            "mostRecentVersions": {
                "type": "object",
                "additionalProperties": False,
                "properties": {
                    "packageNamePrefixes": _PREFIXES,
                    "keepCount": {"type": "integer", "minimum": 1},
                },
            },
        },
        "oneOf": [{"required": ["condition"]}, {"required": ["mostRecentVersions"]}],
    },
}


def by_name(policies: list[dict[str, object]]) -> dict[str, dict[str, object]]:
    return {str(p["name"]): p for p in policies}


def test_every_expressible_rule_in_the_documented_shape() -> None:
    rules = Rules(
        templates=(parse_template("cache-{branch}"), parse_template("pr-{number}-cache")),
        protect=("main", "release/*"),
        max_age=timedelta(days=14),
        keep_last=20,
    )
    policies, missing = cleanup_policy(rules, untagged=True, package="app")
    jsonschema.validate(policies, DOCUMENTED)
    named = by_name(policies)
    # By hand: untagged caches older than max-age (14d); protect's fixed starts ("main", "release/"),
    # alone and behind each template prefix, kept; a max-age Delete per template prefix; keep-last as
    # a Keep of the 20 most recent versions.
    assert named["cacheinspect-untagged"]["condition"] == {
        "tagState": "UNTAGGED",
        "packageNamePrefixes": ["app"],
        "olderThan": "14d",
    }
    assert named["cacheinspect-protect"]["action"] == {"type": "Keep"}
    assert named["cacheinspect-protect"]["condition"]["tagPrefixes"] == [  # type: ignore[index]
        "cache-main",
        "cache-release/",
        "main",
        "pr-main",
        "pr-release/",
        "release/",
    ]
    assert named["cacheinspect-max-age-1"]["condition"]["tagPrefixes"] == ["cache-"]  # type: ignore[index]
    assert named["cacheinspect-max-age-2"]["condition"]["tagPrefixes"] == ["pr-"]  # type: ignore[index]
    assert named["cacheinspect-keep-last"]["mostRecentVersions"] == {
        "packageNamePrefixes": ["app"],
        "keepCount": 20,
    }
    said = "\n".join(missing)
    assert "branch gone" in said and "keep-last 20" in said and "multi-arch children" in said
    assert "pr-{number}-cache: the prefix 'pr-' also matches tags of other shapes" in said


def test_a_template_without_a_prefix_gets_no_delete_rule() -> None:
    """'{branch}-buildcache' has no fixed start: a prefix rule would delete every tagged version."""
    rules = Rules(templates=(parse_template("{branch}-buildcache"),), max_age=timedelta(hours=36))
    policies, missing = cleanup_policy(rules, untagged=False, package="app")
    jsonschema.validate(policies, DOCUMENTED)
    assert policies == []
    said = "\n".join(missing)
    assert "{branch}-buildcache: max-age not emitted" in said
    assert "max-age 1d12h: the policy counts whole days, rounded up to 2d" in said


def test_a_protect_glob_without_a_fixed_start_drops_the_tag_rules() -> None:
    rules = Rules(
        templates=(parse_template("cache-{branch}"),), protect=("*-lts",), max_age=timedelta(days=7)
    )
    policies, missing = cleanup_policy(rules, untagged=False, package="app")
    assert policies == []
    assert any(line.startswith("--protect *-lts") for line in missing)


def test_the_package_is_the_image_path_inside_the_repository() -> None:
    assert package_name(parse_repository("us-docker.pkg.dev/proj/caches/team/app")) == "team/app"
    assert package_name(parse_repository("gcr.io/proj/app-cache")) == "app-cache"
    assert package_name(parse_repository("localhost:5000/acme/app")) == "acme/app"
