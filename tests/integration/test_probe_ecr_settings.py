"""`probe` on ECR: the repository's settings read through ECR's API (moto in server mode, real boto3).

moto's DescribeRepositories answers ``imageTagMutability`` and ``imageScanningConfiguration.scanOnPush``
as set by CreateRepository, the fields AWS's API reference documents for DescribeRepositories. The
report is the offline one for an ECR host (no registry request), so only the findings differ.
"""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest

from inspector.errors import UsageError
from inspector.oci.reference import parse_repository
from inspector.probe.ecr_settings import with_ecr_findings
from inspector.probe.output import probe_report_to_json as report_to_json
from inspector.probe.run import offline_report
from inspector.registry.ecr import EcrClient
from tests.harness.ecr_server import ACCOUNT, REGION, EcrServer, ecr_server
from tests.harness.paths import schema
from tests.harness.support import validate_json

HOST = f"{ACCOUNT}.dkr.ecr.{REGION}.amazonaws.com"


@pytest.fixture(scope="module")
def server() -> Iterator[EcrServer]:
    with ecr_server() as started:
        yield started


@pytest.fixture
def ecr(server: EcrServer, monkeypatch: pytest.MonkeyPatch) -> EcrServer:
    for key in ("AWS_PROFILE", "AWS_CONFIG_FILE", "AWS_SHARED_CREDENTIALS_FILE", "AWS_ENDPOINT_URL"):
        monkeypatch.delenv(key, raising=False)
    for key, value in server.env().items():
        monkeypatch.setenv(key, value)
    return server


def findings(repository: str, server: EcrServer) -> dict[str, dict[str, object]]:
    repo = parse_repository(repository)
    report = with_ecr_findings(
        offline_report(repository),
        repo,
        client=lambda registry_id, region: EcrClient(
            registry_id, region=region, endpoint_url=server.endpoint
        ),
    )
    document = report_to_json(report)
    validate_json(document, schema("probe"))
    return {str(c["id"]): c for c in document["checks"] if str(c["id"]).startswith("ecr-")}


def test_immutable_tags_are_a_finding_with_a_hint_and_scan_on_push_is_reported(ecr: EcrServer) -> None:
    ecr.client().create_repository(
        repositoryName="acme/frozen-cache",
        imageTagMutability="IMMUTABLE",
        imageScanningConfiguration={"scanOnPush": True},
    )
    found = findings(f"{HOST}/acme/frozen-cache", ecr)
    assert found["ecr-tag-mutability"]["status"] == "unsupported"
    assert "ImageTagAlreadyExistsException" in str(found["ecr-tag-mutability"]["summary"])
    assert "MUTABLE" in str(found["ecr-tag-mutability"]["hint"])
    assert str(found["ecr-scan-on-push"]["summary"]).startswith("scanOnPush on")


def test_mutable_tags_without_scanning(ecr: EcrServer) -> None:
    ecr.client().create_repository(repositoryName="acme/plain-cache")  # ECR's defaults: MUTABLE, no scan
    found = findings(f"{HOST}/acme/plain-cache", ecr)
    assert (found["ecr-tag-mutability"]["status"], found["ecr-scan-on-push"]["summary"]) == (
        "supported",
        "scanOnPush off",
    )


def test_unreadable_settings_are_one_skipped_finding(ecr: EcrServer) -> None:
    found = findings(f"{HOST}/acme/missing-cache", ecr)  # RepositoryNotFoundException
    assert list(found) == ["ecr-repository-settings"]
    assert found["ecr-repository-settings"]["status"] == "skipped"
    without_boto3 = with_ecr_findings(
        offline_report(f"{HOST}/acme/x"),
        parse_repository(f"{HOST}/acme/x"),
        client=lambda *_: (_ for _ in ()).throw(
            UsageError("the ECR backend needs boto3, which is not installed")
        ),
    )
    assert without_boto3.checks[-1].summary == "not read: the ECR backend needs boto3, which is not installed"


def test_another_host_gets_no_ecr_findings() -> None:
    report = offline_report("ghcr.io/acme/cache")
    assert with_ecr_findings(report, parse_repository("ghcr.io/acme/cache")) is report


def test_the_human_view_shows_the_finding(ecr: EcrServer) -> None:
    from rich.console import Console

    from inspector.cli.render.probe import render_probe

    ecr.client().create_repository(repositoryName="acme/view-cache", imageTagMutability="IMMUTABLE")
    repo = parse_repository(f"{HOST}/acme/view-cache")
    report = with_ecr_findings(
        offline_report(str(repo)),
        repo,
        client=lambda registry_id, region: EcrClient(registry_id, region=region, endpoint_url=ecr.endpoint),
    )
    console = Console(width=200, record=True, color_system=None)
    console.print(render_probe(report, verbose=False))
    text = console.export_text()
    assert "ecr-tag-mutability" in text and "imageTagMutability IMMUTABLE" in text, text
    assert json.dumps(report_to_json(report))  # serialisable
