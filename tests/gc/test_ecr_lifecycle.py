"""``gc --emit-ecr-lifecycle``: the policy JSON against the documented schema, and what ECR cannot express.

``LIFECYCLE_SCHEMA`` is written from AWS's "Lifecycle policy properties in Amazon ECR" (userguide,
lifecycle_policy_parameters): ``rules[]`` of ``rulePriority`` (integer, required, unique), ``description``
(optional), ``selection`` (``tagStatus`` tagged|untagged|any; ``tagPatternList`` / ``tagPrefixList``;
``countType`` imageCountMoreThan|sinceImagePushed; ``countUnit`` days, only with sinceImagePushed;
``countNumber`` a positive integer) and ``action.type`` expire. The rules the page states in prose
(tagged needs a tag list; untagged has none; at most four ``*`` per pattern; unique priorities) are
checked in ``check_documented_rules``.
"""

from __future__ import annotations

import json
from typing import Any

from inspector.gc.backends.ecr import lifecycle_policy
from inspector.gc.policy import Rules, parse_duration, parse_template
from tests.harness.support import run_cli, validate_json

LIFECYCLE_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["rules"],
    "additionalProperties": False,
    "properties": {
        "rules": {
            "type": "array",
            "items": {
                "type": "object",
                "required": ["rulePriority", "selection", "action"],
                "additionalProperties": False,
                "properties": {
                    "rulePriority": {"type": "integer", "minimum": 1},
                    "description": {"type": "string"},
                    "selection": {
                        "type": "object",
                        "required": ["tagStatus", "countType", "countNumber"],
                        "additionalProperties": False,
                        "properties": {
                            "tagStatus": {"enum": ["tagged", "untagged", "any"]},
                            "tagPatternList": {"type": "array", "items": {"type": "string"}, "minItems": 1},
                            "tagPrefixList": {"type": "array", "items": {"type": "string"}, "minItems": 1},
                            "countType": {"enum": ["imageCountMoreThan", "sinceImagePushed"]},
                            "countUnit": {"enum": ["days"]},
                            "countNumber": {"type": "integer", "minimum": 1},
                        },
                    },
                    "action": {
                        "type": "object",
                        "required": ["type"],
                        "additionalProperties": False,
                        "properties": {"type": {"enum": ["expire"]}},
                    },
                },
            },
        }
    },
}


def check_documented_rules(policy: dict[str, Any]) -> None:
    validate_json(policy, LIFECYCLE_SCHEMA)
    priorities = [r["rulePriority"] for r in policy["rules"]]
    assert len(set(priorities)) == len(priorities)
    for rule in policy["rules"]:
        selection = rule["selection"]
        lists = [k for k in ("tagPatternList", "tagPrefixList") if k in selection]
        assert len(lists) == (1 if selection["tagStatus"] == "tagged" else 0), selection
        assert ("countUnit" in selection) == (selection["countType"] == "sinceImagePushed"), selection
        for pattern in selection.get("tagPatternList", []):
            assert pattern.count("*") <= 4


def rules(**extra: Any) -> Rules:
    templates = (parse_template("{branch}-buildcache"), parse_template("pr-{number}-buildcache"))
    return Rules(templates=templates, **extra)


def test_age_count_and_untagged_rules_become_one_rule_each_per_template() -> None:
    policy, missing = lifecycle_policy(rules(max_age=parse_duration("14d"), keep_last=20), untagged=True)
    check_documented_rules(policy)
    selections = [r["selection"] for r in policy["rules"]]
    # By hand: the untagged rule first (14 days, from --max-age), then per template its age rule and
    # its count rule; one pattern per rule, since a tag list selects images carrying *all* its entries.
    assert selections == [
        {"tagStatus": "untagged", "countType": "sinceImagePushed", "countUnit": "days", "countNumber": 14},
        {
            "tagStatus": "tagged",
            "tagPatternList": ["*-buildcache"],
            "countType": "sinceImagePushed",
            "countUnit": "days",
            "countNumber": 14,
        },
        {
            "tagStatus": "tagged",
            "tagPatternList": ["*-buildcache"],
            "countType": "imageCountMoreThan",
            "countNumber": 20,
        },
        {
            "tagStatus": "tagged",
            "tagPatternList": ["pr-*-buildcache"],
            "countType": "sinceImagePushed",
            "countUnit": "days",
            "countNumber": 14,
        },
        {
            "tagStatus": "tagged",
            "tagPatternList": ["pr-*-buildcache"],
            "countType": "imageCountMoreThan",
            "countNumber": 20,
        },
    ]
    assert [r["rulePriority"] for r in policy["rules"]] == [1, 2, 3, 4, 5]
    text = "\n".join(missing)
    assert "branch gone" in text and "cannot tell caches from other untagged images" in text


def test_protection_is_not_expressible_so_no_tag_rule_is_emitted() -> None:
    policy, missing = lifecycle_policy(
        rules(max_age=parse_duration("36h"), protect=("main",)), untagged=False
    )
    check_documented_rules(policy)
    assert policy == {"rules": []}
    assert any(line.startswith("--protect main: an ECR rule cannot exempt tags") for line in missing)
    # 36 h is not a whole number of days: ECR would need 2, and says so.
    assert any("rounded up to 2d" in line for line in missing)


def test_cli_prints_the_policy_on_stdout_and_the_rest_on_stderr() -> None:
    done = run_cli(
        "gc",
        "123456789012.dkr.ecr.eu-west-1.amazonaws.com/app-cache",
        "-t",
        "{branch}-buildcache",
        "--keep-last",
        "5",
        "--untagged",
        "--unpulled-for",
        "30d",
        "--emit-ecr-lifecycle",
    )
    assert done.returncode == 0, done.stderr
    policy = json.loads(done.stdout)
    check_documented_rules(policy)
    assert [r["selection"]["countType"] for r in policy["rules"]] == [
        "sinceImagePushed",
        "imageCountMoreThan",
    ]
    assert "cacheinspect: not in the ECR policy: branch gone" in done.stderr
    assert "not in the ECR policy: --unpulled-for: not emitted" in done.stderr
    refused = run_cli("gc", "r.example/app", "-t", "{branch}-c", "--emit-ecr-lifecycle", "--apply")
    assert refused.returncode == 2 and "only prints a policy" in refused.stderr
