"""ECR repository settings as probe findings: what the registry API cannot show, read through ECR's API.

``DescribeRepositories`` (``EcrClient.repository``) gives two settings that matter to a cache:

* ``imageTagMutability``: with ``IMMUTABLE`` a pushed tag can never point at another manifest, and a
  push to it fails with ``ImageTagAlreadyExistsException`` (AWS "Preventing image tags from being
  overwritten in Amazon ECR", https://docs.aws.amazon.com/AmazonECR/latest/userguide/image-tag-mutability.html).
  BuildKit re-pushes the same cache tag on every export, so the second export fails: ``unsupported``;
* ``imageScanningConfiguration.scanOnPush``: every export starts a scan of a manifest that is not a
  runnable image (informational).

They are read only for an ECR host (``<account>.dkr.ecr.<region>.amazonaws.com``) and only when boto3
and AWS credentials allow; otherwise one ``skipped`` finding says why. Nothing here changes the exit code.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace

from inspector.errors import CacheInspectError
from inspector.oci.reference import Repository
from inspector.probe.model import Check, ProbeReport
from inspector.registry.ecr import EcrClient, parse_ecr_host

__all__ = ["ecr_findings", "with_ecr_findings"]

GROUP = "vendor settings"
IMMUTABLE_HINT = (
    "BuildKit pushes the same cache tag on every export: make the repository's tags MUTABLE "
    "(aws ecr put-image-tag-mutability --image-tag-mutability MUTABLE), or give each export its own tag"
)


def _unread(summary: str, hint: str | None) -> Check:
    return Check(
        id="ecr-repository-settings",
        group=GROUP,
        title="ECR repository settings",
        status="skipped",
        summary=summary,
        hint=hint,
    )


def ecr_findings(repository: Repository, ecr: EcrClient) -> tuple[Check, ...]:
    """The repository's tag mutability and scan-on-push as checks (one ``skipped`` check if unreadable)."""
    try:
        settings = ecr.repository(repository.path)
    except CacheInspectError as exc:
        return (_unread(f"not read through ECR's API: {exc.message}", exc.hint),)
    immutable = settings.tag_mutability.upper().startswith("IMMUTABLE")
    return (
        Check(
            id="ecr-tag-mutability",
            group=GROUP,
            title="ECR tag mutability",
            status="unsupported" if immutable else "supported",
            summary=(
                f"imageTagMutability {settings.tag_mutability}: "
                + (
                    "a cache tag cannot be pushed twice (ImageTagAlreadyExistsException)"
                    if immutable
                    else "a cache tag can be re-pushed on every export"
                )
            ),
            hint=IMMUTABLE_HINT if immutable else None,
        ),
        Check(
            id="ecr-scan-on-push",
            group=GROUP,
            title="ECR scan on push",
            status="supported",
            summary=(
                "scanOnPush on: every cache export starts a scan of a manifest that is not a runnable image"
                if settings.scan_on_push
                else "scanOnPush off"
            ),
        ),
    )


def with_ecr_findings(
    report: ProbeReport,
    repository: Repository,
    *,
    client: Callable[[str, str], EcrClient] = lambda registry_id, region: EcrClient(
        registry_id, region=region
    ),
) -> ProbeReport:
    """``report`` plus the ECR findings when ``repository`` is on an ECR host; else ``report`` unchanged."""
    parsed = parse_ecr_host(repository.registry)
    if parsed is None:
        return report
    try:
        ecr = client(*parsed)
    except CacheInspectError as exc:  # boto3 missing: the settings stay unknown
        findings: tuple[Check, ...] = (_unread(f"not read: {exc.message}", exc.hint),)
    else:
        findings = ecr_findings(repository, ecr)
    return replace(report, checks=(*report.checks, *findings))
